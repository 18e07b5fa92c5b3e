package informer_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"

	"github.com/capstan-io/capstan/informer"
	"github.com/capstan-io/capstan/informer/informertest"
)

// perKey records what a handler receives, per object key, with enough of
// each object (resourceVersion, data, labels) to tell states apart.
type perKey struct {
	mu  sync.Mutex
	got map[string][]string
}

func describeCM(o *corev1.ConfigMap) string {
	return fmt.Sprintf("%s@%s%v%v", o.Name, o.ResourceVersion, o.Data, o.Labels)
}

func (p *perKey) add(o *corev1.ConfigMap, s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.got == nil {
		p.got = map[string][]string{}
	}
	k := informer.KeyOf(o)
	p.got[k] = append(p.got[k], s)
}

func (p *perKey) handler() informer.HandlerFuncs[*corev1.ConfigMap] {
	return informer.HandlerFuncs[*corev1.ConfigMap]{
		AddFunc: func(o *corev1.ConfigMap, initial bool) {
			p.add(o, fmt.Sprintf("add %s initial=%v", describeCM(o), initial))
		},
		UpdateFunc: func(old, o *corev1.ConfigMap) {
			p.add(o, "update "+describeCM(old)+" -> "+describeCM(o))
		},
		DeleteFunc: func(o *corev1.ConfigMap, unknown bool) {
			p.add(o, fmt.Sprintf("delete %s unknown=%v", describeCM(o), unknown))
		},
	}
}

func (p *perKey) take() map[string][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.got
	p.got = nil
	return out
}

// TestCompactInformerDifferential feeds a default and a compact informer
// from one source through random creates, updates, deletes, dropped
// watches, relists after 410 Gone and late handlers, and requires the same
// handler events per object and the same cache. (Resyncs are left out:
// when they land depends on each informer's jittered relist;
// TestCompactInformerResync covers them.)
func TestCompactInformerDifferential(t *testing.T) {
	for seed := range uint64(12) {
		t.Run("seed="+strconv.FormatUint(seed, 10), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { compactInformerRun(t, seed) })
		})
	}
}

