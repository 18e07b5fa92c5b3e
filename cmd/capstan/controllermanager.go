package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/capstan-io/capstan/examples/controllermanager"
)

// runControllerManager is `capstan controller-manager`: the reference
// controllers behind kube-controller-manager's flag names.
func runControllerManager(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("controller-manager", stderr)
	kubeconfig := fs.String("kubeconfig", "", "path to a kubeconfig (default: $KUBECONFIG, ~/.kube/config, then in-cluster)")
	controllers := fs.String("controllers", "*", "controllers to run, kube-controller-manager's syntax: '*' all, 'foo' on, '-foo' off; known: "+strings.Join(controllermanager.Known(), ", "))
	qps := fs.Float64("kube-api-qps", controllermanager.DefaultQPS, "requests per second to the API server (negative: unlimited)")
	burst := fs.Int("kube-api-burst", controllermanager.DefaultBurst, "burst of requests to the API server")
	deploymentSyncs := fs.Int("concurrent-deployment-syncs", controllermanager.DefaultConcurrentSyncs, "Deployments synced at once")
	replicasetSyncs := fs.Int("concurrent-replicaset-syncs", controllermanager.DefaultConcurrentSyncs, "ReplicaSets synced at once")
	leaderElect := fs.Bool("leader-elect", true, "run the controllers only while holding the leader Lease")
	leNamespace := fs.String("leader-elect-resource-namespace", controllermanager.DefaultLeaderElectNamespace, "namespace of the leader Lease")
	leName := fs.String("leader-elect-resource-name", controllermanager.DefaultLeaderElectName, "name of the leader Lease")
	leaseDuration := fs.Duration("leader-elect-lease-duration", controllermanager.DefaultLeaseDuration, "how long a Lease holds without renewal")
	renewDeadline := fs.Duration("leader-elect-renew-deadline", controllermanager.DefaultRenewDeadline, "how long the leader retries a renewal before it stops leading")
	retryPeriod := fs.Duration("leader-elect-retry-period", controllermanager.DefaultRetryPeriod, "how often candidates try to acquire or renew")
	metricsAddr := fs.String("metrics-bind-address", ":8080", "address of /metrics ('' to disable)")
	healthAddr := fs.String("health-probe-bind-address", ":8081", "address of /healthz and /readyz ('' to disable)")
	verbosity := fs.Int("v", 0, "log verbosity (0: changes and errors; 1 and up: more)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*kubeconfig)
	if err != nil {
		return err
	}
	log := newLogger(stderr, *verbosity)
	err = controllermanager.Run(ctx, controllermanager.Options{
		Config:      cfg,
		Controllers: splitList(*controllers),
		ConcurrentSyncs: map[string]int{
			"deployment": *deploymentSyncs,
			"replicaset": *replicasetSyncs,
		},
		QPS:                  float32(*qps),
		Burst:                *burst,
		LeaderElect:          *leaderElect,
		LeaderElectNamespace: *leNamespace,
		LeaderElectName:      *leName,
		LeaseDuration:        *leaseDuration,
		RenewDeadline:        *renewDeadline,
		RetryPeriod:          *retryPeriod,
		MetricsAddr:          *metricsAddr,
		HealthAddr:           *healthAddr,
		Logger:               log,
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "controller-manager stopped")
	return nil
}

// loadConfig loads a kubeconfig: path if given, else client-go's default
// rules ($KUBECONFIG, ~/.kube/config), else the in-cluster config.
func loadConfig(path string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err == nil {
		return cfg, nil
	}
	if path == "" && clientcmd.IsEmptyConfig(err) {
		if in, inErr := rest.InClusterConfig(); inErr == nil {
			return in, nil
		}
	}
	if path != "" {
		return nil, fmt.Errorf("loading kubeconfig %s: %w", path, err)
	}
	return nil, fmt.Errorf("no kubeconfig (give --kubeconfig, set KUBECONFIG, or run in a cluster): %w", err)
}

// newLogger logs text lines to w through slog; verbosity v shows logr's
// V(1..v) lines too.
func newLogger(w io.Writer, v int) logr.Logger {
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.Level(-v)})
	return logr.FromSlogHandler(h)
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
