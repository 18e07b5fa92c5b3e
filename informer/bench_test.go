package informer_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/capstan-io/capstan/informer"
)

// In-memory benchmarks of the informer machinery, capstan against client-go
// (the anchor) in the same run. Both are fed by the same list and watch
// functions; every list returns fresh copies, strings included, as decoding
// would, so heap figures count what each informer keeps. No API server and
// no decoding: the envtest benchmarks in docs/benchmarks/informer.md
// measure those.

// benchObjects returns n ConfigMaps of about 1 KiB of data each, with one
// managedFields entry, as a server-side-applied object has.
func benchObjects(n int) []corev1.ConfigMap {
	data := strings.Repeat("x", 1000)
	mf := []metav1.ManagedFieldsEntry{{
		Manager: "kubectl-client-side-apply", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1",
		FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:data":{".":{},"f:payload":{}},"f:metadata":{"f:labels":{".":{},"f:app":{}}}}`)},
	}}
	out := make([]corev1.ConfigMap, n)
	for i := range out {
		out[i] = corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: "ns-" + strconv.Itoa(i%50), Name: "cm-" + strconv.Itoa(i),
				ResourceVersion: strconv.Itoa(i + 1), UID: "uid", Labels: map[string]string{"app": "bench"},
				ManagedFields: mf,
			},
			Data: map[string]string{"payload": data},
		}
	}
	return out
}

// memSource serves a fixed list (deep-copied per call) and one watch
// channel per Watch call that the benchmark feeds.
type memSource struct {
	items   []corev1.ConfigMap
	mu      sync.Mutex
	watches []chan watch.Event
}

func (m *memSource) list(context.Context, metav1.ListOptions) (*corev1.ConfigMapList, error) {
	l := &corev1.ConfigMapList{ListMeta: metav1.ListMeta{ResourceVersion: strconv.Itoa(len(m.items))}, Items: make([]corev1.ConfigMap, len(m.items))}
	for i := range m.items {
		m.items[i].DeepCopyInto(&l.Items[i])
		// DeepCopy shares strings; a decoder would not.
		for k, v := range l.Items[i].Data {
			l.Items[i].Data[k] = strings.Clone(v)
		}
	}
	return l, nil
}

func (m *memSource) watch(ctx context.Context, _ metav1.ListOptions) (watch.Interface, error) {
	ch := make(chan watch.Event, 16)
	m.mu.Lock()
	m.watches = append(m.watches, ch)
	m.mu.Unlock()
	return &chanWatch{ch: ch}, nil
}

func (m *memSource) send(ev watch.Event) {
	m.mu.Lock()
	ws := slices.Clone(m.watches)
	m.mu.Unlock()
	for _, w := range ws {
		w <- ev
	}
}

type chanWatch struct {
	ch chan watch.Event
}

func (w *chanWatch) Stop()                          {}
func (w *chanWatch) ResultChan() <-chan watch.Event { return w.ch }

// clientGoLW adapts memSource for client-go, and tells its reflector to
// list (the in-memory source does not stream lists).
type clientGoLW struct{ *cache.ListWatch }

func (clientGoLW) IsWatchListSemanticsUnSupported() bool { return true }

func newClientGoLW(m *memSource) clientGoLW {
	return clientGoLW{&cache.ListWatch{
		ListWithContextFunc:  func(ctx context.Context, o metav1.ListOptions) (k8sruntime.Object, error) { return m.list(ctx, o) },
		WatchFuncWithContext: m.watch,
	}}
}

type benchInformer interface {
	onUpdate(func(*corev1.ConfigMap))
	start(ctx context.Context) (wait func())
	synced(ctx context.Context) bool
	len() int
	get(key string) bool
}

type capstanBench struct {
	inf *informer.SharedInformer[*corev1.ConfigMap]
}

func newCapstan(b *testing.B, m *memSource, keepManagedFields, compact bool) *capstanBench {
	inf, err := informer.New(informer.NewListWatch[*corev1.ConfigMap](m.list, m.watch, informer.ListWatchOptions{}),
		informer.Options[*corev1.ConfigMap]{KeepManagedFields: keepManagedFields, Compact: compact, Reflector: informer.ReflectorOptions{WatchList: informer.WatchListOff}})
	if err != nil {
		b.Fatal(err)
	}
	return &capstanBench{inf}
}

