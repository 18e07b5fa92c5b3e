package informer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/capstan-io/capstan/informer"
	"github.com/capstan-io/capstan/informer/informertest"
)

// events records what a handler receives, as "add a@1", "update a@1->2",
// "delete a@2" ("delete? a@2" when the final state is unknown).
type events struct {
	mu  sync.Mutex
	got []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	e.got = append(e.got, s)
	e.mu.Unlock()
}

func (e *events) take() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.got
	e.got = nil
	return out
}

func (e *events) handler() informer.HandlerFuncs[*corev1.ConfigMap] {
	return informer.HandlerFuncs[*corev1.ConfigMap]{
		AddFunc: func(o *corev1.ConfigMap, initial bool) {
			s := "add " + o.Name + "@" + o.ResourceVersion
			if initial {
				s += " (initial)"
			}
			e.add(s)
		},
		UpdateFunc: func(old, o *corev1.ConfigMap) {
			e.add("update " + o.Name + "@" + old.ResourceVersion + "->" + o.ResourceVersion)
		},
		DeleteFunc: func(o *corev1.ConfigMap, unknown bool) {
			if unknown {
				e.add("delete? " + o.Name + "@" + o.ResourceVersion)
				return
			}
			e.add("delete " + o.Name + "@" + o.ResourceVersion)
		},
	}
}

func sorted(s []string) []string {
	sort.Strings(s)
	return s
}

type informerRig struct {
	src  *informertest.Source[*corev1.ConfigMap]
	inf  *informer.SharedInformer[*corev1.ConfigMap]
	stop func() error
}

// startInformer must run inside a synctest bubble.
func startInformer(t *testing.T, src *informertest.Source[*corev1.ConfigMap], opts informer.Options[*corev1.ConfigMap], before func(*informer.SharedInformer[*corev1.ConfigMap])) *informerRig {
	t.Helper()
	inf, err := informer.New[*corev1.ConfigMap](src, opts)
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(inf)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- inf.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	if err := inf.WaitForSync(ctx); err != nil {
		t.Fatalf("WaitForSync: %v", err)
	}
	synctest.Wait()
	return &informerRig{src: src, inf: inf, stop: stop}
}

func check(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: got\n  %q\nwant\n  %q", what, got, want)
	}
}

func TestInformerDeliversChangesInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{WatchList: true})
		_, _ = src.Create(newCM("a"))
		ev := &events{}
		var reg *informer.Registration
		rig := startInformer(t, src, informer.Options[*corev1.ConfigMap]{}, func(inf *informer.SharedInformer[*corev1.ConfigMap]) {
			reg, _ = inf.AddHandler(ev.handler(), informer.HandlerOptions{})
		})
		if !reg.HasSynced() {
			t.Errorf("got registration not synced after the informer synced and handlers drained")
		}
		check(t, "initial", ev.take(), []string{"add a@1 (initial)"})
		o, _ := src.Get("ns", "a")
		o.Data = map[string]string{"k": "1"}
		_, _ = src.Update(o)
		synctest.Wait()
		_, _ = src.Create(newCM("b"))
		synctest.Wait()
		_ = src.Delete("ns", "a")
		synctest.Wait()
		check(t, "changes", ev.take(), []string{"update a@1->2", "add b@3", "delete a@4"})
		if got, _ := rig.inf.Lister().Get("ns", "b"); got == nil || got.ResourceVersion != "3" {
			t.Errorf("got cached b %v, want b@3", got)
		}
		if _, ok := rig.inf.Lister().Get("ns", "a"); ok {
			t.Errorf("got a still cached after its delete")
		}
		if got := rig.inf.LastSyncResourceVersion(); got != "4" {
			t.Errorf("got LastSyncResourceVersion %q, want 4", got)
		}
	})
}

func TestInformerRelistDeliversFinalStateUnknown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
		_, _ = src.Create(newCM("a"))
		_, _ = src.Create(newCM("b"))
		ev := &events{}
		rig := startInformer(t, src, informer.Options[*corev1.ConfigMap]{}, func(inf *informer.SharedInformer[*corev1.ConfigMap]) {
			_, _ = inf.AddHandler(ev.handler(), informer.HandlerOptions{})
		})
		ev.take()
		time.Sleep(time.Minute)
		src.SetWatchError(apierrors.NewTooManyRequests("down", 1))
		src.DropWatches()
		synctest.Wait()
		_ = src.Delete("ns", "a")
		o, _ := src.Get("ns", "b")
		o.Data = map[string]string{"k": "1"}
		_, _ = src.Update(o)
		src.Compact()
		src.SetWatchError(nil)
		time.Sleep(time.Minute)
		check(t, "after relist", sorted(ev.take()), []string{"delete? a@1", "update b@2->4"})
		check(t, "cache", cacheKeys(rig.inf), []string{"ns/b"})
	})
}

func cacheKeys(inf *informer.SharedInformer[*corev1.ConfigMap]) []string {
	return sorted(inf.Store().ListKeys())
}

