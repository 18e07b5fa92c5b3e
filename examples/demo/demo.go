// Package demo shows capstan's reference controllers at work: it starts a
// local control plane with simulated nodes (or uses an existing cluster),
// runs the Deployment and ReplicaSet controllers, creates a Deployment and
// rolls it to a new template, printing the rollout as it happens: the old
// and new ReplicaSets, the Pods in existence and available, against the
// limits maxSurge and maxUnavailable set, and the API writes the
// controllers made. `capstan demo` is this package behind flags.
package demo

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/capstan-io/capstan/envtest"
	"github.com/capstan-io/capstan/envtest/nodesim"
	"github.com/capstan-io/capstan/envtest/wiretap"
	"github.com/capstan-io/capstan/examples/controllermanager"
	"github.com/capstan-io/capstan/examples/deployment"
	"github.com/capstan-io/capstan/examples/internal/podutil"
	"github.com/capstan-io/capstan/informer"
)

// Options configure Run. The zero value runs the whole demo locally.
type Options struct {
	// Out receives the rollout table and the summary; default io.Discard.
	Out io.Writer
	// Progress receives what is being done (starting the control plane,
	// building binaries on first use); default io.Discard.
	Progress io.Writer
	// Config, if set, is an existing cluster to run against: no control
	// plane or node simulator is started, and the demo's namespace is
	// deleted at the end.
	Config *rest.Config
	// Replicas of the demo Deployment; default 6.
	Replicas int32
	// MaxSurge and MaxUnavailable of its rolling update; defaults 2 and 1.
	MaxSurge, MaxUnavailable *intstr.IntOrString
	// ReadyDelay is how long a simulated Pod takes to become Ready after it
	// is bound; default 1s, so the rollout can be followed.
	ReadyDelay time.Duration
	// Timeout bounds each rollout; default 2 minutes.
	Timeout time.Duration
	// Keep, once the rollout is done, keeps everything running until ctx
	// ends, for a look with kubectl (Run prints the kubeconfig path).
	Keep bool
	// Logger receives the controllers' logs; default logr.Discard().
	Logger logr.Logger
}

// Summary is what the rolling update showed.
type Summary struct {
	// Replicas, Surge and Unavailable are the Deployment's settings, the
	// latter two resolved to numbers.
	Replicas, Surge, Unavailable int32
	// MaxPods is the most Pods (not terminating) seen at once during the
	// rolling update; MinAvailable the fewest available.
	MaxPods, MinAvailable int32
	// Duration is from the template change to the rollout's completion.
	Duration time.Duration
	// Writes counts the controllers' API writes during the rolling update,
	// by "verb resource"; TotalWrites sums them.
	Writes      map[string]int
	TotalWrites int
}

