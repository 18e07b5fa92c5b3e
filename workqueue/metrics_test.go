package workqueue

import (
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeMetric records what the queue reports.
type fakeMetric struct {
	mu    sync.Mutex
	value float64
	obs   []float64
}

func (m *fakeMetric) Inc()          { m.mu.Lock(); m.value++; m.mu.Unlock() }
func (m *fakeMetric) Dec()          { m.mu.Lock(); m.value--; m.mu.Unlock() }
func (m *fakeMetric) Set(v float64) { m.mu.Lock(); m.value = v; m.mu.Unlock() }
func (m *fakeMetric) Observe(v float64) {
	m.mu.Lock()
	m.obs = append(m.obs, v)
	m.mu.Unlock()
}
func (m *fakeMetric) get() (float64, []float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.value, append([]float64(nil), m.obs...)
}

type fakeMetrics struct {
	name                                       string
	depth, adds, latency, work, unfinished, lr *fakeMetric
	retries                                    *fakeMetric
}

func newFakeMetrics() *fakeMetrics {
	return &fakeMetrics{depth: &fakeMetric{}, adds: &fakeMetric{}, latency: &fakeMetric{}, work: &fakeMetric{}, unfinished: &fakeMetric{}, lr: &fakeMetric{}, retries: &fakeMetric{}}
}

func (f *fakeMetrics) NewQueueMetrics(name string) QueueMetrics {
	f.name = name
	return QueueMetrics{Depth: f.depth, Adds: f.adds, QueueDuration: f.latency, WorkDuration: f.work,
		UnfinishedWork: f.unfinished, LongestRunningProcessor: f.lr, Retries: f.retries}
}

func TestMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeMetrics()
		q := newTestQueue(t, Options[string]{Name: "q1", Metrics: f})
		if f.name != "q1" {
			t.Fatalf("provider got name %q, want \"q1\"", f.name)
		}
		q.Add("a")
		q.Add("b")
		q.Add("a") // deduplicated: not an add
		if v, _ := f.adds.get(); v != 2 {
			t.Fatalf("adds got %v, want 2", v)
		}
		if v, _ := f.depth.get(); v != 2 {
			t.Fatalf("depth got %v, want 2", v)
		}
		time.Sleep(2 * time.Second)
		a := mustGet(t, q)
		if _, obs := f.latency.get(); len(obs) != 1 || obs[0] != 2 {
			t.Fatalf("queue duration got %v, want [2]", obs)
		}
		time.Sleep(3 * time.Second)
		synctest.Wait() // the 500 ms ticker has run
		if v, _ := f.unfinished.get(); v != 3 {
			t.Fatalf("unfinished work got %v, want 3", v)
		}
		if v, _ := f.lr.get(); v != 3 {
			t.Fatalf("longest running got %v, want 3", v)
		}
		q.Done(a)
		if _, obs := f.work.get(); len(obs) != 1 || obs[0] != 3 {
			t.Fatalf("work duration got %v, want [3]", obs)
		}
		if v, _ := f.depth.get(); v != 1 {
			t.Fatalf("depth got %v, want 1", v)
		}
		q.AddAfter("c", time.Second)
		q.AddAfter("c", 0) // not a retry: no delay
		if v, _ := f.retries.get(); v != 1 {
			t.Fatalf("retries got %v, want 1", v)
		}
	})
}

func TestPrometheusMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		pm, err := NewPrometheusMetrics(reg)
		if err != nil {
			t.Fatalf("NewPrometheusMetrics: %v", err)
		}
		// A second provider on the same registry shares the collectors.
		pm2, err := NewPrometheusMetrics(reg)
		if err != nil {
			t.Fatalf("second NewPrometheusMetrics: %v", err)
		}
		q := newTestQueue(t, Options[string]{Name: "pods", Metrics: pm})
		q2 := newTestQueue(t, Options[string]{Name: "nodes", Metrics: pm2})
		q.Add("a")
		q.Add("b")
		q2.Add("x")
		q.AddAfter("c", time.Minute)
		got := map[string]float64{}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				var labels []string
				for _, lp := range m.GetLabel() {
					labels = append(labels, lp.GetName()+"="+lp.GetValue())
				}
				v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
				got[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
			}
		}
		for series, want := range map[string]float64{
			"workqueue_adds_total{controller=pods,name=pods}":              2,
			"workqueue_adds_total{controller=nodes,name=nodes}":            1,
			"workqueue_depth{controller=pods,name=pods,priority=}":         2,
			"workqueue_depth{controller=nodes,name=nodes,priority=}":       1,
			"workqueue_retries_total{controller=pods,name=pods}":           1,
			"workqueue_retries_total{controller=nodes,name=nodes}":         0,
			"workqueue_unfinished_work_seconds{controller=pods,name=pods}": 0,
		} {
			if v, ok := got[series]; !ok || v != want {
				t.Errorf("%s got %v (present %v), want %v", series, v, ok, want)
			}
		}
		names := map[string]bool{}
		for _, mf := range mfs {
			names[mf.GetName()] = true
		}
		for _, n := range []string{"workqueue_depth", "workqueue_adds_total", "workqueue_queue_duration_seconds", "workqueue_work_duration_seconds",
			"workqueue_unfinished_work_seconds", "workqueue_longest_running_processor_seconds", "workqueue_retries_total"} {
			if !names[n] {
				t.Errorf("metric %s not registered", n)
			}
		}
	})
}

func TestPrometheusMetricsNilRegisterer(t *testing.T) {
	if _, err := NewPrometheusMetrics(nil); err == nil || err.Error() != "workqueue: prometheus registerer is nil" {
		t.Fatalf("got error %v, want \"workqueue: prometheus registerer is nil\"", err)
	}
}

// TestNoMetricsNoGoroutine: without metrics and delays, a queue starts no
// goroutine (and pays nothing for metrics).
func TestNoMetricsNoGoroutine(t *testing.T) {
	q := newTestQueue(t, Options[string]{})
	q.Add("a")
	q.Done(mustGet(t, q))
	q.dmu.Lock()
	started, m := q.loopStarted, q.metrics
	q.dmu.Unlock()
	if started || m != nil {
		t.Fatalf("loop started %v, metrics %v; want false, nil", started, m)
	}
}
