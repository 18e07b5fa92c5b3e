package reconcile_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/capstan-io/capstan/informer"
	"github.com/capstan-io/capstan/reconcile"
)

const expTimeout = 5 * time.Minute

var (
	expOwner = reconcile.Request{Namespace: "ns", Name: "rs"}
	expOther = reconcile.Request{Namespace: "ns", Name: "other"}
)

// expFixture is one Expectations on a fake clock, recording OnSatisfied
// calls and its log lines.
type expFixture struct {
	t         *testing.T
	e         *reconcile.Expectations[reconcile.Request]
	clock     *clocktesting.FakePassiveClock
	reg       *prometheus.Registry
	mu        sync.Mutex
	satisfied []reconcile.Request
	logs      []string
}

func newExpFixture(t *testing.T) *expFixture {
	t.Helper()
	f := &expFixture{
		t:     t,
		clock: clocktesting.NewFakePassiveClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		reg:   prometheus.NewRegistry(),
	}
	logger := funcr.New(func(prefix, args string) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.logs = append(f.logs, args)
	}, funcr.Options{Verbosity: 0})
	e, err := reconcile.NewExpectations(reconcile.ExpectationsOptions[reconcile.Request]{
		Timeout:    expTimeout,
		Clock:      f.clock,
		Registerer: f.reg,
		Name:       "rs",
		Logger:     logger,
		OnSatisfied: func(r reconcile.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.satisfied = append(f.satisfied, r)
		},
	})
	if err != nil {
		t.Fatalf("NewExpectations: %v", err)
	}
	f.e = e
	return f
}

func (f *expFixture) step(d time.Duration) { f.clock.SetTime(f.clock.Now().Add(d)) }

func (f *expFixture) callbacks() []reconcile.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]reconcile.Request(nil), f.satisfied...)
}

func (f *expFixture) timeoutLogs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, l := range f.logs {
		if strings.Contains(l, "expectations timed out") {
			n++
		}
	}
	return n
}

func (f *expFixture) pendingGauge(op string) float64 {
	f.t.Helper()
	return gatheredValue(f.t, f.reg, "capstan_expectations_pending", map[string]string{"name": "rs", "operation": op})
}

func (f *expFixture) timeouts() float64 {
	f.t.Helper()
	return gatheredValue(f.t, f.reg, "capstan_expectations_timeouts_total", map[string]string{"name": "rs"})
}

