package reconcile_test

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/capstan-io/capstan/informer"
	"github.com/capstan-io/capstan/reconcile"
)

// delayedWatch delivers each event of w a fixed delay after it arrived, in
// order: a cache that lags the API server, as a slow watch or a busy
// informer makes it.
type delayedWatch struct {
	w     watch.Interface
	out   chan watch.Event
	stop  chan struct{}
	once  sync.Once
	delay time.Duration
}

func newDelayedWatch(w watch.Interface, delay time.Duration) *delayedWatch {
	d := &delayedWatch{w: w, out: make(chan watch.Event), stop: make(chan struct{}), delay: delay}
	type stamped struct {
		ev watch.Event
		at time.Time
	}
	buf := make(chan stamped, 100000)
	go func() {
		defer close(buf)
		for ev := range w.ResultChan() {
			buf <- stamped{ev, time.Now().Add(delay)}
		}
	}()
	go func() {
		defer close(d.out)
		for s := range buf {
			select {
			case <-time.After(time.Until(s.at)):
			case <-d.stop:
				return
			}
			select {
			case d.out <- s.ev:
			case <-d.stop:
				return
			}
		}
	}()
	return d
}

func (d *delayedWatch) Stop() {
	d.once.Do(func() { close(d.stop); d.w.Stop() })
}

func (d *delayedWatch) ResultChan() <-chan watch.Event { return d.out }

// callCounter counts API calls by method and resource path segment.
type callCounter struct {
	mu     sync.Mutex
	counts map[string]int
	next   http.RoundTripper
}

func (c *callCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet {
		c.mu.Lock()
		c.counts[req.Method]++
		c.mu.Unlock()
	}
	return c.next.RoundTrip(req)
}

func (c *callCounter) get(method string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[method]
}

const replicasKey = "replicas"

