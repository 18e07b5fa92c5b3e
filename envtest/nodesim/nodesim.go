package nodesim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"

	"github.com/capstan-io/capstan/informer"
	"github.com/capstan-io/capstan/workqueue"
)

// Annotations read from a Pod (set them in a workload's pod template).
const (
	// AnnotationExitAfter makes the Pod's containers exit this long (a Go
	// duration, "2s") after they started running.
	AnnotationExitAfter = "nodesim.capstan.io/exit-after"
	// AnnotationExitCode is the exit code of the containers that exit per
	// AnnotationExitAfter; default "0". With restartPolicy Never, 0 makes
	// the Pod Succeeded and anything else Failed; with OnFailure a non-zero
	// code and with Always any code restarts the containers after a
	// crash-loop back-off instead.
	AnnotationExitCode = "nodesim.capstan.io/exit-code"
)

// LabelSimulated is set to "true" on every Node the simulator registers.
const LabelSimulated = "nodesim.capstan.io/simulated"

// Defaults applied by Start; see [Options].
const (
	DefaultNodeCount         = 3
	DefaultHeartbeatPeriod   = 10 * time.Second
	DefaultRestartBackoff    = 10 * time.Second
	DefaultMaxRestartBackoff = 5 * time.Minute
	DefaultWorkers           = 8
	// NodeLeaseNamespace holds the nodes' heartbeat Leases, as in a real
	// cluster.
	NodeLeaseNamespace = corev1.NamespaceNodeLease
)

// DefaultCapacity is the capacity of a node whose NodeSpec leaves a
// resource out: cpu 8, memory 32Gi, pods 110, ephemeral-storage 100Gi.
func DefaultCapacity() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("8"),
		corev1.ResourceMemory:           resource.MustParse("32Gi"),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
}

// ErrUnknownNode is wrapped by the errors of methods given a node name the
// simulator does not run.
var ErrUnknownNode = errors.New("nodesim: unknown node")

// ErrStopped is returned by methods called after the simulator stopped.
var ErrStopped = errors.New("nodesim: stopped")

// NodeSpec describes one simulated node.
type NodeSpec struct {
	// Name of the Node object. Required, a DNS subdomain.
	Name string
	// Labels added to the Node besides kubernetes.io/hostname,
	// kubernetes.io/os, kubernetes.io/arch and LabelSimulated.
	Labels map[string]string
	// Taints of the Node.
	Taints []corev1.Taint
	// Capacity (equal to allocatable); resources left out take their
	// value from DefaultCapacity.
	Capacity corev1.ResourceList
}

// Options configures [Start]. The zero value is valid: three nodes
// "node-0".."node-2" with DefaultCapacity, Pods made Running and Ready as
// soon as they are bound, in every namespace.
type Options struct {
	// Nodes to register; default DefaultNodeCount nodes named "node-0",
	// "node-1", ... with DefaultCapacity and no taints.
	Nodes []NodeSpec
	// ReadyDelay is how long a bound Pod stays Pending before its
	// containers run and it becomes Ready. Zero: at once (the status is
	// still written after the binding, so watchers see Pending first).
	ReadyDelay time.Duration
	// StopDelay is how long a deleted Pod's containers take to stop before
	// the kubelet completes the deletion; it is capped by the Pod's grace
	// period. Zero: at once.
	StopDelay time.Duration
	// RestartBackoff is the first crash-loop back-off of a container that
	// exits and is restarted (see AnnotationExitCode); it doubles on each
	// restart up to MaxRestartBackoff. Defaults: 10s and 5m, the kubelet's.
	RestartBackoff    time.Duration
	MaxRestartBackoff time.Duration
	// HeartbeatPeriod is how often each Ready node renews its Lease in
	// kube-node-lease; default 10s, the kubelet's.
	HeartbeatPeriod time.Duration
	// Namespace limits the Pods the simulator schedules and runs to one
	// namespace; "" means all. Nodes are cluster-wide either way.
	Namespace string
	// SchedulerName: only unbound Pods with this spec.schedulerName are
	// scheduled; default "default-scheduler", which the API server sets on
	// Pods that name none.
	SchedulerName string
	// Workers is the number of Pods handled at once; default 8.
	Workers int
	// Logger receives the simulator's logs; default logr.Discard().
	Logger logr.Logger
	// Clock drives ReadyDelay, exit-after, StopDelay, restarts, heartbeats
	// and retries; default the real clock. With a fake clock nothing timed
	// happens until the test steps it.
	Clock clock.WithTicker
}

