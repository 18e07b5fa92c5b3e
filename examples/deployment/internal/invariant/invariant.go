// Package invariant watches a Deployment's pods during a rollout and
// records every moment a rollout promise is broken. The envtest suite of
// package deployment runs one per rolling-update spec and asserts that
// none was recorded.
//
// The promises, checked after every single pod event (each event is
// applied to the checker's own copy of the namespace's pods, so every
// state the API server went through is checked, not only the ones a
// polling loop would happen to see):
//
//   - Surge: the pods of the Deployment that have not finished (phase
//     neither Succeeded nor Failed; terminating pods included, as they
//     still run) never exceed spec.replicas + maxSurge.
//   - Availability: once the Deployment has had spec.replicas -
//     maxUnavailable available pods, its available pods (ready for
//     minReadySeconds, not terminating) never drop below that number.
//   - Overlap (Options.CheckOverlap, for Recreate): pods of two pod
//     templates (two pod-template-hash values) never run at the same time.
//
// The bounds follow the Deployment's spec. When a change tightens one (a
// scale up raises the availability floor, a scale down lowers the surge
// ceiling), the looser bound holds until the pods first satisfy the new
// one: a controller cannot conjure available pods nor remove surplus ones
// instantly, and both directions are checked from then on.
//
// A Deployment's pods are the pods of its namespace that its selector
// matches and that carry a pod-template-hash label (every pod of a
// Deployment's ReplicaSets does).
package invariant

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"

	"github.com/capstan-io/capstan/examples/deployment"
	"github.com/capstan-io/capstan/examples/internal/podutil"
	"github.com/capstan-io/capstan/informer"
)

// Kind names a broken promise.
type Kind string

const (
	Surge        Kind = "surge"
	Availability Kind = "availability"
	Overlap      Kind = "overlap"
)

// Violation is one state in which a promise was broken.
type Violation struct {
	Kind Kind
	At   time.Time
	// Message gives the counts, the bound and the pods involved.
	Message string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s %s: %s", v.At.Format("15:04:05.000"), v.Kind, v.Message)
}

// Observed summarises what the checker saw.
type Observed struct {
	// PodEvents is the number of pod events checked.
	PodEvents int
	// MaxPods is the most pods that had not finished at once.
	MaxPods int
	// MinAvailable is the fewest available pods once the availability
	// promise applied; -1 if it never did.
	MinAvailable int
}

// Options configure Start.
type Options struct {
	// Namespace and Deployment name the Deployment. Required.
	Namespace, Deployment string
	// CheckOverlap records pods of two templates running at once.
	CheckOverlap bool
	// Logger receives the violations as they happen. Default discard.
	Logger logr.Logger
}

// maxViolations bounds the memory of a checker watching a badly broken
// controller: the first ones tell the story.
const maxViolations = 100

// Checker watches one Deployment's pods. Start it before the change to
// check, Stop it after the rollout; its methods are safe for concurrent
// use.
type Checker struct {
	opts   Options
	log    logr.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex
	pods       map[string]*corev1.Pod // by name; every pod of the namespace
	d          *appsv1.Deployment     // last seen; nil before the first event
	upper      int                    // surge ceiling in force
	lower      int                    // availability floor in force
	wantUpper  int                    // ceiling of the current spec
	wantLower  int                    // floor of the current spec
	armed      bool                   // the floor applies
	violations []Violation
	dropped    int
	observed   Observed
}