func (o *Options) defaults() {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Replicas <= 0 {
		o.Replicas = 6
	}
	if o.MaxSurge == nil {
		o.MaxSurge = ptr(intstr.FromInt32(2))
	}
	if o.MaxUnavailable == nil {
		o.MaxUnavailable = ptr(intstr.FromInt32(1))
	}
	if o.ReadyDelay <= 0 {
		o.ReadyDelay = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
}

func ptr[T any](v T) *T { return &v }

// Run runs the demo: control plane and nodes (unless Options.Config is
// set), controllers, a Deployment, a rolling update shown live. It cleans
// up everything it started before it returns.
func Run(ctx context.Context, opts Options) (*Summary, error) {
	opts.defaults()
	surge, unavailable, err := deployment.ResolveFenceposts(opts.MaxSurge, opts.MaxUnavailable, opts.Replicas)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	cfg := opts.Config
	local := cfg == nil
	var kubeconfig string
	if local {
		fmt.Fprintf(opts.Progress, "starting etcd and kube-apiserver %s (the first run builds them from the Go module proxy: several minutes, once)...\n", envtest.KubernetesVersion)
		env, err := envtest.Start(ctx, envtest.Options{Assets: envtest.AssetsOptions{Progress: opts.Progress}})
		if err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		defer env.Stop()
		cfg, kubeconfig = env.Config(), env.KubeconfigPath()
		sim, err := nodesim.Start(ctx, cfg, nodesim.Options{ReadyDelay: opts.ReadyDelay})
		if err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		defer sim.Stop()
		fmt.Fprintf(opts.Progress, "control plane ready at %s with simulated nodes %s\n", cfg.Host, strings.Join(sim.Nodes(), ", "))
	}

	// The controllers run in this process; the tap counts their writes.
	tap := wiretap.New()
	mgr, err := controllermanager.NewManager(controllermanager.Options{
		Config: tap.Wrap(cfg),
		QPS:    -1, // unthrottled: the demo shows the controllers, not a rate limiter
		Logger: opts.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	mctx, stopMgr := context.WithCancel(ctx)
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(mctx) }()
	defer func() { stopMgr(); <-mgrDone }()
	select {
	case <-mgr.Synced():
	case err := <-mgrDone:
		mgrDone <- err
		return nil, fmt.Errorf("demo: controllers stopped: %w", err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}

	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "capstan-demo-"}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("demo: creating the namespace: %w", err)
	}
	if !local {
		defer func() {
			_ = cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
		}()
	}
	w, err := newWatcher(ctx, cfg, ns.Name)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	defer w.stop()

	d := demoDeployment(ns.Name, opts, "v1")
	fmt.Fprintf(opts.Out, "Deployment %s/%s: %d replicas of web:v1, rolling updates with maxSurge %s (%d) and maxUnavailable %s (%d)\n",
		ns.Name, d.Name, opts.Replicas, opts.MaxSurge, surge, opts.MaxUnavailable, unavailable)
	if d, err = cs.AppsV1().Deployments(ns.Name).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("demo: creating the Deployment: %w", err)
	}
	start := time.Now()
	if err := w.waitComplete(ctx, d.Name, d.Generation, opts.Timeout, nil); err != nil {
		return nil, fmt.Errorf("demo: first rollout: %w", err)
	}
	fmt.Fprintf(opts.Out, "all %d replicas available after %s\n\n", opts.Replicas, time.Since(start).Round(10*time.Millisecond))

	// The rolling update, shown live.
	fmt.Fprintf(opts.Out, "rolling update to web:v2 (limits: at most %d pods, at least %d available)\n", opts.Replicas+surge, opts.Replicas-unavailable)
	fmt.Fprintf(opts.Out, "%7s  %-22s  %-22s  %5s  %9s\n", "time", "old ReplicaSet ready", "new ReplicaSet ready", "pods", "available")
	tap.Reset()
	w.resetExtremes()
	d, err = cs.AppsV1().Deployments(ns.Name).Get(ctx, d.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	d.Spec.Template.Spec.Containers[0].Image = "registry.example/web:v2"
	d.Spec.Template.Labels["version"] = "v2"
	start = time.Now()
	if d, err = cs.AppsV1().Deployments(ns.Name).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		return nil, fmt.Errorf("demo: updating the Deployment: %w", err)
	}
	var last string
	show := func(s snapshot) {
		row := s.row()
		if row == last {
			return
		}
		last = row
		fmt.Fprintf(opts.Out, "%6.1fs  %s\n", time.Since(start).Seconds(), row)
	}
	if err := w.waitComplete(ctx, d.Name, d.Generation, opts.Timeout, show); err != nil {
		return nil, fmt.Errorf("demo: rolling update: %w", err)
	}
	sum := &Summary{
		Replicas: opts.Replicas, Surge: surge, Unavailable: unavailable,
		Duration: time.Since(start),
		Writes:   map[string]int{},
	}
	sum.MaxPods, sum.MinAvailable = w.extremes()
	for _, verb := range []string{"create", "update", "patch", "delete"} {
		for _, res := range []string{"pods", "replicasets", "replicasets/status", "deployments", "deployments/status", "events"} {
			if n := tap.Count(verb, res); n > 0 {
				sum.Writes[verb+" "+res] = n
			}
		}
	}
	sum.TotalWrites = tap.Writes()
	sum.print(opts.Out)

	if opts.Keep {
		if kubeconfig != "" {
			fmt.Fprintf(opts.Out, "\nstill running; try:\n  KUBECONFIG=%s kubectl -n %s get deployments,replicasets,pods\npress Ctrl-C to stop and clean up\n", kubeconfig, ns.Name)
		} else {
			fmt.Fprintln(opts.Out, "\nstill running; press Ctrl-C to stop and clean up")
		}
		<-ctx.Done()
	}
	return sum, nil
}

