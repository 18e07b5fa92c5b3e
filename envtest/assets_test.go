package envtest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/capstan-io/capstan/envtest"
)

// TestAssetsFromEnvironment: CAPSTAN_ASSETS wins over KUBEBUILDER_ASSETS,
// and a folder without the binaries is an error naming it, never a build.
func TestAssetsFromEnvironment(t *testing.T) {
	real := assetsDir(t)
	empty := t.TempDir()
	tests := []struct {
		name       string
		capstan    string
		kubebuild  string
		want       string
		wantErrSub string
	}{
		{name: "KUBEBUILDER_ASSETS", kubebuild: real, want: real},
		{name: "CAPSTAN_ASSETS wins", capstan: real, kubebuild: empty, want: real},
		{name: "folder without binaries", kubebuild: empty, wantErrSub: empty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(envtest.EnvAssets, tt.capstan)
			t.Setenv(envtest.EnvKubebuilderAssets, tt.kubebuild)
			got, err := envtest.Assets(context.Background(), envtest.AssetsOptions{})
			if tt.wantErrSub != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrSub) {
					t.Fatalf("got %q, %v; want an error naming %s", got, err, tt.wantErrSub)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestAssetsWithoutToolchain: with nothing cached and no go command, the
// error says how to provide the binaries instead.
func TestAssetsWithoutToolchain(t *testing.T) {
	t.Setenv(envtest.EnvAssets, "")
	t.Setenv(envtest.EnvKubebuilderAssets, "")
	t.Setenv("PATH", t.TempDir())
	_, err := envtest.Assets(context.Background(), envtest.AssetsOptions{CacheDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "KUBEBUILDER_ASSETS") || !strings.Contains(err.Error(), "go command") {
		t.Fatalf("got %v, want an error about the missing go command naming KUBEBUILDER_ASSETS", err)
	}
}
