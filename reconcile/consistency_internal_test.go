package reconcile

import (
	"context"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/capstan-io/capstan/workqueue"
)

// fakeCache is a ResourceVersionWaiter whose observed version the test sets.
type fakeCache struct{ seen chan struct{} }

func (f *fakeCache) WaitForResourceVersion(ctx context.Context, _ string) error {
	select {
	case <-f.seen:
		return nil
	default:
	}
	select {
	case <-f.seen:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newTestController(t *testing.T, opts Options) (*Controller, *workqueue.Queue[Request]) {
	t.Helper()
	opts.Name = "internal"
	c, err := New(Func(func(context.Context, Request) (Result, error) { return Done(), nil }), opts)
	if err != nil {
		t.Fatal(err)
	}
	q, err := c.newQueue()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.ShutDown)
	c.queue = q // as Start does
	return c, q
}

func cmAt(name, rv string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, ResourceVersion: rv}}
}

// TestEchoFiltering drives the event handler directly, so the order of
// write and event is exact: the echo of our write is dropped; a foreign
// change, a later version, or anything with filtering off is not.
func TestEchoFiltering(t *testing.T) {
	tests := []struct {
		name    string
		disable bool
		written string // resourceVersion we recorded for ns/a
		events  []string
		want    int // requests queued
	}{
		{name: "own echo is dropped", written: "5", events: []string{"5"}, want: 0},
		{name: "foreign change is kept", written: "5", events: []string{"6"}, want: 1},
		{name: "echo then foreign change", written: "5", events: []string{"5", "6"}, want: 1},
		{name: "echo is forgotten once seen", written: "5", events: []string{"5", "5"}, want: 1},
		{name: "older event is kept, echo still dropped", written: "5", events: []string{"4", "5"}, want: 1},
		{name: "filtering off", disable: true, written: "5", events: []string{"5"}, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, q := newTestController(t, Options{Consistency: ConsistencyOptions{DisableEchoFiltering: tt.disable}})
			cache := &fakeCache{seen: make(chan struct{})}
			h := &eventHandler[*corev1.ConfigMap]{ctx: context.Background(), c: c, cache: cache, kind: TriggerSelf,
				mapFn: func(_ context.Context, o *corev1.ConfigMap) []Request { return []Request{{o.Namespace, o.Name}} }}
			ctx := c.withScope(context.Background(), Request{"ns", "a"})
			RecordWrite(ctx, cache, "ns", "a", tt.written)
			prev := "1"
			got := 0
			for _, rv := range tt.events {
				h.OnUpdate(cmAt("a", prev), cmAt("a", rv))
				prev = rv
				for q.Len() > 0 {
					item, _ := q.Get()
					q.Done(item)
					got++
				}
			}
			if got != tt.want {
				t.Errorf("requests queued: got %d, want %d", got, tt.want)
			}
		})
	}
}

// TestEchoBeforeWriteAnswer: the watch event of our own write often arrives
// while the reconcile that wrote is still waiting for the write's answer,
// before the write is known as ours. Events for a request being reconciled
// are held and settled when it returns: the echo is dropped, anything else
// (a foreign change, an event of a reconcile that wrote nothing, a delete)
// is queued, exactly once.
func TestEchoBeforeWriteAnswer(t *testing.T) {
	type step struct {
		event   string // resourceVersion of an update event for ns/a, or "delete"
		written string // resourceVersion recorded as our write, after the event
	}
	tests := []struct {
		name    string
		disable bool
		during  []step // while ns/a is being reconciled
		want    int    // requests queued once it returned
	}{
		{name: "echo before answer is dropped", during: []step{{event: "5", written: "5"}}, want: 0},
		{name: "foreign change during reconcile is queued", during: []step{{event: "6"}}, want: 1},
		{name: "echo and foreign change", during: []step{{event: "5", written: "5"}, {event: "6"}}, want: 1},
		{name: "foreign change, then our write over it", during: []step{{event: "6", written: "7"}}, want: 1},
		{name: "delete is never an echo", during: []step{{event: "delete", written: "5"}}, want: 1},
		{name: "filtering off", disable: true, during: []step{{event: "5", written: "5"}}, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, q := newTestController(t, Options{Consistency: ConsistencyOptions{DisableEchoFiltering: tt.disable}})
			cache := &fakeCache{seen: make(chan struct{})}
			h := &eventHandler[*corev1.ConfigMap]{ctx: context.Background(), c: c, cache: cache, kind: TriggerSelf,
				mapFn: func(_ context.Context, o *corev1.ConfigMap) []Request { return []Request{{o.Namespace, o.Name}} }}
			req := Request{"ns", "a"}
			ctx := c.withScope(context.Background(), req)
			c.beginReconcile(req)
			prev := "1"
			for _, s := range tt.during {
				if s.event == "delete" {
					h.OnDelete(cmAt("a", prev), false)
				} else {
					h.OnUpdate(cmAt("a", prev), cmAt("a", s.event))
					prev = s.event
				}
				if s.written != "" {
					RecordWrite(ctx, cache, "ns", "a", s.written)
				}
			}
			if !tt.disable && q.Len() != 0 {
				t.Fatalf("%d requests queued while the reconcile ran, want them held", q.Len())
			}
			c.settleHeld(req)
			if got := q.Len(); got != tt.want {
				t.Errorf("requests queued: got %d, want %d", got, tt.want)
			}
			// A later event is queued at once: nothing is held any more.
			h.OnUpdate(cmAt("a", prev), cmAt("a", "99"))
			if q.Len() != 1 {
				t.Errorf("after the reconcile, an event queued %d requests, want 1", q.Len())
			}
		})
	}
}

// TestReadYourWritesSetsKeyAside: a key whose last write the cache has not
// seen is not reconciled but set aside, and comes back when the cache
// catches up; with the check off it runs at once.
func TestReadYourWritesSetsKeyAside(t *testing.T) {
	for _, disable := range []bool{false, true} {
		t.Run(map[bool]string{false: "on", true: "off"}[disable], func(t *testing.T) {
			c, q := newTestController(t, Options{Consistency: ConsistencyOptions{DisableReadYourWrites: disable}})
			cache := &fakeCache{seen: make(chan struct{})}
			req := Request{"ns", "owner"}
			RecordWrite(c.withScope(context.Background(), req), cache, "ns", "child", "7")
			behind := c.cacheBehind(req)
			if disable {
				if behind != nil {
					t.Fatal("check off: got a pending write")
				}
				return
			}
			if behind == nil || behind.rv != "7" {
				t.Fatalf("pending write: got %+v, want rv 7", behind)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var waiters sync.WaitGroup
			rc := &run{q: q, ctx: ctx, wg: &waiters}
			c.waitForCache(rc, req, TriggerSelf, behind)
			c.waitForCache(rc, req, TriggerOwned, behind) // a second event while waiting: one waiter
			if q.Len() != 0 {
				t.Fatalf("queued before the cache caught up: %d", q.Len())
			}
			close(cache.seen)
			item, _ := q.Get()
			q.Done(item)
			if item != req {
				t.Fatalf("got %v back, want %v", item, req)
			}
			waiters.Wait()
			if got := c.takeTrigger(req); !got.Has(TriggerSelf | TriggerOwned) {
				t.Errorf("triggers kept while waiting: got %s, want self+owned", got)
			}
			if c.cacheBehind(req) != nil {
				t.Error("write still pending after the cache observed it")
			}
		})
	}
}

// RecordWrite outside a reconcile does nothing (and does not panic).
func TestRecordWriteOutsideReconcile(t *testing.T) {
	RecordWrite(context.Background(), &fakeCache{}, "ns", "x", "1")
}