func compactInformerRun(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{WatchList: seed%2 == 0})
	byApp := informer.Indexers[*corev1.ConfigMap]{"app": func(o *corev1.ConfigMap) []string {
		if v, ok := o.Labels["app"]; ok {
			return []string{v}
		}
		return nil
	}}
	type subject struct {
		name string
		inf  *informer.SharedInformer[*corev1.ConfigMap]
		ev   []*perKey
	}
	subjects := []*subject{{name: "default"}, {name: "compact"}}
	for i, s := range subjects {
		opts := informer.Options[*corev1.ConfigMap]{Indexers: byApp, Compact: i == 1, CompactHotObjects: int(seed % 3)}
		ev := &perKey{}
		s.ev = append(s.ev, ev)
		rig := startInformer(t, src, opts, func(inf *informer.SharedInformer[*corev1.ConfigMap]) {
			_, _ = inf.AddHandler(ev.handler(), informer.HandlerOptions{})
		})
		s.inf = rig.inf
	}
	names := []string{"a", "b", "c", "d", "e"}
	compare := func(step string) {
		t.Helper()
		synctest.Wait()
		for h := range subjects[0].ev {
			want, got := subjects[0].ev[h].take(), subjects[1].ev[h].take()
			for _, k := range slices.Sorted(func(yield func(string) bool) {
				seen := map[string]bool{}
				for k := range want {
					seen[k] = true
					if !yield(k) {
						return
					}
				}
				for k := range got {
					if !seen[k] && !yield(k) {
						return
					}
				}
			}) {
				if !slices.Equal(want[k], got[k]) {
					t.Fatalf("%s: handler %d, %s: default got\n  %q\ncompact got\n  %q", step, h, k, want[k], got[k])
				}
			}
		}
		sel := labels.SelectorFromSet(labels.Set{"app": "x"})
		for _, read := range []struct {
			what string
			f    func(*informer.SharedInformer[*corev1.ConfigMap]) []*corev1.ConfigMap
		}{
			{"List", func(i *informer.SharedInformer[*corev1.ConfigMap]) []*corev1.ConfigMap { return i.Lister().List(nil) }},
			{"List(app=x)", func(i *informer.SharedInformer[*corev1.ConfigMap]) []*corev1.ConfigMap { return i.Lister().List(sel) }},
			{"ByIndex(app, y)", func(i *informer.SharedInformer[*corev1.ConfigMap]) []*corev1.ConfigMap {
				out, _ := i.Lister().ByIndex("app", "y")
				return out
			}},
		} {
			a, b := read.f(subjects[0].inf), read.f(subjects[1].inf)
			sort.Slice(a, func(i, j int) bool { return a[i].Name < a[j].Name })
			sort.Slice(b, func(i, j int) bool { return b[i].Name < b[j].Name })
			if !equality.Semantic.DeepEqual(a, b) {
				t.Fatalf("%s: %s: default has %v, compact %v", step, read.what, a, b)
			}
		}
		if a, b := subjects[0].inf.LastSyncResourceVersion(), subjects[1].inf.LastSyncResourceVersion(); a != b {
			t.Fatalf("%s: LastSyncResourceVersion: default %s, compact %s", step, a, b)
		}
	}
	for i := range 60 {
		name := names[rng.IntN(len(names))]
		var step string
		switch op := rng.IntN(10); {
		case op < 3:
			o := newCM(name)
			o.Labels = map[string]string{"app": []string{"x", "y"}[rng.IntN(2)]}
			_, err := src.Create(o)
			step = fmt.Sprintf("create %s (err %v)", name, err)
		case op < 6:
			o, ok := src.Get("ns", name)
			if !ok {
				continue
			}
			o.Data = map[string]string{"n": strconv.Itoa(i)}
			if rng.IntN(2) == 0 {
				o.Labels = map[string]string{"app": []string{"x", "y"}[rng.IntN(2)]}
			}
			_, _ = src.Update(o)
			step = "update " + name
		case op < 7:
			_ = src.Delete("ns", name)
			step = "delete " + name
		case op < 8:
			// The watch goes down; changes meanwhile are compacted away, so
			// the informers relist and infer deletions.
			src.SetWatchError(apierrors.NewTooManyRequests("down", 1))
			src.DropWatches()
			synctest.Wait()
			_ = src.Delete("ns", names[rng.IntN(len(names))])
			if o, ok := src.Get("ns", name); ok {
				o.Data = map[string]string{"relist": strconv.Itoa(i)}
				_, _ = src.Update(o)
			}
			src.Compact()
			src.SetWatchError(nil)
			time.Sleep(time.Minute)
			step = "relist"
		case op < 9:
			time.Sleep(time.Minute)
			step = "wait"
		default:
			for _, s := range subjects {
				ev := &perKey{}
				s.ev = append(s.ev, ev)
				if _, err := s.inf.AddHandler(ev.handler(), informer.HandlerOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			step = "late handler"
		}
		compare(fmt.Sprintf("step %d (%s)", i, step))
	}
}

// A compact informer's Get of an object an event just delivered returns
// the delivered object itself (it is hot), without decoding.
func TestCompactInformerGetAfterEventIsHot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
		got := make(chan *corev1.ConfigMap, 10)
		rig := startInformer(t, src, informer.Options[*corev1.ConfigMap]{Compact: true}, func(inf *informer.SharedInformer[*corev1.ConfigMap]) {
			_, _ = inf.AddHandler(informer.HandlerFuncs[*corev1.ConfigMap]{AddFunc: func(o *corev1.ConfigMap, _ bool) { got <- o }}, informer.HandlerOptions{})
		})
		_, _ = src.Create(newCM("a"))
		synctest.Wait()
		delivered := <-got
		cached, ok := rig.inf.Lister().Get("ns", "a")
		if !ok || cached != delivered {
			t.Errorf("got %p from the cache, want the delivered object %p", cached, delivered)
		}
		if n := rig.inf.ApproxBytes(); n <= 0 || n > int64(delivered.Size()+64) {
			t.Errorf("got ApproxBytes %d for one object of %d protobuf bytes", n, delivered.Size())
		}
	})
}

func TestCompactInformerResync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
		_, _ = src.Create(newCM("a"))
		resyncing, quiet := &events{}, &events{}
		startInformer(t, src, informer.Options[*corev1.ConfigMap]{Compact: true, CompactHotObjects: -1}, func(inf *informer.SharedInformer[*corev1.ConfigMap]) {
			_, _ = inf.AddHandler(resyncing.handler(), informer.HandlerOptions{ResyncPeriod: time.Minute})
			_, _ = inf.AddHandler(quiet.handler(), informer.HandlerOptions{})
		})
		resyncing.take()
		quiet.take()
		time.Sleep(150 * time.Second)
		synctest.Wait()
		check(t, "resyncing handler", resyncing.take(), []string{"update a@1->1", "update a@1->1"})
		check(t, "handler without resync", quiet.take(), nil)
	})
}

func TestCompactInformerRejectsInterfaceType(t *testing.T) {
	src := informertest.NewSource[informer.Object](informertest.Options{})
	_, err := informer.New[informer.Object](src, informer.Options[informer.Object]{Compact: true})
	if err == nil || !strings.Contains(err.Error(), "Compact") {
		t.Errorf("got %v, want an error naming Compact", err)
	}
}

