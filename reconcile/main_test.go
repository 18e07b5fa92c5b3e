package reconcile_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/capstan-io/capstan/envtest"
)

// One control plane serves every integration test of the package; tests
// keep apart by namespace. It starts on first use and stops before the
// leak check.
var (
	envOnce sync.Once
	env     *envtest.Environment
	envErr  error
)

// sharedEnv returns the package's envtest environment, starting it if
// needed.
func sharedEnv(t testing.TB) *envtest.Environment {
	t.Helper()
	envOnce.Do(func() { env, envErr = envtest.Start(context.Background(), envtest.Options{}) })
	if envErr != nil {
		t.Fatalf("starting envtest: %v", envErr)
	}
	return env
}

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	if code == 0 {
		if err := goleak.Find(
			// client-go's idle HTTP/2 connections end when the server closes
			// them; the API server is gone by now but their read loops may
			// still be unwinding.
			goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
			goleak.IgnoreTopFunction("golang.org/x/net/http2.(*ClientConn).readLoop"),
			goleak.IgnoreAnyFunction("k8s.io/klog/v2.(*flushDaemon).run"),
		); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
