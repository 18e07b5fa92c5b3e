package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/capstan-io/capstan/envtest"
)

func TestRunUsage(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantUsage bool   // a usageError (exit status 2)
		wantOut   string // in stdout
	}{
		{name: "no command", args: nil, wantUsage: true},
		{name: "unknown command", args: []string{"frobnicate"}, wantUsage: true},
		{name: "envtest without subcommand", args: []string{"envtest"}, wantUsage: true},
		{name: "envtest unknown subcommand", args: []string{"envtest", "explode"}, wantUsage: true},
		{name: "envtest setup bad flag", args: []string{"envtest", "setup", "--no-such"}, wantUsage: true},
		{name: "envtest setup stray argument", args: []string{"envtest", "setup", "extra"}, wantUsage: true},
		{name: "controller-manager bad flag", args: []string{"controller-manager", "--no-such"}, wantUsage: true},
		{name: "controller-manager stray argument", args: []string{"controller-manager", "extra"}, wantUsage: true},
		{name: "demo bad replicas", args: []string{"demo", "--replicas", "0"}, wantUsage: true},
		{name: "demo stray argument", args: []string{"demo", "now"}, wantUsage: true},
		{name: "help", args: []string{"help"}, wantOut: "capstan envtest run"},
		{name: "help lists demo", args: []string{"help"}, wantOut: "capstan demo"},
		{name: "version", args: []string{"version"}, wantOut: envtest.KubernetesVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(context.Background(), tt.args, &out, &errb)
			var u usageError
			if got := errors.As(err, &u); got != tt.wantUsage {
				t.Fatalf("usage error: got %v (err %v), want %v", got, err, tt.wantUsage)
			}
			if !tt.wantUsage && err != nil {
				t.Fatalf("run: %v", err)
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("stdout: got %q, want it to contain %q", out.String(), tt.wantOut)
			}
		})
	}
}

// TestEnvtestSetupPrintPath: --print-path prints exactly the assets folder,
// one line, so that KUBEBUILDER_ASSETS=$(capstan envtest setup --print-path)
// works.
func TestEnvtestSetupPrintPath(t *testing.T) {
	want, err := envtest.Assets(context.Background(), envtest.AssetsOptions{})
	if err != nil {
		t.Fatalf("Assets: %v", err)
	}
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"envtest", "setup", "--print-path"}, &out, &errb); err != nil {
		t.Fatalf("run: %v (stderr %q)", err, errb.String())
	}
	if out.String() != want+"\n" {
		t.Errorf("stdout: got %q, want %q", out.String(), want+"\n")
	}
}

// TestGenerateCRD runs `capstan generate` on the crd package's corpus and
// checks a CRD file lands where output= says, named as controller-gen names
// it.
func TestGenerateCRD(t *testing.T) {
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"generate", "crd", "paths=../../crd/internal/corpus/shop/...", "output=" + out}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("generate: %v (stderr %q)", err, stderr.String())
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) == 0 || !strings.HasSuffix(names[0], ".yaml") || !strings.Contains(names[0], "_") {
		t.Errorf("generated files: got %v, want <group>_<plural>.yaml files", names)
	}
	var u usageError
	if err := run(context.Background(), []string{"generate", "crd", "nonsense=1"}, &stdout, &stderr); !errors.As(err, &u) {
		t.Errorf("generate with a bad argument: got %v, want a usage error", err)
	}
}
