package reconcile_test

import (
	"context"
	"flag"
	"fmt"
	"github.com/go-logr/logr"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	crconfig "sigs.k8s.io/controller-runtime/pkg/config"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crreconcile "sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/capstan-io/capstan/reconcile"
)

func init() {
	// controller-runtime's global logger, else it prints a stack-trace
	// warning on first use.
	crlog.SetLogger(logr.Discard())
}

var benchObjects = flag.String("bench-objects", "10000", "comma-separated ConfigMap counts for BenchmarkReconcileAll (the issue's figures use 10000,50000)")

// seeded holds, per object count, the namespace filled with that many
// ConfigMaps in the shared envtest.
var (
	seedMu sync.Mutex
	seeded = map[int]string{}
)

// seedConfigMaps fills a namespace with n ConfigMaps of about 1 KiB, once per
// n per test binary.
func seedConfigMaps(b *testing.B, n int) string {
	b.Helper()
	seedMu.Lock()
	defer seedMu.Unlock()
	if ns, ok := seeded[n]; ok {
		return ns
	}
	env := sharedEnv(b)
	cs, err := kubernetes.NewForConfig(env.Config())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	nsObj, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: fmt.Sprintf("bench-%d-", n)}}, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	payload := strings.Repeat("x", 1000)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-" + strconv.FormatInt(i, 10)}, Data: map[string]string{"payload": payload}}
				if _, err := cs.CoreV1().ConfigMaps(nsObj.Name).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	seeded[n] = nsObj.Name
	return nsObj.Name
}

// cpuSeconds is the process's user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// seen counts distinct requests and closes done when it reaches want.
type seen struct {
	mu   sync.Mutex
	keys map[string]time.Time
	want int
	done chan struct{}
}

func newSeen(want int) *seen {
	return &seen{keys: make(map[string]time.Time, want), want: want, done: make(chan struct{})}
}

func (s *seen) mark(ns, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := ns + "/" + name
	if _, ok := s.keys[k]; ok {
		return
	}
	s.keys[k] = time.Now()
	if len(s.keys) == s.want {
		close(s.done)
	}
}

func (s *seen) at(ns, name string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.keys[ns+"/"+name]
	return t, ok
}

// subject is one implementation under benchmark: run starts a manager with
// one no-op controller for ConfigMaps in ns that marks each request, and
// returns once synced (or at least started) with a stop func.
type subject struct {
	name string
	run  func(b *testing.B, ns string, s *seen) (stop func())
}

// runCapstan starts a capstan Manager with one no-op controller.
func runCapstan(b *testing.B, ns string, s *seen, consistency reconcile.ConsistencyOptions) func() {
	mgr, err := reconcile.NewManager(reconcile.ManagerOptions{Config: sharedEnv(b).Config()})
	if err != nil {
		b.Fatal(err)
	}
	r := reconcile.Func(func(_ context.Context, req reconcile.Request) (reconcile.Result, error) {
		if req.Namespace == ns {
			s.mark(req.Namespace, req.Name)
		}
		return reconcile.Done(), nil
	})
	if _, err := mgr.NewController(r, reconcile.Options{Name: "bench", Consistency: consistency}, reconcile.For[*corev1.ConfigMap]()); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}
}

func subjects() []subject {
	return []subject{
		{name: "capstan", run: func(b *testing.B, ns string, s *seen) func() {
			return runCapstan(b, ns, s, reconcile.ConsistencyOptions{})
		}},
		{name: "capstan-noconsistency", run: func(b *testing.B, ns string, s *seen) func() {
			return runCapstan(b, ns, s, reconcile.ConsistencyOptions{DisableReadYourWrites: true, DisableEchoFiltering: true})
		}},
		{name: "controllerruntime", run: func(b *testing.B, ns string, s *seen) func() {
			mgr, err := ctrl.NewManager(sharedEnv(b).Config(), ctrl.Options{
				Metrics:    metricsserver.Options{BindAddress: "0"},
				Controller: crconfig.Controller{SkipNameValidation: ptr.To(true)},
			})
			if err != nil {
				b.Fatal(err)
			}
			r := crreconcile.Func(func(_ context.Context, req crreconcile.Request) (crreconcile.Result, error) {
				if req.Namespace == ns {
					s.mark(req.Namespace, req.Name)
				}
				return crreconcile.Result{}, nil
			})
			if err := ctrl.NewControllerManagedBy(mgr).Named("bench").For(&corev1.ConfigMap{}).Complete(r); err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- mgr.Start(ctx) }()
			return func() {
				cancel()
				if err := <-done; err != nil {
					b.Error(err)
				}
			}
		}},
	}
}

