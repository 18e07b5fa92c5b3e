package kcmbench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/capstan-io/capstan/envtest"
	"github.com/capstan-io/capstan/envtest/nodesim"
	"github.com/capstan-io/capstan/examples/controllermanager"
	"github.com/capstan-io/capstan/informer"
)

var (
	flagEnabled = flag.Bool("kcmbench", false, "run BenchmarkControllers (or set "+envEnabled+"=1)")
	flagScale   = flag.Float64("kcmbench-scale", 1, "multiply the scenarios' replica counts (500, 100) by this")
	flagImpls   = flag.String("kcmbench-impl", implKCM+","+implCapstan, "comma-separated subjects each round runs: "+strings.Join(allImpls, ", "))
	flagTimeout = flag.Duration("kcmbench-timeout", 10*time.Minute, "bound on each wait of a run")
)

// envEnabled turns the benchmark on like -kcmbench; it is read once, here at
// the edge.
const envEnabled = "CAPSTAN_KCMBENCH"

func enabled() bool { return *flagEnabled || os.Getenv(envEnabled) == "1" }

// The subjects.
const (
	implKCM     = "kcm"
	implCapstan = "capstan"
)

var allImpls = []string{implKCM, implCapstan}

// benchAgent is the user agent of the benchmark's own requests, which are
// never counted.
const benchAgent = "kcmbench"

const (
	// quietPeriod is how long a subject must make no write for its op to
	// be over; quietPoll is how often the audit log is read meanwhile and
	// quietTimeout bounds the wait.
	quietPeriod  = 2 * time.Second
	quietPoll    = 100 * time.Millisecond
	quietTimeout = time.Minute
	// statusPoll is how often the warm-up probe's status is read.
	statusPoll = 20 * time.Millisecond
	// workers is the concurrent syncs of each controller in both subjects:
	// kube-controller-manager's default, which is capstan's too.
	workers = controllermanager.DefaultConcurrentSyncs
)

// setting is a client-side rate limit given to both subjects.
type setting struct {
	qps   float32
	burst int
}

var settings = []setting{
	{qps: 20, burst: 30}, // kube-controller-manager's defaults
	{qps: 1000, burst: 1000},
}

// scenario is one timed operation.
type scenario struct {
	kind     string // "replicaset" or "deployment"
	replicas int32
	// unit names the metric of the timed phase.
	unit string
	// nodes: the scenario needs simulated nodes to run its Pods.
	nodes bool
	// timed runs the scenario in r.ns and returns when its timed phase
	// began (just before the timed API call) and how long it took.
	timed func(ctx context.Context, r *run) (since time.Time, took time.Duration, err error)
}

func (s scenario) name() string { return s.kind + strconv.Itoa(int(s.replicas)) }

func scenarios() []scenario {
	scale := func(n float64) int32 { return int32(max(1, math.Round(n**flagScale))) }
	return []scenario{
		{kind: "replicaset", replicas: scale(500), unit: "pods-s", timed: timedReplicaSet},
		{kind: "deployment", replicas: scale(100), unit: "rollout-s", nodes: true, timed: timedDeployment},
	}
}

// result is what one run of one subject measured.
type result struct {
	took   time.Duration
	writes writeCounts
	// notes sum up the subject's own log where it has one worth reading
	// (kube-controller-manager's failed syncs); empty otherwise.
	notes string
}

