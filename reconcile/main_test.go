package reconcile_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/capstan-io/capstan/envtest"
)

// One control plane serves every integration test of the package; tests
// keep apart by namespace. It starts on first use and stops before the
// leak check.
var env = envtest.NewShared(envtest.Options{})

// sharedEnv returns the package's envtest environment, starting it if
// needed.
func sharedEnv(tb testing.TB) *envtest.Environment { return env.Get(tb) }

func TestMain(m *testing.M) {
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
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
