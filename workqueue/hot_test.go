package workqueue

import (
	"math/rand/v2"
	"testing"
	"testing/synctest"
)

// checkHot checks the hot cache against the queue's state: an item is in
// the cache exactly when its state says hot, and its cached dirty flag and
// priority are its state's.
func checkHot[T comparable](t *testing.T, q *Queue[T]) {
	t.Helper()
	q.mu.Lock()
	defer q.mu.Unlock()
	cached := 0
	if c := q.hotCache.Load(); c != nil {
		for si := range c {
			for wi := range c[si].ways {
				w := &c[si].ways[wi]
				r := w.item.Load()
				if r == nil {
					continue
				}
				cached++
				if q.stripe(c, r.item) != &c[si] {
					t.Fatalf("hot item %v in stripe %d, not its own", r.item, si)
				}
				si, ok := q.items[r.item]
				st := q.slots[si].st
				if !ok || !st.hot {
					t.Fatalf("hot item %v: in the queue %v, hot %v; want true, true", r.item, ok, st.hot)
				}
				if got, want := w.state.Load(), hotWord(r.gen, st); got != want {
					t.Fatalf("hot item %v: state word %x, want %x (state %+v)", r.item, got, want, st)
				}
			}
		}
	}
	hot := 0
	for _, si := range q.items {
		if q.slots[si].st.hot {
			hot++
		}
	}
	if hot != cached || int(q.hot.Load()) != cached {
		t.Fatalf("%d items hot, %d cached, counter %d; want equal", hot, cached, q.hot.Load())
	}
}

// TestHotCacheMatchesState drives a queue with random adds (with
// priorities), gets and dones over more keys than the hot cache holds, so
// items are promoted, evicted and dropped, and checks the cache after every
// few operations.
func TestHotCacheMatchesState(t *testing.T) {
	q := newTestQueue(t, Options[int]{})
	rng := rand.New(rand.NewPCG(1, 2))
	const keys = 3 * hotStripes * hotWays
	var held []int
	for i := range 20_000 {
		switch r := rng.IntN(10); {
		case r < 6:
			k := rng.IntN(keys)
			if rng.IntN(4) == 0 {
				q.AddWithOptions(k, AddOptions{Priority: rng.IntN(5) - 2})
			} else {
				q.Add(k)
			}
		case r < 8:
			if q.Len() > 0 {
				held = append(held, mustGet(t, q))
			}
		default:
			if len(held) > 0 {
				i := rng.IntN(len(held))
				q.Done(held[i])
				held[i] = held[len(held)-1]
				held = held[:len(held)-1]
			}
		}
		if i%16 == 0 {
			checkHot(t, q)
		}
	}
	if q.hot.Load() == 0 {
		t.Fatalf("no item ever hot at the end; the test does not exercise the cache")
	}
}

// TestHotAddRaisesPriority: an Add at a higher priority of a hot item is
// not taken for a no-op.
func TestHotAddRaisesPriority(t *testing.T) {
	q := newTestQueue(t, Options[string]{})
	q.AddWithOptions("b", AddOptions{Priority: -1})
	q.AddWithOptions("a", AddOptions{Priority: -1})
	q.AddWithOptions("a", AddOptions{Priority: -1}) // a no-op: "a" is now hot
	if q.hot.Load() != 1 {
		t.Fatalf("hot got %d, want 1", q.hot.Load())
	}
	q.Add("a") // priority 0: "a" moves ahead of "b"
	if got := drainWaiting(t, q); len(got) != 2 || got[0] != "a" {
		t.Fatalf("got %v, want [a b]", got)
	}
}

// TestHotItemHandedToBlockedGet: when Done hands a dirty hot item straight
// to a blocked Get, the cache learns it is no longer dirty, so a later Add
// is not taken for a no-op.
func TestHotItemHandedToBlockedGet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newTestQueue(t, Options[string]{})
		q.Add("a")
		a := mustGet(t, q)
		q.Add("a") // dirty while processing
		q.Add("a") // a no-op: "a" is now hot
		g := startGet(q)
		synctest.Wait() // g is blocked
		q.Done(a)       // hands "a" to g
		synctest.Wait()
		if returned, item, _ := g.result(); !returned || item != "a" {
			t.Fatalf("blocked Get got (returned %v, %q), want (true, \"a\")", returned, item)
		}
		checkHot(t, q)
		q.Add("a") // dirty while processing again
		q.Done("a")
		if got := q.Len(); got != 1 {
			t.Fatalf("Len after Add and Done got %d, want 1: the Add was lost", got)
		}
	})
}
