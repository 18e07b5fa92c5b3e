package workqueue

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"
)

// benchClock is the fake clock of the delay benchmarks: time moves only
// when the benchmark calls Step, so both queues see the same deadlines and
// hold the same pending sets whatever their speed.
//
// Unlike k8s.io/utils/clock/testing's FakeClock, whose Now takes a lock
// that every reader writes to, Now here is one atomic load: like the real
// clock's, it costs a reader nothing that grows with how often the other
// goroutines read it. client-go's delaying loop reads the time once per
// delayed item and capstan's once per batch, so a locking fake clock would
// charge client-go for the fake clock, not for its queue.
type benchClock struct {
	now atomic.Int64 // nanoseconds since the Unix epoch

	mu      sync.Mutex
	waiters []*benchTimer // armed timers and tickers
}

var _ clock.WithTicker = (*benchClock)(nil)

func newBenchClock() *benchClock {
	c := &benchClock{}
	c.now.Store(time.Unix(1_000_000, 0).UnixNano())
	return c
}

func (c *benchClock) Now() time.Time                  { return time.Unix(0, c.now.Load()) }
func (c *benchClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }
func (c *benchClock) After(d time.Duration) <-chan time.Time {
	return c.NewTimer(d).C()
}
func (c *benchClock) Tick(d time.Duration) <-chan time.Time { return c.NewTicker(d).C() }
func (c *benchClock) Sleep(time.Duration)                   { panic("benchClock: Sleep would block for ever") }

func (c *benchClock) NewTimer(d time.Duration) clock.Timer {
	t := &benchTimer{c: c, ch: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

func (c *benchClock) NewTicker(d time.Duration) clock.Ticker {
	t := &benchTimer{c: c, ch: make(chan time.Time, 1), period: int64(d)}
	t.Reset(d)
	return benchTicker{t}
}

// Step advances the time by d and fires the timers that fell due; a timer
// whose channel is full skips the tick, as a ticker does.
func (c *benchClock) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now.Add(int64(d))
	c.waiters = slices.DeleteFunc(c.waiters, func(t *benchTimer) bool {
		if t.at > now {
			return false
		}
		select {
		case t.ch <- time.Unix(0, now):
		default:
		}
		if t.period > 0 {
			for t.at <= now {
				t.at += t.period
			}
			return false
		}
		return true
	})
}

// benchTicker is a ticker of a benchClock.
type benchTicker struct{ t *benchTimer }

func (t benchTicker) C() <-chan time.Time { return t.t.ch }
func (t benchTicker) Stop()               { t.t.Stop() }

// benchTimer is a timer (period 0) or ticker of a benchClock.
type benchTimer struct {
	c      *benchClock
	ch     chan time.Time
	period int64
	at     int64 // deadline; guarded by c.mu
}

func (t *benchTimer) C() <-chan time.Time { return t.ch }

// Stop disarms t and reports whether it was armed.
func (t *benchTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	return t.stopLocked()
}

func (t *benchTimer) stopLocked() bool {
	n := len(t.c.waiters)
	t.c.waiters = slices.DeleteFunc(t.c.waiters, func(w *benchTimer) bool { return w == t })
	return len(t.c.waiters) != n
}

// Reset re-arms t to fire d from now and reports whether it was armed.
func (t *benchTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	armed := t.stopLocked()
	now := t.c.now.Load()
	t.at = now + int64(d)
	if d <= 0 && t.period == 0 {
		select { // due already: fire now, as a real timer does
		case t.ch <- time.Unix(0, now):
		default:
		}
		return armed
	}
	t.c.waiters = append(t.c.waiters, t)
	return armed
}
