package informer_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/capstan-io/capstan/envtest"
)

var (
	sharedEnvOnce sync.Once
	sharedEnv     *envtest.Environment
	sharedEnvErr  error
)

// env returns the package's shared control plane, started on first use and
// stopped by TestMain. Tests that restart it must leave it running.
func env(t testing.TB) *envtest.Environment {
	t.Helper()
	sharedEnvOnce.Do(func() {
		sharedEnv, sharedEnvErr = envtest.Start(context.Background(), envtest.Options{})
	})
	if sharedEnvErr != nil {
		t.Fatalf("starting envtest: %v", sharedEnvErr)
	}
	return sharedEnv
}

// TestMain stops the shared control plane, then checks that no goroutine
// outlived its test.
func TestMain(m *testing.M) {
	code := m.Run()
	if sharedEnv != nil {
		if err := sharedEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
			code = 1
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
