package reconcile_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/capstan-io/capstan/informer"
	"github.com/capstan-io/capstan/reconcile"
)

// A complete small operator: every ConfigMap labelled greeting=true gets a
// Secret of the same name holding its data. It needs a cluster, so it is
// compiled but not run by `go test`; TestManagerRunsExampleController runs
// the same controller on envtest.
func Example_operator() {
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	mgr, err := reconcile.NewManager(reconcile.ManagerOptions{
		Config:         cfg,
		Logger:         logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, nil)),
		MetricsAddr:    ":8080",
		HealthAddr:     ":8081",
		LeaderElection: &reconcile.LeaderElection{Namespace: "default", Name: "greeting-operator", ReleaseOnCancel: true},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	// Writes go through the Manager's fenced config: refused once the lease
	// is lost.
	cs := kubernetes.NewForConfigOrDie(mgr.Config())
	configMaps, err := informer.For[*corev1.ConfigMap](mgr.Informers(), informer.Scope{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}

	r := reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		cm, ok := configMaps.Lister().Get(req.Namespace, req.Name)
		if !ok {
			return reconcile.Done(), nil // deleted: the garbage collector removes the owned Secret
		}
		yes := true
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: cm.Name, Namespace: cm.Namespace, OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "ConfigMap", Name: cm.Name, UID: cm.UID, Controller: &yes,
			}}},
			StringData: cm.Data,
		}
		_, err := cs.CoreV1().Secrets(req.Namespace).Create(ctx, secret, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return reconcile.Done(), nil
		}
		return reconcile.Done(), err // an error is retried with backoff
	})

	greeting := func(ev reconcile.Event[*corev1.ConfigMap]) bool { return ev.Object.Labels["greeting"] == "true" }
	_, err = mgr.NewController(r, reconcile.Options{Name: "greeting"},
		reconcile.For[*corev1.ConfigMap](greeting),
		reconcile.Owns[*corev1.Secret](),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := mgr.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}

// Results say what happens after a successful reconcile; errors say retry.
func ExampleResult() {
	fmt.Println(reconcile.Done())
	fmt.Println(reconcile.RequeueAfter(30e9))
	err := reconcile.TerminalError(fmt.Errorf("spec.replicas: must be positive"))
	fmt.Println(reconcile.IsTerminal(err), err)
	// Output:
	// done
	// requeue after 30s
	// true terminal error: spec.replicas: must be positive
}

// Triggers record why a reconcile runs, for logs and metrics.
func ExampleTrigger() {
	t := reconcile.TriggerSelf | reconcile.TriggerOwned
	fmt.Println(t, t.Has(reconcile.TriggerOwned), t.Has(reconcile.TriggerRequeue))
	// Output: self+owned true false
}
