package informer

import (
	"math/rand/v2"
	"time"

	"k8s.io/utils/clock"
)

// Reflector backoff defaults, the same as client-go's reflector: they keep
// thousands of informers from stampeding an API server that restarts.
const (
	// defaultInitialBackoff is the first delay after a failure.
	defaultInitialBackoff = 800 * time.Millisecond
	// defaultMaxBackoff caps the delay (before jitter).
	defaultMaxBackoff = 30 * time.Second
	// backoffReset: a run that lasted this long resets the delay.
	backoffReset = 2 * time.Minute
)

// backoff is a jittered exponential backoff: each delay is in [d, 2d) where
// d doubles from initial up to max, and goes back to initial once a run has
// lasted backoffReset. Not safe for concurrent use; a Reflector owns one.
type backoff struct {
	clock        clock.PassiveClock
	initial, max time.Duration
	cur          time.Duration
}

// next returns the delay before the next attempt; started is when the
// attempt that just ended began.
func (b *backoff) next(started time.Time) time.Duration {
	now := b.clock.Now()
	switch {
	case b.cur == 0 || now.Sub(started) >= backoffReset:
		b.cur = b.initial
	default:
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur + time.Duration(rand.Int64N(int64(b.cur)+1))
}
