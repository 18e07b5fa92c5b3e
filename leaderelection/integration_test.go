package leaderelection_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/capstan-io/capstan/envtest"
	"github.com/capstan-io/capstan/leaderelection"
	"github.com/capstan-io/capstan/leaderelection/leasetest"
)

// Durations of the integration tests: the defaults' shape (LeaseDuration > RenewDeadline >
// 2 x RetryPeriod), scaled down so each scenario takes seconds.
const (
	itLease = 3 * time.Second
	itRenew = 2 * time.Second
	itRetry = 500 * time.Millisecond
	// itSlack absorbs scheduling on a shared 2-core machine and API latency.
	itSlack = 500 * time.Millisecond
)

// liveCandidate is an elector on the real API server, reaching it through its own TCP proxy.
type liveCandidate struct {
	id      string
	el      *leaderelection.Elector
	proxy   *tcpProxy
	cancel  context.CancelFunc
	done    chan error
	mu      sync.Mutex
	started []time.Time
	stopped []time.Time
}

func (c *liveCandidate) lastStarted() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.started) == 0 {
		return time.Time{}
	}
	return c.started[len(c.started)-1]
}

// cluster is a set of live candidates for one Lease, with a sampler of the invariant.
type cluster struct {
	t     *testing.T
	env   *envtest.Environment
	admin kubernetes.Interface
	key   types.NamespacedName
	cands []*liveCandidate

	mu         sync.Mutex
	violations []string
	samples    int
	stopSample context.CancelFunc
	sampleDone chan struct{}
}

var leaseSeq atomic.Int64

func newCluster(t *testing.T, env *envtest.Environment) *cluster {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{
		t:     t,
		env:   env,
		admin: cs,
		key:   types.NamespacedName{Namespace: "default", Name: fmt.Sprintf("lease-%d", leaseSeq.Add(1))},
	}
}

// add creates and starts a candidate.
func (cl *cluster) add(id string, mod func(*leaderelection.Options)) *liveCandidate {
	cl.t.Helper()
	c := &liveCandidate{id: id, proxy: newTCPProxy(cl.t, strings.TrimPrefix(cl.env.Config().Host, "https://"))}
	cs, err := kubernetes.NewForConfig(proxiedConfig(cl.env.Config(), c.proxy.addr()))
	if err != nil {
		cl.t.Fatal(err)
	}
	opts := leaderelection.Options{
		Namespace:     cl.key.Namespace,
		Name:          cl.key.Name,
		Client:        cs.CoordinationV1(),
		Identity:      id,
		LeaseDuration: itLease,
		RenewDeadline: itRenew,
		RetryPeriod:   itRetry,
		OnStartedLeading: func(ctx context.Context) {
			c.mu.Lock()
			c.started = append(c.started, time.Now())
			c.mu.Unlock()
			cl.sample("OnStartedLeading " + id)
			<-ctx.Done()
		},
		OnStoppedLeading: func() {
			c.mu.Lock()
			c.stopped = append(c.stopped, time.Now())
			c.mu.Unlock()
			cl.sample("OnStoppedLeading " + id)
		},
		OnNewLeader: func(string) { cl.sample("OnNewLeader " + id) },
	}
	if mod != nil {
		mod(&opts)
	}
	el, err := leaderelection.New(opts)
	if err != nil {
		cl.t.Fatal(err)
	}
	c.el = el
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan error, 1)
	go func() { c.done <- el.Run(ctx) }()
	cl.mu.Lock()
	cl.cands = append(cl.cands, c)
	cl.mu.Unlock()
	return c
}

// leaders returns the candidates that believe they lead.
func (cl *cluster) leaders() []*liveCandidate {
	cl.mu.Lock()
	cands := append([]*liveCandidate(nil), cl.cands...)
	cl.mu.Unlock()
	var out []*liveCandidate
	for _, c := range cands {
		if c.el.IsLeader() {
			out = append(out, c)
		}
	}
	return out
}

