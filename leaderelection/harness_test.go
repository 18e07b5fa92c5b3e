package leaderelection_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"

	"github.com/capstan-io/capstan/leaderelection"
	"github.com/capstan-io/capstan/leaderelection/leasetest"
)

var key = types.NamespacedName{Namespace: "ns", Name: "lease"}

// Short durations keep virtual timelines readable; the ratios are the defaults' (15:10:2).
const (
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
	step          = 10 * time.Millisecond
)

// event is one callback, stamped with the (virtual) time it ran.
type event struct {
	at    time.Time
	kind  string // "started", "stopped", "newLeader"
	value string
}

// candidate is one elector under test with its own connection to the shared store.
type candidate struct {
	id     string
	el     *leaderelection.Elector
	client *leasetest.Client
	cancel context.CancelFunc
	done   chan error

	mu         sync.Mutex
	events     []event
	leaderCtxs []context.Context
	errorLogs  []string
}

// world is a store plus candidates, inside a synctest bubble.
type world struct {
	t     *testing.T
	store *leasetest.Store
	cands []*candidate
	// violations of the election invariant, checked at every step and every callback.
	violations []string
	mu         sync.Mutex
}

func newWorld(t *testing.T) *world {
	return &world{t: t, store: leasetest.NewStore(leasetest.Options{})}
}

// add creates a candidate (not yet running). mod may change its options.
func (w *world) add(id string, mod func(*leaderelection.Options)) *candidate {
	w.t.Helper()
	c := &candidate{id: id, client: w.store.Client()}
	opts := leaderelection.Options{
		Namespace:     key.Namespace,
		Name:          key.Name,
		Store:         c.client,
		Identity:      id,
		LeaseDuration: leaseDuration,
		RenewDeadline: renewDeadline,
		RetryPeriod:   retryPeriod,
		Logger:        logr.New(errorOnly{c}),
		OnStartedLeading: func(ctx context.Context) {
			c.record("started", "")
			c.mu.Lock()
			c.leaderCtxs = append(c.leaderCtxs, ctx)
			c.mu.Unlock()
			w.check("OnStartedLeading " + id)
			<-ctx.Done()
		},
		OnStoppedLeading: func() {
			c.record("stopped", "")
			w.check("OnStoppedLeading " + id)
		},
		OnNewLeader: func(holder string) {
			c.record("newLeader", holder)
			w.check("OnNewLeader " + id)
		},
	}
	if mod != nil {
		mod(&opts)
	}
	el, err := leaderelection.New(opts)
	if err != nil {
		w.t.Fatalf("New(%s): %v", id, err)
	}
	c.el = el
	w.cands = append(w.cands, c)
	return c
}

// errorOnly is a logr sink that keeps only Error calls (conflicts must never be errors).
type errorOnly struct{ c *candidate }

func (s errorOnly) Init(logr.RuntimeInfo)          {}
func (s errorOnly) Enabled(int) bool               { return true }
func (s errorOnly) Info(int, string, ...any)       {}
func (s errorOnly) WithValues(...any) logr.LogSink { return s }
func (s errorOnly) WithName(string) logr.LogSink   { return s }
func (s errorOnly) Error(err error, msg string, kv ...any) {
	s.c.mu.Lock()
	s.c.errorLogs = append(s.c.errorLogs, msg+": "+err.Error())
	s.c.mu.Unlock()
}

func (c *candidate) record(kind, value string) {
	c.mu.Lock()
	c.events = append(c.events, event{at: time.Now(), kind: kind, value: value})
	c.mu.Unlock()
}

// start runs the candidate's elector until stop.
func (c *candidate) start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.done = make(chan error, 1)
	go func() { c.done <- c.el.Run(ctx) }()
}

// stop cancels Run and returns its result.
func (c *candidate) stop() error {
	c.cancel()
	err := <-c.done
	c.done = nil
	return err
}

func (c *candidate) eventsOf(kind string) []event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []event
	for _, e := range c.events {
		if e.kind == kind {
			out = append(out, e)
		}
	}
	return out
}

func (c *candidate) errors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errorLogs...)
}

// check records a violation if more than one candidate believes it leads, or the one that
// does is not the lease's holder.
func (w *world) check(where string) {
	var leaders []string
	for _, c := range w.cands {
		if c.el != nil && c.el.IsLeader() {
			leaders = append(leaders, c.id)
		}
	}
	rec, _ := w.store.Lease(key)
	bad := len(leaders) > 1 || (len(leaders) == 1 && rec.HolderIdentity != leaders[0])
	if bad {
		w.mu.Lock()
		w.violations = append(w.violations, where+" at "+time.Now().Format(time.StampMilli)+": leaders "+join(leaders)+", holder "+rec.HolderIdentity)
		w.mu.Unlock()
	}
}

func join(s []string) string {
	out := "["
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out + "]"
}

// run advances virtual time by d in small steps, checking the invariant at each.
func (w *world) run(d time.Duration) {
	w.t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		time.Sleep(min(step, time.Until(end)))
		synctest.Wait()
		w.check("step")
	}
}

// until advances time in steps until cond holds or limit passes; it returns the time taken.
func (w *world) until(limit time.Duration, what string, cond func() bool) time.Duration {
	w.t.Helper()
	start := time.Now()
	synctest.Wait()
	for !cond() {
		if time.Since(start) > limit {
			w.t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(step)
		synctest.Wait()
		w.check("step")
	}
	return time.Since(start)
}

// leader returns the candidate that believes it leads, or nil.
func (w *world) leader() *candidate {
	for _, c := range w.cands {
		if c.el.IsLeader() {
			return c
		}
	}
	return nil
}

// finish stops every running candidate and reports invariant violations.
func (w *world) finish() {
	w.t.Helper()
	for _, c := range w.cands {
		if c.done != nil && c.cancel != nil {
			c.cancel()
		}
	}
	for _, c := range w.cands {
		if c.done != nil {
			if err := <-c.done; err != nil && !errors.Is(err, leaderelection.ErrLeadershipLost) {
				w.t.Errorf("Run(%s): got %v, want nil", c.id, err)
			}
			c.done = nil
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, v := range w.violations {
		if i == 5 {
			w.t.Errorf("... and %d more violations", len(w.violations)-i)
			break
		}
		w.t.Errorf("invariant violated: %s", v)
	}
}

// holder returns the stored lease's holder.
func (w *world) holder() string {
	rec, _ := w.store.Lease(key)
	return rec.HolderIdentity
}

// synctestRun runs f in a bubble with a fresh world.
func synctestRun(t *testing.T, f func(w *world)) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		f(w)
		w.finish()
	})
}
