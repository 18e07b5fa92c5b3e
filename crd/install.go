package crd

import (
	"context"
	"fmt"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/client-go/rest"

	"github.com/capstan-io/capstan/internal/crdinstall"
)

// ErrNotEstablished is wrapped when the API server refuses a CRD's names.
var ErrNotEstablished = crdinstall.ErrNotEstablished

// Install creates each CRD, or updates it if it exists, then waits until
// every one is Established and its versions are in discovery (its API is
// served). It returns early with an error wrapping ErrNotEstablished if the
// server refuses a CRD's names, and with ctx's error if ctx ends first:
// bound the wait with a deadline.
func Install(ctx context.Context, cfg *rest.Config, crds ...*apiextensionsv1.CustomResourceDefinition) error {
	if err := crdinstall.Install(ctx, cfg, crds...); err != nil {
		return fmt.Errorf("crd: %w", err)
	}
	return nil
}

// ReadFiles reads CRDs from YAML or JSON files, or from every .yaml, .yml
// and .json file directly in a folder, for Install.
func ReadFiles(paths ...string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	crds, err := crdinstall.ReadFiles(paths...)
	if err != nil {
		return nil, fmt.Errorf("crd: %w", err)
	}
	return crds, nil
}