// sample checks that at most one candidate believes it leads and, if the Lease can be read,
// that a candidate believing it leads before and after the read is the Lease's holder.
func (cl *cluster) sample(where string) {
	before := cl.leaders()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	lease, err := cl.admin.CoordinationV1().Leases(cl.key.Namespace).Get(ctx, cl.key.Name, metav1.GetOptions{})
	cancel()
	after := cl.leaders()
	var bad string
	switch {
	case len(before) > 1:
		bad = fmt.Sprintf("%d leaders", len(before))
	case len(after) > 1:
		bad = fmt.Sprintf("%d leaders", len(after))
	case err == nil && len(before) == 1 && len(after) == 1 && before[0] == after[0]:
		if h := lease.Spec.HolderIdentity; h == nil || *h != before[0].id {
			bad = fmt.Sprintf("%s leads but the Lease holder is %v", before[0].id, h)
		}
	}
	cl.mu.Lock()
	cl.samples++
	if bad != "" {
		cl.violations = append(cl.violations, where+" at "+time.Now().Format(time.StampMilli)+": "+bad)
	}
	cl.mu.Unlock()
}

// startSampling samples every few milliseconds until finish.
func (cl *cluster) startSampling() {
	ctx, cancel := context.WithCancel(context.Background())
	cl.stopSample, cl.sampleDone = cancel, make(chan struct{})
	go func() {
		defer close(cl.sampleDone)
		for ctx.Err() == nil {
			cl.sample("poll")
			select {
			case <-ctx.Done():
			case <-time.After(3 * time.Millisecond):
			}
		}
	}()
}

// waitLeader polls until a candidate other than not leads, and returns it with the instant.
func (cl *cluster) waitLeader(limit time.Duration, not *liveCandidate) (*liveCandidate, time.Time) {
	cl.t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if ls := cl.leaders(); len(ls) == 1 && ls[0] != not {
			return ls[0], time.Now()
		}
		time.Sleep(2 * time.Millisecond)
	}
	cl.t.Fatalf("no new leader within %v", limit)
	return nil, time.Time{}
}

// finish stops candidates and the sampler and reports violations.
func (cl *cluster) finish() {
	cl.t.Helper()
	for _, c := range cl.cands {
		c.cancel()
	}
	for _, c := range cl.cands {
		if err := <-c.done; err != nil {
			cl.t.Errorf("Run(%s): %v", c.id, err)
		}
	}
	if cl.stopSample != nil {
		cl.stopSample()
		<-cl.sampleDone
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.samples < 10 {
		cl.t.Errorf("only %d invariant samples", cl.samples)
	}
	for i, v := range cl.violations {
		if i == 10 {
			cl.t.Errorf("... %d more", len(cl.violations)-i)
			break
		}
		cl.t.Errorf("invariant violated: %s", v)
	}
}

func TestIntegrationKubeLeaseStoreConformance(t *testing.T) {
	env := envtest.StartForTest(t, envOptions())
	cs := kubernetes.NewForConfigOrDie(env.Config())
	leasetest.Conformance(t, leaderelection.NewKubeLeaseStore(cs.CoordinationV1()), types.NamespacedName{Namespace: "default", Name: "conformance"})
}

func TestIntegrationFailover(t *testing.T) {
	env := envtest.StartForTest(t, envOptions())
	tests := []struct {
		name    string
		release bool
		max     time.Duration // from the leader's cancellation to a new leader
	}{
		{name: "leader cancelled without release", max: itLease + itRetry + itSlack},
		{name: "leader released gracefully", release: true, max: itRetry + time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := newCluster(t, env)
			for _, id := range []string{"a", "b", "c"} {
				cl.add(id, func(o *leaderelection.Options) { o.ReleaseOnCancel = tt.release })
			}
			cl.startSampling()
			defer cl.finish()
			old, _ := cl.waitLeader(10*time.Second, nil)
			time.Sleep(3*itRetry + itRetry/3) // several renewals, then mid-cycle
			cancelled := time.Now()
			old.cancel()
			next, at := cl.waitLeader(tt.max+time.Second, old)
			if got := at.Sub(cancelled); got > tt.max {
				t.Errorf("new leader %s after %v, want <= %v", next.id, got, tt.max)
			} else {
				t.Logf("new leader %s after %v (bound %v)", next.id, got, tt.max)
			}
			if err := <-old.done; err != nil {
				t.Errorf("Run(old leader): %v", err)
			}
			old.done <- nil // for finish
		})
	}
}

