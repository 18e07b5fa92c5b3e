// Package controllermanager runs capstan's reference controllers the way
// kube-controller-manager runs its own: one process, one Manager (shared
// caches, metrics, health probes), the controllers chosen with
// kube-controller-manager's --controllers syntax, optional Lease leader
// election, and one client-side rate limit for the API server.
//
//	err := controllermanager.Run(ctx, controllermanager.Options{
//		Config:      cfg,
//		Controllers: []string{"*"},
//		LeaderElect: true,
//	})
//
// `capstan controller-manager` is this package behind command-line flags.
//
// As in kube-controller-manager, each controller's API requests share one
// client-side rate limit of QPS/Burst of its own (reconcile.RateLimited);
// the shared informers and the event recorder have theirs. Difference:
// metrics and probes are plain HTTP on their own addresses, not behind its
// secure port.
package controllermanager

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"

	"github.com/capstan-io/capstan/examples/deployment"
	"github.com/capstan-io/capstan/examples/replicaset"
	"github.com/capstan-io/capstan/reconcile"
)

// Defaults, kube-controller-manager's where it has the same setting.
const (
	DefaultQPS                   = 20 // --kube-api-qps
	DefaultBurst                 = 30 // --kube-api-burst
	DefaultLeaderElectNamespace  = "kube-system"
	DefaultLeaderElectName       = "capstan-controller-manager"
	DefaultConcurrentSyncs       = 5 // --concurrent-deployment-syncs, --concurrent-replicaset-syncs
	DefaultLeaseDuration         = 15 * time.Second
	DefaultRenewDeadline         = 10 * time.Second
	DefaultRetryPeriod           = 2 * time.Second
	defaultGracefulShutdownLimit = 30 * time.Second
)

// controller is one reference controller this package can run.
type controller struct {
	name  string
	start func(mgr *reconcile.Manager, c settings) error
}

// settings are what every controller is started with.
type settings struct {
	workers int
	qps     float32
	burst   int
	log     logr.Logger
}

// all lists the controllers in the order they are started, each on by
// default as in kube-controller-manager.
var all = []controller{
	{"deployment", func(mgr *reconcile.Manager, c settings) error {
		_, err := deployment.New(mgr, deployment.Options{Workers: c.workers, Logger: c.log, QPS: c.qps, Burst: c.burst})
		return err
	}},
	{"replicaset", func(mgr *reconcile.Manager, c settings) error {
		_, err := replicaset.New(mgr, replicaset.Options{Workers: c.workers, Logger: c.log, QPS: c.qps, Burst: c.burst})
		return err
	}},
}

// Known returns the names of the controllers this package runs, sorted.
func Known() []string {
	names := make([]string, len(all))
	for i, c := range all {
		names[i] = c.name
	}
	slices.Sort(names)
	return names
}

// Options configure Run. Config is required; every zero value is a sane
// default.
type Options struct {
	// Config reaches the API server. Its QPS and Burst are replaced by
	// QPS and Burst below.
	Config *rest.Config
	// Controllers chooses the controllers, as kube-controller-manager's
	// --controllers: "*" turns on every controller that is on by default,
	// "name" turns one on, "-name" turns one off. Default ["*"].
	Controllers []string
	// ConcurrentSyncs is the number of workers per controller, by name;
	// default DefaultConcurrentSyncs.
	ConcurrentSyncs map[string]int
	// QPS and Burst limit each controller's requests to the API server
	// (one budget per controller, another for the shared informers, as in
	// kube-controller-manager); defaults 20 and 30, its own. A negative QPS
	// turns the limits off.
	QPS   float32
	Burst int

	// LeaderElect runs the controllers only while this process holds the
	// Lease LeaderElectNamespace/LeaderElectName; a process that loses it
	// stops writing at once and campaigns again.
	LeaderElect          bool
	LeaderElectNamespace string
	LeaderElectName      string
	LeaderElectIdentity  string // default hostname + random suffix
	LeaseDuration        time.Duration
	RenewDeadline        time.Duration
	RetryPeriod          time.Duration

	// MetricsAddr serves /metrics and HealthAddr /healthz and /readyz;
	// empty serves nothing.
	MetricsAddr, HealthAddr string
	// Logger receives every log; default logr.Discard().
	Logger logr.Logger
}

