package workqueue

import (
	"time"

	"k8s.io/utils/clock"
)

// Counter is a value that only goes up. prometheus.Counter satisfies it.
type Counter interface {
	Inc()
}

// Gauge is a value that goes up and down. prometheus.Gauge satisfies it.
type Gauge interface {
	Inc()
	Dec()
	Set(float64)
}

// Observer records observations, such as a histogram. prometheus.Observer
// (and so prometheus.Histogram) satisfies it.
type Observer interface {
	Observe(float64)
}

// QueueMetrics are the metrics of one queue. They carry the meaning (and, in
// the Prometheus implementation, the names) of controller-runtime's
// workqueue_* metrics. A nil field is not recorded.
type QueueMetrics struct {
	// Depth is the number of items waiting to be handed out (an item
	// re-added while it is being processed counts as waiting).
	// workqueue_depth.
	Depth Gauge
	// Adds counts the items that became waiting. workqueue_adds_total.
	Adds Counter
	// QueueDuration observes, in seconds, how long an item waited before a
	// worker got it. workqueue_queue_duration_seconds.
	QueueDuration Observer
	// WorkDuration observes, in seconds, how long a worker held an item
	// (Get to Done). workqueue_work_duration_seconds.
	WorkDuration Observer
	// UnfinishedWork is the sum, in seconds, of how long the items now being
	// processed have been held; refreshed every 500 ms.
	// workqueue_unfinished_work_seconds.
	UnfinishedWork Gauge
	// LongestRunningProcessor is how long, in seconds, the oldest item now
	// being processed has been held; refreshed every 500 ms.
	// workqueue_longest_running_processor_seconds.
	LongestRunningProcessor Gauge
	// Retries counts adds with a positive delay (AddAfter, AddRateLimited).
	// workqueue_retries_total.
	Retries Counter
}

// MetricsProvider creates the metrics for a queue named name. It is called
// once per queue, from New. Implementations must be safe for concurrent use.
type MetricsProvider interface {
	NewQueueMetrics(name string) QueueMetrics
}

// MetricsProviderFunc adapts a function to MetricsProvider.
type MetricsProviderFunc func(name string) QueueMetrics

// NewQueueMetrics calls f(name).
func (f MetricsProviderFunc) NewQueueMetrics(name string) QueueMetrics { return f(name) }

// unfinishedWorkPeriod is how often the unfinished-work gauges are refreshed;
// client-go and controller-runtime use the same period, so graphs line up.
const unfinishedWorkPeriod = 500 * time.Millisecond

// queueMetrics records metrics for one queue. The queue holds a nil
// *queueMetrics when metrics are off, so the only cost then is one nil check
// per operation. All methods but retry are called with the queue's mutex
// (mu) held; retry, which touches only Retries, with the delay mutex (dmu).
type queueMetrics[T comparable] struct {
	clock      clock.PassiveClock
	m          QueueMetrics
	addTimes   map[T]time.Time
	startTimes map[T]time.Time
}

type noopMetric struct{}

func (noopMetric) Inc()            {}
func (noopMetric) Dec()            {}
func (noopMetric) Set(float64)     {}
func (noopMetric) Observe(float64) {}

func newQueueMetrics[T comparable](p MetricsProvider, name string, c clock.PassiveClock) *queueMetrics[T] {
	if p == nil {
		return nil
	}
	m := p.NewQueueMetrics(name)
	if m.Depth == nil {
		m.Depth = noopMetric{}
	}
	if m.Adds == nil {
		m.Adds = noopMetric{}
	}
	if m.QueueDuration == nil {
		m.QueueDuration = noopMetric{}
	}
	if m.WorkDuration == nil {
		m.WorkDuration = noopMetric{}
	}
	if m.UnfinishedWork == nil {
		m.UnfinishedWork = noopMetric{}
	}
	if m.LongestRunningProcessor == nil {
		m.LongestRunningProcessor = noopMetric{}
	}
	if m.Retries == nil {
		m.Retries = noopMetric{}
	}
	return &queueMetrics[T]{
		clock:      c,
		m:          m,
		addTimes:   make(map[T]time.Time),
		startTimes: make(map[T]time.Time),
	}
}

// add records that item became waiting, at at (the zero time: now; an add
// applied from the intake was made earlier).
func (m *queueMetrics[T]) add(item T, at time.Time) {
	m.m.Adds.Inc()
	m.m.Depth.Inc()
	if _, ok := m.addTimes[item]; !ok {
		if at.IsZero() {
			at = m.clock.Now()
		}
		m.addTimes[item] = at
	}
}

// get records that a worker got item.
func (m *queueMetrics[T]) get(item T) {
	now := m.clock.Now()
	m.m.Depth.Dec()
	m.startTimes[item] = now
	if t, ok := m.addTimes[item]; ok {
		m.m.QueueDuration.Observe(now.Sub(t).Seconds())
		delete(m.addTimes, item)
	}
}

// done records that a worker finished item.
func (m *queueMetrics[T]) done(item T) {
	if t, ok := m.startTimes[item]; ok {
		m.m.WorkDuration.Observe(m.clock.Since(t).Seconds())
		delete(m.startTimes, item)
	}
}

func (m *queueMetrics[T]) retry() { m.m.Retries.Inc() }

func (m *queueMetrics[T]) updateUnfinishedWork() {
	var total, oldest float64
	now := m.clock.Now()
	for _, t := range m.startTimes {
		age := now.Sub(t).Seconds()
		total += age
		oldest = max(oldest, age)
	}
	m.m.UnfinishedWork.Set(total)
	m.m.LongestRunningProcessor.Set(oldest)
}
