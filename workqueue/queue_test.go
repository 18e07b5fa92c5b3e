package workqueue

import (
	"errors"
	"math"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
)

func newTestQueue[T comparable](t *testing.T, o Options[T]) *Queue[T] {
	t.Helper()
	q, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(q.ShutDown)
	return q
}

// mustGet gets an item from a queue that has one waiting (Len() > 0), so the
// call cannot block.
func mustGet[T comparable](t *testing.T, q *Queue[T]) T {
	t.Helper()
	if q.Len() == 0 {
		t.Fatalf("Get on an empty queue would block")
	}
	item, shutdown := q.Get()
	if shutdown {
		t.Fatalf("Get: got shutdown, want an item")
	}
	return item
}

func TestNewValidatesOptions(t *testing.T) {
	tests := []struct {
		name string
		o    Options[string]
		want string // "" for no error
	}{
		{name: "zero value", o: Options[string]{}},
		{name: "negative aging", o: Options[string]{AgingStep: -1}, want: "workqueue: invalid options: AgingStep -1 is outside [0, 1073741824]"},
		{name: "aging too large", o: Options[string]{AgingStep: MaxAgingStep + 1}, want: "workqueue: invalid options: AgingStep 1073741825 is outside [0, 1073741824]"},
		{name: "metrics without name", o: Options[string]{Metrics: MetricsProviderFunc(func(string) QueueMetrics { return QueueMetrics{} })}, want: "workqueue: invalid options: Name must be set when Metrics is set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := New(tt.o)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				q.ShutDown()
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got error %v, want %q", err, tt.want)
			}
			if !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("got error %v, want one wrapping ErrInvalidOptions", err)
			}
		})
	}
}

// TestQueueSemantics runs single-goroutine operation sequences and checks what
// Get hands out and what Len reports.
func TestQueueSemantics(t *testing.T) {
	type step struct {
		op   string // add, get, done, shutdown
		item string
		want string // for get: the item expected
	}
	tests := []struct {
		name    string
		steps   []step
		wantLen int
	}{
		{
			name:  "fifo",
			steps: []step{{op: "add", item: "a"}, {op: "add", item: "b"}, {op: "add", item: "c"}, {op: "get", want: "a"}, {op: "get", want: "b"}, {op: "get", want: "c"}},
		},
		{
			name:    "dedup while waiting",
			steps:   []step{{op: "add", item: "a"}, {op: "add", item: "b"}, {op: "add", item: "a"}, {op: "get", want: "a"}, {op: "get", want: "b"}},
			wantLen: 0,
		},
		{
			name:    "dedup keeps first position",
			steps:   []step{{op: "add", item: "a"}, {op: "add", item: "b"}, {op: "add", item: "a"}},
			wantLen: 2,
		},
		{
			name:    "add while processing waits for done",
			steps:   []step{{op: "add", item: "a"}, {op: "get", want: "a"}, {op: "add", item: "a"}},
			wantLen: 0,
		},
		{
			name:    "add while processing requeued on done",
			steps:   []step{{op: "add", item: "a"}, {op: "get", want: "a"}, {op: "add", item: "a"}, {op: "add", item: "a"}, {op: "add", item: "b"}, {op: "done", item: "a"}, {op: "get", want: "b"}, {op: "get", want: "a"}},
			wantLen: 0,
		},
		{
			name:    "done without re-add forgets item",
			steps:   []step{{op: "add", item: "a"}, {op: "get", want: "a"}, {op: "done", item: "a"}},
			wantLen: 0,
		},
		{
			name:    "done for an item not processing is ignored",
			steps:   []step{{op: "add", item: "a"}, {op: "done", item: "a"}, {op: "done", item: "zz"}},
			wantLen: 1,
		},
		{
			name:    "add after shutdown ignored",
			steps:   []step{{op: "add", item: "a"}, {op: "shutdown"}, {op: "add", item: "b"}},
			wantLen: 1,
		},
		{
			name:    "waiting items handed out after shutdown",
			steps:   []step{{op: "add", item: "a"}, {op: "add", item: "b"}, {op: "shutdown"}, {op: "get", want: "a"}, {op: "get", want: "b"}},
			wantLen: 0,
		},
		{
			name:    "dirty item requeued on done after shutdown",
			steps:   []step{{op: "add", item: "a"}, {op: "get", want: "a"}, {op: "add", item: "a"}, {op: "shutdown"}, {op: "done", item: "a"}, {op: "get", want: "a"}},
			wantLen: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newTestQueue(t, Options[string]{})
			for i, s := range tt.steps {
				switch s.op {
				case "add":
					q.Add(s.item)
				case "get":
					if got := mustGet(t, q); got != s.want {
						t.Fatalf("step %d: Get got %q, want %q", i, got, s.want)
					}
				case "done":
					q.Done(s.item)
				case "shutdown":
					q.ShutDown()
				}
			}
			if got := q.Len(); got != tt.wantLen {
				t.Fatalf("Len got %d, want %d", got, tt.wantLen)
			}
		})
	}
}

