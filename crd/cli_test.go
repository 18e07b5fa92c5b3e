package crd_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/capstan-io/capstan/crd"
)

// TestRunGenerateMatchesControllerGen runs the same Makefile-style command
// line through capstan and controller-gen and compares the CRD files and
// the RBAC role (parsed trees, generator annotation aside).
func TestRunGenerateMatchesControllerGen(t *testing.T) {
	root := moduleRoot(t)
	theirs, ours := t.TempDir(), t.TempDir()
	args := func(out string) []string {
		return []string{
			"rbac:roleName=manager-role", "crd:maxDescLen=0", "paths=" + corpusPaths,
			"output:crd:artifacts:config=" + filepath.Join(out, "crd"),
			"output:rbac:artifacts:config=" + filepath.Join(out, "rbac"),
		}
	}
	runControllerGen(t, args(theirs)...)
	var stderr strings.Builder
	if err := crd.RunGenerate(context.Background(), root, args(ours), &strings.Builder{}, &stderr); err != nil {
		t.Fatalf("RunGenerate: %v", err)
	}
	for _, sub := range []string{"crd", "rbac"} {
		want, err := os.ReadDir(filepath.Join(theirs, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range want {
			t.Run(sub+"/"+e.Name(), func(t *testing.T) {
				w, err := os.ReadFile(filepath.Join(theirs, sub, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				g, err := os.ReadFile(filepath.Join(ours, sub, e.Name()))
				if err != nil {
					t.Fatalf("capstan did not write %s: %v", e.Name(), err)
				}
				if diff := cmp.Diff(parseDocs(t, w), parseDocs(t, g)); diff != "" {
					t.Errorf("(-controller-gen +capstan):\n%s", diff)
				}
			})
		}
	}
}

// parseDocs parses a multi-document YAML file into trees.
func parseDocs(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, doc := range strings.Split(string(b), "\n---\n") {
		doc = strings.TrimPrefix(strings.TrimSpace(doc), "---")
		if strings.TrimSpace(doc) == "" {
			continue
		}
		out = append(out, parseTree(t, []byte(doc)))
	}
	return out
}

func TestRunGenerateArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no generator", []string{"paths=./..."}, "no generator"},
		{"unknown generator", []string{"webhook"}, "unknown argument"},
		{"unknown option", []string{"crd:bogus=1"}, `does not take "bogus"`},
		{"v1beta1 CRDs", []string{"crd:crdVersions=v1beta1"}, "only v1"},
		{"bad output rule", []string{"crd", "output:crd:elsewhere=x"}, "unknown output rule"},
		{"bad maxDescLen", []string{"crd:maxDescLen=-1"}, "maxDescLen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := crd.RunGenerate(context.Background(), t.TempDir(), tt.args, &strings.Builder{}, &strings.Builder{})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
			if !errors.Is(err, crd.ErrUsage) {
				t.Errorf("got %v, want ErrUsage", err)
			}
		})
	}
}

// TestRunGenerateStdout writes CRDs to stdout (output:crd:stdout).
func TestRunGenerateStdout(t *testing.T) {
	var stdout strings.Builder
	err := crd.RunGenerate(context.Background(), moduleRoot(t), []string{"crd", "paths=./crd/internal/corpus/config/...", "output:crd:stdout"}, &stdout, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal([]byte(stdout.String()), &m); err != nil {
		t.Fatal(err)
	}
	if m["metadata"].(map[string]any)["name"] != "settings.config.capstan.io" {
		t.Fatalf("got %v, want the settings CRD", m["metadata"])
	}
}