// BenchmarkReconcileAll: manager start until every one of n existing
// ConfigMaps has been reconciled once, with a no-op reconciler, capstan and
// controller-runtime side by side on the same envtest. Reports wall and
// process CPU seconds per start.
//
//	go test -run '^$' -bench ReconcileAll -benchtime 3x -count 3 ./reconcile/ -args -bench-objects=10000,50000
func BenchmarkReconcileAll(b *testing.B) {
	for _, f := range strings.Split(*benchObjects, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("-bench-objects: %q is not a positive count", f)
		}
		ns := seedConfigMaps(b, n)
		for _, sub := range subjects() {
			b.Run(fmt.Sprintf("objects=%d/impl=%s", n, sub.name), func(b *testing.B) {
				var wall, cpu float64
				runs := 0
				for b.Loop() {
					s := newSeen(n)
					cpu0, t0 := cpuSeconds(), time.Now()
					stop := sub.run(b, ns, s)
					select {
					case <-s.done:
					case <-time.After(5 * time.Minute):
						b.Fatalf("only %d of %d reconciled", len(s.keys), n)
					}
					wall += time.Since(t0).Seconds()
					cpu += cpuSeconds() - cpu0
					runs++
					stop()
				}
				b.ReportMetric(wall/float64(runs), "wall-s/op")
				b.ReportMetric(cpu/float64(runs), "cpu-s/op")
			})
		}
	}
}

// BenchmarkCreateToReconcile: latency from a Create call to the first
// reconcile of the new object, over 1000 creates made one after another on a
// running manager. Reports p50 and p99 in milliseconds.
//
//	go test -run '^$' -bench CreateToReconcile -benchtime 1x -count 5 ./reconcile/
func BenchmarkCreateToReconcile(b *testing.B) {
	const creates = 1000
	env := sharedEnv(b)
	cs, err := kubernetes.NewForConfig(env.Config())
	if err != nil {
		b.Fatal(err)
	}
	for _, sub := range subjects() {
		b.Run("impl="+sub.name, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				ctx := context.Background()
				nsObj, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "latency-"}}, metav1.CreateOptions{})
				if err != nil {
					b.Fatal(err)
				}
				ns := nsObj.Name
				s := newSeen(creates)
				stop := sub.run(b, ns, s)
				// Let the manager finish starting: its caches have synced
				// once an object created now is reconciled.
				warm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "warm-up"}}
				if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, warm, metav1.CreateOptions{}); err != nil {
					b.Fatal(err)
				}
				for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
					if _, ok := s.at(ns, "warm-up"); ok {
						break
					}
					if time.Now().After(deadline) {
						b.Fatal("warm-up object never reconciled")
					}
				}
				s.mu.Lock()
				delete(s.keys, ns+"/warm-up")
				s.mu.Unlock()
				starts := make([]time.Time, creates)
				for i := range creates {
					cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-" + strconv.Itoa(i)}}
					starts[i] = time.Now()
					if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
						b.Fatal(err)
					}
				}
				select {
				case <-s.done:
				case <-time.After(time.Minute):
					b.Fatal("not every created object was reconciled")
				}
				for i := range creates {
					at, _ := s.at(ns, "cm-"+strconv.Itoa(i))
					lat = append(lat, at.Sub(starts[i]))
				}
				stop()
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
