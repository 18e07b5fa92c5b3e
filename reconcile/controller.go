package reconcile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"

	"github.com/capstan-io/capstan/informer"
	"github.com/capstan-io/capstan/workqueue"
)

// PriorityInitialList is the workqueue priority of requests caused only by
// an informer's initial list; every other event is queued at priority 0.
// With the workqueue's default aging step a backlog request is overtaken by
// at most 10,000 fresh ones, so a cold start never starves.
const PriorityInitialList = -100

// Options configure a Controller. Name is required; every other zero value
// has a sane default.
type Options struct {
	// Name identifies the controller in logs (key "controller") and metrics
	// (label "controller"). Required; unique within a Manager.
	Name string
	// MaxConcurrentReconciles is the number of workers. Requests for one
	// object never run concurrently, whatever the number. Default 1.
	MaxConcurrentReconciles int
	// RateLimiter decides the backoff of failed requests. Default:
	// workqueue.DefaultControllerRateLimiter (5ms doubling to 1000s per
	// request, 10 qps / 100 burst overall), as in client-go.
	RateLimiter workqueue.RateLimiter[Request]
	// ReconcileTimeout, if positive, bounds each reconcile's context.
	ReconcileTimeout time.Duration
	// ShutdownGracePeriod is how long in-flight reconciles may go on after
	// the controller's context ends, before their contexts are cancelled.
	// Default 30s.
	ShutdownGracePeriod time.Duration
	// CacheSyncTimeout bounds the wait for the watches' informers to sync
	// before workers start. Default 2m.
	CacheSyncTimeout time.Duration
	// RePanic makes a panic in the reconciler crash the process after it is
	// logged, instead of being recovered into an error and retried. For
	// tests, where a panic should fail loudly.
	RePanic bool

	// Logger receives the controller's logs; reconcilers get it, with the
	// request's keys, from their context. Default: logr.Discard().
	Logger logr.Logger
	// Metrics records reconcile metrics (see NewMetrics); nil records none.
	Metrics *Metrics
	// QueueMetrics records the workqueue's metrics (workqueue_* series,
	// labelled with Name); nil records none.
	QueueMetrics workqueue.MetricsProvider
	// Clock is the source of time for the queue and durations. Default: the
	// real clock.
	Clock clock.WithTicker

	// Consistency tunes read-your-writes and own-echo filtering (on by
	// default; see ConsistencyOptions).
	Consistency ConsistencyOptions

	// Informers provides the shared informers of watches built without
	// From. A Manager sets it to its factory.
	Informers *informer.Factory

	// Scheme maps Go types to group/version/kinds, for Owns. Default:
	// client-go's scheme of built-in types.
	Scheme *runtime.Scheme
	// RESTMapper tells whether an owner kind is cluster-scoped, for Owns.
	// Without it an owner is taken to live in its dependent's namespace,
	// which is right for every namespaced owner.
	RESTMapper meta.RESTMapper
}

const (
	defaultShutdownGracePeriod = 30 * time.Second
	defaultCacheSyncTimeout    = 2 * time.Minute
)

