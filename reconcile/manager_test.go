package reconcile_test

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/capstan-io/capstan/informer"
	"github.com/capstan-io/capstan/reconcile"
)

const deriveLabel = "capstan.io/derive"

// secretFromConfigMap is the example controller: every ConfigMap labelled
// capstan.io/derive=true gets a Secret of the same name holding its data,
// owned by it; the Secret goes when the ConfigMap does.
type secretFromConfigMap struct {
	cs      kubernetes.Interface
	cms     *informer.SharedInformer[*corev1.ConfigMap]
	secrets *informer.SharedInformer[*corev1.Secret]
	calls   sync.Map // reconcile.Request -> *atomic.Int32
}

func (r *secretFromConfigMap) count(req reconcile.Request) int32 {
	v, _ := r.calls.LoadOrStore(req, new(atomic.Int32))
	return v.(*atomic.Int32).Load()
}

func (r *secretFromConfigMap) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	v, _ := r.calls.LoadOrStore(req, new(atomic.Int32))
	v.(*atomic.Int32).Add(1)
	cm, ok := r.cms.Lister().Get(req.Namespace, req.Name)
	secrets := r.cs.CoreV1().Secrets(req.Namespace)
	if !ok {
		err := secrets.Delete(ctx, req.Name, metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			err = nil
		}
		return reconcile.Done(), err
	}
	want := map[string][]byte{}
	for k, v := range cm.Data {
		want[k] = []byte(v)
	}
	cur, ok := r.secrets.Lister().Get(req.Namespace, req.Name)
	if !ok {
		yes := true
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: cm.Name, Namespace: cm.Namespace, OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "ConfigMap", Name: cm.Name, UID: cm.UID, Controller: &yes,
			}}},
			Data: want,
		}
		_, err := secrets.Create(ctx, s, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			// The cache has not seen our earlier create yet: requeue.
			return reconcile.RequeueAfter(50 * time.Millisecond), nil
		}
		return reconcile.Done(), err
	}
	if maps.EqualFunc(cur.Data, want, func(a, b []byte) bool { return string(a) == string(b) }) {
		return reconcile.Done(), nil
	}
	upd := cur.DeepCopy()
	upd.Data = want
	_, err := secrets.Update(ctx, upd, metav1.UpdateOptions{})
	return reconcile.Done(), err
}

func labelled(ev reconcile.Event[*corev1.ConfigMap]) bool {
	return ev.Object.Labels[deriveLabel] == "true" || (ev.Type == reconcile.EventUpdate && ev.Old.Labels[deriveLabel] == "true")
}

func newNamespace(t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	ns, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "reconcile-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// eventually polls cond every 20ms until it holds or 30s pass.
func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s (last error: %v)", what, lastErr)
}

func secretData(cs kubernetes.Interface, ns, name string) (map[string]string, error) {
	s, err := cs.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out, nil
}

