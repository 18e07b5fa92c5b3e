package reconcile_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/capstan-io/capstan/informer"
	"github.com/capstan-io/capstan/informer/informertest"
	"github.com/capstan-io/capstan/reconcile"
	"github.com/capstan-io/capstan/workqueue"
)

// call is one reconcile as the recorder saw it.
type call struct {
	req     reconcile.Request
	trigger reconcile.Trigger
}

// recorder is a Reconciler that records its calls and answers with fn.
type recorder struct {
	mu    sync.Mutex
	calls []call
	fn    func(ctx context.Context, req reconcile.Request, n int) (reconcile.Result, error)
}

func (r *recorder) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	r.mu.Lock()
	r.calls = append(r.calls, call{req, reconcile.TriggerFromContext(ctx)})
	n := 0
	for _, c := range r.calls {
		if c.req == req {
			n++
		}
	}
	r.mu.Unlock()
	if r.fn == nil {
		return reconcile.Done(), nil
	}
	return r.fn(ctx, req, n)
}

func (r *recorder) callsFor(req reconcile.Request) []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []call
	for _, c := range r.calls {
		if c.req == req {
			out = append(out, c)
		}
	}
	return out
}

func cm(ns, name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}

func req(ns, name string) reconcile.Request { return reconcile.Request{Namespace: ns, Name: name} }

// fastLimiter backs off 1ms, 2ms, 4ms... so retries show quickly.
func fastLimiter() workqueue.RateLimiter[reconcile.Request] {
	return workqueue.NewExponentialRateLimiter[reconcile.Request](time.Millisecond, time.Second)
}

// harness runs an informer over an in-memory source and a controller on
// it, in a synctest bubble, and stops both at the end.
type harness struct {
	t      *testing.T
	src    *informertest.Source[*corev1.ConfigMap]
	inf    *informer.SharedInformer[*corev1.ConfigMap]
	ctrl   *reconcile.Controller
	cancel context.CancelFunc
	done   chan error
}

func newHarness(t *testing.T, r reconcile.Reconciler, opts reconcile.Options, seed ...*corev1.ConfigMap) *harness {
	t.Helper()
	src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
	for _, o := range seed {
		if _, err := src.Create(o); err != nil {
			t.Fatal(err)
		}
	}
	inf, err := informer.New[*corev1.ConfigMap](src, informer.Options[*corev1.ConfigMap]{})
	if err != nil {
		t.Fatal(err)
	}
	if opts.Name == "" {
		opts.Name = "test"
	}
	if opts.RateLimiter == nil {
		opts.RateLimiter = fastLimiter()
	}
	ctrl, err := reconcile.New(r, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := ctrl.Watch(reconcile.For[*corev1.ConfigMap]().From(inf)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, src: src, inf: inf, ctrl: ctrl, cancel: cancel, done: make(chan error, 1)}
	go func() { _ = inf.Run(ctx) }()
	go func() { h.done <- ctrl.Start(ctx) }()
	return h
}

// stop cancels the controller and returns what Start returned.
func (h *harness) stop() error {
	h.cancel()
	err := <-h.done
	synctest.Wait()
	return err
}

func TestReconcilesInitialListThenEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{}
		h := newHarness(t, r, reconcile.Options{}, cm("a", "one"), cm("b", "two"))
		synctest.Wait()
		for _, rq := range []reconcile.Request{req("a", "one"), req("b", "two")} {
			got := r.callsFor(rq)
			if len(got) != 1 || got[0].trigger != reconcile.TriggerInitialList {
				t.Errorf("%s: got calls %v, want one with trigger initialList", rq, got)
			}
		}
		upd := cm("a", "one")
		upd.Data = map[string]string{"k": "v"}
		if _, err := h.src.Update(upd); err != nil {
			t.Fatal(err)
		}
		if err := h.src.Delete("b", "two"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := r.callsFor(req("a", "one")); len(got) != 2 || got[1].trigger != reconcile.TriggerSelf {
			t.Errorf("after update: got %v, want a second call with trigger self", got)
		}
		if got := r.callsFor(req("b", "two")); len(got) != 2 || got[1].trigger != reconcile.TriggerSelf {
			t.Errorf("after delete: got %v, want a second call with trigger self", got)
		}
		if err := h.stop(); err != nil {
			t.Errorf("Start returned %v", err)
		}
	})
}

func TestErrorsRetryWithBackoffUntilSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{fn: func(_ context.Context, _ reconcile.Request, n int) (reconcile.Result, error) {
			if n <= 3 {
				return reconcile.Done(), fmt.Errorf("attempt %d failed", n)
			}
			return reconcile.Done(), nil
		}}
		h := newHarness(t, r, reconcile.Options{}, cm("ns", "flaky"))
		synctest.Wait()
		time.Sleep(time.Second) // far beyond 1+2+4 ms of backoff
		synctest.Wait()
		got := r.callsFor(req("ns", "flaky"))
		if len(got) != 4 {
			t.Fatalf("calls: got %d, want 4 (3 failures, 1 success)", len(got))
		}
		for i, c := range got[1:] {
			if !c.trigger.Has(reconcile.TriggerRequeue) {
				t.Errorf("retry %d: trigger %s, want requeue", i+1, c.trigger)
			}
		}
		if err := h.stop(); err != nil {
			t.Error(err)
		}
	})
}

func TestTerminalErrorIsNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{fn: func(context.Context, reconcile.Request, int) (reconcile.Result, error) {
			return reconcile.Done(), reconcile.TerminalError(errors.New("spec.size must be positive"))
		}}
		h := newHarness(t, r, reconcile.Options{}, cm("ns", "bad"))
		synctest.Wait()
		time.Sleep(time.Hour)
		synctest.Wait()
		if got := r.callsFor(req("ns", "bad")); len(got) != 1 {
			t.Errorf("calls: got %d, want 1", len(got))
		}
		// The next event reconciles it again.
		h.ctrl.Enqueue(req("ns", "bad"))
		synctest.Wait()
		if got := r.callsFor(req("ns", "bad")); len(got) != 2 || got[1].trigger != reconcile.TriggerManual {
			t.Errorf("after Enqueue: got %v, want a second, manual call", got)
		}
		_ = h.stop()
	})
}

func TestRequeueAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{fn: func(_ context.Context, _ reconcile.Request, n int) (reconcile.Result, error) {
			if n == 1 {
				return reconcile.RequeueAfter(10 * time.Second), nil
			}
			return reconcile.Done(), nil
		}}
		h := newHarness(t, r, reconcile.Options{}, cm("ns", "later"))
		synctest.Wait()
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if got := len(r.callsFor(req("ns", "later"))); got != 1 {
			t.Fatalf("calls before the delay: got %d, want 1", got)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		got := r.callsFor(req("ns", "later"))
		if len(got) != 2 || got[1].trigger != reconcile.TriggerRequeue {
			t.Fatalf("calls after the delay: got %v, want 2, the second a requeue", got)
		}
		_ = h.stop()
	})
}

func TestPanicIsRecoveredAndRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{fn: func(_ context.Context, _ reconcile.Request, n int) (reconcile.Result, error) {
			if n == 1 {
				var m map[string]int
				m["boom"]++ // nil map write: a real runtime panic
			}
			return reconcile.Done(), nil
		}}
		h := newHarness(t, r, reconcile.Options{}, cm("ns", "panicky"))
		synctest.Wait()
		time.Sleep(time.Second)
		synctest.Wait()
		if got := len(r.callsFor(req("ns", "panicky"))); got != 2 {
			t.Errorf("calls: got %d, want 2 (panic, then retry)", got)
		}
		_ = h.stop()
	})
}

func TestReconcileTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var sawDeadline atomic.Bool
		r := reconcile.Func(func(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
			<-ctx.Done()
			sawDeadline.Store(errors.Is(ctx.Err(), context.DeadlineExceeded))
			return reconcile.Done(), nil
		})
		h := newHarness(t, r, reconcile.Options{ReconcileTimeout: 5 * time.Second}, cm("ns", "slow"))
		synctest.Wait()
		time.Sleep(6 * time.Second)
		synctest.Wait()
		if !sawDeadline.Load() {
			t.Error("reconcile context did not end at ReconcileTimeout")
		}
		_ = h.stop()
	})
}

// TestPerKeySerialisation: with many workers, one key is never reconciled
// twice at once, while different keys do run in parallel.
func TestPerKeySerialisation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		inFlight := map[reconcile.Request]int{}
		maxPerKey, maxTotal, total := 0, 0, 0
		r := reconcile.Func(func(_ context.Context, rq reconcile.Request) (reconcile.Result, error) {
			mu.Lock()
			inFlight[rq]++
			total++
			maxPerKey = max(maxPerKey, inFlight[rq])
			maxTotal = max(maxTotal, total)
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
			mu.Lock()
			inFlight[rq]--
			total--
			mu.Unlock()
			return reconcile.Done(), nil
		})
		h := newHarness(t, r, reconcile.Options{MaxConcurrentReconciles: 4}, cm("ns", "a"), cm("ns", "b"), cm("ns", "c"), cm("ns", "d"))
		synctest.Wait()
		for i := range 20 {
			h.ctrl.Enqueue(req("ns", "a"))
			h.ctrl.Enqueue(req("ns", string(rune('b'+i%3))))
			time.Sleep(3 * time.Millisecond)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if maxPerKey != 1 {
			t.Errorf("max concurrent reconciles of one key: got %d, want 1", maxPerKey)
		}
		if maxTotal < 2 {
			t.Errorf("max concurrent reconciles overall: got %d, want >= 2 with 4 workers", maxTotal)
		}
		_ = h.stop()
	})
}