// BenchmarkControllers compares kube-controller-manager's ReplicaSet and
// Deployment controllers with capstan's; see the package doc.
func BenchmarkControllers(b *testing.B) {
	if !enabled() {
		b.Skip("opt-in: pass -args -kcmbench or set " + envEnabled + "=1 (see the package doc)")
	}
	if bt := flag.Lookup("test.benchtime"); bt == nil || !strings.HasSuffix(bt.Value.String(), "x") {
		b.Fatal("kcmbench: each op is a whole control plane run; pass -benchtime 1x")
	}
	impls, err := parseImpls(*flagImpls)
	if err != nil {
		b.Fatal(err)
	}
	for _, sc := range scenarios() {
		b.Run("scenario="+sc.name(), func(b *testing.B) {
			for _, set := range settings {
				b.Run(fmt.Sprintf("qps=%g", set.qps), func(b *testing.B) {
					rs := &rounds{sc: sc, set: set, impls: impls, queued: map[string][]result{}}
					for _, impl := range impls {
						b.Run("impl="+impl, func(b *testing.B) {
							var took time.Duration
							var writes, n int
							for b.Loop() {
								r := rs.next(b, impl)
								took += r.took
								writes += r.writes.total()
								n++
								b.Logf("%s: %.2fs, %d writes: %v%s", impl, r.took.Seconds(), r.writes.total(), r.writes, r.notes)
							}
							// The leaf's wall time may hold the other
							// subjects' runs too: suppress ns/op.
							b.ReportMetric(0, "ns/op")
							b.ReportMetric(took.Seconds()/float64(n), sc.unit)
							b.ReportMetric(float64(writes)/float64(n), "writes")
						})
					}
				})
			}
		})
	}
}

func parseImpls(s string) ([]string, error) {
	var out []string
	for _, impl := range strings.Split(s, ",") {
		impl = strings.TrimSpace(impl)
		if !slices.Contains(allImpls, impl) {
			return nil, fmt.Errorf("kcmbench: -kcmbench-impl: unknown subject %q (known: %s)", impl, strings.Join(allImpls, ", "))
		}
		if !slices.Contains(out, impl) {
			out = append(out, impl)
		}
	}
	return out, nil
}

// rounds interleaves the subjects of one scenario and setting: a result
// asked of a subject with none queued runs a round, every subject once,
// and queues each result for its own benchmark line. Every other round
// runs the subjects in reverse order. Benchmarks run one at a time, so rounds needs
// no lock.
type rounds struct {
	sc     scenario
	set    setting
	impls  []string
	queued map[string][]result
	n      int
}

func (rs *rounds) next(b *testing.B, impl string) result {
	b.Helper()
	if len(rs.queued[impl]) == 0 {
		order := slices.Clone(rs.impls)
		if rs.n%2 == 1 {
			slices.Reverse(order)
		}
		rs.n++
		for _, subject := range order {
			r, err := runOnce(b.Context(), rs.sc, rs.set, subject)
			if err != nil {
				b.Fatalf("%s/qps=%g/impl=%s, round %d: %v", rs.sc.name(), rs.set.qps, subject, rs.n, err)
			}
			rs.queued[subject] = append(rs.queued[subject], r)
		}
	}
	r := rs.queued[impl][0]
	rs.queued[impl] = rs.queued[impl][1:]
	return r
}

// run is one subject's run of one scenario, on a control plane of its own.
type run struct {
	cs       kubernetes.Interface // the benchmark's client
	ns       string               // the scenario's namespace
	replicas int32
	w        *watcher
	timeout  time.Duration
	auditLog string // the API server's audit log
	agent    string // the subject's user agent prefix
	// stopped is closed if the in-process subject stops before the run
	// ends; nil (never ready) for kube-controller-manager.
	stopped <-chan struct{}
}

