package replicaset

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// batchGate checks that calls come in concurrent batches of the expected
// sizes: each call waits until every call of its batch has arrived, which
// only happens if the batch really runs concurrently, and a call of the
// next batch arriving early is caught.
type batchGate struct {
	mu       sync.Mutex
	cond     *sync.Cond
	arrived  int
	ends     []int // cumulative batch ends
	failures []string
}

func newBatchGate(batches []int) *batchGate {
	g := &batchGate{}
	g.cond = sync.NewCond(&g.mu)
	sum := 0
	for _, b := range batches {
		sum += b
		g.ends = append(g.ends, sum)
	}
	return g
}

// arrive returns the 1-based number of the call.
func (g *batchGate) arrive(t *testing.T) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.arrived++
	n := g.arrived
	end := -1
	for _, e := range g.ends {
		if n <= e {
			end = e
			break
		}
	}
	if end < 0 {
		g.failures = append(g.failures, "more calls than expected")
		return n
	}
	g.cond.Broadcast()
	deadline := time.Now().Add(5 * time.Second)
	for g.arrived < end {
		if time.Now().After(deadline) {
			g.failures = append(g.failures, "a batch did not run concurrently or was smaller than expected")
			return n
		}
		// Wake periodically to check the deadline.
		go func() { time.Sleep(50 * time.Millisecond); g.cond.Broadcast() }()
		g.cond.Wait()
	}
	return n
}

func TestSlowStartBatch(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name     string
		count    int
		initial  int
		failFrom int // calls numbered from 1 fail from this one on; 0: none fail
		batches  []int
		wantOK   int
		wantErr  bool
	}{
		{name: "nothing", count: 0, initial: 1},
		{name: "one", count: 1, initial: 1, batches: []int{1}, wantOK: 1},
		{name: "ten doubles", count: 10, initial: 1, batches: []int{1, 2, 4, 3}, wantOK: 10},
		{name: "burst of 500", count: 500, initial: 1, batches: []int{1, 2, 4, 8, 16, 32, 64, 128, 245}, wantOK: 500},
		{name: "first call fails", count: 10, initial: 1, failFrom: 1, batches: []int{1}, wantErr: true},
		{name: "stops after the batch with a failure", count: 20, initial: 1, failFrom: 5, batches: []int{1, 2, 4}, wantOK: 4, wantErr: true},
		{name: "initial 2", count: 7, initial: 2, batches: []int{2, 4, 1}, wantOK: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newBatchGate(tt.batches)
			ok, err := slowStartBatch(tt.count, tt.initial, func() error {
				if n := g.arrive(t); tt.failFrom > 0 && n >= tt.failFrom {
					return boom
				}
				return nil
			})
			for _, f := range g.failures {
				t.Error(f)
			}
			total := 0
			for _, b := range tt.batches {
				total += b
			}
			if g.arrived != total {
				t.Errorf("got %d calls, want %d", g.arrived, total)
			}
			if ok != tt.wantOK {
				t.Errorf("got %d successes, want %d", ok, tt.wantOK)
			}
			if tt.wantErr != errors.Is(err, boom) || (!tt.wantErr && err != nil) {
				t.Errorf("got error %v, want error: %v", err, tt.wantErr)
			}
		})
	}
}
