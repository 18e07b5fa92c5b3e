package main

import (
	"context"
	"errors"
	"io"

	"github.com/capstan-io/capstan/crd"
)

func runGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"generate: want generators (crd, object, rbac) and paths=..."}
	}
	err := crd.RunGenerate(ctx, "", args, stdout, stderr)
	if errors.Is(err, crd.ErrUsage) {
		return usageError{err.Error()}
	}
	return err
}