// runOnce starts a control plane and the subject, warms the subject up,
// runs the scenario and counts the subject's writes, then stops
// everything it started.
func runOnce(ctx context.Context, sc scenario, set setting, impl string) (res result, err error) {
	dir, err := os.MkdirTemp("", "kcmbench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	policy, auditLog := filepath.Join(dir, "audit-policy.yaml"), filepath.Join(dir, "audit.log")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return res, err
	}
	opts := envtest.Options{APIServerFlags: map[string]string{
		"audit-policy-file": policy,
		"audit-log-path":    auditLog,
		// blocking (the default, said here): each request's line is
		// written before the request returns.
		"audit-log-mode": "blocking",
	}}
	agent := agentCapstan
	if impl == implKCM {
		agent = agentKCM
		opts.BuiltinControllers = true
		opts.ControllerManagerFlags = map[string]string{
			"controllers":                 "replicaset,deployment",
			"kube-api-qps":                strconv.FormatFloat(float64(set.qps), 'f', -1, 32),
			"kube-api-burst":              strconv.Itoa(set.burst),
			"concurrent-replicaset-syncs": strconv.Itoa(workers),
			"concurrent-deployment-syncs": strconv.Itoa(workers),
		}
	}
	env, err := envtest.Start(ctx, opts)
	if err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\ncontrol plane logs:\n%s", err, env.Logs(20))
		}
		if serr := env.Stop(); serr != nil && err == nil {
			err = serr
		}
	}()

	r := &run{replicas: sc.replicas, timeout: *flagTimeout, auditLog: auditLog, agent: agent}
	if impl != implKCM {
		cmCfg := env.Config() // no user agent: Run sets agentCapstan
		mctx, cancel := context.WithCancel(ctx)
		stopped := make(chan struct{})
		var runErr error
		var wg sync.WaitGroup
		wg.Go(func() {
			defer close(stopped)
			runErr = controllermanager.Run(mctx, controllermanager.Options{
				Config:          cmCfg,
				Controllers:     []string{"replicaset", "deployment"},
				ConcurrentSyncs: map[string]int{"replicaset": workers, "deployment": workers},
				QPS:             set.qps,
				Burst:           set.burst,
				LeaderElect:     false,
			})
		})
		r.stopped = stopped
		defer func() {
			cancel()
			wg.Wait()
			if runErr != nil && err == nil {
				err = fmt.Errorf("capstan controller manager: %w", runErr)
			}
		}()
	}

	cfg := env.Config()
	cfg.UserAgent = benchAgent
	if r.cs, err = kubernetes.NewForConfig(cfg); err != nil {
		return res, err
	}
	if sc.nodes {
		sim, err := nodesim.Start(ctx, env.Config(), nodesim.Options{Nodes: nodesFor(sc.replicas)})
		if err != nil {
			return res, err
		}
		defer sim.Stop()
	}

	if err := r.warmUp(ctx); err != nil {
		return res, fmt.Errorf("warming up: %w", err)
	}
	if r.ns, err = r.namespace(ctx, "kcmbench"); err != nil {
		return res, err
	}
	if r.w, err = startWatcher(ctx, cfg, r.ns); err != nil {
		return res, err
	}
	defer r.w.stop()

	since, took, err := sc.timed(ctx, r)
	if err != nil {
		return res, err
	}
	writes, err := r.waitQuiet(ctx, since)
	if err != nil {
		return res, err
	}
	res = result{took: took, writes: writes}
	if impl == implKCM {
		res.notes = kcmSyncErrors(filepath.Join(env.Dir(), "kube-controller-manager.log"))
	}
	return res, nil
}

// kcmSyncErrors sums up the failed syncs kube-controller-manager logged
// ("Unhandled Error"), by cause; the controllers retry each with backoff.
// Since v1.36 its ReplicaSet controller refuses to sync while its caches
// are older than its own last writes (StaleControllerConsistencyReplicaSet,
// beta): that is the "stale cache" cause.
func kcmSyncErrors(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "; kcm log: " + err.Error()
	}
	counts := map[string]int{}
	for line := range strings.Lines(string(data)) {
		if !strings.Contains(line, "Unhandled Error") {
			continue
		}
		switch {
		case strings.Contains(line, "is not as new as written version"):
			counts["stale cache"]++
		case strings.Contains(line, "the object has been modified"):
			counts["conflict"]++
		default:
			counts["other"]++
		}
	}
	if len(counts) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
	}
	return "; kcm failed syncs: " + strings.Join(parts, ", ")
}

// nodesFor returns enough simulated nodes (110 pods each) for replicas and
// a 25% surge, at least nodesim's default three.
func nodesFor(replicas int32) []nodesim.NodeSpec {
	n := max(nodesim.DefaultNodeCount, int(math.Ceil(float64(replicas)*1.25/100)))
	nodes := make([]nodesim.NodeSpec, n)
	for i := range nodes {
		nodes[i].Name = fmt.Sprintf("node-%d", i)
	}
	return nodes
}