// gatheredValue reads one series from reg; a series never created is 0.
func gatheredValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue metrics
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestExpectationsTransitions(t *testing.T) {
	type op func(f *expFixture)
	expect := func(n int) op { return func(f *expFixture) { f.e.ExpectCreates(expOwner, n) } }
	observe := func(n int) op {
		return func(f *expFixture) {
			for range n {
				f.e.CreateObserved(expOwner)
			}
		}
	}
	fail := func(n int) op { return func(f *expFixture) { f.e.CreateFailed(expOwner, n) } }
	expectDel := func(uids ...types.UID) op { return func(f *expFixture) { f.e.ExpectDeletes(expOwner, uids...) } }
	delObserved := func(uid types.UID) op { return func(f *expFixture) { f.e.DeleteObserved(expOwner, uid) } }
	delFailed := func(uid types.UID) op { return func(f *expFixture) { f.e.DeleteFailed(expOwner, uid) } }
	step := func(d time.Duration) op { return func(f *expFixture) { f.step(d) } }
	satisfied := func(f *expFixture) { f.e.Satisfied(expOwner) }
	forget := func(f *expFixture) { f.e.Forget(expOwner) }

	type want struct {
		satisfied bool
		pending   reconcile.Pending // when not satisfied
		callbacks int               // OnSatisfied calls for expOwner
		timeouts  float64
	}
	tests := []struct {
		name string
		ops  []op
		want want
	}{
		{"no expectations", nil, want{satisfied: true}},
		{"creates pending", []op{expect(2)}, want{pending: reconcile.Pending{Creates: 2, TimeLeft: expTimeout}}},
		{"creates partly observed", []op{expect(3), observe(2)}, want{pending: reconcile.Pending{Creates: 1, TimeLeft: expTimeout}}},
		{"creates all observed", []op{expect(2), observe(2)}, want{satisfied: true, callbacks: 1}},
		{"extra observations are ignored", []op{expect(2), observe(5)}, want{satisfied: true, callbacks: 1}},
		{"failed creates lower the count", []op{expect(3), fail(1), observe(2)}, want{satisfied: true, callbacks: 1}},
		{"all creates failed: satisfied, no callback", []op{expect(3), fail(3)}, want{satisfied: true}},
		{"more failures than expected", []op{expect(2), fail(7)}, want{satisfied: true}},
		{"failed with nothing expected", []op{fail(2), expect(1)}, want{pending: reconcile.Pending{Creates: 1, TimeLeft: expTimeout}}},
		{"expect zero or less is a no-op", []op{expect(0), expect(-3)}, want{satisfied: true}},
		{"observed before expected does not pay for the batch",
			[]op{observe(1), expect(1)}, want{pending: reconcile.Pending{Creates: 1, TimeLeft: expTimeout}}},
		{"surplus does not carry into the next batch",
			[]op{expect(1), observe(3), expect(2), observe(1)},
			want{pending: reconcile.Pending{Creates: 1, TimeLeft: expTimeout}, callbacks: 1}},
		{"expecting while pending adds and restarts the timeout",
			[]op{expect(2), step(time.Minute), observe(1), step(time.Minute), expect(2)},
			want{pending: reconcile.Pending{Creates: 3, TimeLeft: expTimeout}}},
		{"time left counts down",
			[]op{expect(1), step(2 * time.Minute)},
			want{pending: reconcile.Pending{Creates: 1, TimeLeft: 3 * time.Minute}}},
		{"not yet timed out a nanosecond before",
			[]op{expect(1), step(expTimeout - time.Nanosecond)},
			want{pending: reconcile.Pending{Creates: 1, TimeLeft: time.Nanosecond}}},
		{"timed out at Timeout", []op{expect(1), step(expTimeout)}, want{satisfied: true, timeouts: 1}},
		{"timed out once, however often asked",
			[]op{expect(1), step(expTimeout), satisfied, satisfied, step(expTimeout), satisfied},
			want{satisfied: true, timeouts: 1}},
		{"expecting after a timeout starts afresh",
			[]op{expect(4), observe(1), step(expTimeout), expect(2)},
			want{pending: reconcile.Pending{Creates: 2, TimeLeft: expTimeout}, timeouts: 1}},
		{"a straggler after a timeout is ignored",
			[]op{expect(1), step(expTimeout), satisfied, observe(1)},
			want{satisfied: true, timeouts: 1}},
		{"observations satisfy an overdue batch before anyone asks",
			[]op{expect(1), step(2 * expTimeout), observe(1)},
			want{satisfied: true, callbacks: 1}},
		{"deletes pending", []op{expectDel("a", "b")}, want{pending: reconcile.Pending{Deletes: 2, TimeLeft: expTimeout}}},
		{"deletes observed", []op{expectDel("a", "b"), delObserved("a"), delObserved("b")}, want{satisfied: true, callbacks: 1}},
		{"a delete observed twice counts once",
			[]op{expectDel("a", "b"), delObserved("a"), delObserved("a")},
			want{pending: reconcile.Pending{Deletes: 1, TimeLeft: expTimeout}}},
		{"an unexpected delete counts for nothing",
			[]op{expectDel("a"), delObserved("z")},
			want{pending: reconcile.Pending{Deletes: 1, TimeLeft: expTimeout}}},
		{"a delete observed before expected does not count",
			[]op{delObserved("a"), expectDel("a")},
			want{pending: reconcile.Pending{Deletes: 1, TimeLeft: expTimeout}}},
		{"duplicate and empty UIDs are ignored",
			[]op{expectDel("a", "a", "", "b")},
			want{pending: reconcile.Pending{Deletes: 2, TimeLeft: expTimeout}}},
		{"failed delete", []op{expectDel("a", "b"), delFailed("a"), delObserved("b")}, want{satisfied: true, callbacks: 1}},
		{"all deletes failed: satisfied, no callback", []op{expectDel("a"), delFailed("a")}, want{satisfied: true}},
		{"expecting no new delete does not restart the timeout",
			[]op{expectDel("a"), step(time.Minute), expectDel("a"), expectDel()},
			want{pending: reconcile.Pending{Deletes: 1, TimeLeft: 4 * time.Minute}}},
		{"creates and deletes both needed",
			[]op{expect(1), expectDel("a"), observe(1)},
			want{pending: reconcile.Pending{Deletes: 1, TimeLeft: expTimeout}}},
		{"creates and deletes both observed",
			[]op{expect(1), expectDel("a"), delObserved("a"), observe(1)},
			want{satisfied: true, callbacks: 1}},
		{"forget drops everything without a callback",
			[]op{expect(2), expectDel("a"), forget},
			want{satisfied: true}},
		{"forget then the children's events",
			[]op{expect(2), forget, observe(2), expect(1)},
			want{pending: reconcile.Pending{Creates: 1, TimeLeft: expTimeout}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newExpFixture(t)
			for _, o := range tt.ops {
				o(f)
			}
			p, ok := f.e.Pending(expOwner)
			if got := f.e.Satisfied(expOwner); got != tt.want.satisfied {
				t.Errorf("Satisfied: got %v, want %v (pending %+v)", got, tt.want.satisfied, p)
			}
			if !tt.want.satisfied {
				if !ok || p != tt.want.pending {
					t.Errorf("Pending: got %+v, %v; want %+v, true", p, ok, tt.want.pending)
				}
			} else if p, ok := f.e.Pending(expOwner); ok {
				t.Errorf("Pending after Satisfied: got %+v, true; want nothing pending", p)
			}
			got := 0
			for _, r := range f.callbacks() {
				if r != expOwner {
					t.Errorf("OnSatisfied called for %v, want only %v", r, expOwner)
				}
				got++
			}
			if got != tt.want.callbacks {
				t.Errorf("OnSatisfied calls: got %d, want %d", got, tt.want.callbacks)
			}
			if got := f.timeouts(); got != tt.want.timeouts {
				t.Errorf("timeouts metric: got %v, want %v", got, tt.want.timeouts)
			}
			if got := f.timeoutLogs(); got != int(tt.want.timeouts) {
				t.Errorf("timeout log lines: got %d, want %v", got, tt.want.timeouts)
			}
			wantCreates, wantDeletes := float64(tt.want.pending.Creates), float64(tt.want.pending.Deletes)
			if got := f.pendingGauge("create"); got != wantCreates {
				t.Errorf("pending creates gauge: got %v, want %v", got, wantCreates)
			}
			if got := f.pendingGauge("delete"); got != wantDeletes {
				t.Errorf("pending deletes gauge: got %v, want %v", got, wantDeletes)
			}
		})
	}
}