func newExampleManager(t *testing.T, opts reconcile.ManagerOptions) (*reconcile.Manager, *secretFromConfigMap) {
	t.Helper()
	if opts.Config == nil {
		opts.Config = sharedEnv(t).Config()
	}
	mgr, err := reconcile.NewManager(opts)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(mgr.Config())
	if err != nil {
		t.Fatal(err)
	}
	cms, err := informer.For[*corev1.ConfigMap](mgr.Informers(), informer.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	secrets, err := informer.For[*corev1.Secret](mgr.Informers(), informer.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	r := &secretFromConfigMap{cs: cs, cms: cms, secrets: secrets}
	_, err = mgr.NewController(r, reconcile.Options{Name: "cm-secret"},
		reconcile.For[*corev1.ConfigMap](labelled),
		reconcile.Owns[*corev1.Secret](),
	)
	if err != nil {
		t.Fatal(err)
	}
	return mgr, r
}

// startManager runs mgr until the test ends and returns a func that stops
// it and reports what Start returned.
func startManager(t *testing.T, mgr *reconcile.Manager) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func waitSynced(t *testing.T, mgr *reconcile.Manager) {
	t.Helper()
	select {
	case <-mgr.Synced():
	case <-time.After(30 * time.Second):
		t.Fatal("manager did not sync within 30s")
	}
}

func TestManagerRunsExampleController(t *testing.T) {
	mgr, r := newExampleManager(t, reconcile.ManagerOptions{MetricsAddr: "127.0.0.1:0", HealthAddr: "127.0.0.1:0"})
	admin, err := kubernetes.NewForConfig(sharedEnv(t).Config())
	if err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t, admin)
	stop := startManager(t, mgr)
	waitSynced(t, mgr)
	ctx := context.Background()
	cms := admin.CoreV1().ConfigMaps(ns)

	// Create: the Secret appears with the data.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app", Labels: map[string]string{deriveLabel: "true"}}, Data: map[string]string{"password": "hunter2"}}
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "secret created", func() (bool, error) {
		d, err := secretData(admin, ns, "app")
		return err == nil && d["password"] == "hunter2", err
	})

	// Update: the Secret follows.
	cur, err := cms.Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Data["password"] = "correct horse"
	if _, err := cms.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "secret updated", func() (bool, error) {
		d, err := secretData(admin, ns, "app")
		return err == nil && d["password"] == "correct horse", err
	})

	// An owned object's change reconciles the owner: a deleted Secret is
	// made again.
	if err := admin.CoreV1().Secrets(ns).Delete(ctx, "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "secret recreated after deletion", func() (bool, error) {
		d, err := secretData(admin, ns, "app")
		return err == nil && d["password"] == "correct horse", err
	})

	// The predicate filters unlabelled ConfigMaps: never reconciled. A
	// labelled one created after it is the barrier.
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "plain"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	barrier := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "barrier", Labels: map[string]string{deriveLabel: "true"}}}
	if _, err := cms.Create(ctx, barrier, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "barrier secret", func() (bool, error) {
		_, err := secretData(admin, ns, "barrier")
		return err == nil, err
	})
	if n := r.count(reconcile.Request{Namespace: ns, Name: "plain"}); n != 0 {
		t.Errorf("unlabelled ConfigMap reconciled %d times, want 0", n)
	}

	// Delete: the Secret goes.
	if err := cms.Delete(ctx, "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "secret deleted", func() (bool, error) {
		_, err := secretData(admin, ns, "app")
		return apierrors.IsNotFound(err), err
	})

	// Metrics and probes over HTTP.
	metrics := httpGet(t, "http://"+mgr.Addr("metrics")+"/metrics")
	for _, want := range []string{
		`controller_runtime_reconcile_total{controller="cm-secret",result="success"}`,
		`workqueue_adds_total{controller="cm-secret",name="cm-secret"}`,
		`capstan_reconcile_triggers_total{controller="cm-secret",trigger="owned"}`,
		`controller_runtime_max_concurrent_reconciles{controller="cm-secret"} 1`,
		`capstan_informer_cached_objects`,
		`go_goroutines`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, path := range []string{"/healthz", "/readyz", "/healthz/ping", "/readyz/started"} {
		if got := httpGet(t, "http://"+mgr.Addr("health")+path); got != "ok" {
			t.Errorf("%s: got %q, want ok", path, got)
		}
	}
	if err := stop(); err != nil {
		t.Errorf("Start returned %v", err)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: status %d: %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// TestManagerLeaderElection: of two managers on one Lease only the leader
// reconciles; when it stops, the other takes over.
func TestManagerLeaderElection(t *testing.T) {
	admin, err := kubernetes.NewForConfig(sharedEnv(t).Config())
	if err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t, admin)
	le := func(id string) *reconcile.LeaderElection {
		return &reconcile.LeaderElection{
			Namespace: ns, Name: "example-lock", Identity: id,
			LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 300 * time.Millisecond,
			ReleaseOnCancel: true,
		}
	}
	mgrA, rA := newExampleManager(t, reconcile.ManagerOptions{LeaderElection: le("a")})
	stopA := startManager(t, mgrA)
	waitSynced(t, mgrA)
	eventually(t, "a leads", func() (bool, error) { return mgrA.Elector().IsLeader(), nil })
	mgrB, rB := newExampleManager(t, reconcile.ManagerOptions{LeaderElection: le("b")})
	startManager(t, mgrB)
	waitSynced(t, mgrB)

	ctx := context.Background()
	mk := func(name string) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{deriveLabel: "true"}}, Data: map[string]string{"who": name}}
		if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "secret "+name, func() (bool, error) {
			_, err := secretData(admin, ns, name)
			return err == nil, err
		})
	}
	mk("first")
	first := reconcile.Request{Namespace: ns, Name: "first"}
	if rA.count(first) == 0 || rB.count(first) != 0 {
		t.Errorf("first: reconciled %d times by the leader and %d by the standby, want >0 and 0", rA.count(first), rB.count(first))
	}
	if mgrB.Elector().IsLeader() {
		t.Error("b leads while a does")
	}

	start := time.Now()
	if err := stopA(); err != nil {
		t.Fatalf("stopping a: %v", err)
	}
	eventually(t, "b leads", func() (bool, error) { return mgrB.Elector().IsLeader(), nil })
	t.Logf("handover after graceful stop: %s", time.Since(start).Round(time.Millisecond))
	mk("second")
	second := reconcile.Request{Namespace: ns, Name: "second"}
	if rB.count(second) == 0 || rA.count(second) != 0 {
		t.Errorf("second: reconciled %d times by the new leader and %d by the stopped one, want >0 and 0", rB.count(second), rA.count(second))
	}
}

