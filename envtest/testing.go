package envtest

import (
	"context"
	"sync"
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

// Shared is one environment for a whole test package: started by the first
// test that asks for it, stopped by TestMain. Tests keep apart by namespace.
//
//	var env = envtest.NewShared(envtest.Options{})
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		if err := env.Stop(); err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			code = 1
//		}
//		os.Exit(code)
//	}
//
//	func TestX(t *testing.T) {
//		cfg := env.Get(t).Config()
//		...
//	}
type Shared struct {
	opts Options
	once sync.Once
	env  *Environment
	err  error
}

// NewShared returns a Shared that will start with opts. It starts nothing.
func NewShared(opts Options) *Shared { return &Shared{opts: opts} }

// Get returns the environment, starting it on first use; a failed start
// fails tb (and every later Get).
func (s *Shared) Get(tb testing.TB) *Environment {
	tb.Helper()
	s.once.Do(func() { s.env, s.err = Start(context.Background(), s.opts) })
	if s.err != nil {
		tb.Fatalf("starting envtest: %v", s.err)
	}
	return s.env
}

// Stop stops the environment if it was started.
func (s *Shared) Stop() error {
	if s.env == nil {
		return nil
	}
	return s.env.Stop()
}
