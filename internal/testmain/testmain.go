// Package testmain is the TestMain of capstan's test packages that share
// one envtest control plane: run the tests, stop the control plane, then
// fail if any goroutine outlived the tests.
package testmain

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/capstan-io/capstan/envtest"
)

// Run runs m, stops env (which may never have started), checks for
// leaked goroutines when everything passed, and exits with the result:
//
//	var env = envtest.NewShared(envtest.Options{})
//
//	func TestMain(m *testing.M) { testmain.Run(m, env) }
func Run(m *testing.M, env *envtest.Shared) {
	os.Exit(run(m, env))
}

func run(m *testing.M, env *envtest.Shared) int {
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}