func (s *Summary) print(out io.Writer) {
	check := func(ok bool) string {
		if ok {
			return "✓"
		}
		return "✗"
	}
	fmt.Fprintf(out, "\nrollout complete in %s\n", s.Duration.Round(10*time.Millisecond))
	fmt.Fprintf(out, "  most pods at once:   %d (limit replicas+maxSurge = %d) %s\n", s.MaxPods, s.Replicas+s.Surge, check(s.MaxPods <= s.Replicas+s.Surge))
	fmt.Fprintf(out, "  fewest available:    %d (limit replicas-maxUnavailable = %d) %s\n", s.MinAvailable, s.Replicas-s.Unavailable, check(s.MinAvailable >= s.Replicas-s.Unavailable))
	keys := make([]string, 0, len(s.Writes))
	for k := range s.Writes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, s.Writes[k])
	}
	fmt.Fprintf(out, "  controllers' writes: %d (%s)\n", s.TotalWrites, strings.Join(parts, ", "))
}

func demoDeployment(ns string, opts Options, version string) *appsv1.Deployment {
	labels := map[string]string{"app": "web", "version": version}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(opts.Replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: opts.MaxSurge, MaxUnavailable: opts.MaxUnavailable},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "web",
					Image: "registry.example/web:" + version,
				}}},
			},
		},
	}
}

// snapshot is the state of the rollout at one moment.
type snapshot struct {
	oldName, newName      string
	oldReady, oldReplicas int32
	newReady, newReplicas int32
	pods, available       int32
	complete              bool
}

func (s snapshot) row() string {
	old := "-"
	if s.oldName != "" {
		old = fmt.Sprintf("%s %d/%d", shortName(s.oldName), s.oldReady, s.oldReplicas)
	}
	nw := "-"
	if s.newName != "" {
		nw = fmt.Sprintf("%s %d/%d", shortName(s.newName), s.newReady, s.newReplicas)
	}
	return fmt.Sprintf("%-22s  %-22s  %5d  %9d", old, nw, s.pods, s.available)
}

func shortName(s string) string {
	if len(s) > 16 {
		return s[:16]
	}
	return s
}

// watcher follows the demo namespace through capstan informers and keeps
// the extremes of the rollout, seen at every Pod event.
type watcher struct {
	ns      string
	cancel  context.CancelFunc
	done    chan struct{}
	pods    *informer.SharedInformer[*corev1.Pod]
	rss     *informer.SharedInformer[*appsv1.ReplicaSet]
	deploys *informer.SharedInformer[*appsv1.Deployment]
	changed chan struct{}

	mu           sync.Mutex
	maxPods      int32
	minAvailable int32
}

