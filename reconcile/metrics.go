package reconcile

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the controllers' Prometheus series, under controller-runtime's
// names so existing dashboards work, plus capstan's trigger counter. Create
// one Metrics per registry and share it between the controllers of a
// process; a nil *Metrics records nothing at no cost.
type Metrics struct {
	total          *prometheus.CounterVec
	errors         *prometheus.CounterVec
	terminalErrors *prometheus.CounterVec
	panics         *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	maxConcurrent  *prometheus.GaugeVec
	activeWorkers  *prometheus.GaugeVec
	triggers       *prometheus.CounterVec
	conflicts      *prometheus.CounterVec
	echoes         *prometheus.CounterVec
	cacheWait      *prometheus.HistogramVec
	cacheTimeouts  *prometheus.CounterVec
}

// NewMetrics creates the series and registers them on reg. Registering on a
// registry that already holds them (another Metrics on the same registry)
// reuses the registered series.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("reconcile: NewMetrics: registerer is nil")
	}
	ctl := []string{"controller"}
	m := &Metrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "controller_runtime_reconcile_total",
			Help: "Total number of reconciliations per controller and result (success, error, requeue_after).",
		}, []string{"controller", "result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "controller_runtime_reconcile_errors_total",
			Help: "Total number of reconciliation errors per controller.",
		}, ctl),
		terminalErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "controller_runtime_terminal_reconcile_errors_total",
			Help: "Total number of terminal reconciliation errors per controller.",
		}, ctl),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "controller_runtime_reconcile_panics_total",
			Help: "Total number of reconciliation panics per controller.",
		}, ctl),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "controller_runtime_reconcile_time_seconds",
			Help: "Length of time per reconciliation per controller.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
				1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60},
		}, ctl),
		maxConcurrent: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "controller_runtime_max_concurrent_reconciles",
			Help: "Maximum number of concurrent reconciles per controller.",
		}, ctl),
		activeWorkers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "controller_runtime_active_workers",
			Help: "Number of currently used workers per controller.",
		}, ctl),
		triggers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capstan_reconcile_triggers_total",
			Help: "Reasons that led to reconciles, per controller and trigger (self, owned, watched, requeue, resync, initialList, manual); one reconcile may count several.",
		}, []string{"controller", "trigger"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capstan_reconcile_conflicts_total",
			Help: "Reconciles that failed with an update conflict and were requeued quietly, per controller.",
		}, ctl),
		echoes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capstan_reconcile_echoes_suppressed_total",
			Help: "Watch events of the controller's own writes that did not trigger a reconcile, per controller.",
		}, ctl),
		cacheWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "capstan_reconcile_cache_wait_seconds",
			Help:    "Time a key waited for the cache to observe the controller's own write before reconciling, per controller.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, ctl),
		cacheTimeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capstan_reconcile_cache_wait_timeouts_total",
			Help: "Reconciles that ran without the cache having observed the controller's own write, after ReadYourWritesTimeout, per controller.",
		}, ctl),
	}
	var err error
	if m.conflicts, err = registerOrReuse(reg, m.conflicts); err != nil {
		return nil, err
	}
	if m.echoes, err = registerOrReuse(reg, m.echoes); err != nil {
		return nil, err
	}
	if m.cacheWait, err = registerOrReuse(reg, m.cacheWait); err != nil {
		return nil, err
	}
	if m.cacheTimeouts, err = registerOrReuse(reg, m.cacheTimeouts); err != nil {
		return nil, err
	}
	if m.total, err = registerOrReuse(reg, m.total); err != nil {
		return nil, err
	}
	if m.errors, err = registerOrReuse(reg, m.errors); err != nil {
		return nil, err
	}
	if m.terminalErrors, err = registerOrReuse(reg, m.terminalErrors); err != nil {
		return nil, err
	}
	if m.panics, err = registerOrReuse(reg, m.panics); err != nil {
		return nil, err
	}
	if m.duration, err = registerOrReuse(reg, m.duration); err != nil {
		return nil, err
	}
	if m.maxConcurrent, err = registerOrReuse(reg, m.maxConcurrent); err != nil {
		return nil, err
	}
	if m.activeWorkers, err = registerOrReuse(reg, m.activeWorkers); err != nil {
		return nil, err
	}
	if m.triggers, err = registerOrReuse(reg, m.triggers); err != nil {
		return nil, err
	}
	return m, nil
}

func registerOrReuse[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("reconcile: registering metrics: %w", err)
	}
	return c, nil
}

// controllerMetrics are one controller's curried series.
type controllerMetrics struct {
	success, errored, requeueAfter prometheus.Counter
	errors, terminal, panics       prometheus.Counter
	duration                       prometheus.Observer
	active                         prometheus.Gauge
	triggers                       [triggerCount]prometheus.Counter
	conflicts, echoes              prometheus.Counter
	cacheWait                      prometheus.Observer
	cacheTimeouts                  prometheus.Counter
}

func (m *Metrics) forController(name string, workers int) *controllerMetrics {
	if m == nil {
		return nil
	}
	cm := &controllerMetrics{
		success:       m.total.WithLabelValues(name, "success"),
		errored:       m.total.WithLabelValues(name, "error"),
		requeueAfter:  m.total.WithLabelValues(name, "requeue_after"),
		errors:        m.errors.WithLabelValues(name),
		terminal:      m.terminalErrors.WithLabelValues(name),
		panics:        m.panics.WithLabelValues(name),
		duration:      m.duration.WithLabelValues(name),
		active:        m.activeWorkers.WithLabelValues(name),
		conflicts:     m.conflicts.WithLabelValues(name),
		echoes:        m.echoes.WithLabelValues(name),
		cacheWait:     m.cacheWait.WithLabelValues(name),
		cacheTimeouts: m.cacheTimeouts.WithLabelValues(name),
	}
	for i, n := range triggerNames {
		cm.triggers[i] = m.triggers.WithLabelValues(name, n)
	}
	m.maxConcurrent.WithLabelValues(name).Set(float64(workers))
	return cm
}
