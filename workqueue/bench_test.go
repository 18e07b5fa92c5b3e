package workqueue

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientgo "k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
)

// benchQueue is the part of both queues the benchmarks use.
type benchQueue interface {
	Add(int)
	AddAfter(int, time.Duration)
	AddRateLimited(int)
	Forget(int)
	Get() (int, bool)
	Done(int)
	ShutDown()
}

// impls are the queues compared, by benchstat-friendly name.
var impls = []struct {
	name string
	// plain is the queue for Add/Get/Done; rateLimited for the rest. For
	// client-go they differ (its plain queue is cheaper); ours is one type.
	plain, rateLimited func() benchQueue
	// onClock is rateLimited on the given clock.
	onClock func(clock.WithTicker) benchQueue
}{
	{
		name:        "capstan",
		plain:       func() benchQueue { q, _ := New(Options[int]{}); return q },
		rateLimited: func() benchQueue { q, _ := New(Options[int]{}); return q },
		onClock: func(clk clock.WithTicker) benchQueue {
			q, _ := New(Options[int]{Clock: clk})
			return q
		},
	},
	{
		name: "clientgo",
		plain: func() benchQueue {
			return clientgoPlain{clientgo.NewTyped[int]()}
		},
		rateLimited: func() benchQueue {
			return clientgo.NewTypedRateLimitingQueue(clientgo.DefaultTypedControllerRateLimiter[int]())
		},
		onClock: func(clk clock.WithTicker) benchQueue {
			return clientgo.NewTypedRateLimitingQueueWithConfig(clientgo.DefaultTypedControllerRateLimiter[int](),
				clientgo.TypedRateLimitingQueueConfig[int]{Clock: clk})
		},
	},
}

// clientgoPlain adapts client-go's plain queue; the delay methods are
// never called on it.
type clientgoPlain struct{ *clientgo.Typed[int] }

func (clientgoPlain) AddAfter(int, time.Duration) { panic("unused") }
func (clientgoPlain) AddRateLimited(int)          { panic("unused") }
func (clientgoPlain) Forget(int)                  { panic("unused") }

// cpuMeter reports the process CPU time per op ("cpu-ns/op") next to wall
// time. It counts every goroutine (producer, consumers, the queues' own),
// and is much less disturbed than wall time by other processes on a shared
// machine.
type cpuMeter struct{ start time.Duration }

func startCPU() cpuMeter { return cpuMeter{processCPU()} }

func (m cpuMeter) report(b *testing.B) {
	if d := processCPU() - m.start; d > 0 && b.N > 0 {
		b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// consume runs n workers that Get and Done until shutdown, counting items.
func consume(q benchQueue, n int, processed *deliveryCounter) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				item, shutdown := q.Get()
				if shutdown {
					return
				}
				q.Done(item)
				processed.inc()
			}
		})
	}
	return &wg
}

// BenchmarkAddGetDone: one producer adds (one op = one Add), consumers Get
// and Done. With unique keys the producer keeps at most window items in
// flight, so the figure is end-to-end throughput, not just Add speed; with
// duplicate-heavy keys (32 hot keys) most Adds are deduplicated.
func BenchmarkAddGetDone(b *testing.B) {
	const window = 1024
	for _, impl := range impls {
		for _, keys := range []string{"unique", "dup32"} {
			for _, consumers := range []int{1, 4, 16} {
				b.Run(fmt.Sprintf("impl=%s/keys=%s/consumers=%d", impl.name, keys, consumers), func(b *testing.B) {
					q := impl.plain()
					processed := newDeliveryCounter()
					wg := consume(q, consumers, processed)
					b.ReportAllocs()
					cpu := startCPU()
					i := 0
					for b.Loop() {
						if keys == "unique" {
							if i%64 == 0 && int64(i)-processed.n.Load() > window {
								// Block, not spin, so that cpu-ns/op
								// counts work, not waiting.
								processed.wait(int64(i-window/2), nil)
							}
							q.Add(i)
						} else {
							q.Add(i % 32)
						}
						i++
					}
					cpu.report(b)
					b.StopTimer()
					q.ShutDown()
					wg.Wait()
				})
			}
		}
	}
}