func TestIntegrationAPIServerAway(t *testing.T) {
	tests := []struct {
		name   string
		away   func(env *envtest.Environment) error
		back   func(ctx context.Context, env *envtest.Environment) error
		outage time.Duration
	}{
		{
			name:   "SIGSTOP",
			away:   func(env *envtest.Environment) error { return env.PauseAPIServer() },
			back:   func(_ context.Context, env *envtest.Environment) error { return env.ResumeAPIServer() },
			outage: itLease + time.Second,
		},
		{
			name:   "restart",
			away:   func(env *envtest.Environment) error { return env.StopAPIServer() },
			back:   func(ctx context.Context, env *envtest.Environment) error { return env.StartAPIServer(ctx) },
			outage: itLease + time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := envtest.StartForTest(t, envOptions())
			cl := newCluster(t, env)
			for _, id := range []string{"a", "b", "c"} {
				cl.add(id, nil)
			}
			cl.startSampling()
			defer cl.finish()
			old, _ := cl.waitLeader(10*time.Second, nil)
			time.Sleep(2 * itRetry)
			wentAway := time.Now()
			if err := tt.away(env); err != nil {
				t.Fatal(err)
			}
			// The leader stops by RenewDeadline after its last renewal (<= now).
			for time.Since(wentAway) < itRenew+itSlack && old.el.IsLeader() {
				time.Sleep(time.Millisecond)
			}
			if old.el.IsLeader() {
				t.Fatalf("leader still leads %v after the API server went away", time.Since(wentAway))
			}
			t.Logf("leader stopped %v after the API server went away (bound %v)", time.Since(wentAway), itRenew)
			// While the server is away nobody leads.
			for time.Since(wentAway) < tt.outage {
				if ls := cl.leaders(); len(ls) != 0 {
					t.Fatalf("%s leads while the API server is away", ls[0].id)
				}
				time.Sleep(2 * time.Millisecond)
			}
			if err := tt.back(t.Context(), env); err != nil {
				t.Fatal(err)
			}
			back := time.Now()
			next, at := cl.waitLeader(itLease+itRetry+5*time.Second, nil)
			t.Logf("leadership resumed with %s %v after the API server returned", next.id, at.Sub(back))
		})
	}
}