func (r *run) namespace(ctx context.Context, name string) (string, error) {
	ns, err := r.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return ns.Name, nil
}

// warmUp makes sure the subject is ready before anything is timed: it
// creates a ReplicaSet of 0 replicas in a namespace of its own, waits
// until the subject has written its status, then until the subject is
// quiet. kube-controller-manager gives no other sign that its caches have
// synced and its workers run; capstan gets the same probe for fairness.
func (r *run) warmUp(ctx context.Context) error {
	ns, err := r.namespace(ctx, "kcmbench-warmup")
	if err != nil {
		return err
	}
	since := time.Now()
	probe, err := r.cs.AppsV1().ReplicaSets(ns).Create(ctx, replicaSet(ns, "probe", 0), metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating the probe ReplicaSet: %w", err)
	}
	err = wait.PollUntilContextTimeout(ctx, statusPoll, r.timeout, true, func(ctx context.Context) (bool, error) {
		select {
		case <-r.stopped:
			return false, errors.New("the controller manager stopped")
		default:
		}
		rs, err := r.cs.AppsV1().ReplicaSets(ns).Get(ctx, probe.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return rs.Status.ObservedGeneration >= probe.Generation, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the probe ReplicaSet's status: %w", err)
	}
	_, err = r.waitQuiet(ctx, since)
	return err
}

// waitQuiet waits until the subject has made no write for quietPeriod
// and returns its writes received since then.
func (r *run) waitQuiet(ctx context.Context, since time.Time) (writeCounts, error) {
	tail := newAuditTail(r.auditLog, writeFilter{agentPrefix: r.agent, since: since})
	ctx, cancel := context.WithTimeout(ctx, quietTimeout)
	defer cancel()
	tick := time.NewTicker(quietPoll)
	defer tick.Stop()
	last, lastChange := -1, time.Now()
	for {
		counts, err := tail.poll()
		if err != nil {
			return nil, err
		}
		if n := counts.total(); n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) >= quietPeriod {
			return counts, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the controllers to go quiet (%v so far): %w", counts, ctx.Err())
		case <-r.stopped:
			return nil, errors.New("the controller manager stopped")
		case <-tick.C:
		}
	}
}

// timedReplicaSet creates a ReplicaSet of r.replicas and times until that
// many Pods exist.
func timedReplicaSet(ctx context.Context, r *run) (time.Time, time.Duration, error) {
	rs := replicaSet(r.ns, "bench", r.replicas)
	since := time.Now()
	if _, err := r.cs.AppsV1().ReplicaSets(r.ns).Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		return since, 0, fmt.Errorf("creating the ReplicaSet: %w", err)
	}
	err := r.w.waitFor(ctx, r, fmt.Sprintf("%d Pods", r.replicas), func() bool {
		return len(r.w.pods.Lister().List(nil)) >= int(r.replicas)
	})
	return since, time.Since(since), err
}

// timedDeployment creates a Deployment of r.replicas and waits, untimed,
// until it is complete and the subject is quiet; then it times a rollout
// to a new pod template.
func timedDeployment(ctx context.Context, r *run) (time.Time, time.Duration, error) {
	d, err := r.cs.AppsV1().Deployments(r.ns).Create(ctx, deployment(r.ns, "bench", r.replicas, "v1"), metav1.CreateOptions{})
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("creating the Deployment: %w", err)
	}
	if err := r.w.waitFor(ctx, r, "the first rollout", r.w.rolledOut(d.Name, d.Generation, r.replicas)); err != nil {
		return time.Time{}, 0, err
	}
	// Wait out the first rollout's trailing writes, so that none is
	// counted against the timed one.
	if _, err := r.waitQuiet(ctx, time.Time{}); err != nil {
		return time.Time{}, 0, err
	}
	if d, err = r.cs.AppsV1().Deployments(r.ns).Get(ctx, d.Name, metav1.GetOptions{}); err != nil {
		return time.Time{}, 0, err
	}
	d.Spec.Template.Spec.Containers[0].Image = "registry.example/web:v2"
	since := time.Now()
	if d, err = r.cs.AppsV1().Deployments(r.ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		return since, 0, fmt.Errorf("updating the Deployment: %w", err)
	}
	err = r.w.waitFor(ctx, r, "the rollout", r.w.rolledOut(d.Name, d.Generation, r.replicas))
	return since, time.Since(since), err
}