func TestInformerSlowHandlerDelaysNobody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
		release := make(chan struct{})
		fast, slow := &events{}, &events{}
		var slowReg *informer.Registration
		rig := startInformer(t, src, informer.Options[*corev1.ConfigMap]{}, func(inf *informer.SharedInformer[*corev1.ConfigMap]) {
			_, _ = inf.AddHandler(fast.handler(), informer.HandlerOptions{Name: "fast"})
			h := slow.handler()
			add := h.AddFunc
			h.AddFunc = func(o *corev1.ConfigMap, initial bool) { <-release; add(o, initial) }
			slowReg, _ = inf.AddHandler(h, informer.HandlerOptions{Name: "slow"})
		})
		for i := range 5 {
			_, _ = src.Create(newCM(fmt.Sprint(i)))
		}
		synctest.Wait()
		check(t, "fast handler while the slow one blocks", fast.take(), []string{"add 0@1", "add 1@2", "add 2@3", "add 3@4", "add 4@5"})
		if got := rig.inf.Len(); got != 5 {
			t.Errorf("got %d cached objects while a handler blocks, want 5", got)
		}
		if got := slowReg.Pending(); got != 5 {
			t.Errorf("got %d pending for the slow handler, want 5 (one in progress, four buffered)", got)
		}
		close(release)
		synctest.Wait()
		check(t, "slow handler after release", slow.take(), []string{"add 0@1", "add 1@2", "add 2@3", "add 3@4", "add 4@5"})
	})
}

func TestInformerLateHandlerSeesExistingObjects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
		_, _ = src.Create(newCM("a"))
		_, _ = src.Create(newCM("b"))
		rig := startInformer(t, src, informer.Options[*corev1.ConfigMap]{}, nil)
		_, _ = src.Create(newCM("c"))
		synctest.Wait()
		late := &events{}
		block := make(chan struct{})
		h := late.handler()
		add := h.AddFunc
		h.AddFunc = func(o *corev1.ConfigMap, initial bool) { <-block; add(o, initial) }
		reg, err := rig.inf.AddHandler(h, informer.HandlerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_ = src.Delete("ns", "a")
		synctest.Wait()
		if reg.HasSynced() {
			t.Errorf("got late registration synced before it processed the existing objects")
		}
		close(block)
		synctest.Wait()
		select {
		case <-reg.Done():
		default:
			t.Errorf("got late registration not synced after processing the existing objects")
		}
		got := late.take()
		check(t, "existing objects", sorted(got[:3]), []string{"add a@1 (initial)", "add b@2 (initial)", "add c@3 (initial)"})
		check(t, "then changes", got[3:], []string{"delete a@4"})
	})
}

func TestInformerRemoveHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
		ev := &events{}
		var reg *informer.Registration
		rig := startInformer(t, src, informer.Options[*corev1.ConfigMap]{}, func(inf *informer.SharedInformer[*corev1.ConfigMap]) {
			reg, _ = inf.AddHandler(ev.handler(), informer.HandlerOptions{})
		})
		_, _ = src.Create(newCM("a"))
		synctest.Wait()
		if err := rig.inf.RemoveHandler(reg); err != nil {
			t.Fatal(err)
		}
		_, _ = src.Create(newCM("b"))
		synctest.Wait()
		check(t, "events", ev.take(), []string{"add a@1"})
	})
}

func TestInformerPerHandlerResync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
		_, _ = src.Create(newCM("a"))
		resyncing, quiet := &events{}, &events{}
		startInformer(t, src, informer.Options[*corev1.ConfigMap]{}, func(inf *informer.SharedInformer[*corev1.ConfigMap]) {
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

func TestInformerStripsManagedFieldsByDefault(t *testing.T) {
	cases := []struct {
		name string
		keep bool
		want int
	}{
		{"default strips", false, 0},
		{"opt-out keeps", true, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
				o := newCM("a")
				o.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}}
				_, _ = src.Create(o)
				rig := startInformer(t, src, informer.Options[*corev1.ConfigMap]{KeepManagedFields: tc.keep}, nil)
				got, _ := rig.inf.Lister().Get("ns", "a")
				if n := len(got.ManagedFields); n != tc.want {
					t.Errorf("got %d managedFields entries, want %d", n, tc.want)
				}
			})
		})
	}
}

func TestInformerTransform(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
		o := newCM("a")
		o.Data = map[string]string{"big": strings.Repeat("x", 100)}
		_, _ = src.Create(o)
		rig := startInformer(t, src, informer.Options[*corev1.ConfigMap]{Transform: func(o *corev1.ConfigMap) (*corev1.ConfigMap, error) {
			o.Data = nil
			return o, nil
		}}, nil)
		got, _ := rig.inf.Lister().Get("ns", "a")
		if got.Data != nil {
			t.Errorf("got Data %v, want it dropped by the transform", got.Data)
		}
	})
}