func (o Options) withDefaults() (Options, error) {
	if o.Name == "" {
		return o, errors.New("reconcile: Options.Name is required")
	}
	if o.MaxConcurrentReconciles < 0 {
		return o, fmt.Errorf("reconcile: controller %q: Options.MaxConcurrentReconciles is %d, want >= 1", o.Name, o.MaxConcurrentReconciles)
	}
	if o.MaxConcurrentReconciles == 0 {
		o.MaxConcurrentReconciles = 1
	}
	if o.ShutdownGracePeriod <= 0 {
		o.ShutdownGracePeriod = defaultShutdownGracePeriod
	}
	if o.Consistency.ReadYourWritesTimeout <= 0 {
		o.Consistency.ReadYourWritesTimeout = defaultReadYourWritesTimeout
	}
	if o.CacheSyncTimeout <= 0 {
		o.CacheSyncTimeout = defaultCacheSyncTimeout
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Scheme == nil {
		o.Scheme = clientgoscheme.Scheme
	}
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
	return o, nil
}

// Controller feeds one Reconciler from its watches through its own
// workqueue and MaxConcurrentReconciles workers.
//
// Guarantees:
//   - Per-key serialisation: one Request is never reconciled by two
//     workers at once; events arriving meanwhile cause exactly one more
//     reconcile after the current one.
//   - Nothing is lost: an error requeues with per-request backoff, a
//     RequeueAfter result requeues after its delay; only a TerminalError
//     (or the next event) ends the retries.
//   - Workers start only when every watch's informer has synced and each
//     handler has seen the initial list, so reconcilers never decide on a
//     half-filled cache.
//   - Start returns only when every worker has stopped: in-flight reconciles
//     finish (within ShutdownGracePeriod) and no goroutine is left.
type Controller struct {
	opts    Options
	r       Reconciler
	log     logr.Logger
	metrics *controllerMetrics

	mu       sync.Mutex
	queue    *workqueue.Queue[Request] // the running Start's queue; nil when not running
	triggers map[Request]Trigger       // why each waiting request is queued
	watches  []Watch
	running  bool
	started  chan struct{} // closed when this (or the next) run's workers start

	pending map[Request][]pendingWrite // read-your-writes: writes the cache may not have seen
	waiting map[Request]bool           // keys set aside until their cache catches up
	echoes  map[echoKey]echo           // own writes whose watch events are to be ignored
	// inflight holds, for each request being reconciled, the events that
	// arrived meanwhile. The watch event of our own write often overtakes
	// the write's answer, before the write is known as ours; such events
	// are settled when the reconcile returns: echoes dropped, the rest
	// queued.
	inflight map[Request][]heldEvent

	stopping atomic.Bool
}

// New returns a controller for r. Add watches with Watch, then call Start.
func New(r Reconciler, opts Options) (*Controller, error) {
	if r == nil {
		return nil, errors.New("reconcile: New: reconciler is nil")
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Controller{
		opts:     opts,
		r:        r,
		log:      opts.Logger.WithValues("controller", opts.Name),
		metrics:  opts.Metrics.forController(opts.Name, opts.MaxConcurrentReconciles),
		triggers: make(map[Request]Trigger),
		started:  make(chan struct{}),
		pending:  make(map[Request][]pendingWrite),
		waiting:  make(map[Request]bool),
		echoes:   make(map[echoKey]echo),
		inflight: make(map[Request][]heldEvent),
	}
	// Build a queue once now so that bad queue options fail here, not at
	// Start.
	q, err := c.newQueue()
	if err != nil {
		return nil, err
	}
	q.ShutDown()
	return c, nil
}

// newQueue creates the queue of one run. Each Start gets a fresh queue, so
// a controller stopped with its leadership can start again when it leads
// again. The rate limiter's backoff state carries over between runs.
func (c *Controller) newQueue() (*workqueue.Queue[Request], error) {
	q, err := workqueue.New(workqueue.Options[Request]{
		Name:        c.opts.Name,
		Clock:       c.opts.Clock,
		RateLimiter: c.opts.RateLimiter,
		Metrics:     c.opts.QueueMetrics,
	})
	if err != nil {
		return nil, fmt.Errorf("reconcile: controller %q: %w", c.opts.Name, err)
	}
	return q, nil
}

// Name is the controller's name.
func (c *Controller) Name() string { return c.opts.Name }

// Watch adds event sources. They are synced before the workers start; it is
// an error to add one while the controller runs.
func (c *Controller) Watch(watches ...Watch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return fmt.Errorf("reconcile: controller %q: Watch while running", c.opts.Name)
	}
	for _, w := range watches {
		if w == nil {
			return fmt.Errorf("reconcile: controller %q: nil Watch", c.opts.Name)
		}
	}
	c.watches = append(c.watches, watches...)
	return nil
}

// Started is closed once the current (or, when not running, the next) run
// has synced its watches and started its workers.
func (c *Controller) Started() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started
}

// Enqueue queues req for reconciliation with TriggerManual, as an event
// would. Safe to call at any time; ignored while the controller is not
// running.
func (c *Controller) Enqueue(req Request) { c.enqueue(req, TriggerManual) }