// defaults fills in and checks o; every default lives here.
func (o *Options) defaults() error {
	if len(o.Nodes) == 0 {
		for i := range DefaultNodeCount {
			o.Nodes = append(o.Nodes, NodeSpec{Name: fmt.Sprintf("node-%d", i)})
		}
	}
	seen := map[string]bool{}
	for i, n := range o.Nodes {
		if err := n.validate(); err != nil {
			return fmt.Errorf("nodesim: Options.Nodes[%d]: %w", i, err)
		}
		if seen[n.Name] {
			return fmt.Errorf("nodesim: Options.Nodes[%d].Name: duplicate %q", i, n.Name)
		}
		seen[n.Name] = true
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"ReadyDelay", &o.ReadyDelay, 0},
		{"StopDelay", &o.StopDelay, 0},
		{"RestartBackoff", &o.RestartBackoff, DefaultRestartBackoff},
		{"MaxRestartBackoff", &o.MaxRestartBackoff, DefaultMaxRestartBackoff},
		{"HeartbeatPeriod", &o.HeartbeatPeriod, DefaultHeartbeatPeriod},
	} {
		if *d.v < 0 {
			return fmt.Errorf("nodesim: Options.%s: must not be negative, got %v", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if o.MaxRestartBackoff < o.RestartBackoff {
		o.MaxRestartBackoff = o.RestartBackoff
	}
	if o.Workers < 0 {
		return fmt.Errorf("nodesim: Options.Workers: must not be negative, got %d", o.Workers)
	}
	if o.Workers == 0 {
		o.Workers = DefaultWorkers
	}
	if o.SchedulerName == "" {
		o.SchedulerName = corev1.DefaultSchedulerName
	}
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return nil
}

func (n NodeSpec) validate() error {
	if n.Name == "" {
		return errors.New("Name: required")
	}
	if errs := validation.IsDNS1123Subdomain(n.Name); len(errs) > 0 {
		return fmt.Errorf("Name: %q: %s", n.Name, errs[0])
	}
	for i, t := range n.Taints {
		switch t.Effect {
		case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			return fmt.Errorf("Taints[%d].Effect: unknown effect %q", i, t.Effect)
		}
		if t.Key == "" {
			return fmt.Errorf("Taints[%d].Key: required", i)
		}
	}
	return nil
}

// Simulator registers fake Nodes and plays kube-scheduler and kubelet for
// them: it binds unscheduled Pods to fitting nodes, runs them, readies them,
// finishes them per their annotations and completes their deletion. Create
// it with [Start]. Its methods are safe for concurrent use.
type Simulator struct {
	opts   Options
	log    logr.Logger
	clock  clock.WithTicker
	client kubernetes.Interface
	pods   *informer.SharedInformer[*corev1.Pod]
	nodes  *informer.SharedInformer[*corev1.Node]
	queue  *workqueue.Queue[string]

	cancel context.CancelFunc
	done   chan struct{}

	// mu guards the fields below. API calls are never made with it held.
	mu sync.Mutex
	// sim holds the nodes the simulator runs, by name.
	sim       map[string]*simNode
	nextIndex int
	// uses holds, per pod key, what a non-terminal pod bound (or assumed
	// bound) to a node takes from it; usage sums them per node.
	uses  map[string]podUse
	usage map[string]resources
	// unschedulable holds the keys of pods that fit no node; they are
	// retried whenever a node changes or capacity is freed.
	unschedulable map[string]struct{}
	// kubelet holds the kubelet's memory of each pod on a simulated node.
	kubelet map[string]*podState
	stopped bool
}

// simNode is the simulator's own state of a node; the Node object in the
// cache holds the rest (labels, taints, allocatable, unschedulable).
type simNode struct {
	name   string
	index  int
	ready  bool
	hostIP string
	// ips maps the pod IPs in use on the node to their pods' keys.
	ips    map[string]string
	nextIP int
}

// Start registers opts.Nodes (creating their Node objects, or updating
// those that exist) and starts scheduling and running Pods. It returns once
// its caches have synced; the simulator then runs until ctx ends or Stop is
// called. cfg is copied; the copy is not rate-limited on the client side.
func Start(ctx context.Context, cfg *rest.Config, opts Options) (*Simulator, error) {
	if cfg == nil {
		return nil, errors.New("nodesim: Start: cfg is nil")
	}
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	c := rest.CopyConfig(cfg)
	// The simulator stands in for the scheduler and every kubelet; a
	// client-side limiter would make tests measure it.
	c.QPS, c.Burst, c.RateLimiter = -1, 0, nil
	c.ContentType = runtime.ContentTypeProtobuf
	c.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	if c.UserAgent == "" {
		c.UserAgent = "capstan-nodesim"
	}
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("nodesim: Start: %w", err)
	}
	q, err := workqueue.New(workqueue.Options[string]{
		Name:  "nodesim",
		Clock: opts.Clock,
		// Per-item backoff only: conflicts in bulk (a rollout) must not be
		// throttled by an overall bucket.
		RateLimiter: workqueue.NewExponentialRateLimiter[string](5*time.Millisecond, 10*time.Second),
	})
	if err != nil {
		return nil, fmt.Errorf("nodesim: Start: %w", err)
	}
	s := &Simulator{
		opts:          opts,
		log:           opts.Logger,
		clock:         opts.Clock,
		client:        cs,
		queue:         q,
		done:          make(chan struct{}),
		sim:           map[string]*simNode{},
		uses:          map[string]podUse{},
		usage:         map[string]resources{},
		unschedulable: map[string]struct{}{},
		kubelet:       map[string]*podState{},
	}
	for _, n := range opts.Nodes {
		if _, err := s.registerNode(ctx, n); err != nil {
			q.ShutDown()
			return nil, err
		}
	}

	f, err := informer.NewFactory(informer.FactoryOptions{Config: c, Logger: s.log})
	if err != nil {
		q.ShutDown()
		return nil, fmt.Errorf("nodesim: Start: %w", err)
	}
	s.pods, err = informer.For[*corev1.Pod](f, informer.Scope{Namespace: opts.Namespace})
	if err == nil {
		s.nodes, err = informer.For[*corev1.Node](f, informer.Scope{})
	}
	if err != nil {
		q.ShutDown()
		return nil, fmt.Errorf("nodesim: Start: %w", err)
	}
	podReg, err := s.pods.AddHandler(informer.HandlerFuncs[*corev1.Pod]{
		AddFunc:    func(p *corev1.Pod, _ bool) { s.observePod(p, false) },
		UpdateFunc: func(_, p *corev1.Pod) { s.observePod(p, false) },
		DeleteFunc: func(p *corev1.Pod, _ bool) { s.observePod(p, true) },
	}, informer.HandlerOptions{Name: "nodesim"})
	if err != nil {
		q.ShutDown()
		return nil, fmt.Errorf("nodesim: Start: %w", err)
	}
	nodeReg, err := s.nodes.AddHandler(informer.HandlerFuncs[*corev1.Node]{
		AddFunc:    func(n *corev1.Node, _ bool) { s.observeNode(n) },
		UpdateFunc: func(_, n *corev1.Node) { s.observeNode(n) },
		DeleteFunc: func(n *corev1.Node, _ bool) { s.observeNode(n) },
	}, informer.HandlerOptions{Name: "nodesim"})
	if err != nil {
		q.ShutDown()
		return nil, fmt.Errorf("nodesim: Start: %w", err)
	}

	runCtx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := f.Run(runCtx); err != nil {
			s.log.Error(err, "Informer factory stopped")
		}
	})
	wg.Go(func() {
		<-runCtx.Done()
		q.ShutDown()
	})
	stopAll := func() {
		cancel()
		wg.Wait()
		s.mu.Lock()
		s.stopped = true
		s.mu.Unlock()
		close(s.done)
	}
	if err := f.WaitForCacheSync(ctx); err != nil {
		stopAll()
		return nil, fmt.Errorf("nodesim: Start: waiting for caches: %w", err)
	}
	// Workers start once the handlers have accounted for every existing
	// pod, so no pod is placed on a node whose usage is not known yet.
	for _, r := range []*informer.Registration{podReg, nodeReg} {
		select {
		case <-r.Done():
		case <-ctx.Done():
			stopAll()
			return nil, fmt.Errorf("nodesim: Start: waiting for handlers: %w", ctx.Err())
		}
	}
	for range opts.Workers {
		wg.Go(func() { s.worker(runCtx) })
	}
	wg.Go(func() { s.heartbeat(runCtx) })
	go func() {
		<-runCtx.Done()
		stopAll()
	}()
	return s, nil
}

