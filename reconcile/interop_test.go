package reconcile_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"
	crreconcile "sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/capstan-io/capstan/informer"
	"github.com/capstan-io/capstan/reconcile"
)

func TestFromControllerRuntimeResults(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name         string
		res          crreconcile.Result
		err          error
		wantAfter    time.Duration
		wantErr      error // errors.Is target; nil for no error
		wantTerminal bool
	}{
		{name: "empty result is done"},
		{name: "requeue after", res: crreconcile.Result{RequeueAfter: 3 * time.Second}, wantAfter: 3 * time.Second},
		{name: "requeue after wins over requeue", res: crreconcile.Result{Requeue: true, RequeueAfter: time.Minute}, wantAfter: time.Minute},
		{name: "requeue is a backoff requeue", res: crreconcile.Result{Requeue: true}, wantAfter: 5 * time.Millisecond},
		{name: "error is retried", err: boom, wantErr: boom},
		{name: "error wins over the result", res: crreconcile.Result{RequeueAfter: time.Minute}, err: boom, wantErr: boom},
		{name: "terminal error stays terminal", err: crreconcile.TerminalError(boom), wantErr: boom, wantTerminal: true},
		{name: "wrapped terminal error stays terminal", err: wrapf(crreconcile.TerminalError(boom)), wantErr: boom, wantTerminal: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got crreconcile.Request
			r := reconcile.FromControllerRuntime(crreconcile.Func(func(_ context.Context, req crreconcile.Request) (crreconcile.Result, error) {
				got = req
				return tc.res, tc.err
			}))
			res, err := r.Reconcile(context.Background(), req("ns", "a"))
			if want := (types.NamespacedName{Namespace: "ns", Name: "a"}); got.NamespacedName != want {
				t.Errorf("got request %v, want %v", got.NamespacedName, want)
			}
			if d, _ := res.After(); d != tc.wantAfter {
				t.Errorf("got requeue after %s, want %s", d, tc.wantAfter)
			}
			if tc.wantErr == nil {
				if err != nil {
					t.Errorf("got error %v, want none", err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("got error %v, want one wrapping %v", err, tc.wantErr)
			}
			if got := reconcile.IsTerminal(err); got != tc.wantTerminal {
				t.Errorf("got IsTerminal %v, want %v", got, tc.wantTerminal)
			}
			if got := errors.Is(err, crreconcile.TerminalError(nil)); got != tc.wantTerminal {
				t.Errorf("got controller-runtime's terminal check %v, want %v", got, tc.wantTerminal)
			}
		})
	}
}

func wrapf(err error) error { return errors.Join(errors.New("context"), err) }

func TestFromControllerRuntimeRequeueBackoff(t *testing.T) {
	var mu sync.Mutex
	answers := map[string][]crreconcile.Result{}
	r := reconcile.FromControllerRuntime(crreconcile.Func(func(_ context.Context, req crreconcile.Request) (crreconcile.Result, error) {
		mu.Lock()
		defer mu.Unlock()
		next := answers[req.Name][0]
		answers[req.Name] = answers[req.Name][1:]
		return next, nil
	}))
	requeue := crreconcile.Result{Requeue: true}
	answers["a"] = []crreconcile.Result{requeue, requeue, requeue, {}, requeue}
	answers["b"] = []crreconcile.Result{requeue, requeue}
	for i, step := range []struct {
		name string
		want time.Duration
	}{
		{"a", 5 * time.Millisecond},
		{"a", 10 * time.Millisecond},
		{"b", 5 * time.Millisecond}, // per request
		{"a", 20 * time.Millisecond},
		{"a", 0}, // done resets
		{"a", 5 * time.Millisecond},
		{"b", 10 * time.Millisecond},
	} {
		res, err := r.Reconcile(context.Background(), req("ns", step.name))
		if err != nil {
			t.Fatal(err)
		}
		if d, _ := res.After(); d != step.want {
			t.Errorf("step %d (%s): got requeue after %s, want %s", i, step.name, d, step.want)
		}
	}

	// The backoff is capped at 1000s.
	r = reconcile.FromControllerRuntime(crreconcile.Func(func(context.Context, crreconcile.Request) (crreconcile.Result, error) {
		return requeue, nil
	}))
	var last time.Duration
	for range 30 {
		res, _ := r.Reconcile(context.Background(), req("ns", "a"))
		last, _ = res.After()
	}
	if last != 1000*time.Second {
		t.Errorf("after 30 requeues: got %s, want the 1000s cap", last)
	}
}

