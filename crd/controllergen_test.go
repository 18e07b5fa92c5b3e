package crd_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/capstan-io/capstan/internal/gobuild"
)

// controllerGenVersion is the controller-gen release capstan is compared with.
const controllerGenVersion = "v0.23.0"

var (
	controllerGenOnce sync.Once
	controllerGenPath string
	controllerGenErr  error
)

// controllerGen returns the path of controller-gen, building it from the Go
// module proxy into the user cache on first use (a file lock makes parallel
// test processes build it once). It is never added to capstan's go.mod.
func controllerGen(t testing.TB) string {
	t.Helper()
	controllerGenOnce.Do(func() {
		cache, err := os.UserCacheDir()
		if err != nil {
			controllerGenErr = err
			return
		}
		dst := filepath.Join(cache, "capstan", "tools", "controller-gen-"+controllerGenVersion)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		controllerGenErr = gobuild.Ensure(ctx, dst, gobuild.Spec{
			Name:     "controller-gen " + controllerGenVersion,
			Estimate: "~1 min",
			GoMod: func(context.Context) (string, error) {
				return "module capstan.local/tools/controllergen\n\ngo 1.26.0\n\nrequire sigs.k8s.io/controller-tools " + controllerGenVersion + "\n", nil
			},
			Files:   map[string]string{"tools.go": "//go:build tools\n\npackage tools\n\nimport _ \"sigs.k8s.io/controller-tools/cmd/controller-gen\"\n"},
			Package: "sigs.k8s.io/controller-tools/cmd/controller-gen",
		}, os.Stderr)
		controllerGenPath = dst
	})
	if controllerGenErr != nil {
		t.Fatalf("building controller-gen: %v", controllerGenErr)
	}
	return controllerGenPath
}

// moduleRoot is the directory of capstan's go.mod (tests run in crd/).
func moduleRoot(t testing.TB) string {
	t.Helper()
	abs, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// runControllerGen runs controller-gen with args in the module root.
func runControllerGen(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command(controllerGen(t), args...)
	cmd.Dir = moduleRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("controller-gen %v: %v\n%s", args, err, out)
	}
}