func (c *capstanBench) onUpdate(f func(*corev1.ConfigMap)) {
	_, _ = c.inf.AddHandler(informer.HandlerFuncs[*corev1.ConfigMap]{UpdateFunc: func(_, o *corev1.ConfigMap) { f(o) }}, informer.HandlerOptions{})
}
func (c *capstanBench) start(ctx context.Context) func() {
	done := make(chan struct{})
	go func() { _ = c.inf.Run(ctx); close(done) }()
	return func() { <-done }
}
func (c *capstanBench) synced(ctx context.Context) bool { return c.inf.WaitForSync(ctx) == nil }
func (c *capstanBench) len() int                        { return c.inf.Len() }
func (c *capstanBench) get(key string) bool {
	_, ok := c.inf.Store().Get(key)
	return ok
}

type clientGoBench struct{ inf cache.SharedIndexInformer }

func newClientGo(m *memSource) *clientGoBench {
	return &clientGoBench{cache.NewSharedIndexInformer(newClientGoLW(m), &corev1.ConfigMap{}, 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})}
}

func (c *clientGoBench) onUpdate(f func(*corev1.ConfigMap)) {
	_, _ = c.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: func(_, o any) { f(o.(*corev1.ConfigMap)) }})
}
func (c *clientGoBench) start(ctx context.Context) func() {
	done := make(chan struct{})
	go func() { c.inf.RunWithContext(ctx); close(done) }()
	return func() { <-done }
}
func (c *clientGoBench) synced(ctx context.Context) bool {
	// The channel-based wait: WaitForCacheSync would poll every 100ms.
	return cache.WaitFor(ctx, "", c.inf.HasSyncedChecker())
}
func (c *clientGoBench) len() int { return len(c.inf.GetStore().ListKeys()) }
func (c *clientGoBench) get(key string) bool {
	_, ok, _ := c.inf.GetIndexer().GetByKey(key)
	return ok
}

type impl struct {
	name string
	mk   func(b *testing.B, m *memSource) benchInformer
}

var impls = []impl{
	{"capstan", func(b *testing.B, m *memSource) benchInformer { return newCapstan(b, m, false, false) }},
	{"clientgo", func(b *testing.B, m *memSource) benchInformer { return newClientGo(m) }},
}

// compactImpl is the opt-in compact cache.
var compactImpl = impl{"capstan-compact", func(b *testing.B, m *memSource) benchInformer { return newCapstan(b, m, false, true) }}

// BenchmarkInformerSync: from start to synced, n objects.
func BenchmarkInformerSync(b *testing.B) {
	for _, n := range []int{10_000} {
		m := &memSource{items: benchObjects(n)}
		for _, im := range append(impls, compactImpl) {
			b.Run(fmt.Sprintf("impl=%s/n=%d", im.name, n), func(b *testing.B) {
				for b.Loop() {
					inf := im.mk(b, m)
					ctx, cancel := context.WithCancel(context.Background())
					wait := inf.start(ctx)
					if !inf.synced(ctx) || inf.len() != n {
						b.Fatalf("got %d cached, want %d", inf.len(), n)
					}
					cancel()
					wait()
				}
			})
		}
	}
}

