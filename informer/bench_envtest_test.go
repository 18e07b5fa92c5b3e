package informer_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/capstan-io/capstan/informer"
)

// Benchmarks against a real API server (envtest), capstan beside client-go's
// SharedIndexInformer in the same run. Both use their defaults (streaming
// lists; client-go JSON, capstan's Factory protobuf for built-in types);
// the -json and -protobuf variants pin the codec to show what the codec
// buys and what the machinery does.

var envtestSizes = flag.String("informer.envtest-sizes", "10000", "comma-separated ConfigMap counts for the envtest benchmarks")

func sizes(b *testing.B) []int {
	var out []int
	for _, s := range strings.Split(*envtestSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			b.Fatalf("-informer.envtest-sizes: %v", err)
		}
		out = append(out, n)
	}
	return out
}

var populated sync.Map // namespace -> struct{}

// populate creates n ConfigMaps of about 1 KiB in namespace bench-n once per
// process.
func populate(b *testing.B, cfg *rest.Config, n int) string {
	b.Helper()
	ns := fmt.Sprintf("bench-%d", n)
	if _, ok := populated.Load(ns); ok {
		return ns
	}
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = -1, 0
	cs := kubernetes.NewForConfigOrDie(c)
	ctx := context.Background()
	_, _ = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	existing, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		b.Fatal(err)
	}
	payload := strings.Repeat("x", 1000)
	var wg sync.WaitGroup
	work := make(chan int)
	errs := make(chan error, 1)
	for range 32 {
		wg.Go(func() {
			for i := range work {
				_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: "cm-" + strconv.Itoa(i), Labels: map[string]string{"app": "bench"}},
					Data:       map[string]string{"payload": payload},
				}, metav1.CreateOptions{FieldManager: "bench"})
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for i := len(existing.Items); i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatalf("populating: %v", err)
	default:
	}
	populated.Store(ns, struct{}{})
	return ns
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

type envInformer struct {
	start   func(ctx context.Context) (wait func())
	synced  func(ctx context.Context) bool
	len     func() int
	get     func(key string) bool
	updates func(func(*corev1.ConfigMap))
}

func withContentType(cfg *rest.Config, ct string) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = -1, 0
	if ct != "" {
		c.ContentType = ct
		c.AcceptContentTypes = ct
	}
	return c
}

func envImpls() []struct {
	name string
	mk   func(b *testing.B, cfg *rest.Config, ns string) envInformer
} {
	capstanFactory := func(b *testing.B, cfg *rest.Config, ns string) envInformer {
		return capstanFactoryWith(b, informer.FactoryOptions{Config: withContentType(cfg, "")}, ns)
	}
	capstanCompact := func(b *testing.B, cfg *rest.Config, ns string) envInformer {
		return capstanFactoryWith(b, informer.FactoryOptions{Config: withContentType(cfg, ""),
			CompactKinds: []schema.GroupKind{{Kind: "ConfigMap"}}}, ns)
	}
	capstanJSON := func(b *testing.B, cfg *rest.Config, ns string) envInformer {
		cms := kubernetes.NewForConfigOrDie(withContentType(cfg, k8sruntime.ContentTypeJSON)).CoreV1().ConfigMaps(ns)
		inf, err := informer.New(informer.NewListWatch[*corev1.ConfigMap](cms.List, cms.Watch, informer.ListWatchOptions{}), informer.Options[*corev1.ConfigMap]{})
		if err != nil {
			b.Fatal(err)
		}
		return capstanEnv(inf, func(ctx context.Context) func() {
			done := make(chan struct{})
			go func() { _ = inf.Run(ctx); close(done) }()
			return func() { <-done }
		})
	}
	clientgo := func(ct string) func(b *testing.B, cfg *rest.Config, ns string) envInformer {
		return func(b *testing.B, cfg *rest.Config, ns string) envInformer {
			cs := kubernetes.NewForConfigOrDie(withContentType(cfg, ct))
			f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
			inf := f.Core().V1().ConfigMaps().Informer()
			return envInformer{
				start: func(ctx context.Context) func() {
					f.Start(ctx.Done())
					return f.Shutdown
				},
				synced: func(ctx context.Context) bool { return cache.WaitFor(ctx, "", inf.HasSyncedChecker()) },
				len:    func() int { return len(inf.GetStore().ListKeys()) },
				get: func(key string) bool {
					_, ok, _ := inf.GetIndexer().GetByKey(key)
					return ok
				},
				updates: func(fn func(*corev1.ConfigMap)) {
					_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: func(_, o any) { fn(o.(*corev1.ConfigMap)) }})
				},
			}
		}
	}
	return []struct {
		name string
		mk   func(b *testing.B, cfg *rest.Config, ns string) envInformer
	}{
		{"capstan", capstanFactory},
		{"capstan-compact", capstanCompact},
		{"capstan-json", capstanJSON},
		{"clientgo", clientgo("")},
		{"clientgo-protobuf", clientgo(k8sruntime.ContentTypeProtobuf)},
	}
}

func capstanFactoryWith(b *testing.B, opts informer.FactoryOptions, ns string) envInformer {
	f, err := informer.NewFactory(opts)
	if err != nil {
		b.Fatal(err)
	}
	inf, err := informer.For[*corev1.ConfigMap](f, informer.Scope{Namespace: ns})
	if err != nil {
		b.Fatal(err)
	}
	return capstanEnv(inf, func(ctx context.Context) func() {
		done := make(chan struct{})
		go func() { _ = f.Run(ctx); close(done) }()
		return func() { <-done }
	})
}

