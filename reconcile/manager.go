package reconcile

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"github.com/capstan-io/capstan/informer"
	"github.com/capstan-io/capstan/internal/lazymapper"
	"github.com/capstan-io/capstan/leaderelection"
	"github.com/capstan-io/capstan/workqueue"
)

var _ ClientSource = (*Manager)(nil)

// Runnable is anything a Manager runs: Start blocks until ctx ends (or the
// work fails) and returns.
type Runnable interface {
	Start(ctx context.Context) error
}

// RunnableFunc adapts a function to Runnable.
type RunnableFunc func(ctx context.Context) error

// Start calls f.
func (f RunnableFunc) Start(ctx context.Context) error { return f(ctx) }

// RunScope says on which replicas a runnable runs.
type RunScope uint8

const (
	// LeaderOnly runnables run only while this replica leads (always, when
	// leader election is off). Their context ends the instant leadership is
	// lost, and their writes through the Manager's Config are fenced.
	LeaderOnly RunScope = iota + 1
	// EveryReplica runnables run on every replica from Start to shutdown.
	// Their context is marked leaderelection.Unfenced: they may write
	// whether or not this replica leads.
	EveryReplica
)

// LeaderElection configures the Lease a Manager campaigns for. Namespace
// and Name are required; durations default to leaderelection's (15s lease,
// 10s renew deadline, 2s retry).
type LeaderElection struct {
	Namespace, Name string
	// Identity defaults to hostname + random suffix.
	Identity                                  string
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// ReleaseOnCancel clears the Lease on graceful shutdown so a successor
	// takes over at once instead of after LeaseDuration. Safe only if the
	// process does no leader-only work after Start returns.
	ReleaseOnCancel bool
}

// ManagerOptions configure a Manager. Config is required; every zero value
// is a sane default.
type ManagerOptions struct {
	// Config reaches the API server.
	Config *rest.Config
	// Scheme maps Go types to kinds. Default: client-go's built-in types.
	// Register CRD types in a scheme of your own and pass it.
	Scheme *runtime.Scheme
	// RESTMapper maps kinds to resources. Default: discovery of one group
	// version at a time, on first use of a kind of it (not the whole
	// discovery document), cached, and fetched again when a kind is
	// missing from it.
	RESTMapper meta.RESTMapper
	// Logger is the root logger. Default: logr.Discard().
	Logger logr.Logger

	// Registry receives every metric of the manager, its controllers,
	// queues, informers and elector, and is served on MetricsAddr. Default:
	// a new registry with the Go and process collectors.
	Registry *prometheus.Registry
	// MetricsAddr is where /metrics is served, e.g. ":8080" or
	// "127.0.0.1:0". Empty: not served.
	MetricsAddr string
	// HealthAddr is where /healthz and /readyz are served. Empty: not
	// served.
	HealthAddr string

	// LeaderElection, if set, makes LeaderOnly runnables (and controllers)
	// run only on the replica holding the Lease.
	LeaderElection *LeaderElection
	// LeaderHealthTolerance is how far past its renew deadline a stuck
	// leader may be before /healthz fails. Default 10s.
	LeaderHealthTolerance time.Duration

	// GracefulShutdownTimeout bounds how long Start waits, after its
	// context ends, for runnables (in-flight reconciles) to return; Start
	// then returns an error and abandons them. Default 30s.
	GracefulShutdownTimeout time.Duration

	// KeepManagedFields keeps metadata.managedFields in the caches (they
	// are stripped by default: often half an object, rarely read).
	KeepManagedFields bool

	// CompactKinds lists kinds whose caches keep objects encoded, for
	// about half the memory and a decode per read of an object not
	// recently used (see informer.FactoryOptions.CompactKinds).
	CompactKinds []schema.GroupKind
}

const (
	defaultGracefulShutdownTimeout = 30 * time.Second
	defaultLeaderHealthTolerance   = 10 * time.Second
)