// BenchmarkInformerHeap reports the heap each informer keeps per cached
// object after GC (B/obj), with the default transform (capstan strips
// managedFields) and without it.
func BenchmarkInformerHeap(b *testing.B) {
	const n = 10_000
	m := &memSource{items: benchObjects(n)}
	variants := []impl{
		{"capstan", impls[0].mk},
		{"capstan-keepManagedFields", func(b *testing.B, m *memSource) benchInformer { return newCapstan(b, m, true, false) }},
		compactImpl,
		{"clientgo", impls[1].mk},
	}
	for _, im := range variants {
		b.Run("impl="+im.name, func(b *testing.B) {
			var perObj float64
			for b.Loop() {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				inf := im.mk(b, m)
				ctx, cancel := context.WithCancel(context.Background())
				wait := inf.start(ctx)
				if !inf.synced(ctx) {
					b.Fatal("not synced")
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				perObj = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
				runtime.KeepAlive(inf)
				cancel()
				wait()
			}
			b.ReportMetric(perObj, "B/obj")
		})
	}
}

// BenchmarkInformerUpdateLatency: time from a watch event to the handler,
// p50 and p99 over the updates of the run.
func BenchmarkInformerUpdateLatency(b *testing.B) {
	const n = 1000
	for _, im := range impls {
		b.Run("impl="+im.name, func(b *testing.B) {
			m := &memSource{items: benchObjects(n)}
			inf := im.mk(b, m)
			got := make(chan struct{}, 1)
			inf.onUpdate(func(*corev1.ConfigMap) { got <- struct{}{} })
			ctx, cancel := context.WithCancel(context.Background())
			wait := inf.start(ctx)
			defer func() { cancel(); wait() }()
			if !inf.synced(ctx) {
				b.Fatal("not synced")
			}
			var lat []time.Duration
			rv := n
			for b.Loop() {
				rv++
				o := m.items[rv%n].DeepCopy()
				o.ResourceVersion = strconv.Itoa(rv)
				t0 := time.Now()
				m.send(watch.Event{Type: watch.Modified, Object: o})
				<-got
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		})
	}
}

// BenchmarkInformerGet: one Get by key of a random object among 10k
// cached ConfigMaps of ~1 KiB, p50, p90 and p99 over the run after a
// warm-up. For the compact cache almost every Get misses its 64 hot objects
// and decodes. The source objects are dropped before measuring, so the heap
// holds what the cache holds (as in a controller, where the source is the
// API server). clientgo-deepcopy (a Get and a DeepCopy, what a controller
// does before changing a cached object) shows what an allocating read
// costs on the machine.
func BenchmarkInformerGet(b *testing.B) {
	const n = 10_000
	deepCopy := impl{"clientgo-deepcopy", func(b *testing.B, m *memSource) benchInformer { return &deepCopyBench{newClientGo(m)} }}
	for _, im := range append(impls, compactImpl, deepCopy) {
		b.Run("impl="+im.name, func(b *testing.B) {
			m := &memSource{items: benchObjects(n)}
			keys := make([]string, n)
			for i := range m.items {
				keys[i] = m.items[i].Namespace + "/" + m.items[i].Name
			}
			inf := im.mk(b, m)
			ctx, cancel := context.WithCancel(context.Background())
			wait := inf.start(ctx)
			defer func() { cancel(); wait() }()
			if !inf.synced(ctx) {
				b.Fatal("not synced")
			}
			m.items = nil
			rng := rand.New(rand.NewPCG(1, 2))
			lat := make([]time.Duration, 0, 1<<20)
			runtime.GC()
			// Warm up: measure the steady state, with the heap grown to
			// what the Gets need.
			for range 100_000 {
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

// deepCopyBench is client-go's Get followed by a DeepCopy, as a
// controller does before changing a cached object: a reference for what
// an allocating read costs.
type deepCopyBench struct{ *clientGoBench }

var sinkCM *corev1.ConfigMap

func (c *deepCopyBench) get(key string) bool {
	o, ok, _ := c.inf.GetIndexer().GetByKey(key)
	if ok {
		sinkCM = o.(*corev1.ConfigMap).DeepCopy()
	}
	return ok
}

// reportGetLatency reports the p50, p90 and p99 of Get latencies and the
// share of Gets over the compact cache's 5 µs budget.
func reportGetLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*90/100].Nanoseconds())/1e3, "p90-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
	over, _ := slices.BinarySearch(lat, 5*time.Microsecond)
	b.ReportMetric(float64(len(lat)-over)/float64(len(lat))*100, "pct-over-5µs")
}

// BenchmarkDeltaFIFO: Add then Pop of distinct keys through each FIFO.
func BenchmarkDeltaFIFO(b *testing.B) {
	objs := benchObjects(1000)
	b.Run("impl=capstan", func(b *testing.B) {
		f := informer.NewDeltaFIFO(informer.DeltaFIFOOptions[*corev1.ConfigMap]{})
		ctx := context.Background()
		i := 0
		for b.Loop() {
			_ = f.Add(&objs[i%len(objs)])
			_ = f.Pop(ctx, func(string, []informer.Delta[*corev1.ConfigMap], bool) error { return nil })
			i++
		}
	})
	b.Run("impl=clientgo", func(b *testing.B) {
		f := cache.NewDeltaFIFOWithOptions(cache.DeltaFIFOOptions{EmitDeltaTypeReplaced: true})
		i := 0
		for b.Loop() {
			_ = f.Add(&objs[i%len(objs)])
			_, _ = f.Pop(func(any, bool) error { return nil })
			i++
		}
	})
}

// BenchmarkIndexer: an update (with the namespace index) and a namespace
// lookup per op, 10k objects in 50 namespaces.
func BenchmarkIndexer(b *testing.B) {
	objs := benchObjects(10_000)
	b.Run("impl=capstan", func(b *testing.B) {
		x, _ := informer.NewIndexer(informer.IndexerOptions[*corev1.ConfigMap]{})
		for i := range objs {
			x.Set(informer.KeyOf(&objs[i]), &objs[i])
		}
		i := 0
		for b.Loop() {
			o := &objs[i%len(objs)]
			x.Set(informer.KeyOf(o), o)
			_, _ = x.Get(informer.KeyOf(o))
			i++
		}
	})
	b.Run("impl=clientgo", func(b *testing.B) {
		x := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
		for i := range objs {
			_ = x.Add(&objs[i])
		}
		i := 0
		for b.Loop() {
			o := &objs[i%len(objs)]
			_ = x.Update(o)
			_, _, _ = x.GetByKey(o.Namespace + "/" + o.Name)
			i++
		}
	})
}
