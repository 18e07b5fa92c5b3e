package workqueue

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// PrometheusMetrics is a MetricsProvider that records the workqueue_*
// metrics with controller-runtime's names, help and labels (name and
// controller, both set to the queue's name; workqueue_depth also has
// priority, always ""), so dashboards built for controller-runtime work
// unchanged.
type PrometheusMetrics struct {
	depth          *prometheus.GaugeVec
	adds           *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	workDuration   *prometheus.HistogramVec
	unfinished     *prometheus.GaugeVec
	longestRunning *prometheus.GaugeVec
	retries        *prometheus.CounterVec
}

var _ MetricsProvider = (*PrometheusMetrics)(nil)

// NewPrometheusMetrics registers the workqueue_* metrics on reg and returns
// a provider for queues. If reg already has them (say, from another
// PrometheusMetrics on the same registry), the registered collectors are
// shared; any other registration error is returned.
func NewPrometheusMetrics(reg prometheus.Registerer) (*PrometheusMetrics, error) {
	if reg == nil {
		return nil, errors.New("workqueue: prometheus registerer is nil")
	}
	buckets := prometheus.ExponentialBuckets(10e-9, 10, 12)
	m := &PrometheusMetrics{
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Subsystem: "workqueue", Name: "depth",
			Help: "Current depth of workqueue by workqueue and priority",
		}, []string{"name", "controller", "priority"}),
		adds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Subsystem: "workqueue", Name: "adds_total",
			Help: "Total number of adds handled by workqueue",
		}, []string{"name", "controller"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Subsystem: "workqueue", Name: "queue_duration_seconds",
			Help:    "How long in seconds an item stays in workqueue before being requested",
			Buckets: buckets,
		}, []string{"name", "controller"}),
		workDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Subsystem: "workqueue", Name: "work_duration_seconds",
			Help:    "How long in seconds processing an item from workqueue takes.",
			Buckets: buckets,
		}, []string{"name", "controller"}),
		unfinished: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Subsystem: "workqueue", Name: "unfinished_work_seconds",
			Help: "How many seconds of work has been done that is in progress and hasn't been observed by work_duration. " +
				"Large values indicate stuck threads. One can deduce the number of stuck threads by observing the rate at which this increases.",
		}, []string{"name", "controller"}),
		longestRunning: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Subsystem: "workqueue", Name: "longest_running_processor_seconds",
			Help: "How many seconds has the longest running processor for workqueue been running.",
		}, []string{"name", "controller"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Subsystem: "workqueue", Name: "retries_total",
			Help: "Total number of items added to the workqueue with a non-zero delay (rate-limited requeues, explicit RequeueAfter or AddAfter calls)",
		}, []string{"name", "controller"}),
	}
	var err error
	if m.depth, err = register(reg, m.depth); err != nil {
		return nil, err
	}
	if m.adds, err = register(reg, m.adds); err != nil {
		return nil, err
	}
	if m.latency, err = register(reg, m.latency); err != nil {
		return nil, err
	}
	if m.workDuration, err = register(reg, m.workDuration); err != nil {
		return nil, err
	}
	if m.unfinished, err = register(reg, m.unfinished); err != nil {
		return nil, err
	}
	if m.longestRunning, err = register(reg, m.longestRunning); err != nil {
		return nil, err
	}
	if m.retries, err = register(reg, m.retries); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the equal collector already registered.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	var zero C
	return zero, fmt.Errorf("workqueue: register metrics: %w", err)
}

// NewQueueMetrics returns the metrics of the queue called name.
func (m *PrometheusMetrics) NewQueueMetrics(name string) QueueMetrics {
	return QueueMetrics{
		Depth:                   m.depth.WithLabelValues(name, name, ""),
		Adds:                    m.adds.WithLabelValues(name, name),
		QueueDuration:           m.latency.WithLabelValues(name, name),
		WorkDuration:            m.workDuration.WithLabelValues(name, name),
		UnfinishedWork:          m.unfinished.WithLabelValues(name, name),
		LongestRunningProcessor: m.longestRunning.WithLabelValues(name, name),
		Retries:                 m.retries.WithLabelValues(name, name),
	}
}