// Manager runs controllers and other runnables with shared caches, metrics,
// health probes and leader election. Create it with NewManager, add
// controllers with NewController, then call Start once.
//
// Guarantees:
//   - One informer per type is shared by every controller and client of
//     the Manager; informers start when first asked for, never behind the
//     user's back.
//   - LeaderOnly work runs only while leading; once leadership is lost its
//     context ends and its writes through Config are refused (fenced), and
//     the Manager campaigns again instead of exiting.
//   - Start returns only when every runnable has returned (or the graceful
//     shutdown timeout passed, which is an error) and every goroutine it
//     started has ended.
type Manager struct {
	opts    ManagerOptions
	log     logr.Logger
	raw     *rest.Config // unfenced
	cfg     *rest.Config // fenced when leader election is on
	factory *informer.Factory
	metrics *Metrics
	queues  workqueue.MetricsProvider
	elector *leaderelection.Elector
	health  *checks
	ready   *checks

	mu       sync.Mutex
	runnable []scoped
	started  bool
	names    map[string]bool // controller names, unique per manager
	synced   chan struct{}   // closed when caches synced and runnables launched
	addrs    map[string]string

	events record.EventBroadcaster // created by the first EventRecorder call

	// leaderFail fails the running Start; set by Start before the elector
	// runs, read by OnStartedLeading.
	leaderFail func(error)
}

type scoped struct {
	r     Runnable
	scope RunScope
	name  string
}

// NewManager validates opts and builds a Manager. It makes no API call.
func NewManager(opts ManagerOptions) (*Manager, error) {
	if opts.Config == nil {
		return nil, errors.New("reconcile: ManagerOptions.Config is required")
	}
	if opts.Scheme == nil {
		opts.Scheme = clientgoscheme.Scheme
	}
	if opts.Logger.GetSink() == nil {
		opts.Logger = logr.Discard()
	}
	if opts.GracefulShutdownTimeout <= 0 {
		opts.GracefulShutdownTimeout = defaultGracefulShutdownTimeout
	}
	if opts.LeaderHealthTolerance <= 0 {
		opts.LeaderHealthTolerance = defaultLeaderHealthTolerance
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
		opts.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if opts.RESTMapper == nil {
		m, err := lazymapper.New(opts.Config)
		if err != nil {
			return nil, fmt.Errorf("reconcile: ManagerOptions.Config: %w", err)
		}
		opts.RESTMapper = m
	}
	m := &Manager{
		opts:   opts,
		log:    opts.Logger,
		raw:    rest.CopyConfig(opts.Config),
		cfg:    rest.CopyConfig(opts.Config),
		health: newChecks(),
		ready:  newChecks(),
		names:  map[string]bool{},
		synced: make(chan struct{}),
		addrs:  map[string]string{},
	}
	var err error
	if m.metrics, err = NewMetrics(opts.Registry); err != nil {
		return nil, err
	}
	if m.queues, err = workqueue.NewPrometheusMetrics(opts.Registry); err != nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	if le := opts.LeaderElection; le != nil {
		cs, err := kubernetes.NewForConfig(m.raw)
		if err != nil {
			return nil, fmt.Errorf("reconcile: leader election client: %w", err)
		}
		m.elector, err = leaderelection.New(leaderelection.Options{
			Namespace:       le.Namespace,
			Name:            le.Name,
			Client:          cs.CoordinationV1(),
			Identity:        le.Identity,
			LeaseDuration:   le.LeaseDuration,
			RenewDeadline:   le.RenewDeadline,
			RetryPeriod:     le.RetryPeriod,
			ReleaseOnCancel: le.ReleaseOnCancel,
			OnStartedLeading: func(ctx context.Context) {
				m.runAll(ctx, LeaderOnly, m.leaderFail, nil)
			},
			Logger:     opts.Logger.WithName("leaderelection"),
			Registerer: opts.Registry,
		})
		if err != nil {
			return nil, fmt.Errorf("reconcile: ManagerOptions.LeaderElection: %w", err)
		}
		m.cfg = m.elector.Fence().WrapConfig(m.cfg)
		m.health.add("leaderElection", m.elector.HealthCheck(opts.LeaderHealthTolerance))
	}
	m.factory, err = informer.NewFactory(informer.FactoryOptions{
		// Informers only read: they need no fence.
		Config:            m.raw,
		Scheme:            opts.Scheme,
		Mapper:            opts.RESTMapper,
		Logger:            opts.Logger.WithName("informer"),
		Registerer:        opts.Registry,
		KeepManagedFields: opts.KeepManagedFields,
		CompactKinds:      opts.CompactKinds,
	})
	if err != nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	m.health.add("ping", func(*http.Request) error { return nil })
	m.ready.add("started", func(*http.Request) error {
		select {
		case <-m.synced:
			return nil
		default:
			return errors.New("caches not synced yet")
		}
	})
	return m, nil
}

// Config is the configuration for writes. With leader election on, it is
// fenced: a write with a context from LeaderOnly work is refused once this
// replica has lost the lease (EveryReplica runnables get Unfenced contexts).
func (m *Manager) Config() *rest.Config { return rest.CopyConfig(m.cfg) }

// UnfencedConfig is the configuration without the fence, for clients whose
// writes are safe from any replica.
func (m *Manager) UnfencedConfig() *rest.Config { return rest.CopyConfig(m.raw) }

// Scheme is the Manager's scheme.
func (m *Manager) Scheme() *runtime.Scheme { return m.opts.Scheme }

// RESTMapper is the Manager's REST mapper.
func (m *Manager) RESTMapper() meta.RESTMapper { return m.opts.RESTMapper }

// Informers is the shared informer factory: informer.For[T](m.Informers(), scope).
func (m *Manager) Informers() *informer.Factory { return m.factory }

// Registry is the Prometheus registry served on /metrics.
func (m *Manager) Registry() *prometheus.Registry { return m.opts.Registry }

// Logger is the Manager's root logger.
func (m *Manager) Logger() logr.Logger { return m.log }

// Elector is the leader elector, or nil when leader election is off.
func (m *Manager) Elector() *leaderelection.Elector { return m.elector }

// Synced is closed once Start has synced the caches of every controller
// that runs on this replica and launched the runnables: the readiness that
// /readyz reports, as a channel instead of a poll.
func (m *Manager) Synced() <-chan struct{} { return m.synced }

// Addr returns the address /metrics ("metrics") or the probes ("health")
// are served on once Start has bound them, or "".
func (m *Manager) Addr(server string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.addrs[server]
}

// AddHealthCheck adds a /healthz check; a failing check makes the probe
// answer 500 with its name and error.
func (m *Manager) AddHealthCheck(name string, check func(*http.Request) error) error {
	return m.health.addChecked(name, check)
}

// AddReadyCheck adds a /readyz check.
func (m *Manager) AddReadyCheck(name string, check func(*http.Request) error) error {
	return m.ready.addChecked(name, check)
}

// Add registers r to run in scope once Start is called. Adding after Start
// is an error.
func (m *Manager) Add(r Runnable, scope RunScope) error {
	if r == nil {
		return errors.New("reconcile: Manager.Add: runnable is nil")
	}
	if scope != LeaderOnly && scope != EveryReplica {
		return fmt.Errorf("reconcile: Manager.Add: scope %d is neither LeaderOnly nor EveryReplica", scope)
	}
	return m.add(scoped{r: r, scope: scope, name: fmt.Sprintf("%T", r)})
}

func (m *Manager) add(s scoped) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started {
		return fmt.Errorf("reconcile: Manager.Add of %s after Start", s.name)
	}
	m.runnable = append(m.runnable, s)
	return nil
}

