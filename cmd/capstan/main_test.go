package main

import (
	"bytes"
	"context"
	"errors"
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
		{name: "help", args: []string{"help"}, wantOut: "capstan envtest run"},
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