// Stop stops the simulator and waits until every goroutine it started has
// ended. Nodes and Pods are left as they are (as when every kubelet
// crashes). Stop may be called more than once.
func (s *Simulator) Stop() {
	s.cancel()
	<-s.done
}

// Done is closed once the simulator has stopped, by Stop or because the
// context given to Start ended, and all its goroutines have ended.
func (s *Simulator) Done() <-chan struct{} { return s.done }

// Client returns the simulator's clientset (not rate-limited on the client
// side), handy in tests.
func (s *Simulator) Client() kubernetes.Interface { return s.client }

// Nodes returns the names of the simulated nodes, sorted.
func (s *Simulator) Nodes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.sim))
	for n := range s.sim {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (s *Simulator) checkRunning() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return ErrStopped
	}
	return nil
}

func (s *Simulator) worker(ctx context.Context) {
	for {
		key, shutdown := s.queue.Get()
		if shutdown {
			return
		}
		after, err := s.sync(ctx, key)
		switch {
		case err == nil:
			s.queue.Forget(key)
			if after > 0 {
				s.queue.AddAfter(key, after)
			}
		case apierrors.IsConflict(err) || ctx.Err() != nil:
			// A newer version is on its way to the cache; retry quietly.
			s.log.V(1).Info("Retrying pod after conflict", "key", key, "err", err.Error())
			s.queue.AddRateLimited(key)
		default:
			s.log.Error(err, "Syncing pod failed; retrying", "key", key)
			s.queue.AddRateLimited(key)
		}
		s.queue.Done(key)
	}
}

