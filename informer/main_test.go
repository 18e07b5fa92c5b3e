package informer_test

import (
	"testing"

	"github.com/capstan-io/capstan/envtest"
	"github.com/capstan-io/capstan/internal/testmain"
)

var sharedEnv = envtest.NewShared(envtest.Options{})

// env returns the package's shared control plane, started on first use and
// stopped by TestMain. Tests that restart it must leave it running.
func env(t testing.TB) *envtest.Environment { return sharedEnv.Get(t) }

func TestMain(m *testing.M) { testmain.Run(m, sharedEnv) }