// BenchmarkAddAfter: one op = one AddAfter of a new key, its move into the
// queue when it falls due and a consumer's Get and Done of it.
//
// Time is a benchClock the benchmark steps, so both queues see the same
// deadlines and hold the same pending set: op i happens at virtual time
// i*tick, with a delay spread pseudo-randomly over [1, spread] ticks, so
// about spread/2 items are pending. Every step ops the clock moves step
// ticks; before it does, the producer waits (blocked, not spinning, so
// that cpu-ns/op counts only work) until every item due so far has been
// delivered, so a slow queue cannot let due items pile up in its delay
// structure. (The wait needs a queue to move what fell due at a Step even
// if its timer was armed across the Step, from an older reading: client-go
// re-reads the clock on every AddAfter; capstan's AddAfter wakes its loop
// when it finds the timer overdue.) After the last op the clock jumps past
// every deadline and the timer runs until all b.N items are delivered.
//
// A b.N loop, not b.Loop: b.Loop stops the timer when it returns false,
// and the delivery of the items still pending then must be timed too.
func BenchmarkAddAfter(b *testing.B) {
	const (
		tick   = 10 * time.Microsecond
		spread = 100_000 // distinct delays, 1 s: ≈50k items pending
		step   = 256     // ops (and ticks) per clock step
	)
	for _, impl := range impls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			clk := newBenchClock()
			q := impl.onClock(clk)
			delivered := newDeliveryCounter()
			var wg sync.WaitGroup
			wg.Go(func() {
				for {
					item, shutdown := q.Get()
					if shutdown {
						return
					}
					q.Done(item)
					delivered.inc()
				}
			})
			// due[s%len(due)] counts the items that fall due at step s
			// (small, so that the count costs no cache miss).
			due := make([]int64, spread/step+2)
			s := 0           // steps taken
			var dueNow int64 // items due by now
			b.ReportAllocs()
			b.ResetTimer()
			cpu := startCPU()
			for i := range b.N {
				d := (i*7919)%spread + 1
				due[(s+(d+step-1)/step)%len(due)]++
				q.AddAfter(i, time.Duration(d)*tick)
				if (i+1)%step == 0 {
					delivered.wait(dueNow, nil)
					clk.Step(step * tick)
					s++
					dueNow += due[s%len(due)]
					due[s%len(due)] = 0
				}
			}
			clk.Step((spread + step) * tick)
			// A timer armed from a reading taken before that Step fires
			// late: if delivery stalls, step again.
			delivered.wait(int64(b.N), func() { clk.Step(spread * tick) })
			cpu.report(b)
			b.StopTimer()
			q.ShutDown()
			wg.Wait()
		})
	}
}

// deliveryCounter counts delivered items; one goroutine may wait for a
// count without spinning.
type deliveryCounter struct {
	n       atomic.Int64
	want    atomic.Int64 // count a waiter waits for; 0: none
	reached chan struct{}
}

func newDeliveryCounter() *deliveryCounter {
	return &deliveryCounter{reached: make(chan struct{}, 1)}
}

func (c *deliveryCounter) inc() {
	n := c.n.Add(1)
	if w := c.want.Load(); w != 0 && n >= w && c.want.CompareAndSwap(w, 0) {
		c.reached <- struct{}{}
	}
}

// wait blocks until the count reaches n. If stalled is not nil, it is
// called whenever the count has not moved for a millisecond.
func (c *deliveryCounter) wait(n int64, stalled func()) {
	if c.n.Load() >= n {
		return
	}
	c.want.Store(n)
	if c.n.Load() >= n && c.want.CompareAndSwap(n, 0) {
		return
	}
	var tick <-chan time.Time
	if stalled != nil {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		tick = t.C
	}
	last := c.n.Load()
	for {
		select {
		case <-c.reached:
			return
		case <-tick:
			if cur := c.n.Load(); cur == last {
				stalled()
			} else {
				last = cur
			}
		}
	}
}

// BenchmarkAddRateLimitedForget: one op = AddRateLimited then Forget of one
// of 1000 keys, with the default controller rate limiter, while a consumer
// takes the items as they fall due.
func BenchmarkAddRateLimitedForget(b *testing.B) {
	for _, impl := range impls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			q := impl.rateLimited()
			wg := consume(q, 1, newDeliveryCounter())
			b.ReportAllocs()
			cpu := startCPU()
			i := 0
			for b.Loop() {
				k := i % 1000
				q.AddRateLimited(k)
				q.Forget(k)
				i++
			}
			cpu.report(b)
			b.StopTimer()
			q.ShutDown()
			wg.Wait()
		})
	}
}

// BenchmarkAddEmpty: Add then Get and Done on one goroutine, so the queue
// empties after every op (client-go re-makes its FIFO slice here).
func BenchmarkAddEmpty(b *testing.B) {
	for _, impl := range impls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			q := impl.plain()
			b.ReportAllocs()
			cpu := startCPU()
			i := 0
			for b.Loop() {
				q.Add(i)
				item, _ := q.Get()
				q.Done(item)
				i++
			}
			cpu.report(b)
			q.ShutDown()
		})
	}
}
