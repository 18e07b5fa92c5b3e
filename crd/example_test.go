package crd_test

import (
	"context"
	"fmt"

	"github.com/capstan-io/capstan/crd"
)

// Generate the CRDs of a tree of API packages and print what they serve.
func ExampleGenerate() {
	crds, err := crd.Generate(context.Background(), crd.Options{
		Paths: []string{"./crd/internal/corpus/..."},
		Dir:   "..", // the module root; usually left empty (the current directory)
	})
	if err != nil {
		fmt.Println(err) // every problem, each with file:line
		return
	}
	for _, c := range crds {
		fmt.Printf("%s (%s):", crd.FileName(c), c.Spec.Scope)
		for _, v := range c.Spec.Versions {
			fmt.Printf(" %s served=%v storage=%v", v.Name, v.Served, v.Storage)
		}
		fmt.Println()
	}
	// Output:
	// shop.capstan.io_gadgetry.yaml (Cluster): v2 served=true storage=true
	// config.capstan.io_settings.yaml (Cluster): v1alpha1 served=true storage=true
	// shop.capstan.io_widgets.yaml (Namespaced): v1 served=true storage=false v1beta1 served=false storage=false v2 served=true storage=true
}
