package reconcile_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/capstan-io/capstan/informer"
	"github.com/capstan-io/capstan/reconcile"
)

// TestWriteOnlyClientRecordsItsWrites is the regression test for two bugs
// that cost one needless reconcile per write:
//   - a typed Client recorded its writes (for read-your-writes and echo
//     filtering) only once it had read through itself, so a controller that
//     reads through a lister and writes through a Client lost both;
//   - the watch event of our own write often arrives before the write's
//     answer, so it was queued before the write was known as ours.
//
// The controller below reads ConfigMaps from the shared informer and writes
// through a Client it never reads with. Each ConfigMap is reconciled once for
// its creation; its own update (an annotation) must not cause a second
// reconcile, while a foreign change afterwards must cause exactly one.
func TestWriteOnlyClientRecordsItsWrites(t *testing.T) {
	env := sharedEnv(t)
	admin, err := kubernetes.NewForConfig(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t, admin)
	mgr, err := reconcile.NewManager(reconcile.ManagerOptions{Config: env.Config()})
	if err != nil {
		t.Fatal(err)
	}
	cms, err := informer.For[*corev1.ConfigMap](mgr.Informers(), informer.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	writer := mustClient[*corev1.ConfigMap](t, mgr)
	var calls atomic.Int32
	r := reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		if req.Namespace != ns {
			return reconcile.Done(), nil
		}
		calls.Add(1)
		cm, ok := cms.Lister().Get(req.Namespace, req.Name)
		if !ok || cm.Annotations["touched"] == "true" {
			return reconcile.Done(), nil
		}
		upd := cm.DeepCopy()
		if upd.Annotations == nil {
			upd.Annotations = map[string]string{}
		}
		upd.Annotations["touched"] = "true"
		_, err := writer.Update(ctx, upd, metav1.UpdateOptions{})
		return reconcile.Done(), err
	})
	if _, err := mgr.NewController(r, reconcile.Options{Name: "write-only"}, reconcile.For[*corev1.ConfigMap]()); err != nil {
		t.Fatal(err)
	}
	startManager(t, mgr)
	waitSynced(t, mgr)

	const n = 10
	ctx := context.Background()
	for i := range n {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-" + string(rune('a'+i))}}
		if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	touched := func() (bool, error) {
		l, err := admin.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		k := 0
		for _, cm := range l.Items {
			if cm.Annotations["touched"] == "true" {
				if c, ok := cms.Lister().Get(ns, cm.Name); ok && c.ResourceVersion == cm.ResourceVersion {
					k++ // the cache has seen our write too
				}
			}
		}
		return k == n, nil
	}
	eventually(t, "every ConfigMap touched and its write cached", touched)
	// The echoes have been delivered (the cache holds the writes); give the
	// handlers' queues a moment to drain before counting.
	time.Sleep(300 * time.Millisecond)
	if got := calls.Load(); got != n {
		t.Errorf("reconciles after %d creates, each answered by one own write: got %d, want %d (own echoes must not trigger)", n, got, n)
	}

	// A foreign change is never taken for an echo.
	cm, err := admin.CoreV1().ConfigMaps(ns).Get(ctx, "cm-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data = map[string]string{"foreign": "change"}
	if _, err := admin.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the foreign change reconciled", func() (bool, error) { return calls.Load() == n+1, nil })
}