func TestGetReturnsShutdownWhenEmpty(t *testing.T) {
	q := newTestQueue(t, Options[int]{})
	q.ShutDown()
	if item, shutdown := q.Get(); !shutdown || item != 0 {
		t.Fatalf("Get got (%d, %v), want (0, true)", item, shutdown)
	}
	if !q.ShuttingDown() {
		t.Fatalf("ShuttingDown got false, want true")
	}
}

// getter runs Get in a goroutine and records what it returns.
type getter[T comparable] struct {
	mu       sync.Mutex
	returned bool
	item     T
	shutdown bool
}

func startGet[T comparable](q *Queue[T]) *getter[T] {
	g := &getter[T]{}
	go func() {
		item, shutdown := q.Get()
		g.mu.Lock()
		g.returned, g.item, g.shutdown = true, item, shutdown
		g.mu.Unlock()
	}()
	return g
}

func (g *getter[T]) result() (returned bool, item T, shutdown bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.returned, g.item, g.shutdown
}

func TestGetBlocksUntilAdd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newTestQueue(t, Options[string]{})
		g := startGet(q)
		synctest.Wait()
		if returned, _, _ := g.result(); returned {
			t.Fatalf("Get returned on an empty queue, want it blocked")
		}
		q.Add("a")
		synctest.Wait()
		returned, item, shutdown := g.result()
		if !returned || item != "a" || shutdown {
			t.Fatalf("Get got (returned %v, %q, %v), want (true, \"a\", false)", returned, item, shutdown)
		}
		if got := q.Len(); got != 0 {
			t.Fatalf("Len got %d, want 0", got)
		}
		q.Add("a") // processing: must not wake another Get
		g2 := startGet(q)
		synctest.Wait()
		if returned, _, _ := g2.result(); returned {
			t.Fatalf("second Get returned an item being processed, want it blocked")
		}
		q.Done("a")
		synctest.Wait()
		if returned, item, _ := g2.result(); !returned || item != "a" {
			t.Fatalf("second Get after Done got (returned %v, %q), want (true, \"a\")", returned, item)
		}
		q.Done("a")
	})
}

func TestBlockedGetsServedInArrivalOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newTestQueue(t, Options[int]{})
		var gs []*getter[int]
		for range 3 {
			gs = append(gs, startGet(q))
			synctest.Wait()
		}
		for i := range 3 {
			q.Add(i)
		}
		synctest.Wait()
		for i, g := range gs {
			if returned, item, _ := g.result(); !returned || item != i {
				t.Fatalf("getter %d got (returned %v, %d), want (true, %d)", i, returned, item, i)
			}
		}
	})
}

func TestShutDownReleasesBlockedGets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newTestQueue(t, Options[string]{})
		var gs []*getter[string]
		for range 5 {
			gs = append(gs, startGet(q))
		}
		synctest.Wait()
		q.ShutDown()
		synctest.Wait()
		for i, g := range gs {
			if returned, item, shutdown := g.result(); !returned || !shutdown || item != "" {
				t.Fatalf("getter %d got (returned %v, %q, %v), want (true, \"\", true)", i, returned, item, shutdown)
			}
		}
	})
}

func TestShutDownWithDrain(t *testing.T) {
	tests := []struct {
		name string
		// finish ends the drain: Done for the held items, or a ShutDown.
		finish func(q *Queue[string])
	}{
		{name: "waits for every done", finish: func(q *Queue[string]) { q.Done("b") }},
		{name: "ended by shutdown", finish: func(q *Queue[string]) { q.ShutDown() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				q := newTestQueue(t, Options[string]{})
				q.Add("a")
				q.Add("b")
				mustGet(t, q)
				mustGet(t, q)
				var drained sync.WaitGroup
				returned := false
				var mu sync.Mutex
				drained.Go(func() {
					q.ShutDownWithDrain()
					mu.Lock()
					returned = true
					mu.Unlock()
				})
				synctest.Wait()
				mu.Lock()
				got := returned
				mu.Unlock()
				if got {
					t.Fatalf("ShutDownWithDrain returned with items in flight, want it blocked")
				}
				if !q.ShuttingDown() {
					t.Fatalf("ShuttingDown got false during drain, want true")
				}
				q.Done("a")
				synctest.Wait()
				mu.Lock()
				got = returned
				mu.Unlock()
				if got {
					t.Fatalf("ShutDownWithDrain returned with one item in flight, want it blocked")
				}
				tt.finish(q)
				drained.Wait()
			})
		})
	}
}

func TestShutDownWithDrainIdleReturnsAtOnce(t *testing.T) {
	q := newTestQueue(t, Options[string]{})
	q.Add("a") // waiting, not processing: drain does not wait for it
	q.ShutDownWithDrain()
	if got := mustGet(t, q); got != "a" {
		t.Fatalf("Get after drain got %q, want \"a\"", got)
	}
}