// TestStaleCacheNeverOvershoots: a controller keeps N Secrets per owner
// ConfigMap while its Secret cache lags the API server by 2s. With
// read-your-writes (creates) and expectations (deletes) it never creates
// or deletes more than needed, scaling 0→50→5→50.
func TestStaleCacheNeverOvershoots(t *testing.T) {
	if testing.Short() {
		t.Skip("takes ~20s of envtest time")
	}
	env := sharedEnv(t)
	admin, err := kubernetes.NewForConfig(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t, admin)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The controller's writes are counted at the transport.
	counter := &callCounter{counts: map[string]int{}}
	wcfg := env.Config()
	wcfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { counter.next = rt; return counter })
	writer, err := kubernetes.NewForConfig(wcfg)
	if err != nil {
		t.Fatal(err)
	}

	// A Secret informer whose watch lags by 2s.
	secretsLW := informer.NewListWatch[*corev1.Secret](
		admin.CoreV1().Secrets(ns).List,
		func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			w, err := admin.CoreV1().Secrets(ns).Watch(ctx, opts)
			if err != nil {
				return nil, err
			}
			return newDelayedWatch(w, 2*time.Second), nil
		},
		informer.ListWatchOptions{},
	)
	secrets, err := informer.New[*corev1.Secret](secretsLW, informer.Options[*corev1.Secret]{
		Reflector: informer.ReflectorOptions{WatchList: informer.WatchListOff},
	})
	if err != nil {
		t.Fatal(err)
	}
	owners, err := informer.New[*corev1.ConfigMap](informer.NewListWatch[*corev1.ConfigMap](
		admin.CoreV1().ConfigMaps(ns).List, admin.CoreV1().ConfigMaps(ns).Watch, informer.ListWatchOptions{}),
		informer.Options[*corev1.ConfigMap]{})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = secrets.Run(ctx) }()
	go func() { _ = owners.Run(ctx) }()

	var ctrl *reconcile.Controller
	exp, err := reconcile.NewExpectations(reconcile.ExpectationsOptions[reconcile.Request]{
		// Our creates' own events are filtered as echoes: when the last
		// one is observed, wake the owner ourselves.
		OnSatisfied: func(owner reconcile.Request) { ctrl.Enqueue(owner) },
	})
	if err != nil {
		t.Fatal(err)
	}
	var reconciles atomic.Int32
	r := reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		reconciles.Add(1)
		owner, ok := owners.Lister().Get(req.Namespace, req.Name)
		if !ok {
			return reconcile.Done(), nil
		}
		if !exp.Satisfied(req) {
			return reconcile.Done(), nil // the missing events re-queue the owner
		}
		want, _ := strconv.Atoi(owner.Data[replicasKey])
		sel := labels.SelectorFromSet(labels.Set{"owner": owner.Name})
		have := secrets.Lister().ListNamespace(req.Namespace, sel)
		switch diff := want - len(have); {
		case diff > 0:
			exp.ExpectCreates(req, diff)
			for range diff {
				s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{GenerateName: owner.Name + "-", Namespace: req.Namespace, Labels: map[string]string{"owner": owner.Name}}}
				created, err := writer.CoreV1().Secrets(req.Namespace).Create(ctx, s, metav1.CreateOptions{})
				if err != nil {
					exp.CreateFailed(req, 1)
					return reconcile.Done(), err
				}
				reconcile.RecordWrite(ctx, secrets, created.Namespace, created.Name, created.ResourceVersion)
			}
		case diff < 0:
			victims := have[:-diff]
			uids := make([]types.UID, len(victims))
			for i, v := range victims {
				uids[i] = v.UID
			}
			exp.ExpectDeletes(req, uids...)
			for _, v := range victims {
				err := writer.CoreV1().Secrets(req.Namespace).Delete(ctx, v.Name, metav1.DeleteOptions{})
				if err != nil && !apierrors.IsNotFound(err) {
					exp.DeleteFailed(req, v.UID)
					return reconcile.Done(), err
				}
			}
		}
		return reconcile.Done(), nil
	})
	ctrl, err = reconcile.New(r, reconcile.Options{Name: "keeper"})
	if err != nil {
		t.Fatal(err)
	}
	ownerOf := func(_ context.Context, s *corev1.Secret) []reconcile.Request {
		return []reconcile.Request{{Namespace: s.Namespace, Name: s.Labels["owner"]}}
	}
	if err := ctrl.Watch(reconcile.For[*corev1.ConfigMap]().From(owners), reconcile.Watches(ownerOf).From(secrets)); err != nil {
		t.Fatal(err)
	}
	// Expectations learn from the same (lagging) cache.
	ownerKey := func(s *corev1.Secret) (reconcile.Request, bool) {
		return reconcile.Request{Namespace: s.Namespace, Name: s.Labels["owner"]}, s.Labels["owner"] != ""
	}
	if _, err := secrets.AddHandler(reconcile.ExpectationsHandler(exp, ownerKey), informer.HandlerOptions{Name: "expectations"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ctrl.Start(ctx) }()

	owner := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner"}, Data: map[string]string{replicasKey: "0"}}
	if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, owner, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var wantCreates, wantDeletes, prev int
	for _, n := range []int{50, 5, 50} {
		cur, err := admin.CoreV1().ConfigMaps(ns).Get(ctx, "owner", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cur.Data[replicasKey] = strconv.Itoa(n)
		if _, err := admin.CoreV1().ConfigMaps(ns).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if n > prev {
			wantCreates += n - prev
		} else {
			wantDeletes += prev - n
		}
		prev = n
		eventually(t, "scale to "+strconv.Itoa(n), func() (bool, error) {
			list, err := admin.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			live := 0
			for _, s := range list.Items {
				if s.DeletionTimestamp == nil {
					live++
				}
			}
			return live == n && counter.get(http.MethodPost) >= wantCreates && counter.get(http.MethodDelete) >= wantDeletes, nil
		})
		// Let the lagging cache catch up and any overshoot show.
		time.Sleep(2500 * time.Millisecond)
		if got := counter.get(http.MethodPost); got != wantCreates {
			t.Fatalf("after scaling to %d: %d creates, want %d", n, got, wantCreates)
		}
		if got := counter.get(http.MethodDelete); got != wantDeletes {
			t.Fatalf("after scaling to %d: %d deletes, want %d", n, got, wantDeletes)
		}
	}
	writes := wantCreates + wantDeletes
	// Each own write may cause at most one extra reconcile; the owner's own
	// updates (4) cause one each.
	if got := int(reconciles.Load()); got > writes+4 {
		t.Errorf("reconciles: got %d, want at most %d (one per own write plus one per owner change)", got, writes+4)
	}
	t.Logf("creates %d, deletes %d, reconciles %d", wantCreates, wantDeletes, reconciles.Load())
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

// TestForeignChangeDuringOwnWriteIsReconciled: a controller that writes its
// observation back onto the object it reconciles (a status-like write)
// filters the echo of that write, but a foreign spec change landing at the
// same time must still be reconciled, never swallowed as an echo.
func TestForeignChangeDuringOwnWriteIsReconciled(t *testing.T) {
	env := sharedEnv(t)
	admin, err := kubernetes.NewForConfig(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t, admin)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cms, err := informer.New[*corev1.ConfigMap](informer.NewListWatch[*corev1.ConfigMap](
		admin.CoreV1().ConfigMaps(ns).List, admin.CoreV1().ConfigMaps(ns).Watch, informer.ListWatchOptions{}),
		informer.Options[*corev1.ConfigMap]{})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = cms.Run(ctx) }()
	var echoes atomic.Int32
	r := reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		cm, ok := cms.Lister().Get(req.Namespace, req.Name)
		if !ok || cm.Annotations["observed"] == cm.Data["spec"] {
			return reconcile.Done(), nil
		}
		upd := cm.DeepCopy()
		if upd.Annotations == nil {
			upd.Annotations = map[string]string{}
		}
		upd.Annotations["observed"] = cm.Data["spec"]
		got, err := admin.CoreV1().ConfigMaps(req.Namespace).Update(ctx, upd, metav1.UpdateOptions{})
		if err != nil {
			return reconcile.Done(), err // a conflict: quietly retried
		}
		echoes.Add(1)
		reconcile.RecordWrite(ctx, cms, got.Namespace, got.Name, got.ResourceVersion)
		return reconcile.Done(), nil
	})
	ctrl, err := reconcile.New(r, reconcile.Options{Name: "observer", RateLimiter: fastLimiter()})
	if err != nil {
		t.Fatal(err)
	}
	if err := ctrl.Watch(reconcile.For[*corev1.ConfigMap]().From(cms)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ctrl.Start(ctx) }()

	obj := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "target"}, Data: map[string]string{"spec": "v0"}}
	if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Foreign changes in quick succession, racing the controller's writes.
	last := ""
	for i := 1; i <= 30; i++ {
		last = "v" + strconv.Itoa(i)
		for {
			cur, err := admin.CoreV1().ConfigMaps(ns).Get(ctx, "target", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			cur.Data["spec"] = last
			_, err = admin.CoreV1().ConfigMaps(ns).Update(ctx, cur, metav1.UpdateOptions{})
			if err == nil {
				break
			}
			if !apierrors.IsConflict(err) {
				t.Fatal(err)
			}
		}
		if i%3 == 0 {
			time.Sleep(time.Duration(i) * time.Millisecond) // vary the overlap
		}
	}
	eventually(t, "the last foreign change observed", func() (bool, error) {
		cur, err := admin.CoreV1().ConfigMaps(ns).Get(ctx, "target", metav1.GetOptions{})
		return err == nil && cur.Annotations["observed"] == last, err
	})
	t.Logf("controller writes: %d", echoes.Load())
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}
