package workqueue

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	clientgo "k8s.io/client-go/util/workqueue"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestExponentialRateLimiter(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name      string
		base, max time.Duration
		calls     int
		want      []time.Duration
	}{
		{name: "doubles then caps", base: ms, max: 10 * ms, calls: 6, want: []time.Duration{ms, 2 * ms, 4 * ms, 8 * ms, 10 * ms, 10 * ms}},
		{name: "default backoff", base: 5 * ms, max: 1000 * time.Second, calls: 3, want: []time.Duration{5 * ms, 10 * ms, 20 * ms}},
		{name: "base above max", base: time.Second, max: ms, calls: 2, want: []time.Duration{ms, ms}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewExponentialRateLimiter[string](tt.base, tt.max)
			var got []time.Duration
			for range tt.calls {
				got = append(got, r.When("a"))
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("When sequence got %v, want %v", got, tt.want)
			}
			if n := r.NumRequeues("a"); n != tt.calls {
				t.Fatalf("NumRequeues got %d, want %d", n, tt.calls)
			}
			if n := r.NumRequeues("b"); n != 0 {
				t.Fatalf("NumRequeues of another item got %d, want 0", n)
			}
			r.Forget("a")
			if n := r.NumRequeues("a"); n != 0 {
				t.Fatalf("NumRequeues after Forget got %d, want 0", n)
			}
			if d := r.When("a"); d != tt.want[0] {
				t.Fatalf("When after Forget got %v, want %v", d, tt.want[0])
			}
		})
	}
}

// TestExponentialMatchesClientGo compares sequences up to 63 failures with
// client-go's limiter. At 63 failures and beyond client-go's float
// arithmetic overflows to a negative delay (float64(2^63) > MaxInt64 is
// false); ours stays at max, checked below.
func TestExponentialMatchesClientGo(t *testing.T) {
	for _, c := range []struct{ base, max time.Duration }{
		{time.Nanosecond, time.Duration(1<<63 - 1)},
		{5 * time.Millisecond, 1000 * time.Second},
		{3 * time.Millisecond, 7 * time.Hour},
		{time.Hour, time.Minute},
	} {
		ours := NewExponentialRateLimiter[int](c.base, c.max)
		theirs := clientgo.NewTypedItemExponentialFailureRateLimiter[int](c.base, c.max)
		for i := range 63 {
			if got, want := ours.When(1), theirs.When(1); got != want {
				t.Fatalf("base %v max %v call %d: got %v, want %v", c.base, c.max, i, got, want)
			}
		}
		for i := 63; i < 200; i++ {
			if got := ours.When(1); got != c.max {
				t.Fatalf("base %v max %v call %d: got %v, want %v", c.base, c.max, i, got, c.max)
			}
		}
	}
}

func TestFastSlowRateLimiter(t *testing.T) {
	r := NewFastSlowRateLimiter[string](time.Millisecond, time.Second, 3)
	var got []time.Duration
	for range 5 {
		got = append(got, r.When("a"))
	}
	want := []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond, time.Second, time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("When sequence got %v, want %v", got, want)
	}
	if n := r.NumRequeues("a"); n != 5 {
		t.Fatalf("NumRequeues got %d, want 5", n)
	}
	r.Forget("a")
	if d := r.When("a"); d != time.Millisecond {
		t.Fatalf("When after Forget got %v, want 1ms", d)
	}
}

func TestBucketRateLimiter(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Unix(0, 0))
	r := NewBucketRateLimiter[string](10, 3, clk)
	var got []time.Duration
	for range 5 {
		got = append(got, r.When("any"))
	}
	// Burst of 3 free, then one token per 100 ms.
	want := []time.Duration{0, 0, 0, 100 * time.Millisecond, 200 * time.Millisecond}
	if !slices.Equal(got, want) {
		t.Fatalf("When sequence got %v, want %v", got, want)
	}
	clk.SetTime(clk.Now().Add(time.Second)) // refills the bucket
	if d := r.When("any"); d != 0 {
		t.Fatalf("When after refill got %v, want 0", d)
	}
	if n := r.NumRequeues("any"); n != 0 {
		t.Fatalf("NumRequeues got %d, want 0 (bucket tracks no items)", n)
	}
}

func TestMaxOfRateLimiter(t *testing.T) {
	r := NewMaxOfRateLimiter(
		NewFastSlowRateLimiter[string](time.Millisecond, 3*time.Second, 2),
		NewExponentialRateLimiter[string](time.Millisecond, time.Second),
	)
	var got []time.Duration
	for range 4 {
		got = append(got, r.When("a"))
	}
	want := []time.Duration{time.Millisecond, 2 * time.Millisecond, 3 * time.Second, 3 * time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("When sequence got %v, want %v", got, want)
	}
	if n := r.NumRequeues("a"); n != 4 {
		t.Fatalf("NumRequeues got %d, want 4", n)
	}
	r.Forget("a")
	if n := r.NumRequeues("a"); n != 0 {
		t.Fatalf("NumRequeues after Forget got %d, want 0", n)
	}
}

// TestDefaultControllerRateLimiterMatchesClientGo drives both default
// limiters with the same calls on the same (bubbled) clock.
func TestDefaultControllerRateLimiterMatchesClientGo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ours := DefaultControllerRateLimiter[int](nil)
		theirs := clientgo.DefaultTypedControllerRateLimiter[int]()
		for i := range 400 {
			item := i % 7
			if i%50 == 49 {
				time.Sleep(time.Duration(i) * time.Millisecond)
			}
			if i%31 == 0 {
				ours.Forget(item)
				theirs.Forget(item)
			}
			if got, want := ours.When(item), theirs.When(item); got != want {
				t.Fatalf("call %d item %d: When got %v, want %v", i, item, got, want)
			}
			if got, want := ours.NumRequeues(item), theirs.NumRequeues(item); got != want {
				t.Fatalf("call %d item %d: NumRequeues got %d, want %d", i, item, got, want)
			}
		}
	})
}

func TestQueueRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newTestQueue(t, Options[string]{RateLimiter: NewExponentialRateLimiter[string](time.Second, time.Hour)})
		start := time.Now()
		var gotAt []time.Duration
		for range 4 {
			q.AddRateLimited("a")
			item, _ := q.Get()
			gotAt = append(gotAt, time.Since(start))
			q.Done(item)
		}
		// Backoffs 1s, 2s, 4s, 8s: handed out at 1s, 3s, 7s, 15s.
		want := []time.Duration{time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second}
		if !slices.Equal(gotAt, want) {
			t.Fatalf("hand-out times got %v, want %v", gotAt, want)
		}
		if n := q.NumRequeues("a"); n != 4 {
			t.Fatalf("NumRequeues got %d, want 4", n)
		}
		q.Forget("a")
		if n := q.NumRequeues("a"); n != 0 {
			t.Fatalf("NumRequeues after Forget got %d, want 0", n)
		}
		// RateLimited with a longer After: the longer delay applies.
		q.AddWithOptions("b", AddOptions{RateLimited: true, After: 5 * time.Second})
		t0 := time.Now()
		item, _ := q.Get()
		if item != "b" || time.Since(t0) != 5*time.Second {
			t.Fatalf("AddWithOptions got %q after %v, want \"b\" after 5s", item, time.Since(t0))
		}
		q.Done(item)
	})
}