// TestIntegrationFactoryCompact: a Factory with ConfigMap in CompactKinds
// serves compact typed, unstructured and metadata informers that answer
// exactly as a default Factory's while the server changes.
func TestIntegrationFactoryCompact(t *testing.T) {
	e := env(t)
	cs := kubernetes.NewForConfigOrDie(e.Config())
	ns := namespace(t, cs)
	cms := cs.CoreV1().ConfigMaps(ns)
	for i := range 30 {
		_, err := cms.Create(t.Context(), &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "cm-" + strconv.Itoa(i), Labels: map[string]string{"app": []string{"x", "y"}[i%2]}},
			Data:       map[string]string{"n": strconv.Itoa(i)},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	type informers struct {
		typed *informer.SharedInformer[*corev1.ConfigMap]
		unstr *informer.SharedInformer[*unstructured.Unstructured]
		meta  *informer.SharedInformer[*metav1.PartialObjectMetadata]
		ev    *perKey
	}
	gvk := corev1.SchemeGroupVersion.WithKind("ConfigMap")
	start := func(compact []schema.GroupKind) informers {
		f, err := informer.NewFactory(informer.FactoryOptions{Config: e.Config(), CompactKinds: compact})
		if err != nil {
			t.Fatal(err)
		}
		var in informers
		if in.typed, err = informer.For[*corev1.ConfigMap](f, informer.Scope{Namespace: ns}); err != nil {
			t.Fatal(err)
		}
		if in.unstr, err = informer.ForUnstructured(f, gvk, informer.Scope{Namespace: ns}); err != nil {
			t.Fatal(err)
		}
		if in.meta, err = informer.ForMetadata(f, gvk, informer.Scope{Namespace: ns}); err != nil {
			t.Fatal(err)
		}
		in.ev = &perKey{}
		if _, err := in.typed.AddHandler(in.ev.handler(), informer.HandlerOptions{}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- f.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Factory.Run: %v", err)
			}
		})
		if err := f.WaitForCacheSync(deadline(t, time.Minute)); err != nil {
			t.Fatalf("WaitForCacheSync: %v", err)
		}
		return in
	}
	def := start(nil)
	cmp := start([]schema.GroupKind{gvk.GroupKind()})
	if cmp.typed.ApproxBytes() <= 0 {
		t.Errorf("got ApproxBytes %d for a compact informer with 30 objects", cmp.typed.ApproxBytes())
	}

	// Change the server: updates (data and labels), deletes, creates.
	var lastRV string
	for i := range 30 {
		name := "cm-" + strconv.Itoa(i)
		switch i % 3 {
		case 0:
			patch := fmt.Sprintf(`{"metadata":{"labels":{"app":"z"}},"data":{"n":"u%d"}}`, i)
			o, err := cms.Patch(t.Context(), name, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			lastRV = o.ResourceVersion
		case 1:
			if err := cms.Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	o, err := cms.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "late"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lastRV = o.ResourceVersion
	for _, in := range []informers{def, cmp} {
		ctx := deadline(t, time.Minute)
		for _, w := range []interface {
			WaitForResourceVersion(context.Context, string) error
		}{in.typed, in.unstr, in.meta} {
			if err := w.WaitForResourceVersion(ctx, lastRV); err != nil {
				t.Fatal(err)
			}
		}
	}
	diffWithServer(t, cs, ns, cmp.typed)

	sel := labels.SelectorFromSet(labels.Set{"app": "z"})
	sortByName := func(s []*corev1.ConfigMap) []*corev1.ConfigMap {
		sort.Slice(s, func(i, j int) bool { return s[i].Name < s[j].Name })
		return s
	}
	for _, c := range []struct {
		what     string
		def, cmp []*corev1.ConfigMap
	}{
		{"List", def.typed.Lister().List(nil), cmp.typed.Lister().List(nil)},
		{"ListNamespace(app=z)", def.typed.Lister().ListNamespace(ns, sel), cmp.typed.Lister().ListNamespace(ns, sel)},
	} {
		if a, b := sortByName(c.def), sortByName(c.cmp); len(a) == 0 || !equality.Semantic.DeepEqual(a, b) {
			t.Errorf("typed %s: default has %d objects, compact %d, or they differ", c.what, len(a), len(b))
		}
	}
	if got := len(cmp.typed.Lister().ListNamespace(ns, sel)); got != 10 {
		t.Errorf("got %d ConfigMaps labelled app=z, want 10", got)
	}
	for i := range 30 {
		name := "cm-" + strconv.Itoa(i)
		a, aok := def.unstr.Lister().Get(ns, name)
		b, bok := cmp.unstr.Lister().Get(ns, name)
		if aok != bok || (aok && !reflect.DeepEqual(a, b)) {
			t.Errorf("unstructured %s: default %v (%v), compact %v (%v)", name, a, aok, b, bok)
		}
		ma, aok := def.meta.Lister().Get(ns, name)
		mb, bok := cmp.meta.Lister().Get(ns, name)
		if aok != bok || (aok && !equality.Semantic.DeepEqual(ma, mb)) {
			t.Errorf("metadata %s: default %v (%v), compact %v (%v)", name, ma, aok, mb, bok)
		}
	}
	// Handlers saw the same changes, with the same old and new objects.
	want, got := def.ev.take(), cmp.ev.take()
	if len(want) == 0 || !reflect.DeepEqual(want, got) {
		t.Errorf("handler events differ:\ndefault %v\ncompact %v", want, got)
	}
}