// enqueue records why req is queued and queues it: at PriorityInitialList
// when the initial list is the only reason, else at priority 0.
func (c *Controller) enqueue(req Request, t Trigger) {
	c.mu.Lock()
	q := c.queue
	if q == nil {
		c.mu.Unlock()
		return
	}
	c.triggers[req] |= t
	c.mu.Unlock()
	prio := 0
	if t == TriggerInitialList {
		prio = PriorityInitialList
	}
	q.AddWithOptions(req, workqueue.AddOptions{Priority: prio})
}

func (c *Controller) addTrigger(req Request, t Trigger) {
	c.mu.Lock()
	c.triggers[req] |= t
	c.mu.Unlock()
}

// takeTrigger returns and clears the reasons req was queued for. A request
// handed out with no recorded reason came back from a delayed requeue whose
// reason an earlier run already consumed.
func (c *Controller) takeTrigger(req Request) Trigger {
	c.mu.Lock()
	t := c.triggers[req]
	delete(c.triggers, req)
	c.mu.Unlock()
	if t == 0 {
		t = TriggerRequeue
	}
	return t
}

// run is what one Start shares with its workers.
type run struct {
	q   *workqueue.Queue[Request]
	ctx context.Context // ends at shutdown; bounds cache waits
	wg  *sync.WaitGroup // cache waiters
}

// Start registers the watches, waits until their informers have synced,
// runs the workers until ctx ends, then shuts down gracefully. It returns
// nil after a clean shutdown, or the error that prevented the start. A
// controller may be started again after Start returned (a Manager does so
// when it regains leadership); requests are then reconciled afresh from the
// informers' current contents.
func (c *Controller) Start(ctx context.Context) error {
	q, err := c.newQueue()
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return fmt.Errorf("reconcile: controller %q: already running", c.opts.Name)
	}
	c.running = true
	c.queue = q
	c.triggers = make(map[Request]Trigger)
	watches := c.watches
	c.mu.Unlock()
	c.stopping.Store(false)
	started := c.started
	defer func() {
		q.ShutDown()
		c.mu.Lock()
		c.queue, c.running = nil, false
		select {
		case <-c.started: // this run got going: the next run signals anew
			c.started = make(chan struct{})
		default:
		}
		c.mu.Unlock()
	}()

	if err := c.resolveOwners(watches); err != nil {
		return fmt.Errorf("reconcile: controller %q: %w", c.opts.Name, err)
	}
	synced := make([]<-chan struct{}, 0, len(watches))
	for _, w := range watches {
		s, stop, err := w.start(ctx, c)
		if err != nil {
			return fmt.Errorf("reconcile: controller %q: starting watch %s: %w", c.opts.Name, w, err)
		}
		defer stop()
		synced = append(synced, s)
	}
	if err := c.waitSynced(ctx, synced); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	c.log.V(1).Info("starting workers", "workers", c.opts.MaxConcurrentReconciles)

	// Reconciles run on a context that outlives ctx by the grace period.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var wg, waiters sync.WaitGroup
	defer waiters.Wait()
	rc := &run{q: q, ctx: ctx, wg: &waiters}
	for range c.opts.MaxConcurrentReconciles {
		wg.Go(func() { c.worker(workCtx, rc) })
	}
	close(started)
	<-ctx.Done()

	c.log.V(1).Info("stopping workers")
	c.stopping.Store(true)
	q.ShutDown()
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	grace := c.opts.Clock.NewTimer(c.opts.ShutdownGracePeriod)
	defer grace.Stop()
	select {
	case <-finished:
	case <-grace.C():
		c.log.Info("shutdown grace period over, cancelling in-flight reconciles", "gracePeriod", c.opts.ShutdownGracePeriod)
		cancelWork()
		<-finished
	}
	return nil
}

func (c *Controller) waitSynced(ctx context.Context, synced []<-chan struct{}) error {
	timeout := c.opts.Clock.NewTimer(c.opts.CacheSyncTimeout)
	defer timeout.Stop()
	for _, s := range synced {
		select {
		case <-s:
		case <-ctx.Done():
			return nil
		case <-timeout.C():
			return fmt.Errorf("reconcile: controller %q: informers not synced within %s", c.opts.Name, c.opts.CacheSyncTimeout)
		}
	}
	return nil
}

