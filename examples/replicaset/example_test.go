package replicaset_test

import (
	"context"
	"log"
	"os/signal"
	"syscall"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/capstan-io/capstan/examples/replicaset"
	"github.com/capstan-io/capstan/reconcile"
)

// Run the ReplicaSet controller against the cluster of the current
// kubeconfig context until SIGINT or SIGTERM. (Compile-only: it needs a
// cluster.)
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		log.Fatal(err)
	}
	mgr, err := reconcile.NewManager(reconcile.ManagerOptions{
		Config:         cfg,
		LeaderElection: &reconcile.LeaderElection{Namespace: "kube-system", Name: "capstan-replicaset"},
	})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := replicaset.New(mgr, replicaset.Options{}); err != nil {
		log.Fatal(err)
	}
	if err := mgr.Start(ctx); err != nil {
		log.Fatal(err)
	}
}