func TestExpectationsOwnersAreIndependent(t *testing.T) {
	f := newExpFixture(t)
	f.e.ExpectCreates(expOwner, 1)
	f.e.ExpectDeletes(expOwner, "a")
	f.e.ExpectCreates(expOther, 2)
	f.e.ExpectDeletes(expOther, "a")
	f.e.CreateObserved(expOwner)
	f.e.DeleteObserved(expOwner, "a")
	if !f.e.Satisfied(expOwner) {
		t.Errorf("Satisfied(%v): got false, want true", expOwner)
	}
	if p, ok := f.e.Pending(expOther); !ok || p.Creates != 2 || p.Deletes != 1 {
		t.Errorf("Pending(%v): got %+v, %v; want 2 creates and 1 delete", expOther, p, ok)
	}
	if got := f.callbacks(); len(got) != 1 || got[0] != expOwner {
		t.Errorf("OnSatisfied calls: got %v, want [%v]", got, expOwner)
	}
	f.e.Forget(expOwner)
	if got := f.e.Len(); got != 1 {
		t.Errorf("Len: got %d, want 1", got)
	}
}

func TestExpectationsTimeoutLogNamesOwner(t *testing.T) {
	f := newExpFixture(t)
	f.e.ExpectCreates(expOwner, 2)
	f.e.ExpectDeletes(expOwner, "a")
	f.step(expTimeout)
	if !f.e.Satisfied(expOwner) {
		t.Fatal("Satisfied after Timeout: got false, want true")
	}
	f.mu.Lock()
	logs := append([]string(nil), f.logs...)
	f.mu.Unlock()
	if len(logs) != 1 {
		t.Fatalf("log lines: got %q, want one timeout line", logs)
	}
	for _, want := range []string{`"expectations"="rs"`, `"owner"="ns/rs"`, `"pendingCreates"=2`, `"pendingDeletes"=1`} {
		if !strings.Contains(logs[0], want) {
			t.Errorf("timeout log: got %s, want it to contain %s", logs[0], want)
		}
	}
}

