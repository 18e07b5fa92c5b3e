package crd_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/capstan-io/capstan/crd"
)

// BenchmarkGenerate times generating the corpus's CRDs into a directory,
// capstan in process and controller-gen v0.23.0 as the binary Makefiles
// run. Both load the packages through `go list`, type-check them and write
// the same three files.
func BenchmarkGenerate(b *testing.B) {
	root := moduleRoot(b)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"crd", []string{"crd", "paths=" + corpusPaths, "output:crd:dir="}},
		{"crd+rbac", []string{"crd", "rbac:roleName=manager-role", "paths=" + corpusPaths, "output:crd:dir=", "output:rbac:dir="}},
	} {
		// DeepCopy is left out: both tools write it next to the sources.
		b.Run("impl=capstan/gen="+tc.name, func(b *testing.B) {
			for b.Loop() {
				out := b.TempDir()
				args := withDir(tc.args, out)
				if err := crd.RunGenerate(context.Background(), root, args, &strings.Builder{}, &strings.Builder{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		cg := controllerGen(b)
		b.Run("impl=controllergen/gen="+tc.name, func(b *testing.B) {
			for b.Loop() {
				out := b.TempDir()
				cmd := exec.Command(cg, withDir(tc.args, out)...)
				cmd.Dir = root
				if o, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("%v\n%s", err, o)
				}
			}
		})
	}
}

// withDir completes the output arguments ending in "dir=" with dir.
func withDir(args []string, dir string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.HasSuffix(a, "dir=") {
			a += dir
		}
		out[i] = a
	}
	return out
}