// NewController builds a controller for r from the Manager's informers,
// metrics, logger, scheme and REST mapper, adds the watches, and registers
// it to run as LeaderOnly. Fields of opts that are set are kept.
func (m *Manager) NewController(r Reconciler, opts Options, watches ...Watch) (*Controller, error) {
	m.mu.Lock()
	if m.names[opts.Name] {
		m.mu.Unlock()
		return nil, fmt.Errorf("reconcile: a controller named %q already exists in this Manager", opts.Name)
	}
	m.mu.Unlock()
	if opts.Logger.GetSink() == nil {
		opts.Logger = m.log
	}
	if opts.Metrics == nil {
		opts.Metrics = m.metrics
	}
	if opts.QueueMetrics == nil {
		opts.QueueMetrics = m.queues
	}
	if opts.Informers == nil {
		opts.Informers = m.factory
	}
	if opts.Scheme == nil {
		opts.Scheme = m.opts.Scheme
	}
	if opts.RESTMapper == nil {
		opts.RESTMapper = m.opts.RESTMapper
	}
	c, err := New(r, opts)
	if err != nil {
		return nil, err
	}
	if err := c.Watch(watches...); err != nil {
		return nil, err
	}
	if err := m.add(scoped{r: c, scope: LeaderOnly, name: "controller " + opts.Name}); err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.names[opts.Name] = true
	m.mu.Unlock()
	return c, nil
}