// Enabled reports whether controller name is on under kube-controller-
// manager's --controllers rules: an explicit "name" or "-name" decides;
// otherwise "*" turns on the controllers that are on by default (all of
// ours).
func Enabled(controllers []string, name string) bool {
	star := false
	for _, c := range controllers {
		switch c {
		case name:
			return true
		case "-" + name:
			return false
		case "*":
			star = true
		}
	}
	return star
}

// validate checks the --controllers list: every name must be known.
func validate(controllers []string) error {
	known := Known()
	for i, c := range controllers {
		name := strings.TrimPrefix(c, "-")
		if c == "*" {
			continue
		}
		if !slices.Contains(known, name) {
			return fmt.Errorf("controllermanager: Options.Controllers[%d]: unknown controller %q (known: %s)", i, c, strings.Join(known, ", "))
		}
	}
	return nil
}

func (o *Options) defaults() error {
	if o.Config == nil {
		return errors.New("controllermanager: Options.Config: required")
	}
	if len(o.Controllers) == 0 {
		o.Controllers = []string{"*"}
	}
	if err := validate(o.Controllers); err != nil {
		return err
	}
	for name, n := range o.ConcurrentSyncs {
		if !slices.Contains(Known(), name) {
			return fmt.Errorf("controllermanager: Options.ConcurrentSyncs: unknown controller %q", name)
		}
		if n < 0 {
			return fmt.Errorf("controllermanager: Options.ConcurrentSyncs[%q]: must not be negative, got %d", name, n)
		}
	}
	if o.QPS == 0 {
		o.QPS = DefaultQPS
	}
	if o.Burst <= 0 {
		o.Burst = DefaultBurst
	}
	if o.LeaderElectNamespace == "" {
		o.LeaderElectNamespace = DefaultLeaderElectNamespace
	}
	if o.LeaderElectName == "" {
		o.LeaderElectName = DefaultLeaderElectName
	}
	if o.LeaseDuration == 0 {
		o.LeaseDuration = DefaultLeaseDuration
	}
	if o.RenewDeadline == 0 {
		o.RenewDeadline = DefaultRenewDeadline
	}
	if o.RetryPeriod == 0 {
		o.RetryPeriod = DefaultRetryPeriod
	}
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
	return nil
}

// NewManager builds the Manager with the chosen controllers registered,
// without starting it.
func NewManager(opts Options) (*reconcile.Manager, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	cfg := rest.CopyConfig(opts.Config)
	cfg.QPS, cfg.Burst = opts.QPS, opts.Burst
	if cfg.UserAgent == "" {
		cfg.UserAgent = "capstan-controller-manager"
	}
	mo := reconcile.ManagerOptions{
		Config:                  cfg,
		Logger:                  opts.Logger,
		MetricsAddr:             opts.MetricsAddr,
		HealthAddr:              opts.HealthAddr,
		GracefulShutdownTimeout: defaultGracefulShutdownLimit,
	}
	if opts.LeaderElect {
		mo.LeaderElection = &reconcile.LeaderElection{
			Namespace:       opts.LeaderElectNamespace,
			Name:            opts.LeaderElectName,
			Identity:        opts.LeaderElectIdentity,
			LeaseDuration:   opts.LeaseDuration,
			RenewDeadline:   opts.RenewDeadline,
			RetryPeriod:     opts.RetryPeriod,
			ReleaseOnCancel: true,
		}
	}
	mgr, err := reconcile.NewManager(mo)
	if err != nil {
		return nil, fmt.Errorf("controllermanager: %w", err)
	}
	started := 0
	for _, c := range all {
		if !Enabled(opts.Controllers, c.name) {
			continue
		}
		workers := opts.ConcurrentSyncs[c.name]
		if workers == 0 {
			workers = DefaultConcurrentSyncs
		}
		if err := c.start(mgr, settings{workers: workers, qps: opts.QPS, burst: opts.Burst, log: opts.Logger.WithName(c.name)}); err != nil {
			return nil, fmt.Errorf("controllermanager: starting controller %q: %w", c.name, err)
		}
		opts.Logger.Info("Controller registered", "controller", c.name, "workers", workers)
		started++
	}
	if started == 0 {
		return nil, fmt.Errorf("controllermanager: Options.Controllers %q turns every controller off", opts.Controllers)
	}
	return mgr, nil
}

// Run runs the chosen controllers until ctx ends, then shuts down
// gracefully (in-flight syncs finish; with leader election the Lease is
// released so another replica takes over at once).
func Run(ctx context.Context, opts Options) error {
	mgr, err := NewManager(opts)
	if err != nil {
		return err
	}
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("controllermanager: %w", err)
	}
	return nil
}
