package workqueue

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/utils/clock"
)

// RateLimiter decides how long an item waits before it is retried.
// Implementations must be safe for concurrent use.
type RateLimiter[T comparable] interface {
	// When returns how long item should wait now, and records a failure.
	When(item T) time.Duration
	// Forget stops tracking item: its failures are reset, whether it
	// succeeded or was given up on.
	Forget(item T)
	// NumRequeues returns how many failures item has had since Forget.
	NumRequeues(item T) int
}

var (
	_ RateLimiter[string] = (*ExponentialRateLimiter[string])(nil)
	_ RateLimiter[string] = (*BucketRateLimiter[string])(nil)
	_ RateLimiter[string] = (*MaxOfRateLimiter[string])(nil)
	_ RateLimiter[string] = (*FastSlowRateLimiter[string])(nil)
)

// DefaultControllerRateLimiter returns the limiter controllers use by
// default, equal in behaviour to client-go's: the larger of a per-item
// exponential backoff from 5 ms to 1000 s and an overall token bucket of
// 10 qps with a burst of 100. The bucket only slows down retries in bulk;
// the per-item backoff keeps one failing item from hot-looping. A nil clk
// means the real clock.
func DefaultControllerRateLimiter[T comparable](clk clock.PassiveClock) *MaxOfRateLimiter[T] {
	return NewMaxOfRateLimiter(
		NewExponentialRateLimiter[T](5*time.Millisecond, 1000*time.Second),
		NewBucketRateLimiter[T](10, 100, clk),
	)
}

// ExponentialRateLimiter delays an item base*2^n, where n is the number of
// its failures since Forget, capped at max.
type ExponentialRateLimiter[T comparable] struct {
	base, max time.Duration

	mu       sync.Mutex
	failures map[T]int // guarded by mu
}

// NewExponentialRateLimiter returns a per-item exponential backoff from base
// to max.
func NewExponentialRateLimiter[T comparable](base, max time.Duration) *ExponentialRateLimiter[T] {
	return &ExponentialRateLimiter[T]{base: base, max: max, failures: make(map[T]int)}
}

// When returns base*2^failures (capped at max) and counts a failure.
func (r *ExponentialRateLimiter[T]) When(item T) time.Duration {
	r.mu.Lock()
	n := r.failures[item]
	r.failures[item] = n + 1
	r.mu.Unlock()
	return backoff(r.base, r.max, n)
}

// backoff returns base*2^n, or max if that is larger or does not fit.
func backoff(base, max time.Duration, n int) time.Duration {
	if base <= 0 {
		return min(base, max)
	}
	if n >= 63 || base > max>>uint(n) {
		return max
	}
	return base << uint(n)
}

// Forget resets item's failures.
func (r *ExponentialRateLimiter[T]) Forget(item T) {
	r.mu.Lock()
	delete(r.failures, item)
	r.mu.Unlock()
}

// NumRequeues returns item's failures since Forget.
func (r *ExponentialRateLimiter[T]) NumRequeues(item T) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failures[item]
}

// BucketRateLimiter is an overall token bucket: bursts of up to burst
// retries go at once, then qps per second, whatever the item.
type BucketRateLimiter[T comparable] struct {
	limiter *rate.Limiter
	clock   clock.PassiveClock
}

// NewBucketRateLimiter returns a token bucket refilled at qps up to burst. A
// nil clk means the real clock.
func NewBucketRateLimiter[T comparable](qps float64, burst int, clk clock.PassiveClock) *BucketRateLimiter[T] {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &BucketRateLimiter[T]{limiter: rate.NewLimiter(rate.Limit(qps), burst), clock: clk}
}

// When reserves a token and returns how long until it is available.
func (r *BucketRateLimiter[T]) When(T) time.Duration {
	now := r.clock.Now()
	return r.limiter.ReserveN(now, 1).DelayFrom(now)
}

// Forget does nothing: the bucket does not track items.
func (r *BucketRateLimiter[T]) Forget(T) {}

// NumRequeues returns 0: the bucket does not track items.
func (r *BucketRateLimiter[T]) NumRequeues(T) int { return 0 }

// MaxOfRateLimiter asks every limiter and returns the longest delay. With a
// token bucket among them, a burst can appear exceeded when some items were
// delayed longer by another limiter.
type MaxOfRateLimiter[T comparable] struct {
	limiters []RateLimiter[T]
}

// NewMaxOfRateLimiter combines limiters; every one sees every call.
func NewMaxOfRateLimiter[T comparable](limiters ...RateLimiter[T]) *MaxOfRateLimiter[T] {
	return &MaxOfRateLimiter[T]{limiters: limiters}
}

// When returns the longest of the limiters' delays.
func (r *MaxOfRateLimiter[T]) When(item T) time.Duration {
	var d time.Duration
	for _, l := range r.limiters {
		d = max(d, l.When(item))
	}
	return d
}

// Forget forgets item in every limiter.
func (r *MaxOfRateLimiter[T]) Forget(item T) {
	for _, l := range r.limiters {
		l.Forget(item)
	}
}

// NumRequeues returns the largest of the limiters' counts.
func (r *MaxOfRateLimiter[T]) NumRequeues(item T) int {
	n := 0
	for _, l := range r.limiters {
		n = max(n, l.NumRequeues(item))
	}
	return n
}

// FastSlowRateLimiter retries an item after fast for its first maxFast
// failures, then after slow.
type FastSlowRateLimiter[T comparable] struct {
	fast, slow time.Duration
	maxFast    int

	mu       sync.Mutex
	failures map[T]int // guarded by mu
}

// NewFastSlowRateLimiter returns a limiter that waits fast for maxFast
// attempts, then slow.
func NewFastSlowRateLimiter[T comparable](fast, slow time.Duration, maxFast int) *FastSlowRateLimiter[T] {
	return &FastSlowRateLimiter[T]{fast: fast, slow: slow, maxFast: maxFast, failures: make(map[T]int)}
}

// When counts a failure and returns fast or slow.
func (r *FastSlowRateLimiter[T]) When(item T) time.Duration {
	r.mu.Lock()
	n := r.failures[item] + 1
	r.failures[item] = n
	r.mu.Unlock()
	if n <= r.maxFast {
		return r.fast
	}
	return r.slow
}

// Forget resets item's failures.
func (r *FastSlowRateLimiter[T]) Forget(item T) {
	r.mu.Lock()
	delete(r.failures, item)
	r.mu.Unlock()
}

// NumRequeues returns item's failures since Forget.
func (r *FastSlowRateLimiter[T]) NumRequeues(item T) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failures[item]
}
