package workqueue

import (
	"runtime"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
)

// drainWaiting gets and finishes every waiting item, in order.
func drainWaiting[T comparable](t *testing.T, q *Queue[T]) []T {
	t.Helper()
	var got []T
	for q.Len() > 0 {
		item := mustGet(t, q)
		q.Done(item)
		got = append(got, item)
	}
	return got
}

func TestAddAfter(t *testing.T) {
	type add struct {
		item string
		d    time.Duration
	}
	type check struct {
		at   time.Duration // since start
		want []string      // waiting items drained at that time, in order
	}
	tests := []struct {
		name   string
		adds   []add
		checks []check
	}{
		{
			name:   "non-positive delay adds now",
			adds:   []add{{"a", 0}, {"b", -time.Second}},
			checks: []check{{0, []string{"a", "b"}}},
		},
		{
			name:   "ordered by deadline",
			adds:   []add{{"c", 3 * time.Second}, {"a", time.Second}, {"b", 2 * time.Second}},
			checks: []check{{999 * time.Millisecond, nil}, {time.Second, []string{"a"}}, {2500 * time.Millisecond, []string{"b"}}, {3 * time.Second, []string{"c"}}},
		},
		{
			name:   "earliest delay wins",
			adds:   []add{{"a", 5 * time.Second}, {"a", time.Second}, {"a", 3 * time.Second}},
			checks: []check{{time.Second, []string{"a"}}, {10 * time.Second, nil}},
		},
		{
			name:   "due together are added together",
			adds:   []add{{"a", time.Second}, {"b", time.Second}},
			checks: []check{{2 * time.Second, []string{"a", "b"}}},
		},
		{
			name:   "delayed copy independent of the waiting one",
			adds:   []add{{"a", 0}, {"a", time.Second}},
			checks: []check{{0, []string{"a"}}, {time.Second, []string{"a"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				q := newTestQueue(t, Options[string]{})
				start := time.Now()
				for _, a := range tt.adds {
					q.AddAfter(a.item, a.d)
				}
				for _, c := range tt.checks {
					time.Sleep(c.at - time.Since(start))
					synctest.Wait()
					got := drainWaiting(t, q)
					if len(got) != len(c.want) {
						t.Fatalf("at %v: got %v, want %v", c.at, got, c.want)
					}
					// Items due at the same instant may come in any order.
					for _, w := range c.want {
						found := false
						for _, g := range got {
							found = found || g == w
						}
						if !found {
							t.Fatalf("at %v: got %v, want %v", c.at, got, c.want)
						}
					}
				}
			})
		})
	}
}

func TestAddAfterWakesBlockedGet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newTestQueue(t, Options[int]{})
		g := startGet(q)
		q.AddAfter(7, time.Minute)
		time.Sleep(time.Minute - time.Nanosecond)
		synctest.Wait()
		if returned, _, _ := g.result(); returned {
			t.Fatalf("Get returned before the delay passed")
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if returned, item, _ := g.result(); !returned || item != 7 {
			t.Fatalf("Get got (returned %v, %d), want (true, 7)", returned, item)
		}
	})
}

func TestAddAfterDroppedOnShutDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newTestQueue(t, Options[int]{})
		q.AddAfter(1, time.Second)
		q.ShutDown()
		q.AddAfter(2, time.Nanosecond)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := q.Len(); got != 0 {
			t.Fatalf("Len got %d after shutdown, want 0", got)
		}
	})
}

func TestAddAfterManyItemsInDeadlineOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newTestQueue(t, Options[int]{})
		const n = 5000
		for i := range n {
			// A permutation of distinct delays in (0, n] ms.
			q.AddAfter(i, time.Duration((i*7919)%n+1)*time.Millisecond)
		}
		time.Sleep(n * time.Millisecond)
		synctest.Wait()
		got := drainWaiting(t, q)
		if len(got) != n {
			t.Fatalf("got %d items, want %d", len(got), n)
		}
		for i := 1; i < n; i++ {
			if (got[i-1]*7919)%n > (got[i]*7919)%n {
				t.Fatalf("item %d (delay %d) came before item %d (delay %d)", got[i-1], (got[i-1]*7919)%n, got[i], (got[i]*7919)%n)
			}
		}
	})
}

// TestAddAfterFakeClock checks the queue works with k8s.io/utils' fake clock,
// which users may inject instead of using synctest.
func TestAddAfterFakeClock(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1000, 0))
	q := newTestQueue(t, Options[string]{Clock: clk})
	q.AddAfter("a", time.Second)
	// Wait for the loop to arm its timer (it is the clock's only waiter).
	for !clk.HasWaiters() {
		runtime.Gosched()
	}
	clk.Step(time.Second)
	item, shutdown := q.Get() // blocks until the loop moves "a" in
	if item != "a" || shutdown {
		t.Fatalf("Get got (%q, %v), want (\"a\", false)", item, shutdown)
	}
}

// TestAddAfterKeepsEarliestDeadlineAndHighestPriority: of two pending
// delays for one item, the earlier deadline and the higher priority win,
// even when they come from different adds.
func TestAddAfterKeepsEarliestDeadlineAndHighestPriority(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newTestQueue(t, Options[string]{})
		q.Add("x")
		q.AddWithOptions("a", AddOptions{After: time.Second})
		q.AddWithOptions("a", AddOptions{After: 2 * time.Second, Priority: 5})
		time.Sleep(time.Second)
		synctest.Wait()
		if got := drainWaiting(t, q); !slices.Equal(got, []string{"a", "x"}) {
			t.Fatalf("after 1s got %v, want [a x]", got)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if got := q.Len(); got != 0 {
			t.Fatalf("Len after the later deadline got %d, want 0", got)
		}
	})
}

// lateClock is a fake clock whose timers fire an hour late, as a timer
// armed from a stale reading of a stepped fake clock does.
type lateClock struct{ *clocktesting.FakeClock }

func (c lateClock) NewTimer(d time.Duration) clock.Timer {
	return lateTimer{c.FakeClock.NewTimer(d + time.Hour)}
}

type lateTimer struct{ clock.Timer }

func (t lateTimer) Reset(d time.Duration) bool { return t.Timer.Reset(d + time.Hour) }

// TestAddAfterWakesLoopWhenTimerIsLate: an AddAfter that finds the delay
// timer overdue wakes the loop, so an item whose timer fired late (a fake
// clock stepped between the loop's clock reading and its arming the timer)
// is not stuck until the next step.
func TestAddAfterWakesLoopWhenTimerIsLate(t *testing.T) {
	clk := lateClock{clocktesting.NewFakeClock(time.Unix(1000, 0))}
	q := newTestQueue(t, Options[string]{Clock: clk})
	q.AddAfter("a", time.Second)
	for !clk.HasWaiters() { // the loop has armed its timer
		runtime.Gosched()
	}
	clk.Step(2 * time.Second) // "a" is due; its timer fires in an hour
	q.AddAfter("b", time.Minute)
	got := make(chan string, 1)
	go func() {
		item, _ := q.Get()
		got <- item
	}()
	select {
	case item := <-got:
		if item != "a" {
			t.Fatalf("Get got %q, want \"a\"", item)
		}
	case <-time.After(10 * time.Second):
		q.ShutDown() // releases the Get
		t.Fatalf("\"a\" was not handed out while its timer was late")
	}
}