func TestFromControllerRuntimeLogger(t *testing.T) {
	var lines []string
	logger := funcr.New(func(prefix, args string) { lines = append(lines, args) }, funcr.Options{})
	r := reconcile.FromControllerRuntime(crreconcile.Func(func(ctx context.Context, _ crreconcile.Request) (crreconcile.Result, error) {
		crlog.FromContext(ctx).Info("hello from controller-runtime")
		if _, err := logr.FromContext(ctx); err != nil {
			t.Errorf("got no logger in the context: %v", err)
		}
		return crreconcile.Result{}, nil
	}))
	ctx := logr.NewContext(context.Background(), logger.WithValues("controller", "x"))
	if _, err := r.Reconcile(ctx, req("ns", "a")); err != nil {
		t.Fatal(err)
	}
	if len(lines) != 1 || !strings.Contains(lines[0], `"controller"="x"`) || !strings.Contains(lines[0], "hello from controller-runtime") {
		t.Errorf("got log lines %q, want one from the reconciler with the context's keys", lines)
	}
	// Without a logger the reconciler gets a discarding one, not
	// controller-runtime's global logger.
	if _, err := r.Reconcile(context.Background(), req("ns", "a")); err != nil {
		t.Fatal(err)
	}
}

// TestFromControllerRuntimeOnController runs a controller-runtime
// reconciler asking for Requeue twice on a capstan Controller over an
// in-memory informer: it is called three times, 5ms then 10ms apart.
func TestFromControllerRuntimeOnController(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var at []time.Time
		r := reconcile.FromControllerRuntime(crreconcile.Func(func(context.Context, crreconcile.Request) (crreconcile.Result, error) {
			mu.Lock()
			defer mu.Unlock()
			at = append(at, time.Now())
			return crreconcile.Result{Requeue: len(at) < 3}, nil
		}))
		h := newHarness(t, r, reconcile.Options{}, cm("ns", "a"))
		time.Sleep(time.Second) // fake time: lets every requeue run
		synctest.Wait()
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(at) != 3 {
			t.Fatalf("got %d reconciles, want 3", len(at))
		}
		if d1, d2 := at[1].Sub(at[0]), at[2].Sub(at[1]); d1 != 5*time.Millisecond || d2 != 10*time.Millisecond {
			t.Errorf("got requeues %s and %s apart, want 5ms and 10ms", d1, d2)
		}
	})
}

// TestFromControllerRuntimeOnEnvtest drives a controller-runtime reconciler
// through a capstan Controller against a real API server: it reads
// ConfigMaps with a capstan Client and marks each one with an annotation.
func TestFromControllerRuntimeOnEnvtest(t *testing.T) {
	e := newClientEnv(t)
	ctx := testCtx(t)
	cms := mustClient[*corev1.ConfigMap](t, e.src)
	inf, err := informer.For[*corev1.ConfigMap](e.factory, informer.Scope{Namespace: e.ns})
	if err != nil {
		t.Fatal(err)
	}
	marked := make(chan string, 10)
	var logged sync.Map
	cr := crreconcile.Func(func(ctx context.Context, req crreconcile.Request) (crreconcile.Result, error) {
		crlog.FromContext(ctx).Info("reconciling")
		obj, err := cms.Get(ctx, req.Namespace, req.Name)
		if err != nil {
			return crreconcile.Result{}, err
		}
		if obj.Annotations["seen"] == "yes" {
			return crreconcile.Result{}, nil
		}
		if _, err := cms.Patch(ctx, req.Namespace, req.Name, types.MergePatchType, []byte(`{"metadata":{"annotations":{"seen":"yes"}}}`), metav1.PatchOptions{}); err != nil {
			return crreconcile.Result{}, err
		}
		marked <- req.Name
		return crreconcile.Result{}, nil
	})
	logger := funcr.New(func(_, args string) {
		if strings.Contains(args, "reconciling") {
			logged.Store(args, true)
		}
	}, funcr.Options{})
	ctrl, err := reconcile.New(reconcile.FromControllerRuntime(cr), reconcile.Options{Name: "cr-interop", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := ctrl.Watch(reconcile.For[*corev1.ConfigMap]().From(inf)); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "before"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ctrl.Start(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	}()
	select {
	case <-ctrl.Started():
	case err := <-done:
		t.Fatalf("Start: %v", err)
	case <-ctx.Done():
		t.Fatal("controller did not start")
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "after"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case name := <-marked:
			got[name] = true
		case <-ctx.Done():
			t.Fatalf("marked %v, want before and after", got)
		}
	}
	for _, name := range []string{"before", "after"} {
		obj, err := cms.Live(ctx, e.ns, name)
		if err != nil {
			t.Fatal(err)
		}
		if obj.Annotations["seen"] != "yes" {
			t.Errorf("%s: got annotations %v, want seen=yes", name, obj.Annotations)
		}
	}
	n := 0
	logged.Range(func(k, _ any) bool {
		line := k.(string)
		if strings.Contains(line, `"controller"="cr-interop"`) && strings.Contains(line, `"namespace"="`+e.ns+`"`) && strings.Contains(line, `"reconcileID"=`) {
			n++
		}
		return true
	})
	if n == 0 {
		t.Error("got no log line from controller-runtime's log.FromContext with the controller's keys")
	}
}