func TestExpectationsSweepsUnaskedOwners(t *testing.T) {
	f := newExpFixture(t)
	for i := range 10 {
		f.e.ExpectCreates(reconcile.Request{Namespace: "ns", Name: fmt.Sprint("gone-", i)}, 1)
	}
	f.step(expTimeout)
	// Nobody asks about the gone owners again (deleted without Forget); a
	// later call for another owner sweeps them.
	f.e.ExpectCreates(expOwner, 1)
	if got := f.e.Len(); got != 1 {
		t.Errorf("Len after sweep: got %d, want 1", got)
	}
	if got := f.timeouts(); got != 10 {
		t.Errorf("timeouts: got %v, want 10", got)
	}
	if got := f.pendingGauge("create"); got != 1 {
		t.Errorf("pending creates gauge: got %v, want 1", got)
	}
	// The sweep runs at most once per Timeout: an owner expired since is
	// kept until asked about or the next sweep.
	f.step(expTimeout)
	f.e.ExpectCreates(expOther, 1) // sweeps expOwner: a Timeout has passed
	f.step(time.Minute)
	if got := f.e.Len(); got != 1 {
		t.Errorf("Len after second sweep: got %d, want 1", got)
	}
}

func TestExpectationsOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    reconcile.ExpectationsOptions[string]
		wantErr string
	}{
		{name: "zero value"},
		{name: "negative timeout", opts: reconcile.ExpectationsOptions[string]{Timeout: -time.Second}, wantErr: "ExpectationsOptions.Timeout"},
		{name: "registerer without name", opts: reconcile.ExpectationsOptions[string]{Registerer: prometheus.NewRegistry()}, wantErr: "ExpectationsOptions.Name"},
		{name: "registerer with name", opts: reconcile.ExpectationsOptions[string]{Registerer: prometheus.NewRegistry(), Name: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := reconcile.NewExpectations(tt.opts)
			if tt.wantErr == "" {
				if err != nil || e == nil {
					t.Fatalf("NewExpectations: got %v, %v; want expectations, no error", e, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewExpectations error: got %v, want one naming %s", err, tt.wantErr)
			}
		})
	}
}

func TestExpectationsDefaultTimeout(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Unix(0, 0))
	e, err := reconcile.NewExpectations(reconcile.ExpectationsOptions[string]{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	e.ExpectCreates("owner", 1)
	if p, _ := e.Pending("owner"); p.TimeLeft != reconcile.DefaultExpectationsTimeout {
		t.Errorf("TimeLeft: got %v, want %v", p.TimeLeft, reconcile.DefaultExpectationsTimeout)
	}
	clk.SetTime(clk.Now().Add(reconcile.DefaultExpectationsTimeout))
	if !e.Satisfied("owner") {
		t.Errorf("Satisfied after the default timeout: got false, want true")
	}
}

func TestExpectationsMetricsShareRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := reconcile.NewExpectations(reconcile.ExpectationsOptions[string]{Registerer: reg, Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := reconcile.NewExpectations(reconcile.ExpectationsOptions[string]{Registerer: reg, Name: "b"})
	if err != nil {
		t.Fatalf("second NewExpectations on one registry: %v", err)
	}
	a.ExpectCreates("x", 3)
	b.ExpectDeletes("y", "u1", "u2")
	b.ExpectCreates("y", 1)
	// Every series, gathered from the registry.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	kinds := map[string]string{}
	for _, mf := range mfs {
		kinds[mf.GetName()] = mf.GetType().String()
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			got[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	want := map[string]float64{
		"capstan_expectations_pending{name=a,operation=create}": 3,
		"capstan_expectations_pending{name=a,operation=delete}": 0,
		"capstan_expectations_pending{name=b,operation=create}": 1,
		"capstan_expectations_pending{name=b,operation=delete}": 2,
		"capstan_expectations_timeouts_total{name=a}":           0,
		"capstan_expectations_timeouts_total{name=b}":           0,
	}
	if !maps.Equal(got, want) {
		t.Errorf("gathered series: got %v, want %v", got, want)
	}
	if kinds["capstan_expectations_pending"] != "GAUGE" || kinds["capstan_expectations_timeouts_total"] != "COUNTER" {
		t.Errorf("metric types: got %v, want pending GAUGE and timeouts_total COUNTER", kinds)
	}
	a.Forget("x")
	b.CreateObserved("y")
	b.DeleteObserved("y", "u1")
	b.DeleteFailed("y", "u2")
	for _, s := range []struct{ name, op string }{{"a", "create"}, {"b", "create"}, {"b", "delete"}} {
		if got := gatheredValue(t, reg, "capstan_expectations_pending", map[string]string{"name": s.name, "operation": s.op}); got != 0 {
			t.Errorf("pending{name=%q,operation=%q} after all settled: got %v, want 0", s.name, s.op, got)
		}
	}
}

func TestExpectationsHandler(t *testing.T) {
	owned := func(name string, uid types.UID, terminating bool) *corev1.Pod {
		yes := true
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: uid,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: "rs-uid", Controller: &yes}}}}
		if terminating {
			now := metav1.Now()
			p.DeletionTimestamp = &now
		}
		return p
	}
	orphan := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "orphan", UID: "o"}}
	ownerOf := func(p *corev1.Pod) (reconcile.Request, bool) {
		ref := metav1.GetControllerOf(p)
		if ref == nil || ref.Kind != "ReplicaSet" {
			return reconcile.Request{}, false
		}
		return reconcile.Request{Namespace: p.Namespace, Name: ref.Name}, true
	}

	tests := []struct {
		name   string
		expect func(e *reconcile.Expectations[reconcile.Request])
		events func(h informer.Handler[*corev1.Pod])
		want   reconcile.Pending // zero: satisfied
	}{
		{
			name:   "adds are creates",
			expect: func(e *reconcile.Expectations[reconcile.Request]) { e.ExpectCreates(expOwner, 2) },
			events: func(h informer.Handler[*corev1.Pod]) {
				h.OnAdd(owned("a", "a", false), false)
				h.OnAdd(owned("b", "b", false), false)
			},
		},
		{
			name:   "initial list and orphans are not creates",
			expect: func(e *reconcile.Expectations[reconcile.Request]) { e.ExpectCreates(expOwner, 2) },
			events: func(h informer.Handler[*corev1.Pod]) {
				h.OnAdd(owned("a", "a", false), true)
				h.OnAdd(orphan, false)
			},
			want: reconcile.Pending{Creates: 2, TimeLeft: expTimeout},
		},
		{
			name:   "graceful delete counts once",
			expect: func(e *reconcile.Expectations[reconcile.Request]) { e.ExpectDeletes(expOwner, "a", "b") },
			events: func(h informer.Handler[*corev1.Pod]) {
				h.OnUpdate(owned("a", "a", false), owned("a", "a", true))
				h.OnUpdate(owned("a", "a", true), owned("a", "a", true))
				h.OnDelete(owned("a", "a", true), false)
			},
			want: reconcile.Pending{Deletes: 1, TimeLeft: expTimeout},
		},
		{
			name:   "plain updates are nothing",
			expect: func(e *reconcile.Expectations[reconcile.Request]) { e.ExpectDeletes(expOwner, "a") },
			events: func(h informer.Handler[*corev1.Pod]) {
				h.OnUpdate(owned("a", "a", false), owned("a", "a", false))
			},
			want: reconcile.Pending{Deletes: 1, TimeLeft: expTimeout},
		},
		{
			name: "an add already terminating is a delete, not a create",
			expect: func(e *reconcile.Expectations[reconcile.Request]) {
				e.ExpectCreates(expOwner, 1)
				e.ExpectDeletes(expOwner, "a")
			},
			events: func(h informer.Handler[*corev1.Pod]) {
				h.OnAdd(owned("a", "a", true), false)
			},
			want: reconcile.Pending{Creates: 1, TimeLeft: expTimeout},
		},
		{
			name:   "delete with unknown final state",
			expect: func(e *reconcile.Expectations[reconcile.Request]) { e.ExpectDeletes(expOwner, "a") },
			events: func(h informer.Handler[*corev1.Pod]) {
				h.OnDelete(owned("a", "a", false), true)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newExpFixture(t)
			tt.expect(f.e)
			tt.events(reconcile.ExpectationsHandler(f.e, ownerOf))
			p, ok := f.e.Pending(expOwner)
			if p != tt.want || ok != (tt.want != reconcile.Pending{}) {
				t.Errorf("Pending: got %+v, %v; want %+v", p, ok, tt.want)
			}
		})
	}
}