func TestInformerWaitForResourceVersion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
		rig := startInformer(t, src, informer.Options[*corev1.ConfigMap]{}, nil)
		done := make(chan error, 1)
		go func() { done <- rig.inf.WaitForResourceVersion(t.Context(), "2") }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("got WaitForResourceVersion(2) = %v before any write, want it to block", err)
		default:
		}
		_, _ = src.Create(newCM("a"))
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("got WaitForResourceVersion(2) = %v at resourceVersion 1, want it to block", err)
		default:
		}
		w, _ := src.Create(newCM("b"))
		synctest.Wait()
		if err := <-done; err != nil {
			t.Fatalf("WaitForResourceVersion: %v", err)
		}
		if got, ok := rig.inf.Lister().Get("ns", "b"); !ok || got.ResourceVersion != w.ResourceVersion {
			t.Errorf("got cached b %v after waiting for its resourceVersion, want b@%s", got, w.ResourceVersion)
		}
	})
}

func TestInformerStopsWhenResourceNotServed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
		src.SetListError(apierrors.NewNotFound(schema.GroupResource{Group: "example.com", Resource: "widgets"}, ""))
		inf, _ := informer.New[*corev1.ConfigMap](src, informer.Options[*corev1.ConfigMap]{Reflector: informer.ReflectorOptions{WatchList: informer.WatchListOff}})
		errc := make(chan error, 1)
		go func() { errc <- inf.Run(t.Context()) }()
		if err := inf.WaitForSync(t.Context()); !errors.Is(err, informer.ErrNotServed) || !errors.Is(err, informer.ErrStopped) {
			t.Errorf("got WaitForSync %v, want ErrStopped wrapping ErrNotServed", err)
		}
		if err := <-errc; !errors.Is(err, informer.ErrNotServed) {
			t.Errorf("got Run %v, want ErrNotServed", err)
		}
	})
}

func TestInformerRunTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
		rig := startInformer(t, src, informer.Options[*corev1.ConfigMap]{}, nil)
		if err := rig.inf.Run(t.Context()); !errors.Is(err, informer.ErrAlreadyStarted) {
			t.Errorf("got %v, want ErrAlreadyStarted", err)
		}
	})
}

func TestInformerMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
		o := newCM("a")
		o.Data = map[string]string{"k": strings.Repeat("x", 1000)}
		_, _ = src.Create(o)
		_, _ = src.Create(newCM("b"))
		reg := prometheus.NewPedanticRegistry()
		rig := startInformer(t, src, informer.Options[*corev1.ConfigMap]{Name: "cms", Registerer: reg}, func(inf *informer.SharedInformer[*corev1.ConfigMap]) {
			_, _ = inf.AddHandler(informer.HandlerFuncs[*corev1.ConfigMap]{}, informer.HandlerOptions{Name: "h"})
		})
		// A second informer on the same registry must register too.
		if _, err := informer.New[*corev1.ConfigMap](src, informer.Options[*corev1.ConfigMap]{Name: "other", Registerer: reg}); err != nil {
			t.Errorf("second informer on one registry: %v", err)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				lbl := ""
				for _, lp := range m.GetLabel() {
					lbl += "," + lp.GetName() + "=" + lp.GetValue()
				}
				got[mf.GetName()+lbl] = m.GetGauge().GetValue()
			}
		}
		if v := got["capstan_informer_cached_objects,informer=cms"]; v != 2 {
			t.Errorf("got cached_objects %v, want 2", v)
		}
		if v := got["capstan_informer_cached_bytes,informer=cms"]; v < 1000 || v > 1200 {
			t.Errorf("got cached_bytes %v, want about 1000-1200", v)
		}
		if v, ok := got["capstan_informer_handler_pending,handler=h,informer=cms"]; !ok || v != 0 {
			t.Errorf("got handler_pending %v (present %v), want 0", v, ok)
		}
		if int64(got["capstan_informer_cached_bytes,informer=cms"]) != rig.inf.ApproxBytes() {
			t.Errorf("got gauge and ApproxBytes disagreeing")
		}
	})
}

func TestInformerValidates(t *testing.T) {
	src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
	if _, err := informer.New[*corev1.ConfigMap](src, informer.Options[*corev1.ConfigMap]{ResyncCheckPeriod: -1}); err == nil || !strings.Contains(err.Error(), "ResyncCheckPeriod") {
		t.Errorf("got %v, want an error naming ResyncCheckPeriod", err)
	}
	inf, _ := informer.New[*corev1.ConfigMap](src, informer.Options[*corev1.ConfigMap]{})
	if _, err := inf.AddHandler(informer.HandlerFuncs[*corev1.ConfigMap]{}, informer.HandlerOptions{ResyncPeriod: -1}); err == nil || !strings.Contains(err.Error(), "ResyncPeriod") {
		t.Errorf("got %v, want an error naming ResyncPeriod", err)
	}
	if _, err := inf.AddHandler(informer.HandlerFuncs[*corev1.ConfigMap]{}, informer.HandlerOptions{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := inf.AddHandler(informer.HandlerFuncs[*corev1.ConfigMap]{}, informer.HandlerOptions{Name: "x"}); err == nil || !strings.Contains(err.Error(), "Name") {
		t.Errorf("got %v, want an error naming Name for a duplicate handler", err)
	}
}
