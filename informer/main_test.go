package informer_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/capstan-io/capstan/envtest"
)

var sharedEnv = envtest.NewShared(envtest.Options{})

// env returns the package's shared control plane, started on first use and
// stopped by TestMain. Tests that restart it must leave it running.
func env(t testing.TB) *envtest.Environment { return sharedEnv.Get(t) }

// TestMain stops the shared control plane, then checks that no goroutine
// outlived its test.
func TestMain(m *testing.M) {
	code := m.Run()
	if err := sharedEnv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