func newWatcher(ctx context.Context, cfg *rest.Config, ns string) (*watcher, error) {
	f, err := informer.NewFactory(informer.FactoryOptions{Config: cfg})
	if err != nil {
		return nil, err
	}
	w := &watcher{ns: ns, done: make(chan struct{}), changed: make(chan struct{}, 1)}
	scope := informer.Scope{Namespace: ns}
	if w.pods, err = informer.For[*corev1.Pod](f, scope); err != nil {
		return nil, err
	}
	if w.rss, err = informer.For[*appsv1.ReplicaSet](f, scope); err != nil {
		return nil, err
	}
	if w.deploys, err = informer.For[*appsv1.Deployment](f, scope); err != nil {
		return nil, err
	}
	notify := func() {
		w.observe()
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
	for _, add := range []func() error{
		func() error { return addNotify(w.pods, notify) },
		func() error { return addNotify(w.rss, notify) },
		func() error { return addNotify(w.deploys, notify) },
	} {
		if err := add(); err != nil {
			return nil, err
		}
	}
	rctx, cancel := context.WithCancel(ctx)
	w.cancel = cancel
	go func() {
		defer close(w.done)
		_ = f.Run(rctx)
	}()
	if err := f.WaitForCacheSync(ctx); err != nil {
		w.stop()
		return nil, err
	}
	return w, nil
}

func addNotify[T informer.Object](inf *informer.SharedInformer[T], notify func()) error {
	_, err := inf.AddHandler(informer.HandlerFuncs[T]{
		AddFunc:    func(T, bool) { notify() },
		UpdateFunc: func(T, T) { notify() },
		DeleteFunc: func(T, bool) { notify() },
	}, informer.HandlerOptions{Name: "demo"})
	return err
}

func (w *watcher) stop() {
	w.cancel()
	<-w.done
}

// counts returns the Pods that exist and are not terminating, and those of
// them that are available.
func (w *watcher) counts() (pods, available int32) {
	now := time.Now()
	for _, p := range w.pods.Lister().List(nil) {
		if !podutil.IsPodActive(p) {
			continue
		}
		pods++
		if podutil.IsPodAvailable(p, 0, now) {
			available++
		}
	}
	return pods, available
}

func (w *watcher) observe() {
	pods, available := w.counts()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.maxPods = max(w.maxPods, pods)
	w.minAvailable = min(w.minAvailable, available)
}

// resetExtremes starts the extremes afresh from the current counts.
func (w *watcher) resetExtremes() {
	pods, available := w.counts()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.maxPods, w.minAvailable = pods, available
}

func (w *watcher) extremes() (maxPods, minAvailable int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxPods, w.minAvailable
}

func (w *watcher) snapshot(name string, generation int64) snapshot {
	var s snapshot
	s.pods, s.available = w.counts()
	d, ok := w.deploys.Lister().Get(w.ns, name)
	if !ok {
		return s
	}
	s.complete = d.Status.ObservedGeneration >= generation && deployment.Complete(d)
	var newest *appsv1.ReplicaSet
	rev := func(rs *appsv1.ReplicaSet) int {
		n, _ := strconv.Atoi(rs.Annotations["deployment.kubernetes.io/revision"])
		return n
	}
	rss := w.rss.Lister().List(nil)
	for _, rs := range rss {
		if newest == nil || rev(rs) > rev(newest) {
			newest = rs
		}
	}
	for _, rs := range rss {
		replicas := int32(0)
		if rs.Spec.Replicas != nil {
			replicas = *rs.Spec.Replicas
		}
		if rs == newest {
			s.newName, s.newReady, s.newReplicas = rs.Name, rs.Status.ReadyReplicas, replicas
			continue
		}
		if replicas == 0 && rs.Status.Replicas == 0 {
			continue
		}
		s.oldName = rs.Name
		s.oldReady += rs.Status.ReadyReplicas
		s.oldReplicas += replicas
	}
	return s
}

// waitComplete waits until Deployment name has observed generation and
// completed its rollout, calling show (if set) with every change.
func (w *watcher) waitComplete(ctx context.Context, name string, generation int64, timeout time.Duration, show func(snapshot)) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	tick := time.NewTicker(200 * time.Millisecond) // availability also changes with time
	defer tick.Stop()
	for {
		s := w.snapshot(name, generation)
		if show != nil {
			show(s)
		}
		if s.complete {
			return nil
		}
		select {
		case <-w.changed:
		case <-tick.C:
		case <-timer.C:
			return fmt.Errorf("timed out after %s waiting for the rollout to complete; last seen: %s", timeout, strings.Join(strings.Fields(s.row()), " "))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