// Start watches the pods and the Deployment named by opts (their caches
// synced before it returns) until ctx ends or Stop is called.
func Start(ctx context.Context, cfg *rest.Config, opts Options) (*Checker, error) {
	if opts.Namespace == "" || opts.Deployment == "" {
		return nil, errors.New("invariant: Options.Namespace and Options.Deployment are required")
	}
	if opts.Logger.GetSink() == nil {
		opts.Logger = logr.Discard()
	}
	f, err := informer.NewFactory(informer.FactoryOptions{Config: cfg})
	if err != nil {
		return nil, fmt.Errorf("invariant: %w", err)
	}
	pods, err := informer.For[*corev1.Pod](f, informer.Scope{Namespace: opts.Namespace})
	if err != nil {
		return nil, fmt.Errorf("invariant: %w", err)
	}
	deps, err := informer.For[*appsv1.Deployment](f, informer.Scope{
		Namespace:     opts.Namespace,
		FieldSelector: fields.OneTermEqualSelector("metadata.name", opts.Deployment),
	})
	if err != nil {
		return nil, fmt.Errorf("invariant: %w", err)
	}
	c := &Checker{
		opts: opts, log: opts.Logger, done: make(chan struct{}),
		pods: map[string]*corev1.Pod{}, observed: Observed{MinAvailable: -1},
	}
	// The Deployment first, so that the first pod events are judged with
	// its bounds.
	dreg, err := deps.AddHandler(informer.HandlerFuncs[*appsv1.Deployment]{
		AddFunc:    func(d *appsv1.Deployment, _ bool) { c.setDeployment(d) },
		UpdateFunc: func(_, d *appsv1.Deployment) { c.setDeployment(d) },
	}, informer.HandlerOptions{Name: "invariant"})
	if err != nil {
		return nil, fmt.Errorf("invariant: %w", err)
	}
	preg, err := pods.AddHandler(informer.HandlerFuncs[*corev1.Pod]{
		AddFunc:    func(p *corev1.Pod, _ bool) { c.podEvent(p, false) },
		UpdateFunc: func(_, p *corev1.Pod) { c.podEvent(p, false) },
		DeleteFunc: func(p *corev1.Pod, _ bool) { c.podEvent(p, true) },
	}, informer.HandlerOptions{Name: "invariant"})
	if err != nil {
		return nil, fmt.Errorf("invariant: %w", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	c.cancel = cancel
	go func() {
		defer close(c.done)
		if err := f.Run(runCtx); err != nil {
			c.log.Error(err, "informers stopped")
		}
	}()
	for _, reg := range []*informer.Registration{dreg, preg} {
		select {
		case <-reg.Done():
		case <-ctx.Done():
			c.Stop()
			return nil, fmt.Errorf("invariant: waiting for the caches: %w", ctx.Err())
		}
	}
	return c, nil
}

// Stop stops watching and waits until the watches have ended.
func (c *Checker) Stop() {
	c.cancel()
	<-c.done
}

// Violations returns the violations recorded so far, oldest first.
func (c *Checker) Violations() []Violation {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := append([]Violation(nil), c.violations...)
	if c.dropped > 0 {
		out = append(out, Violation{Kind: "more", At: time.Now(), Message: fmt.Sprintf("%d more violations not kept", c.dropped)})
	}
	return out
}

// Observed returns what the checker has seen so far.
func (c *Checker) Observed() Observed {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.observed
}

// bounds computes the ceiling and floor of d's spec.
func bounds(d *appsv1.Deployment) (upper, lower int) {
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return int(replicas), 0
	}
	var surge, unavailable int32
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil {
		var err error
		if surge, unavailable, err = deployment.ResolveFenceposts(ru.MaxSurge, ru.MaxUnavailable, replicas); err != nil {
			return int(replicas), 0
		}
	}
	return int(replicas + surge), int(max(replicas-min(unavailable, replicas), 0))
}

func (c *Checker) setDeployment(d *appsv1.Deployment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	upper, lower := bounds(d)
	if c.d == nil {
		c.upper, c.lower = upper, lower
	} else {
		// Loosen at once; tighten once the pods satisfy the new bound
		// (see evaluateLocked).
		c.upper, c.lower = max(c.upper, upper), min(c.lower, lower)
	}
	c.wantUpper, c.wantLower = upper, lower
	c.d = d
	c.evaluateLocked(time.Now(), "deployment "+d.ResourceVersion)
}

func (c *Checker) podEvent(p *corev1.Pod, deleted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if deleted {
		delete(c.pods, p.Name)
	} else {
		c.pods[p.Name] = p
	}
	c.observed.PodEvents++
	c.evaluateLocked(time.Now(), "pod "+p.Name)
}

// evaluateLocked checks the promises against the current pods.
func (c *Checker) evaluateLocked(now time.Time, cause string) {
	d := c.d
	if d == nil {
		return
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() {
		return
	}
	var running, available []string
	hashes := map[string][]string{}
	for name, p := range c.pods {
		if !sel.Matches(labels.Set(p.Labels)) {
			continue
		}
		hash, ok := p.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
		if !ok || podutil.IsPodTerminal(p) {
			continue
		}
		running = append(running, name)
		hashes[hash] = append(hashes[hash], name)
		if p.DeletionTimestamp == nil && podutil.IsPodAvailable(p, d.Spec.MinReadySeconds, now) {
			available = append(available, name)
		}
	}
	c.observed.MaxPods = max(c.observed.MaxPods, len(running))
	if len(running) <= c.wantUpper {
		c.upper = c.wantUpper
	}
	if len(available) >= c.wantLower {
		c.lower = c.wantLower
	}
	if len(running) > c.upper {
		c.recordLocked(Surge, now, fmt.Sprintf("%d pods have not finished, more than spec.replicas + maxSurge = %d (after %s): %s",
			len(running), c.upper, cause, list(running)))
	}
	if !c.armed && len(available) >= c.lower {
		c.armed = true
	}
	if c.armed {
		if c.observed.MinAvailable < 0 || len(available) < c.observed.MinAvailable {
			c.observed.MinAvailable = len(available)
		}
		if len(available) < c.lower {
			c.recordLocked(Availability, now, fmt.Sprintf("%d pods available, fewer than spec.replicas - maxUnavailable = %d (after %s): %s",
				len(available), c.lower, cause, list(available)))
		}
	}
	if c.opts.CheckOverlap && len(hashes) > 1 {
		var parts []string
		for h, names := range hashes {
			parts = append(parts, h+": "+list(names))
		}
		sort.Strings(parts)
		c.recordLocked(Overlap, now, fmt.Sprintf("pods of %d templates run at once (after %s): %s", len(hashes), cause, strings.Join(parts, "; ")))
	}
}

func (c *Checker) recordLocked(k Kind, at time.Time, msg string) {
	if len(c.violations) >= maxViolations {
		c.dropped++
		return
	}
	v := Violation{Kind: k, At: at, Message: msg}
	c.violations = append(c.violations, v)
	c.log.Info("rollout invariant violated", "namespace", c.opts.Namespace, "name", c.opts.Deployment, "violation", v.String())
}

func list(names []string) string {
	sort.Strings(names)
	return "[" + strings.Join(names, " ") + "]"
}
