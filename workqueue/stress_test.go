package workqueue

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestStress runs many producers and consumers (run it with -race). It
// checks that no item is processed by two workers at once, that every item
// added is processed after its last add (none lost), and that shutdown with
// drain returns once workers are done.
func TestStress(t *testing.T) {
	tests := []struct {
		name                 string
		producers, consumers int
		keys, addsPerProd    int
		delayed, prioritised bool
	}{
		{name: "unique-ish keys", producers: 4, consumers: 8, keys: 5000, addsPerProd: 5000},
		{name: "hot keys", producers: 8, consumers: 8, keys: 8, addsPerProd: 5000},
		{name: "with delays and priorities", producers: 4, consumers: 4, keys: 200, addsPerProd: 2000, delayed: true, prioritised: true},
		// More hot keys than the hot cache holds: promotions and evictions.
		{name: "hot keys beyond the hot cache", producers: 4, consumers: 4, keys: 3 * hotStripes * hotWays, addsPerProd: 20000, prioritised: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newTestQueue(t, Options[int]{})
			inFlight := make([]atomic.Int32, tt.keys)
			// addGen[k] counts adds of k; seenGen[k] is addGen[k] as seen at
			// the start of k's latest processing. An add at generation g
			// must be followed by a processing that starts after it.
			addGen := make([]atomic.Int64, tt.keys)
			seenGen := make([]atomic.Int64, tt.keys)
			var violations atomic.Int64
			var consumers sync.WaitGroup
			for range tt.consumers {
				consumers.Go(func() {
					for {
						k, shutdown := q.Get()
						if shutdown {
							return
						}
						if inFlight[k].Add(1) != 1 {
							violations.Add(1)
						}
						seenGen[k].Store(addGen[k].Load())
						inFlight[k].Add(-1)
						q.Done(k)
					}
				})
			}
			var producers sync.WaitGroup
			for p := range tt.producers {
				producers.Go(func() {
					for i := range tt.addsPerProd {
						k := (i*tt.producers + p) % tt.keys
						addGen[k].Add(1)
						switch {
						case tt.delayed && i%5 == 0:
							q.AddAfter(k, time.Duration(i%7)*time.Microsecond)
						case tt.prioritised:
							q.AddWithOptions(k, AddOptions{Priority: i % 3})
						default:
							q.Add(k)
						}
					}
				})
			}
			producers.Wait()
			// Wait (bounded) until every add has been processed after it.
			deadline := time.Now().Add(30 * time.Second)
			for k := 0; k < tt.keys; k++ {
				for seenGen[k].Load() != addGen[k].Load() {
					if time.Now().After(deadline) {
						t.Fatalf("key %d: last add %d never processed (seen %d)", k, addGen[k].Load(), seenGen[k].Load())
					}
					time.Sleep(time.Millisecond)
				}
			}
			q.ShutDownWithDrain()
			consumers.Wait()
			if v := violations.Load(); v != 0 {
				t.Fatalf("items processed concurrently %d times, want 0", v)
			}
			if got := q.Len(); got != 0 {
				t.Fatalf("Len after drain got %d, want 0", got)
			}
		})
	}
}