// TestShutdownWaitsForInFlight: Start returns only after the running
// reconcile finished, and that reconcile's context stays live within the
// grace period.
func TestShutdownWaitsForInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var ctxErrAtEnd atomic.Value
		r := reconcile.Func(func(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
			<-release
			ctxErrAtEnd.Store(fmt.Sprint(ctx.Err()))
			return reconcile.Done(), nil
		})
		h := newHarness(t, r, reconcile.Options{ShutdownGracePeriod: time.Minute}, cm("ns", "busy"))
		synctest.Wait()
		h.cancel()
		synctest.Wait()
		select {
		case err := <-h.done:
			t.Fatalf("Start returned (%v) while a reconcile was in flight", err)
		default:
		}
		time.Sleep(10 * time.Second)
		close(release)
		if err := <-h.done; err != nil {
			t.Fatal(err)
		}
		if got := ctxErrAtEnd.Load(); got != "<nil>" {
			t.Errorf("reconcile context within the grace period: got err %v, want none", got)
		}
	})
}

func TestShutdownGracePeriodCancelsReconciles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := reconcile.Func(func(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
			<-ctx.Done() // a reconcile that would never end by itself
			return reconcile.Done(), ctx.Err()
		})
		h := newHarness(t, r, reconcile.Options{ShutdownGracePeriod: 5 * time.Second}, cm("ns", "stuck"))
		synctest.Wait()
		start := time.Now()
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 5*time.Second {
			t.Errorf("shutdown took %s, want exactly the 5s grace period", d)
		}
	})
}

func TestOwnsEnqueuesControllerOwner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{}
		h := newHarness(t, r, reconcile.Options{})
		// A second informer of Secrets owned by ConfigMaps.
		secrets := informertest.NewSource[*corev1.Secret](informertest.Options{Resource: "secrets"})
		sinf, err := informer.New[*corev1.Secret](secrets, informer.Options[*corev1.Secret]{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { _ = sinf.Run(ctx) }()
		ctrl, err := reconcile.New(r, reconcile.Options{Name: "owner-test"})
		if err != nil {
			t.Fatal(err)
		}
		err = ctrl.Watch(
			reconcile.For[*corev1.ConfigMap]().From(h.inf),
			reconcile.Owns[*corev1.Secret]().From(sinf),
		)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- ctrl.Start(ctx) }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Start: %v", err)
		default:
		}

		yes, no := true, false
		owned := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s1", OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "v1", Kind: "ConfigMap", Name: "not-controller", UID: "1", Controller: &no},
			{APIVersion: "v1", Kind: "ConfigMap", Name: "parent", UID: "2", Controller: &yes},
		}}}
		foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s2", OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "apps/v1", Kind: "ConfigMap", Name: "other-group", UID: "3", Controller: &yes},
		}}}
		if _, err := secrets.Create(owned); err != nil {
			t.Fatal(err)
		}
		if _, err := secrets.Create(foreign); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := r.callsFor(req("ns", "parent")); len(got) != 1 || got[0].trigger != reconcile.TriggerOwned {
			t.Errorf("owner calls: got %v, want one with trigger owned", got)
		}
		for _, name := range []string{"not-controller", "other-group", "s1", "s2"} {
			if got := r.callsFor(req("ns", name)); len(got) != 0 {
				t.Errorf("%s: got %d calls, want none", name, len(got))
			}
		}
		cancel()
		<-done
		_ = h.stop()
	})
}

func TestPredicatesFilterEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
		inf, err := informer.New[*corev1.ConfigMap](src, informer.Options[*corev1.ConfigMap]{})
		if err != nil {
			t.Fatal(err)
		}
		r := &recorder{}
		ctrl, err := reconcile.New(r, reconcile.Options{Name: "pred"})
		if err != nil {
			t.Fatal(err)
		}
		if err := ctrl.Watch(reconcile.For[*corev1.ConfigMap](reconcile.LabelsChanged).From(inf)); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { _ = inf.Run(ctx) }()
		done := make(chan error, 1)
		go func() { done <- ctrl.Start(ctx) }()
		synctest.Wait()

		obj := cm("ns", "x")
		if _, err := src.Create(obj); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		obj.Data = map[string]string{"only": "data"}
		if _, err := src.Update(obj); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := len(r.callsFor(req("ns", "x"))); got != 1 {
			t.Errorf("after create and a data-only update: got %d calls, want 1", got)
		}
		obj.Labels = map[string]string{"tier": "web"}
		if _, err := src.Update(obj); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := len(r.callsFor(req("ns", "x"))); got != 2 {
			t.Errorf("after a label change: got %d calls, want 2", got)
		}
		cancel()
		<-done
	})
}

