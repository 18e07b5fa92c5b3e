package crd_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/capstan-io/capstan/crd"
)

// TestBadInput generates CRDs from packages with one mistake each and
// checks the error names the type, the field where there is one, and
// file:line, and that nothing is written. Where controller-gen v0.23.0
// accepts the input (and writes a CRD that the API server refuses or that
// is wrong), the case says so and why capstan differs; the test runs
// controller-gen to prove the difference is real.
func TestBadInput(t *testing.T) {
	tests := []struct {
		dir  string
		want []string // substrings of the error
		// controllerGenWrites is set where controller-gen succeeds: the
		// deliberate difference, with its reason.
		controllerGenWrites string
	}{
		{dir: "float", want: []string{"type ThingSpec field Ratio", "types.go:16", "float"}},
		{dir: "mapkey", want: []string{"type ThingSpec field ByID", "types.go:16", "map keys must be strings"}},
		{dir: "channel", want: []string{"type ThingSpec field Events", "types.go:16", "channel"}},
		{dir: "fn", want: []string{"type ThingSpec field Hook", "types.go:16", "function"}},
		{dir: "unknownmarker", want: []string{"types.go:16", "unknown marker +kubebuilder:validation:Minimun=1"},
			controllerGenWrites: "controller-gen ignores unknown markers, so a typo silently drops a validation"},
		{dir: "misplaced", want: []string{"types.go:16", "applies to types, not to fields"},
			controllerGenWrites: "controller-gen ignores a marker placed where it does not apply"},
		{dir: "conflict", want: []string{"type ThingSpec field Count", "types.go:18", "both optional and required"},
			controllerGenWrites: "controller-gen picks one of two contradicting markers without a word"},
		{dir: "bigint", want: []string{"type ThingSpec field Count", "types.go:16", "9007199254740993 cannot be represented exactly"},
			controllerGenWrites: "controller-gen rounds the bound to 9007199254740992, a different limit than written"},
		{dir: "badarg", want: []string{"types.go:16", "MaxLength=abc", "expected an integer"}},
		{dir: "notag", want: []string{"type ThingSpec field Name", "types.go:16", "no json tag"}},
		{dir: "recursive", want: []string{"type Node is recursive", "Node → Node"},
			controllerGenWrites: "controller-gen cuts the recursion to an empty schema, which prunes every child"},
		{dir: "nogroup", want: []string{"type Thing", "types.go:8", "no +groupName"},
			controllerGenWrites: "controller-gen writes a CRD with an empty group, which the API server refuses"},
		{dir: "skiponly", want: []string{"type Thing", "skipversion on every version"},
			controllerGenWrites: "controller-gen writes nothing and reports success"},
		{dir: "twostorage/...", want: []string{"type Thing", "2 storage versions (v1, v2)"},
			controllerGenWrites: "controller-gen writes a CRD with two storage versions, which the API server refuses"},
	}
	root := moduleRoot(t)
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			path := "./crd/testdata/bad/" + tt.dir
			crds, err := crd.Generate(context.Background(), crd.Options{Paths: []string{path}, Dir: root})
			if err == nil {
				t.Fatalf("got %d CRDs and no error, want an error", len(crds))
			}
			if !errors.Is(err, crd.ErrInvalidInput) {
				t.Errorf("got error %v, want one wrapping ErrInvalidInput", err)
			}
			if crds != nil {
				t.Errorf("got %d CRDs with the error, want none", len(crds))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			// The CLI path writes nothing.
			out := t.TempDir()
			var stderr strings.Builder
			rerr := crd.RunGenerate(context.Background(), root, []string{"crd", "paths=" + path, "output:crd:dir=" + out}, &strings.Builder{}, &stderr)
			if rerr == nil {
				t.Errorf("RunGenerate succeeded, want an error")
			}
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("RunGenerate wrote %d files, want none", len(entries))
			}
			if tt.controllerGenWrites == "" {
				return
			}
			cg := t.TempDir()
			cmd := exec.Command(controllerGen(t), "crd", "paths="+path, "output:crd:dir="+cg)
			cmd.Dir = root
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("controller-gen failed (%v), but the case documents that it accepts this input (%s):\n%s", err, tt.controllerGenWrites, b)
			}
		})
	}
}

var lineRef = regexp.MustCompile(`\.go:\d+:\d+`)

// TestBadInputNamesEveryProblem checks that all problems are reported at
// once, each with a position.
func TestBadInputNamesEveryProblem(t *testing.T) {
	_, err := crd.Generate(context.Background(), crd.Options{
		Paths: []string{"./crd/testdata/bad/float", "./crd/testdata/bad/mapkey", "./crd/testdata/bad/notag"},
		Dir:   moduleRoot(t),
	})
	if err == nil {
		t.Fatal("got no error, want four")
	}
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")[1:]
	// Three field problems, and the three packages being three versions of
	// bad.capstan.io/Thing with no storage version.
	if len(lines) != 4 {
		t.Fatalf("got %d problems, want 4:\n%v", len(lines), err)
	}
	for _, l := range lines {
		if !lineRef.MatchString(l) || !strings.Contains(l, string(filepath.Separator)+"types.go") {
			t.Errorf("problem %q has no file:line", l)
		}
	}
}