// TestExpectationsConcurrent has many goroutines observe, fail and ask
// while one expects batches, for several owners at once. Run with -race.
func TestExpectationsConcurrent(t *testing.T) {
	const (
		owners  = 8
		batches = 20
		batch   = 16 // creates and deletes per batch
	)
	f := newExpFixture(t)
	var wg sync.WaitGroup
	for o := range owners {
		owner := reconcile.Request{Namespace: "ns", Name: fmt.Sprint("rs-", o)}
		wg.Go(func() {
			for b := range batches {
				uids := make([]types.UID, batch)
				for i := range uids {
					uids[i] = types.UID(fmt.Sprintf("%d-%d-%d", o, b, i))
				}
				f.e.ExpectCreates(owner, batch)
				f.e.ExpectDeletes(owner, uids...)
				var obs sync.WaitGroup
				for i := range batch {
					obs.Go(func() {
						if i%5 == 0 {
							f.e.CreateFailed(owner, 1)
						} else {
							f.e.CreateObserved(owner)
						}
						f.e.DeleteObserved(owner, uids[i])
						f.e.DeleteObserved(owner, uids[i]) // a graceful delete's second event
						f.e.Satisfied(owner)
						f.e.Pending(owner)
					})
				}
				obs.Wait()
				if !f.e.Satisfied(owner) {
					p, _ := f.e.Pending(owner)
					t.Errorf("owner %v batch %d: Satisfied got false, want true (pending %+v)", owner, b, p)
					return
				}
			}
		})
	}
	wg.Wait()
	// Deletes are always observed, so every batch ends with an observation
	// and calls OnSatisfied exactly once.
	perOwner := map[reconcile.Request]int{}
	for _, r := range f.callbacks() {
		perOwner[r]++
	}
	for o := range owners {
		owner := reconcile.Request{Namespace: "ns", Name: fmt.Sprint("rs-", o)}
		if got := perOwner[owner]; got != batches {
			t.Errorf("OnSatisfied calls for %v: got %d, want %d", owner, got, batches)
		}
	}
	if got := f.e.Len(); got != 0 {
		t.Errorf("Len: got %d, want 0", got)
	}
	for _, op := range []string{"create", "delete"} {
		if got := f.pendingGauge(op); got != 0 {
			t.Errorf("pending %s gauge: got %v, want 0", op, got)
		}
	}
}

