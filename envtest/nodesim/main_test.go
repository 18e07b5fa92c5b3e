package nodesim_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/capstan-io/capstan/envtest"
)

// The integration tests share one control plane: each starts its own
// simulator with nodes of its own and works in a namespace of its own.
var (
	envOnce sync.Once
	env     *envtest.Environment
	envErr  error
)

func sharedEnv(t *testing.T) *envtest.Environment {
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
		if code != 0 {
			fmt.Fprintf(os.Stderr, "envtest logs:\n%s\n", env.Logs(40))
		}
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping envtest: %v\n", err)
			code = 1
		}
	}
	if code == 0 {
		if err := goleak.Find(
			// client-go's HTTP/2 transports keep idle connections' read
			// loops until the server closes them; they end when the API
			// server stops.
			goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
			goleak.IgnoreTopFunction("golang.org/x/net/http2.(*ClientConn).readLoop"),
			goleak.IgnoreAnyFunction("k8s.io/klog/v2.(*flushDaemon).run"),
		); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