func TestWatchesMapFunc(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
		inf, err := informer.New[*corev1.ConfigMap](src, informer.Options[*corev1.ConfigMap]{})
		if err != nil {
			t.Fatal(err)
		}
		r := &recorder{}
		ctrl, err := reconcile.New(r, reconcile.Options{Name: "mapper"})
		if err != nil {
			t.Fatal(err)
		}
		// Every ConfigMap reconciles the "app" named in its label.
		byLabel := func(_ context.Context, o *corev1.ConfigMap) []reconcile.Request {
			if app := o.Labels["app"]; app != "" {
				return []reconcile.Request{req(o.Namespace, app)}
			}
			return nil
		}
		if err := ctrl.Watch(reconcile.Watches(byLabel).From(inf)); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { _ = inf.Run(ctx) }()
		done := make(chan error, 1)
		go func() { done <- ctrl.Start(ctx) }()
		synctest.Wait()

		obj := cm("ns", "cfg")
		obj.Labels = map[string]string{"app": "first"}
		if _, err := src.Create(obj); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		obj.Labels = map[string]string{"app": "second"}
		if _, err := src.Update(obj); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		// Moving from first to second tells both.
		if got := r.callsFor(req("ns", "first")); len(got) != 2 || got[1].trigger != reconcile.TriggerWatched {
			t.Errorf("first: got %v, want 2 calls (create, move away)", got)
		}
		if got := r.callsFor(req("ns", "second")); len(got) != 1 {
			t.Errorf("second: got %v, want 1 call", got)
		}
		cancel()
		<-done
	})
}

func TestOptionsAndMisuse(t *testing.T) {
	noop := reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) { return reconcile.Done(), nil })
	tests := []struct {
		name string
		run  func() error
	}{
		{"missing name", func() error { _, err := reconcile.New(noop, reconcile.Options{}); return err }},
		{"negative workers", func() error {
			_, err := reconcile.New(noop, reconcile.Options{Name: "x", MaxConcurrentReconciles: -1})
			return err
		}},
		{"nil reconciler", func() error { _, err := reconcile.New(nil, reconcile.Options{Name: "x"}); return err }},
		{"watch without informer", func() error {
			c, err := reconcile.New(noop, reconcile.Options{Name: "x"})
			if err != nil {
				return nil
			}
			_ = c.Watch(reconcile.For[*corev1.ConfigMap]())
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			return c.Start(ctx)
		}},
		{"owns of an unregistered owner", func() error {
			c, err := reconcile.New(noop, reconcile.Options{Name: "x"})
			if err != nil {
				return nil
			}
			src := informertest.NewSource[*corev1.Secret](informertest.Options{})
			inf, _ := informer.New[*corev1.Secret](src, informer.Options[*corev1.Secret]{})
			_ = c.Watch(reconcile.Owns[*corev1.Secret]().From(inf))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			return c.Start(ctx) // no For watch and no OwnedBy
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.run(); err == nil {
				t.Error("got no error")
			}
		})
	}
	// OwnedBy names the owner explicitly.
	spec := reconcile.Owns[*corev1.Secret]().OwnedBy(schema.GroupKind{Kind: "ConfigMap"})
	if spec.String() != "Owns(*v1.Secret)" {
		t.Errorf("String: got %q", spec.String())
	}
}

// TestRestartAfterStop: a controller stopped (as on losing leadership)
// starts again and reconciles the informer's current contents.
func TestRestartAfterStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
		if _, err := src.Create(cm("ns", "a")); err != nil {
			t.Fatal(err)
		}
		inf, err := informer.New[*corev1.ConfigMap](src, informer.Options[*corev1.ConfigMap]{})
		if err != nil {
			t.Fatal(err)
		}
		infCtx, stopInf := context.WithCancel(context.Background())
		defer stopInf()
		go func() { _ = inf.Run(infCtx) }()
		r := &recorder{}
		ctrl, err := reconcile.New(r, reconcile.Options{Name: "restart"})
		if err != nil {
			t.Fatal(err)
		}
		if err := ctrl.Watch(reconcile.For[*corev1.ConfigMap]().From(inf)); err != nil {
			t.Fatal(err)
		}
		for run := 1; run <= 2; run++ {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- ctrl.Start(ctx) }()
			synctest.Wait()
			if got := len(r.callsFor(req("ns", "a"))); got != run {
				t.Errorf("run %d: got %d calls of a, want %d", run, got, run)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("run %d: %v", run, err)
			}
			// Between runs nothing is reconciled.
			ctrl.Enqueue(req("ns", "between"))
		}
		if got := len(r.callsFor(req("ns", "between"))); got != 0 {
			t.Errorf("between runs: got %d calls, want 0", got)
		}
		stopInf()
		synctest.Wait()
	})
}
