package reconcile_test

import (
	"testing"

	"github.com/capstan-io/capstan/envtest"
	"github.com/capstan-io/capstan/internal/testmain"
)

// One control plane serves every integration test of the package; tests
// keep apart by namespace. It starts on first use and stops before the
// leak check.
var env = envtest.NewShared(envtest.Options{})

// sharedEnv returns the package's envtest environment, starting it if
// needed.
func sharedEnv(tb testing.TB) *envtest.Environment { return env.Get(tb) }

func TestMain(m *testing.M) { testmain.Run(m, env) }
