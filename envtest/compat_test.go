package envtest_test

import (
	"context"
	"github.com/go-logr/logr"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/capstan-io/capstan/envtest"
)

func init() {
	// controller-runtime's global logger, else it prints a stack trace
	// warning on first use.
	crlog.SetLogger(logr.Discard())
}

func assetsDir(tb testing.TB) string {
	tb.Helper()
	dir, err := envtest.Assets(context.Background(), envtest.AssetsOptions{})
	if err != nil {
		tb.Fatalf("Assets: %v", err)
	}
	return dir
}

// TestControllerRuntimeEnvtestUsesOurAssets: the folder capstan prints for
// KUBEBUILDER_ASSETS is enough for controller-runtime's envtest to start a
// working control plane.
func TestControllerRuntimeEnvtestUsesOurAssets(t *testing.T) {
	ctx := ctxFor(t)
	cr := &crenvtest.Environment{BinaryAssetsDirectory: assetsDir(t)}
	cfg, err := cr.Start()
	if err != nil {
		t.Fatalf("controller-runtime envtest Start: %v", err)
	}
	t.Cleanup(func() {
		if err := cr.Stop(); err != nil {
			t.Errorf("controller-runtime envtest Stop: %v", err)
		}
	})
	cs := clientset(t, cfg)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "from-controller-runtime"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace through controller-runtime's envtest: %v", err)
	}
	v, err := cs.Discovery().ServerVersion()
	if err != nil || v.GitVersion != envtest.KubernetesVersion {
		t.Errorf("server version: got %v (err %v), want %s", v, err, envtest.KubernetesVersion)
	}
}

// BenchmarkStartStop measures start-to-ready and stop of a control plane,
// capstan's and controller-runtime's envtest on the same binaries. Each
// iteration is one whole start and stop; start-ms and stop-ms split it.
//
//	go test -run '^$' -bench StartStop -benchtime 10x -count 5 ./envtest/
func BenchmarkStartStop(b *testing.B) {
	dir := assetsDir(b)
	b.Run("impl=capstan", func(b *testing.B) {
		benchStartStop(b, func() (func() error, error) {
			env, err := envtest.Start(context.Background(), envtest.Options{Assets: envtest.AssetsOptions{Dir: dir}})
			if err != nil {
				return nil, err
			}
			return env.Stop, nil
		})
	})
	b.Run("impl=controllerruntime", func(b *testing.B) {
		benchStartStop(b, func() (func() error, error) {
			cr := &crenvtest.Environment{BinaryAssetsDirectory: dir}
			if _, err := cr.Start(); err != nil {
				return nil, err
			}
			return cr.Stop, nil
		})
	})
}

func benchStartStop(b *testing.B, start func() (stop func() error, err error)) {
	var startTotal, stopTotal time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		stop, err := start()
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := stop(); err != nil {
			b.Fatal(err)
		}
		startTotal += t1.Sub(t0)
		stopTotal += time.Since(t1)
		n++
	}
	b.ReportMetric(float64(startTotal.Milliseconds())/float64(n), "start-ms/op")
	b.ReportMetric(float64(stopTotal.Milliseconds())/float64(n), "stop-ms/op")
}
