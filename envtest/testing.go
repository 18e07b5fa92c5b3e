package envtest

import (
	"context"
	"testing"
)

// StartForTest starts an environment for one test (or, from TestMain-like
// helpers, one package) and stops it when tb's cleanup runs. A failed start
// fails tb at once; when tb has failed by cleanup time, the components' last
// log lines are logged, so a failing test shows what the API server said.
func StartForTest(tb testing.TB, opts Options) *Environment {
	tb.Helper()
	env, err := Start(context.Background(), opts)
	if err != nil {
		tb.Fatalf("starting envtest: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("envtest logs:\n%s", env.Logs(40))
		}
		if err := env.Stop(); err != nil {
			tb.Errorf("stopping envtest: %v", err)
		}
	})
	return env
}
