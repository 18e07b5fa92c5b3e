//go:build !unix

package gobuild

import (
	"context"
	"errors"
)

func lockFile(context.Context, string, func()) (func(), error) {
	return nil, errors.New("gobuild: building binaries is supported on unix systems only; set KUBEBUILDER_ASSETS to a folder holding them")
}
