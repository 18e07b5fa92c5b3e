package workqueue

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// The intake is used by Add only when another goroutine holds the queue's
// mutex, which a test cannot arrange reliably; these tests put adds in it
// directly, as such an Add would, and check that nothing can tell them from
// adds applied at once.

func mustIntakeAdd(t *testing.T, q *Queue[int], item int) {
	t.Helper()
	if !q.intakeAdd(item) {
		t.Fatalf("intakeAdd(%d) refused, want accepted", item)
	}
}

func TestIntakeAddsAreQueuedInOrder(t *testing.T) {
	q := newTestQueue(t, Options[int]{})
	q.Add(1)
	mustIntakeAdd(t, q, 2)
	mustIntakeAdd(t, q, 1) // a duplicate of a waiting item
	mustIntakeAdd(t, q, 3)
	if got := q.Len(); got != 3 {
		t.Fatalf("Len got %d, want 3", got)
	}
	var got []int
	for range 3 {
		item := mustGet(t, q)
		got = append(got, item)
		q.Done(item)
	}
	if want := []int{1, 2, 3}; !slices.Equal(got, want) {
		t.Fatalf("order got %v, want %v", got, want)
	}
}

// An item re-added while being processed is queued at its Done, behind
// items added before that Done: Done applies the intake first.
func TestIntakeAppliedBeforeDone(t *testing.T) {
	q := newTestQueue(t, Options[int]{})
	q.Add(1)
	x := mustGet(t, q)
	mustIntakeAdd(t, q, x)
	mustIntakeAdd(t, q, 2)
	q.Done(x)
	a := mustGet(t, q)
	b := mustGet(t, q)
	if a != 2 || b != 1 {
		t.Fatalf("after Done got %d then %d, want 2 then 1 (as client-go)", a, b)
	}
}

// A Get that finds only adds of items already processing in the intake
// must block, not return or spin (a first version spun here for ever).
func TestGetBlocksWhenIntakeHoldsOnlyProcessingItems(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newTestQueue(t, Options[int]{})
		q.Add(1)
		x := mustGet(t, q)
		mustIntakeAdd(t, q, x)
		g := startGet(q)
		synctest.Wait()
		if returned, item, _ := g.result(); returned {
			t.Fatalf("Get returned %d while its only item is being processed", item)
		}
		q.Done(x)
		synctest.Wait()
		if returned, item, _ := g.result(); !returned || item != x {
			t.Fatalf("after Done of the re-added item Get got (returned %v, %d), want (true, %d)", returned, item, x)
		}
	})
}

// While a Get is blocked, an add must reach it at once: the intake refuses.
func TestIntakeRefusesWhileGetBlocked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newTestQueue(t, Options[int]{})
		g := startGet(q)
		synctest.Wait()
		if q.intakeAdd(7) {
			t.Fatal("intakeAdd accepted an item while a Get was blocked")
		}
		q.Add(7)
		synctest.Wait()
		if returned, item, _ := g.result(); !returned || item != 7 {
			t.Fatalf("Get got (returned %v, %d), want (true, 7)", returned, item)
		}
	})
}

// Adds in the intake at ShutDown came before it: their items are handed
// out; later adds are refused.
func TestIntakeAtShutDown(t *testing.T) {
	q := newTestQueue(t, Options[int]{})
	mustIntakeAdd(t, q, 5)
	q.ShutDown()
	if q.intakeAdd(6) {
		t.Fatal("intakeAdd accepted an item after ShutDown")
	}
	if item, shutdown := q.Get(); item != 5 || shutdown {
		t.Fatalf("Get got (%d, %v), want (5, false)", item, shutdown)
	}
	q.Done(5)
	if _, shutdown := q.Get(); !shutdown {
		t.Fatal("Get after the last item: shutdown false, want true")
	}
}

// A full intake refuses, so the adder applies it under the mutex.
func TestIntakeBounded(t *testing.T) {
	q := newTestQueue(t, Options[int]{})
	for i := range intakeMax {
		mustIntakeAdd(t, q, i)
	}
	if q.intakeAdd(intakeMax) {
		t.Fatalf("intakeAdd accepted item %d beyond intakeMax", intakeMax)
	}
	q.Add(intakeMax)
	if got, want := q.Len(), intakeMax+1; got != want {
		t.Fatalf("Len got %d, want %d", got, want)
	}
}

// With metrics on, an add that waited in the intake is timed from the Add,
// not from when the intake was applied.
func TestIntakeQueueDurationCountsFromAdd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeMetrics()
		q := newTestQueue(t, Options[int]{Name: "q", Metrics: f})
		if !q.intakeAdd(1) {
			t.Fatal("intakeAdd(1) refused, want accepted")
		}
		time.Sleep(3 * time.Second)
		if v, _ := f.adds.get(); v != 0 {
			t.Fatalf("adds before the intake is applied got %v, want 0", v)
		}
		item, _ := q.Get()
		q.Done(item)
		if v, _ := f.adds.get(); v != 1 {
			t.Fatalf("adds got %v, want 1", v)
		}
		if _, obs := f.latency.get(); len(obs) != 1 || obs[0] != 3 {
			t.Fatalf("queue durations got %v, want [3] (seconds since the Add)", obs)
		}
	})
}
