package workqueue

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientgo "k8s.io/client-go/util/workqueue"
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
}{
	{
		name:        "capstan",
		plain:       func() benchQueue { q, _ := New(Options[int]{}); return q },
		rateLimited: func() benchQueue { q, _ := New(Options[int]{}); return q },
	},
	{
		name: "clientgo",
		plain: func() benchQueue {
			return clientgoPlain{clientgo.NewTyped[int]()}
		},
		rateLimited: func() benchQueue {
			return clientgo.NewTypedRateLimitingQueue(clientgo.DefaultTypedControllerRateLimiter[int]())
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
func consume(q benchQueue, n int, processed *atomic.Int64) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				item, shutdown := q.Get()
				if shutdown {
					return
				}
				processed.Add(1)
				q.Done(item)
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
					var processed atomic.Int64
					wg := consume(q, consumers, &processed)
					b.ReportAllocs()
					cpu := startCPU()
					i := 0
					for b.Loop() {
						if keys == "unique" {
							if i%64 == 0 {
								for int64(i)-processed.Load() > window {
									runtime.Gosched()
								}
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

// BenchmarkAddAfter: one op = one AddAfter of a new key with a delay spread
// pseudo-randomly over (0, 1 s] (100k distinct delays, 10 µs apart), while a
// consumer takes the items as they fall due.
func BenchmarkAddAfter(b *testing.B) {
	for _, impl := range impls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			q := impl.rateLimited()
			var processed atomic.Int64
			wg := consume(q, 1, &processed)
			b.ReportAllocs()
			cpu := startCPU()
			i := 0
			for b.Loop() {
				q.AddAfter(i, time.Duration((i*7919)%100_000+1)*10*time.Microsecond)
				i++
			}
			cpu.report(b)
			b.StopTimer()
			q.ShutDown()
			wg.Wait()
		})
	}
}

// BenchmarkAddRateLimitedForget: one op = AddRateLimited then Forget of one
// of 1000 keys, with the default controller rate limiter, while a consumer
// takes the items as they fall due.
func BenchmarkAddRateLimitedForget(b *testing.B) {
	for _, impl := range impls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			q := impl.rateLimited()
			var processed atomic.Int64
			wg := consume(q, 1, &processed)
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