// staleWorld simulates a ReplicaSet-like controller against an API server
// whose events reach the controller's cache late, in random order and at
// random times.
type staleWorld struct {
	rng     *rand.Rand
	exp     *reconcile.Expectations[reconcile.Request]
	useExp  bool
	server  map[types.UID]bool // children on the API server
	cache   map[types.UID]bool // children in the controller's cache
	inbox   []staleEvent       // sent by the server, not yet in the cache
	nextUID int
	creates int // successful create calls
	deletes int // delete calls that deleted something
	// failRate is the chance a create or delete call fails.
	failRate float64
}

type staleEvent struct {
	uid     types.UID
	deleted bool
}

// reconcile is one sync of the owner: decide from the cache only when
// expectations allow it.
func (w *staleWorld) reconcile(want int) {
	if w.useExp && !w.exp.Satisfied(expOwner) {
		return
	}
	diff := want - len(w.cache)
	switch {
	case diff > 0:
		if w.useExp {
			w.exp.ExpectCreates(expOwner, diff)
		}
		for range diff {
			if w.rng.Float64() < w.failRate {
				if w.useExp {
					w.exp.CreateFailed(expOwner, 1)
				}
				continue
			}
			w.nextUID++
			uid := types.UID(fmt.Sprint("pod-", w.nextUID))
			w.server[uid] = true
			w.creates++
			w.inbox = append(w.inbox, staleEvent{uid: uid})
		}
	case diff < 0:
		var victims []types.UID
		for uid := range w.cache {
			victims = append(victims, uid)
		}
		// A random choice, but from the seeded rng so that a failure can
		// be replayed: sort away the map's order first.
		slices.Sort(victims)
		w.rng.Shuffle(len(victims), func(i, j int) { victims[i], victims[j] = victims[j], victims[i] })
		victims = victims[:-diff]
		if w.useExp {
			w.exp.ExpectDeletes(expOwner, victims...)
		}
		for _, uid := range victims {
			if w.rng.Float64() < w.failRate {
				if w.useExp {
					w.exp.DeleteFailed(expOwner, uid)
				}
				continue
			}
			if !w.server[uid] {
				// NotFound: the cache still holds it (we chose it from
				// there), so its delete event is on its way.
				continue
			}
			delete(w.server, uid)
			w.deletes++
			w.inbox = append(w.inbox, staleEvent{uid: uid, deleted: true})
		}
	}
}