func TestRingWrapAndShrink(t *testing.T) {
	var r ring[int]
	want := []int{}
	next := 0
	// Interleave pushes and pops so the ring wraps, grows and shrinks.
	for round := range 6 {
		for range 5000 * (round%3 + 1) {
			r.push(next)
			want = append(want, next)
			next++
		}
		for range 4000 * (round%3 + 1) {
			if got := r.pop(); got != want[0] {
				t.Fatalf("pop got %d, want %d", got, want[0])
			}
			want = want[1:]
		}
	}
	for len(want) > 0 {
		if got := r.pop(); got != want[0] {
			t.Fatalf("pop got %d, want %d", got, want[0])
		}
		want = want[1:]
	}
	if r.len() != 0 || len(r.buf) > ringShrinkCap {
		t.Fatalf("after draining: len %d cap %d, want 0 and <= %d", r.len(), len(r.buf), ringShrinkCap)
	}
}

func TestDelayQueueOrder(t *testing.T) {
	var h delayQueue[int]
	// A deterministic permutation of deadlines; item i at deadline at[i]
	// with priority prio[i].
	const n = 5000
	at := make([]int64, n)
	prio := make([]int32, n)
	for i := range n {
		at[i] = int64((i*7919)%n)*1000 + 1000
		h.add(i, at[i], 0)
	}
	// Lower most deadlines again, many times (leaving enough stale entries
	// behind to compact), and try to raise them (ignored, but the higher
	// priority is kept).
	for round := int32(1); round <= 4; round++ {
		for i := range n {
			if (i+int(round))%5 == 0 {
				continue
			}
			at[i] = at[i] * 3 / 4
			h.add(i, at[i], 0)
			h.add(i, at[i]+5_000_000, round)
			prio[i] = round
		}
	}
	if h.len() != n {
		t.Fatalf("len got %d, want %d", h.len(), n)
	}
	// Take the items out as time passes, a few at a time.
	var got []int64
	var batch []dueItem[int]
	for now := int64(0); h.len() > 0; {
		if len(got) > 0 && h.minAt() < got[len(got)-1] {
			t.Fatalf("minAt %d is before the last deadline taken out, %d", h.minAt(), got[len(got)-1])
		}
		batch = h.appendDue(now, batch[:0], 3)
		for _, d := range batch {
			if at[d.item] > now {
				t.Fatalf("item %d due at %d taken out at %d", d.item, at[d.item], now)
			}
			if d.prio != prio[d.item] {
				t.Fatalf("item %d has priority %d, want %d", d.item, d.prio, prio[d.item])
			}
			got = append(got, at[d.item])
		}
		if len(batch) < 3 {
			now += 7777
		}
	}
	if len(got) != n || !slices.IsSorted(got) {
		t.Fatalf("got %d deadlines, sorted %v; want %d sorted", len(got), slices.IsSorted(got), n)
	}
	if h.entries != 0 || h.nonEmpty != 0 {
		t.Fatalf("after taking every item out: %d entries, buckets %b; want none", h.entries, h.nonEmpty)
	}
}

func TestDelayQueueTiesFirstInFirstOut(t *testing.T) {
	var h delayQueue[int]
	// Items 0..999 at ten deadlines, added in item order but deadlines out
	// of order, with some lowered onto another deadline later.
	for i := range 1000 {
		h.add(i, int64(1+(i*7)%10)*1_000_000, 0)
	}
	for i := 0; i < 1000; i += 9 {
		h.add(i, 500_000, 0) // lowered onto a deadline of its own
	}
	got := h.appendDue(math.MaxInt64-1, nil, 2000)
	if len(got) != 1000 {
		t.Fatalf("got %d items, want 1000", len(got))
	}
	// Expected: the lowered items first, in the order they were lowered,
	// then each deadline's items in the order they were added.
	var want []int
	for i := 0; i < 1000; i += 9 {
		want = append(want, i)
	}
	for d := 1; d <= 10; d++ {
		for i := range 1000 {
			if i%9 != 0 && 1+(i*7)%10 == d {
				want = append(want, i)
			}
		}
	}
	for i := range want {
		if got[i].item != want[i] {
			t.Fatalf("item %d out is %d, want %d", i, got[i].item, want[i])
		}
	}
}

func TestDelayQueueGivesBurstMemoryBack(t *testing.T) {
	var h delayQueue[int]
	const n = 100_000
	for i := range n {
		h.add(i, int64(1+(i*7919)%n)*1000, 0)
	}
	for i := 0; i < n; i += 2 {
		h.add(i, int64(1+(i*7919)%n)*500, 0) // stale entries left behind
	}
	var batch []dueItem[int]
	for now := int64(0); h.len() > 0; now += 10_000_000 {
		batch = h.appendDue(now, batch[:0], n)
	}
	if h.index != nil || h.entries != 0 {
		t.Fatalf("after draining: index %v, %d entries; want nil, 0", h.index != nil, h.entries)
	}
	for i, b := range h.buckets {
		if cap(b) > ringShrinkCap {
			t.Fatalf("after draining: bucket %d keeps capacity %d, want <= %d", i, cap(b), ringShrinkCap)
		}
	}
}