// sync handles one pod: it schedules it if it is unbound, and plays its
// node's kubelet if it is bound to a simulated node. A positive duration
// asks for another sync after it.
func (s *Simulator) sync(ctx context.Context, key string) (time.Duration, error) {
	ns, name, _ := informer.SplitKey(key)
	pod, ok := s.pods.Lister().Get(ns, name)
	if !ok {
		s.forgetPod(key)
		return 0, nil
	}
	if pod.Spec.NodeName == "" {
		return 0, s.schedule(ctx, key, pod)
	}
	return s.runPod(ctx, key, pod)
}

// observePod keeps the node usage up to date and queues the pod.
func (s *Simulator) observePod(p *corev1.Pod, deleted bool) {
	key := informer.KeyOf(p)
	s.mu.Lock()
	freed := false
	old, had := s.uses[key]
	switch {
	case deleted || isTerminal(p):
		if had {
			s.setUseLocked(key, podUse{}, false)
			freed = true
		}
	case p.Spec.NodeName == "":
		// Unbound in the cache; an assumed binding stays until the bound
		// pod is observed.
	default:
		if !had || old.assumed || old.node != p.Spec.NodeName {
			s.setUseLocked(key, podUse{node: p.Spec.NodeName, req: podRequests(p)}, true)
		}
	}
	var retry []string
	if freed {
		retry = s.unschedulableKeysLocked()
	}
	s.mu.Unlock()
	s.queue.Add(key)
	for _, k := range retry {
		s.queue.Add(k)
	}
}

// observeNode retries unschedulable pods when a simulated node changes.
func (s *Simulator) observeNode(n *corev1.Node) {
	s.mu.Lock()
	_, ours := s.sim[n.Name]
	var retry []string
	if ours {
		retry = s.unschedulableKeysLocked()
	}
	s.mu.Unlock()
	for _, k := range retry {
		s.queue.Add(k)
	}
}

func (s *Simulator) unschedulableKeysLocked() []string {
	keys := make([]string, 0, len(s.unschedulable))
	for k := range s.unschedulable {
		keys = append(keys, k)
	}
	return keys
}

// setUseLocked replaces the use recorded for key (none if !set).
func (s *Simulator) setUseLocked(key string, u podUse, set bool) {
	if old, ok := s.uses[key]; ok {
		s.usage[old.node] = s.usage[old.node].sub(old.req)
		delete(s.uses, key)
	}
	if set {
		s.uses[key] = u
		s.usage[u.node] = s.usage[u.node].add(u.req)
	}
}

// podsOn returns the keys of the cached pods bound to node.
func (s *Simulator) podsOn(node string) []string {
	var keys []string
	for _, p := range s.pods.Lister().List(nil) {
		if p.Spec.NodeName == node {
			keys = append(keys, informer.KeyOf(p))
		}
	}
	return keys
}

func isTerminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}