func podTemplate(app, version string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name:  "web",
			Image: "registry.example/web:" + version,
		}}},
	}
}

func replicaSet(ns, name string, replicas int32) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: podTemplate(name, "v1"),
		},
	}
}

// deployment has the API server's default strategy: RollingUpdate with
// maxSurge and maxUnavailable 25%.
func deployment(ns, name string, replicas int32, version string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: podTemplate(name, version),
		},
	}
}

// watcher follows the scenario's namespace through capstan informers (the
// benchmark's own, unthrottled client): the timed phases end when it sees
// their outcome.
type watcher struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	pods    *informer.SharedInformer[*corev1.Pod]
	deploys *informer.SharedInformer[*appsv1.Deployment]
	// changed holds a token when an object changed since the last wait
	// step; its buffer of one coalesces bursts of events.
	changed chan struct{}
}

func startWatcher(ctx context.Context, cfg *rest.Config, ns string) (*watcher, error) {
	f, err := informer.NewFactory(informer.FactoryOptions{Config: cfg})
	if err != nil {
		return nil, err
	}
	w := &watcher{changed: make(chan struct{}, 1)}
	scope := informer.Scope{Namespace: ns}
	if w.pods, err = informer.For[*corev1.Pod](f, scope); err != nil {
		return nil, err
	}
	if w.deploys, err = informer.For[*appsv1.Deployment](f, scope); err != nil {
		return nil, err
	}
	if err := addNotify(w.pods, w.notify); err != nil {
		return nil, err
	}
	if err := addNotify(w.deploys, w.notify); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	w.cancel = cancel
	w.wg.Go(func() { _ = f.Run(rctx) })
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
	}, informer.HandlerOptions{Name: "kcmbench"})
	return err
}

func (w *watcher) notify() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *watcher) stop() {
	w.cancel()
	w.wg.Wait()
}

// rolledOut returns a condition true once Deployment name has observed
// generation and its rollout is complete: updated = replicas = available
// = want.
func (w *watcher) rolledOut(name string, generation int64, want int32) func() bool {
	return func() bool {
		for _, d := range w.deploys.Lister().List(nil) {
			if d.Name != name {
				continue
			}
			st := d.Status
			return st.ObservedGeneration >= generation && st.UpdatedReplicas == want &&
				st.Replicas == want && st.AvailableReplicas == want
		}
		return false
	}
}

// describe sums up what the watcher last saw, for a run that failed.
func (w *watcher) describe() string {
	var bound, ready int
	pods := w.pods.Lister().List(nil)
	for _, p := range pods {
		if p.Spec.NodeName != "" {
			bound++
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	s := fmt.Sprintf("%d Pods (%d bound, %d ready)", len(pods), bound, ready)
	for _, d := range w.deploys.Lister().List(nil) {
		st := d.Status
		s += fmt.Sprintf("; Deployment %s generation %d: observed %d, replicas %d, updated %d, ready %d, available %d",
			d.Name, d.Generation, st.ObservedGeneration, st.Replicas, st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas)
	}
	return s
}

// waitFor waits until cond holds, checking it at every change the
// informers see, for at most r.timeout.
func (w *watcher) waitFor(ctx context.Context, r *run, what string, cond func() bool) error {
	timer := time.NewTimer(r.timeout)
	defer timer.Stop()
	for !cond() {
		select {
		case <-w.changed:
		case <-timer.C:
			return fmt.Errorf("timed out after %v waiting for %s; last seen: %s", r.timeout, what, w.describe())
		case <-r.stopped:
			return fmt.Errorf("the controller manager stopped while waiting for %s", what)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