func capstanEnv(inf *informer.SharedInformer[*corev1.ConfigMap], start func(context.Context) func()) envInformer {
	return envInformer{
		start:  start,
		synced: func(ctx context.Context) bool { return inf.WaitForSync(ctx) == nil },
		len:    inf.Len,
		get: func(key string) bool {
			_, ok := inf.Store().Get(key)
			return ok
		},
		updates: func(fn func(*corev1.ConfigMap)) {
			_, _ = inf.AddHandler(informer.HandlerFuncs[*corev1.ConfigMap]{UpdateFunc: func(_, o *corev1.ConfigMap) { fn(o) }}, informer.HandlerOptions{})
		},
	}
}

// BenchmarkEnvtestSync: start to synced; reports client CPU seconds per
// sync and heap bytes per cached object after GC.
func BenchmarkEnvtestSync(b *testing.B) {
	e := env(b)
	for _, n := range sizes(b) {
		ns := populate(b, e.Config(), n)
		for _, im := range envImpls() {
			b.Run(fmt.Sprintf("impl=%s/n=%d", im.name, n), func(b *testing.B) {
				var cpu, heap float64
				runs := 0
				for b.Loop() {
					runtime.GC()
					var before, after runtime.MemStats
					runtime.ReadMemStats(&before)
					c0 := cpuSeconds()
					inf := im.mk(b, e.Config(), ns)
					ctx, cancel := context.WithCancel(context.Background())
					wait := inf.start(ctx)
					if !inf.synced(ctx) || inf.len() != n {
						b.Fatalf("got %d cached, want %d", inf.len(), n)
					}
					cpu += cpuSeconds() - c0
					b.StopTimer()
					runtime.GC()
					runtime.ReadMemStats(&after)
					heap += float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
					runs++
					runtime.KeepAlive(inf)
					cancel()
					wait()
					b.StartTimer()
				}
				b.ReportMetric(cpu/float64(runs), "cpu-s/op")
				b.ReportMetric(heap/float64(runs), "B/obj")
			})
		}
	}
}

// BenchmarkEnvtestGet: one Get by key of a random cached ConfigMap (of
// the n synced), p50 and p99 over the run; for the compact cache almost
// every Get misses its hot objects and decodes.
func BenchmarkEnvtestGet(b *testing.B) {
	e := env(b)
	for _, n := range sizes(b) {
		ns := populate(b, e.Config(), n)
		keys := make([]string, n)
		for i := range keys {
			keys[i] = ns + "/cm-" + strconv.Itoa(i)
		}
		for _, im := range envImpls() {
			if strings.HasSuffix(im.name, "-json") || strings.HasSuffix(im.name, "-protobuf") {
				continue // the codec does not matter once cached
			}
			b.Run(fmt.Sprintf("impl=%s/n=%d", im.name, n), func(b *testing.B) {
				inf := im.mk(b, e.Config(), ns)
				ctx, cancel := context.WithCancel(context.Background())
				wait := inf.start(ctx)
				defer func() { cancel(); wait() }()
				if !inf.synced(ctx) || inf.len() != n {
					b.Fatalf("got %d cached, want %d", inf.len(), n)
				}
				rng := rand.New(rand.NewPCG(1, 2))
				lat := make([]time.Duration, 0, 1<<20)
				runtime.GC()
				for range 100_000 { // warm up: measure the steady state
					inf.get(keys[rng.IntN(n)])
				}
				for b.Loop() {
					key := keys[rng.IntN(n)]
					t0 := time.Now()
					ok := inf.get(key)
					lat = append(lat, time.Since(t0))
					if !ok {
						b.Fatalf("%s not cached", key)
					}
				}
				reportGetLatency(b, lat)
			})
		}
	}
}

// BenchmarkEnvtestUpdateLatency: from the start of an Update call to the
// handler receiving that update; one op is one update. Run with
// -benchtime=1000x for the 1000 updates.
func BenchmarkEnvtestUpdateLatency(b *testing.B) {
	e := env(b)
	ns := populate(b, e.Config(), 1000)
	cs := kubernetes.NewForConfigOrDie(withContentType(e.Config(), ""))
	// Warm the API server up, so the first subject is not measured on a
	// server still settling after start-up and population.
	for i := range 300 {
		patch := []byte(`{"data":{"seq":"warm-up-` + strconv.Itoa(i) + `"}}`)
		if _, err := cs.CoreV1().ConfigMaps(ns).Patch(context.Background(), "cm-"+strconv.Itoa(i%1000), "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	for _, im := range envImpls() {
		b.Run("impl="+im.name, func(b *testing.B) {
			inf := im.mk(b, e.Config(), ns)
			got := make(chan string, 16)
			inf.updates(func(o *corev1.ConfigMap) { got <- o.Data["seq"] })
			ctx, cancel := context.WithCancel(context.Background())
			wait := inf.start(ctx)
			defer func() { cancel(); wait() }()
			if !inf.synced(ctx) {
				b.Fatal("not synced")
			}
			var lat []time.Duration
			i := 0
			for b.Loop() {
				i++
				name := "cm-" + strconv.Itoa(i%1000)
				seq := im.name + strconv.Itoa(i) + strconv.FormatInt(time.Now().UnixNano(), 10)
				patch := []byte(`{"data":{"seq":"` + seq + `"}}`)
				t0 := time.Now()
				if _, err := cs.CoreV1().ConfigMaps(ns).Patch(ctx, name, "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
					b.Fatal(err)
				}
				for s := range got {
					if s == seq {
						break
					}
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