// TestManagerShutdownWaitsForInFlight: Start returns only once a running
// reconcile has finished, and fails when it outlives the timeout.
func TestManagerShutdownWaitsForInFlight(t *testing.T) {
	for _, tc := range []struct {
		name     string
		timeout  time.Duration
		hold     time.Duration
		wantErr  bool
		minDelay time.Duration
		maxDelay time.Duration // 0: no bound
	}{
		{name: "finishes within timeout", timeout: 10 * time.Second, hold: 500 * time.Millisecond, minDelay: 400 * time.Millisecond},
		{name: "outlives timeout", timeout: 300 * time.Millisecond, hold: 2 * time.Second, wantErr: true, maxDelay: time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			admin, err := kubernetes.NewForConfig(sharedEnv(t).Config())
			if err != nil {
				t.Fatal(err)
			}
			ns := newNamespace(t, admin)
			mgr, err := reconcile.NewManager(reconcile.ManagerOptions{Config: sharedEnv(t).Config(), GracefulShutdownTimeout: tc.timeout})
			if err != nil {
				t.Fatal(err)
			}
			inFlight := make(chan struct{}, 1)
			r := reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
				if req.Namespace != ns {
					return reconcile.Done(), nil
				}
				inFlight <- struct{}{}
				time.Sleep(tc.hold) // work that ignores ctx, as real work may
				return reconcile.Done(), nil
			})
			if _, err := mgr.NewController(r, reconcile.Options{Name: "slow", ShutdownGracePeriod: time.Minute}, reconcile.For[*corev1.ConfigMap]()); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- mgr.Start(ctx) }()
			waitSynced(t, mgr)
			if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			<-inFlight
			start := time.Now()
			cancel()
			err = <-done
			took := time.Since(start)
			if took < tc.minDelay {
				t.Errorf("Start returned after %s, before the in-flight reconcile could finish", took)
			}
			if tc.maxDelay > 0 && took > tc.maxDelay {
				t.Errorf("Start returned after %s, want within %s of the timeout", took, tc.maxDelay)
			}
			if (err != nil) != tc.wantErr {
				t.Errorf("Start: got %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				time.Sleep(tc.hold) // let the abandoned reconcile end before the leak check
			}
		})
	}
}

func TestManagerMisuse(t *testing.T) {
	if _, err := reconcile.NewManager(reconcile.ManagerOptions{}); err == nil {
		t.Error("NewManager without Config: got no error")
	}
	mgr, err := reconcile.NewManager(reconcile.ManagerOptions{Config: sharedEnv(t).Config()})
	if err != nil {
		t.Fatal(err)
	}
	noop := reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) { return reconcile.Done(), nil })
	if _, err := mgr.NewController(noop, reconcile.Options{Name: "dup"}); err != nil {
		t.Fatal(err)
	}
	if _, err := mgr.NewController(noop, reconcile.Options{Name: "dup"}); err == nil {
		t.Error("second controller with the same name: got no error")
	}
	if err := mgr.Add(nil, reconcile.EveryReplica); err == nil {
		t.Error("Add(nil): got no error")
	}
	if err := mgr.Add(reconcile.RunnableFunc(func(ctx context.Context) error { <-ctx.Done(); return nil }), 0); err == nil {
		t.Error("Add with scope 0: got no error")
	}
	if err := mgr.AddHealthCheck("bad name", func(*http.Request) error { return nil }); err == nil {
		t.Error("AddHealthCheck with a space: got no error")
	}
	// A failing runnable stops the manager with its error.
	boom := errors.New("boom")
	if err := mgr.Add(reconcile.RunnableFunc(func(context.Context) error { return boom }), reconcile.EveryReplica); err != nil {
		t.Fatal(err)
	}
	err = mgr.Start(context.Background())
	if !errors.Is(err, boom) {
		t.Errorf("Start with a failing runnable: got %v, want it to wrap boom", err)
	}
	if err := mgr.Start(context.Background()); err == nil {
		t.Error("second Start: got no error")
	}
}

// TestManagerEventRecorder: an event recorded through the Manager reaches
// the API server, attributed to the component.
func TestManagerEventRecorder(t *testing.T) {
	admin, err := kubernetes.NewForConfig(sharedEnv(t).Config())
	if err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t, admin)
	mgr, err := reconcile.NewManager(reconcile.ManagerOptions{Config: sharedEnv(t).Config()})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := mgr.EventRecorder("widget-controller")
	if err != nil {
		t.Fatal(err)
	}
	startManager(t, mgr)
	cm, err := admin.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "subject"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec.Event(cm, corev1.EventTypeNormal, "Synced", "all good")
	eventually(t, "event recorded", func() (bool, error) {
		list, err := admin.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range list.Items {
			if e.Reason == "Synced" && e.InvolvedObject.Name == "subject" && e.Source.Component == "widget-controller" {
				return true, nil
			}
		}
		return false, nil
	})
}