// TestIntegrationBlockedRenewals cuts the leader's Lease traffic at its TCP proxy while its
// fenced write path and the other candidates still reach the API server. Every candidate tries
// a leader-only write every few milliseconds, all the time, through a fenced client whose
// requests are counted at an HTTP proxy.
func TestIntegrationBlockedRenewals(t *testing.T) {
	env := envtest.StartForTest(t, envOptions())
	cl := newCluster(t, env)
	type writer struct {
		counter             *writeCounter
		attempts, refused   atomic.Int64
		lastDeadlineWhenLed atomic.Int64 // unix nanos of the last fence deadline seen
	}
	writers := map[string]*writer{}
	var wg sync.WaitGroup
	stopWriters, cancelWriters := context.WithCancel(context.Background())
	for _, id := range []string{"a", "b", "c"} {
		w := &writer{counter: newWriteCounter(t, env.Config())}
		writers[id] = w
		c := cl.add(id, nil)
		fenced, err := kubernetes.NewForConfig(c.el.Fence().WrapConfig(w.counter.config()))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for i := 0; stopWriters.Err() == nil; i++ {
				if d, ok := c.el.Fence().Deadline(); ok {
					w.lastDeadlineWhenLed.Store(d.UnixNano())
				}
				w.attempts.Add(1)
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", id, i), Namespace: "default"}}
				_, err := fenced.CoreV1().ConfigMaps("default").Create(stopWriters, cm, metav1.CreateOptions{})
				if errors.Is(err, leaderelection.ErrFenced) {
					w.refused.Add(1)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	cl.startSampling()
	defer func() {
		cancelWriters()
		wg.Wait()
		cl.finish()
	}()

	old, _ := cl.waitLeader(10*time.Second, nil)
	time.Sleep(2 * itRetry)
	ow := writers[old.id]
	if ow.counter.writesAfter(time.Time{}) == 0 {
		t.Fatalf("the leader's writes did not reach the server while it led")
	}
	blocked := time.Now()
	old.proxy.setDropping(true)

	next, acquired := cl.waitLeader(itLease+itRetry+5*time.Second, old)
	next.mu.Lock()
	acquired = next.started[len(next.started)-1]
	next.mu.Unlock()
	// The old leader stopped by RenewDeadline after its last renewal (before blocked).
	old.mu.Lock()
	oldStopped := append([]time.Time(nil), old.stopped...)
	old.mu.Unlock()
	if len(oldStopped) == 0 {
		t.Fatalf("old leader %s never stopped leading", old.id)
	}
	if got := oldStopped[0].Sub(blocked); got > itRenew+itSlack {
		t.Errorf("old leader stopped %v after its renewals were blocked, want <= %v", got, itRenew)
	}
	fenceAt := time.Unix(0, ow.lastDeadlineWhenLed.Load())
	if !fenceAt.Before(acquired) {
		t.Errorf("old leader's fence rose at %v, not before %s acquired at %v", fenceAt.Format(time.StampMicro), next.id, acquired.Format(time.StampMicro))
	}
	t.Logf("renewals blocked; fence raised %v later, %s acquired %v after the fence",
		fenceAt.Sub(blocked), next.id, acquired.Sub(fenceAt))
	// Let the old leader's writer try (and fail) for a while, then count at its proxy.
	time.Sleep(time.Second)
	if n := ow.counter.writesAfter(fenceAt); n != 0 {
		t.Errorf("writes from %s reaching the server after its fence rose: got %d, want 0", old.id, n)
	}
	if n := ow.counter.writesAfter(acquired); n != 0 {
		t.Errorf("writes from %s reaching the server after %s acquired: got %d, want 0", old.id, next.id, n)
	}
	if ow.refused.Load() == 0 {
		t.Errorf("no write of the fenced old leader was refused: the test did not exercise the fence")
	}

	// The old leader rejoins and can lead again.
	old.proxy.setDropping(false)
	// A Get already hanging in the black hole may take until its RenewDeadline timeout.
	healed := time.Now()
	for old.el.Leader() != next.id && time.Since(healed) < itRenew+2*itRetry+itSlack {
		time.Sleep(5 * time.Millisecond)
	}
	if got := old.el.Leader(); got != next.id {
		t.Errorf("rejoined old leader sees leader %q %v after healing, want %q", got, time.Since(healed), next.id)
	}
	for _, c := range cl.cands {
		if c != old {
			c.cancel() // crash: no release
			if err := <-c.done; err != nil {
				t.Errorf("Run(%s): %v", c.id, err)
			}
			c.done <- nil // for finish
		}
	}
	again, _ := cl.waitLeader(itLease+itRetry+itSlack+time.Second, nil)
	if again != old {
		t.Fatalf("after the others stopped: got leader %s, want %s", again.id, old.id)
	}
	rejoinedAt := time.Now()
	time.Sleep(3 * itRetry)
	if ow.counter.writesAfter(rejoinedAt) == 0 {
		t.Errorf("the old leader leads again but its writes do not reach the server")
	}
}

// envOptions are the envtest options of these tests. kube-apiserver v1.37 refuses a loopback
// advertise address with the default endpoint reconciler; no test here needs the kubernetes
// Service's endpoints.
func envOptions() envtest.Options {
	return envtest.Options{APIServerFlags: map[string]string{"endpoint-reconciler-type": "none"}}
}