// deliver moves one random pending event into the cache, then tells the
// handlers, as an informer does.
func (w *staleWorld) deliver() bool {
	if len(w.inbox) == 0 {
		return false
	}
	// Events of one object stay in order; across objects any order.
	i := w.rng.IntN(len(w.inbox))
	ev := w.inbox[i]
	for j := range i {
		if w.inbox[j].uid == ev.uid {
			i, ev = j, w.inbox[j]
			break
		}
	}
	w.inbox = append(w.inbox[:i], w.inbox[i+1:]...)
	if ev.deleted {
		delete(w.cache, ev.uid)
		if w.useExp {
			w.exp.DeleteObserved(expOwner, ev.uid)
		}
	} else {
		w.cache[ev.uid] = true
		if w.useExp {
			w.exp.CreateObserved(expOwner)
		}
	}
	return true
}

// run scales the owner through the given replica counts, interleaving
// syncs and deliveries at random, and reports the most children the server
// ever held above want and the fewest below it. It fails if the owner does
// not reach want once the cache has caught up.
func (w *staleWorld) run(wants []int) (overshoot, undershoot int, err error) {
	for _, want := range wants {
		prev := len(w.server)
		for range 200 {
			if w.rng.IntN(3) == 0 {
				w.deliver()
			} else {
				w.reconcile(want)
			}
			// Scaling up never needs to go above want, nor scaling down
			// below it; from prev towards want nothing must overshoot.
			if hi := max(want, prev); len(w.server) > hi {
				overshoot = max(overshoot, len(w.server)-hi)
			}
			if lo := min(want, prev); len(w.server) < lo {
				undershoot = max(undershoot, lo-len(w.server))
			}
		}
		// Let the cache catch up and the controller settle, then check
		// liveness: the owner reached want.
		for w.deliver() {
		}
		for range 100 {
			w.reconcile(want)
			for w.deliver() {
			}
		}
		if len(w.server) != want {
			return overshoot, undershoot, fmt.Errorf("did not converge: got %d children, want %d", len(w.server), want)
		}
	}
	return overshoot, undershoot, nil
}