func (c *Controller) worker(ctx context.Context, rc *run) {
	q := rc.q
	for {
		req, shutdown := q.Get()
		if shutdown {
			return
		}
		if c.stopping.Load() {
			// Shutting down: finish what is in flight, start nothing new.
			q.Done(req)
			continue
		}
		c.process(ctx, rc, req)
	}
}

// process runs one reconcile and decides what comes next for req.
func (c *Controller) process(ctx context.Context, rc *run, req Request) {
	q := rc.q
	defer q.Done(req)
	trig := c.takeTrigger(req)
	if w := c.cacheBehind(req); w != nil {
		// Our last write for req is not in the cache yet: deciding now
		// could undo or repeat it. Come back when the cache has it.
		c.waitForCache(rc, req, trig, w)
		return
	}
	log := c.log.WithValues("namespace", req.Namespace, "name", req.Name, "reconcileID", newReconcileID())
	ctx = logr.NewContext(context.WithValue(c.withScope(ctx, req), triggerKey{}, trig), log)
	if c.opts.ReconcileTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.ReconcileTimeout)
		defer cancel()
	}

	m := c.metrics
	if m != nil {
		m.active.Inc()
		trig.each(func(t Trigger) { m.triggers[bitIndex(t)].Inc() })
	}
	start := c.opts.Clock.Now()
	c.beginReconcile(req)
	res, err := c.call(ctx, req)
	c.settleHeld(req)
	if m != nil {
		m.duration.Observe(c.opts.Clock.Since(start).Seconds())
		m.active.Dec()
	}

	switch {
	case err == nil:
		q.Forget(req)
		if d, ok := res.After(); ok {
			c.addTrigger(req, TriggerRequeue)
			q.AddAfter(req, d)
			if m != nil {
				m.requeueAfter.Inc()
			}
		} else if m != nil {
			m.success.Inc()
		}
		log.V(2).Info("reconciled", "trigger", trig, "result", res)
	case IsTerminal(err):
		q.Forget(req)
		if m != nil {
			m.errored.Inc()
			m.errors.Inc()
			m.terminal.Inc()
		}
		log.Error(err, "reconcile failed with a terminal error, not retrying", "trigger", trig)
	default:
		c.addTrigger(req, TriggerRequeue)
		q.AddRateLimited(req)
		if m != nil {
			m.errored.Inc()
			m.errors.Inc()
		}
		if apierrors.IsConflict(err) {
			// Someone wrote the object since our cache saw it: normal in a
			// busy cluster, fixed by the retry on a fresher cache.
			if m != nil {
				m.conflicts.Inc()
			}
			log.V(1).Info("conflict, requeueing", "trigger", trig, "error", err.Error())
			return
		}
		log.Error(err, "reconcile failed, requeueing with backoff", "trigger", trig, "requeues", q.NumRequeues(req))
	}
}

// call runs the reconciler, turning a panic into a *PanicError unless
// RePanic is set.
func (c *Controller) call(ctx context.Context, req Request) (res Result, err error) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if c.metrics != nil {
			c.metrics.panics.Inc()
		}
		pe := &PanicError{Value: v, Stack: debug.Stack()}
		logr.FromContextOrDiscard(ctx).Error(pe, "reconciler panicked", "stack", string(pe.Stack))
		if c.opts.RePanic {
			panic(v)
		}
		res, err = Result{}, pe
	}()
	return c.r.Reconcile(ctx, req)
}

type triggerKey struct{}

// TriggerFromContext returns why the current reconcile runs: the union of
// the reasons of the events coalesced into it. It is for logs, metrics and
// tests; a level-based reconciler must not decide on it.
func TriggerFromContext(ctx context.Context) Trigger {
	t, _ := ctx.Value(triggerKey{}).(Trigger)
	return t
}

func bitIndex(t Trigger) int {
	for i := range triggerCount {
		if t == 1<<i {
			return i
		}
	}
	return 0
}

// newReconcileID is a random id that ties together the log lines of one
// reconcile.
func newReconcileID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