// Start runs everything until ctx ends or a runnable fails, then shuts down
// gracefully. It returns nil after a clean shutdown, else the first error.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	if m.started {
		m.mu.Unlock()
		return errors.New("reconcile: Manager already started")
	}
	m.started = true
	m.mu.Unlock()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup

	for _, srv := range []struct{ name, addr string }{{"metrics", m.opts.MetricsAddr}, {"health", m.opts.HealthAddr}} {
		if srv.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", srv.addr)
		if err != nil {
			return fmt.Errorf("reconcile: serving %s on %s: %w", srv.name, srv.addr, err)
		}
		m.mu.Lock()
		m.addrs[srv.name] = ln.Addr().String()
		m.mu.Unlock()
		s := &http.Server{Handler: m.handler(srv.name), ReadHeaderTimeout: 10 * time.Second}
		wg.Go(func() {
			if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				cancel(fmt.Errorf("reconcile: %s server: %w", srv.name, err))
			}
		})
		wg.Go(func() {
			<-ctx.Done()
			shutCtx, done := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer done()
			_ = s.Shutdown(shutCtx)
		})
	}

	wg.Go(func() {
		if err := m.factory.Run(ctx); err != nil {
			cancel(fmt.Errorf("reconcile: informers: %w", err))
		}
	})

	fail := func(err error) { cancel(err) }
	everyStarted := make(chan struct{})
	wg.Go(func() { m.runAll(leaderelection.Unfenced(ctx), EveryReplica, fail, everyStarted) })
	if m.elector != nil {
		// A standby replica is ready once its own runnables are: leader-only
		// controllers start (and sync) only when it leads.
		m.leaderFail = fail
		wg.Go(func() {
			if err := m.elector.Run(ctx); err != nil && ctx.Err() == nil {
				cancel(fmt.Errorf("reconcile: leader election: %w", err))
			}
		})
		wg.Go(func() { m.markSynced(ctx, everyStarted) })
	} else {
		leaderStarted := make(chan struct{})
		wg.Go(func() { m.runAll(ctx, LeaderOnly, fail, leaderStarted) })
		wg.Go(func() { m.markSynced(ctx, everyStarted, leaderStarted) })
	}

	<-ctx.Done()
	defer m.shutdownEvents()
	m.log.Info("shutting down", "timeout", m.opts.GracefulShutdownTimeout)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	var err error
	select {
	case <-finished:
	case <-time.After(m.opts.GracefulShutdownTimeout):
		// Every runnable's context has ended; one that ignores it cannot be
		// stopped, and is left behind rather than holding the process.
		err = fmt.Errorf("reconcile: runnables still running %s after shutdown began; abandoning them", m.opts.GracefulShutdownTimeout)
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return errors.Join(cause, err)
	}
	return err
}

// markSynced closes Synced once every channel in started is closed.
func (m *Manager) markSynced(ctx context.Context, started ...<-chan struct{}) {
	for _, ch := range started {
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
	close(m.synced)
	m.log.V(1).Info("caches synced, controllers running")
}

// runAll starts the runnables of scope with ctx and waits for them to
// return; the first error fails the whole Manager. started is closed once
// every controller among them has synced and started its workers.
func (m *Manager) runAll(ctx context.Context, scope RunScope, fail func(error), started chan<- struct{}) {
	m.mu.Lock()
	var rs []scoped
	for _, s := range m.runnable {
		if s.scope == scope {
			rs = append(rs, s)
		}
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	var ready []<-chan struct{}
	for _, s := range rs {
		if c, ok := s.r.(*Controller); ok {
			ready = append(ready, c.Started())
		}
		wg.Go(func() {
			if err := s.r.Start(ctx); err != nil && ctx.Err() == nil {
				m.log.Error(err, "runnable failed, stopping the manager", "runnable", s.name)
				fail(fmt.Errorf("reconcile: %s: %w", s.name, err))
			}
		})
	}
	if started != nil {
		wg.Go(func() {
			for _, ch := range ready {
				select {
				case <-ch:
				case <-ctx.Done():
					return
				}
			}
			close(started)
		})
	}
	wg.Wait()
}