func newStaleWorld(t *testing.T, seed uint64, useExp bool, failRate float64) *staleWorld {
	t.Helper()
	e, err := reconcile.NewExpectations(reconcile.ExpectationsOptions[reconcile.Request]{
		Clock: clocktesting.NewFakePassiveClock(time.Unix(0, 0)), // time stands still: no timeouts
	})
	if err != nil {
		t.Fatal(err)
	}
	return &staleWorld{
		rng:      rand.New(rand.NewPCG(seed, 42)),
		exp:      e,
		useExp:   useExp,
		server:   map[types.UID]bool{},
		cache:    map[types.UID]bool{},
		failRate: failRate,
	}
}

// TestExpectationsStaleCache: a ReplicaSet-like loop that decides from a
// lagging cache, gated by Satisfied, never creates or deletes more than
// needed, whatever the order and delay of the events; the same loop
// without expectations does, which shows the test can fail.
func TestExpectationsStaleCache(t *testing.T) {
	wants := []int{5, 12, 3, 9, 0, 7}
	tests := []struct {
		name     string
		useExp   bool
		failRate float64
	}{
		{"with expectations", true, 0},
		{"with expectations and failing calls", true, 0.2},
		{"without expectations", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			worst, worstUnder := 0, 0
			for seed := range uint64(300) {
				w := newStaleWorld(t, seed, tt.useExp, tt.failRate)
				over, under, err := w.run(wants)
				if err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				worst, worstUnder = max(worst, over), max(worstUnder, under)
				if tt.useExp && (over > 0 || under > 0) {
					t.Fatalf("seed %d: got %d children too many and %d too few at some point, want none", seed, over, under)
				}
				if tt.useExp && w.exp.Len() != 0 {
					t.Fatalf("seed %d: Len after settling: got %d, want 0", seed, w.exp.Len())
				}
			}
			if !tt.useExp && worst == 0 && worstUnder == 0 {
				t.Errorf("without expectations: got no duplicate create or delete in 300 runs; the simulation no longer exercises a stale cache")
			}
			t.Logf("worst overshoot %d, undershoot %d", worst, worstUnder)
		})
	}
}

// TestExpectationsStaleCacheLostEvent: an event that never comes stalls the
// owner only until the Timeout; then it proceeds (and, as documented, may
// act twice).
func TestExpectationsStaleCacheLostEvent(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Unix(0, 0))
	e, err := reconcile.NewExpectations(reconcile.ExpectationsOptions[reconcile.Request]{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	e.ExpectCreates(expOwner, 3)
	e.CreateObserved(expOwner)
	e.CreateObserved(expOwner) // the third event is lost
	clk.SetTime(clk.Now().Add(reconcile.DefaultExpectationsTimeout - time.Second))
	if e.Satisfied(expOwner) {
		t.Fatalf("Satisfied a second before the timeout: got true, want false")
	}
	p, _ := e.Pending(expOwner)
	if p.TimeLeft != time.Second {
		t.Errorf("TimeLeft: got %v, want 1s", p.TimeLeft)
	}
	clk.SetTime(clk.Now().Add(p.TimeLeft)) // RequeueAfter(TimeLeft) lands here
	if !e.Satisfied(expOwner) {
		t.Fatalf("Satisfied at the timeout: got false, want true")
	}
}
