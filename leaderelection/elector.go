package leaderelection

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// ErrLeadershipLost is returned by Run, with Options.ReturnOnLoss, after leadership was lost.
var ErrLeadershipLost = errors.New("leaderelection: leadership lost")

// Causes of a leader context's cancellation (context.Cause on the OnStartedLeading ctx).
var (
	// ErrRenewDeadline: no renewal succeeded within RenewDeadline.
	ErrRenewDeadline = errors.New("leaderelection: renew deadline passed")
	// errDeposed: a renewal found the lease held by someone else, or gone.
	errDeposed = errors.New("leaderelection: deposed: lease held by another candidate or deleted")
)

// Elector campaigns for one Lease. Create it with New, then call Run once.
//
// All exported methods are safe for concurrent use.
type Elector struct {
	opts  Options
	key   types.NamespacedName
	store LeaseStore
	clock clock.WithDelayedExecution
	log   logr.Logger
	fence *Fence
	gauge prometheus.Gauge // nil without Options.Registerer

	running atomic.Bool
	notify  chan struct{} // cap 1: the observed holder changed

	mu sync.Mutex
	// observed is the last record read or written; observedAt is when (local clock) its
	// ResourceVersion was first seen. Together they decide expiry: never remote timestamps.
	observed     Record    // guarded by mu
	observedAt   time.Time // guarded by mu
	haveObserved bool      // guarded by mu
	leading      bool      // guarded by mu; from acquire until the term's step-down finished
	lastRenew    time.Time // guarded by mu; send time of the last successful acquire/renew
}

// New validates opts and returns an Elector. Errors name the offending field.
func New(opts Options) (*Elector, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	e := &Elector{
		opts:   opts,
		key:    types.NamespacedName{Namespace: opts.Namespace, Name: opts.Name},
		store:  opts.Store,
		clock:  opts.Clock,
		log:    opts.Logger.WithValues("lease", opts.Namespace+"/"+opts.Name, "identity", opts.Identity),
		fence:  newFence(opts.Clock),
		notify: make(chan struct{}, 1),
	}
	if opts.Registerer != nil {
		g, err := registerGauge(opts.Registerer)
		if err != nil {
			return nil, fmt.Errorf("leaderelection: Options.Registerer: %w", err)
		}
		e.gauge = g.WithLabelValues(opts.Name)
		e.gauge.Set(0)
	}
	return e, nil
}

// Identity is this candidate's identity in the Lease.
func (e *Elector) Identity() string { return e.opts.Identity }

// Fence returns the elector's fence; wrap the clients of leader-only work with it.
func (e *Elector) Fence() *Fence { return e.fence }

// IsLeader reports whether this candidate holds valid leadership now. It turns false at the
// renew deadline even before the elector's goroutine has reacted.
func (e *Elector) IsLeader() bool { return !e.fence.Raised() }

// Leader returns the holder identity last observed in the Lease ("" if none or released).
func (e *Elector) Leader() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.observed.HolderIdentity
}

// HealthCheck returns a check for /healthz that fails while this elector is in a leadership
// term (leading, or stepping down) whose last successful renewal is older than
// RenewDeadline + tolerance. A healthy elector steps down at RenewDeadline, so a failure means
// the step-down is stuck: OnStartedLeading ignores its ctx, or Run is blocked.
func (e *Elector) HealthCheck(tolerance time.Duration) func(*http.Request) error {
	return func(*http.Request) error {
		e.mu.Lock()
		leading, last := e.leading, e.lastRenew
		e.mu.Unlock()
		if !leading {
			return nil
		}
		if since := e.clock.Since(last); since > e.opts.RenewDeadline+tolerance {
			return fmt.Errorf("leaderelection: lease %s: last renewal %v ago exceeds renew deadline %v + tolerance %v",
				e.key, since, e.opts.RenewDeadline, tolerance)
		}
		return nil
	}
}

// Run campaigns until ctx ends: acquire, lead (OnStartedLeading), lose or be cancelled
// (OnStoppedLeading), campaign again. It returns nil when ctx ends, ErrLeadershipLost after the
// first loss if Options.ReturnOnLoss, and an error if called twice. When Run returns, no
// goroutine it started is running and the fence is raised.
func (e *Elector) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("leaderelection: Run called more than once")
	}
	var wg sync.WaitGroup
	nctx, stopNotifier := context.WithCancel(ctx)
	defer func() {
		stopNotifier()
		wg.Wait()
	}()
	if e.opts.OnNewLeader != nil {
		wg.Go(func() { e.notifyLoop(nctx) })
	}
	for {
		deadline, ok := e.campaign(ctx)
		if !ok {
			return nil
		}
		lost := e.lead(ctx, deadline)
		if !lost {
			return nil
		}
		if e.opts.ReturnOnLoss {
			return ErrLeadershipLost
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// campaign polls until this candidate acquires the lease (returning the term's deadline) or ctx
// ends.
func (e *Elector) campaign(ctx context.Context) (time.Time, bool) {
	for {
		deadline, ok, expiry := e.tryAcquire(ctx)
		if ok {
			return deadline, true
		}
		// Jitter downwards only: never slower than RetryPeriod, never in lockstep. If the
		// holder's lease expires sooner than that, poll right at its expiry.
		wait := time.Duration(float64(e.opts.RetryPeriod) * (1 - jitterFraction*rand.Float64()))
		if !expiry.IsZero() {
			wait = min(wait, max(expiry.Sub(e.clock.Now()), 0))
		}
		t := e.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return time.Time{}, false
		case <-t.C():
		}
	}
}

// tryAcquire makes one attempt to acquire the lease. On success it returns the term's deadline;
// if the lease is held by another candidate, it returns when (local clock) that lease expires.
func (e *Elector) tryAcquire(ctx context.Context) (deadline time.Time, acquired bool, expiry time.Time) {
	actx, cancel := context.WithTimeout(ctx, e.opts.RenewDeadline)
	defer cancel()
	cur, err := e.store.Get(actx, e.key)
	if errors.Is(err, ErrLeaseNotFound) {
		send := e.clock.Now()
		wall := send.Round(0)
		out, err := e.store.Create(actx, e.key, Record{
			HolderIdentity: e.opts.Identity,
			LeaseDuration:  e.opts.LeaseDuration,
			AcquireTime:    wall,
			RenewTime:      wall,
		})
		if err != nil {
			e.logWriteErr(ctx, err, "create")
			return time.Time{}, false, time.Time{}
		}
		e.observe(out)
		return send.Add(e.opts.RenewDeadline), true, time.Time{}
	}
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error(err, "cannot read lease")
		}
		return time.Time{}, false, time.Time{}
	}
	observedAt := e.observe(cur)
	if cur.HolderIdentity != "" && cur.HolderIdentity != e.opts.Identity {
		// Wait the longer of our LeaseDuration and the holder's declared one, from when we
		// first saw this version, on our own clock. Remote timestamps are never compared.
		expiry := observedAt.Add(max(e.opts.LeaseDuration, cur.LeaseDuration))
		if e.clock.Now().Before(expiry) {
			return time.Time{}, false, expiry
		}
	}
	next := cur
	next.HolderIdentity = e.opts.Identity
	next.LeaseDuration = e.opts.LeaseDuration
	if cur.HolderIdentity != e.opts.Identity {
		next.LeaseTransitions = cur.LeaseTransitions + 1
	}
	send := e.clock.Now()
	next.AcquireTime = send.Round(0)
	next.RenewTime = next.AcquireTime
	out, err := e.store.Update(actx, e.key, next)
	if err != nil {
		e.logWriteErr(ctx, err, "acquire")
		return time.Time{}, false, time.Time{}
	}
	e.observe(out)
	return send.Add(e.opts.RenewDeadline), true, time.Time{}
}

// lead runs one term that began with a write sent at deadline-RenewDeadline. It returns
// true if leadership was lost, false if ctx ended.
func (e *Elector) lead(ctx context.Context, deadline time.Time) (lost bool) {
	leaderCtx, term := e.fence.lower(ctx, deadline)
	defer e.fence.finish(term)
	// The fence rises by itself at the deadline (Raised compares clocks); this timer makes the
	// leader context's cancellation and the step-down happen at that instant too.
	expiry := e.clock.AfterFunc(deadline.Sub(e.clock.Now()), func() { e.fence.raise(term, true, ErrRenewDeadline) })
	defer expiry.Stop()

	e.mu.Lock()
	e.leading = true
	e.lastRenew = deadline.Add(-e.opts.RenewDeadline)
	e.mu.Unlock()
	if e.gauge != nil {
		e.gauge.Set(1)
	}
	e.log.Info("acquired leadership")

	workDone := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(workDone)
		if e.opts.OnStartedLeading != nil {
			e.opts.OnStartedLeading(leaderCtx)
		}
	})

	renew := e.clock.NewTimer(e.opts.RetryPeriod)
	shutdown := false
loop:
	for {
		select {
		case <-ctx.Done():
			shutdown = true
			break loop
		case <-leaderCtx.Done():
			break loop
		case <-renew.C():
		}
		send, err := e.renew(leaderCtx)
		switch {
		case err == nil:
			next := send.Add(e.opts.RenewDeadline)
			if !e.fence.extend(term, next) {
				break loop // the deadline passed while the renewal was on the wire
			}
			expiry.Reset(next.Sub(e.clock.Now()))
			e.mu.Lock()
			e.lastRenew = send
			e.mu.Unlock()
		case errors.Is(err, errDeposed):
			e.fence.raise(term, true, err)
			e.log.Info("lease taken by another candidate", "holder", e.Leader())
			break loop
		case leaderCtx.Err() != nil:
			break loop
		default:
			e.logWriteErr(ctx, err, "renew")
		}
		renew.Reset(e.opts.RetryPeriod)
	}
	renew.Stop()

	if shutdown {
		e.fence.raise(term, false, context.Cause(ctx))
	} else {
		e.fence.raise(term, true, ErrRenewDeadline)
		e.log.Info("lost leadership", "reason", context.Cause(leaderCtx).Error())
	}
	if shutdown && e.opts.ReleaseOnCancel {
		e.release(term, workDone)
	}
	wg.Wait()

	e.mu.Lock()
	e.leading = false
	e.mu.Unlock()
	if e.gauge != nil {
		e.gauge.Set(0)
	}
	if e.opts.OnStoppedLeading != nil {
		e.opts.OnStoppedLeading()
	}
	return !shutdown
}

// renew makes one renewal attempt with the last record this candidate wrote. It returns the
// send time of the write that succeeded.
func (e *Elector) renew(ctx context.Context) (time.Time, error) {
	e.mu.Lock()
	next := e.observed
	e.mu.Unlock()
	if next.HolderIdentity != e.opts.Identity {
		return time.Time{}, errDeposed
	}
	next.LeaseDuration = e.opts.LeaseDuration
	send := e.clock.Now()
	next.RenewTime = send.Round(0)
	out, err := e.store.Update(ctx, e.key, next)
	if err == nil {
		e.observe(out)
		return send, nil
	}
	if errors.Is(err, ErrLeaseNotFound) {
		return time.Time{}, fmt.Errorf("%w: lease deleted: %w", errDeposed, err)
	}
	if !errors.Is(err, ErrLeaseConflict) {
		return time.Time{}, err
	}
	// Someone wrote the lease. If it still names us, our previous write landed although we saw
	// an error (a lost response): retry at once with the fresh resourceVersion.
	cur, gerr := e.store.Get(ctx, e.key)
	if gerr != nil {
		if errors.Is(gerr, ErrLeaseNotFound) {
			return time.Time{}, fmt.Errorf("%w: lease deleted: %w", errDeposed, gerr)
		}
		return time.Time{}, gerr
	}
	e.observe(cur)
	if cur.HolderIdentity != e.opts.Identity {
		return time.Time{}, errDeposed
	}
	next = cur
	next.LeaseDuration = e.opts.LeaseDuration
	send = e.clock.Now()
	next.RenewTime = send.Round(0)
	out, err = e.store.Update(ctx, e.key, next)
	if err != nil {
		return time.Time{}, err
	}
	e.observe(out)
	return send, nil
}

// release clears the holder after the term's work returned and its fenced writes drained,
// provided the term's deadline has not passed: afterwards the lease may no longer be ours to
// release.
func (e *Elector) release(term uint64, workDone <-chan struct{}) {
	deadline := e.fence.deadlineOf(term)
	remaining := deadline.Sub(e.clock.Now())
	if remaining <= 0 {
		return
	}
	rctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t := e.clock.AfterFunc(remaining, cancel)
	defer t.Stop()
	select {
	case <-workDone:
	case <-rctx.Done():
		e.log.Info("not releasing lease: leader work did not return before the renew deadline")
		return
	}
	if err := e.fence.waitIdle(rctx); err != nil {
		e.log.Info("not releasing lease: fenced writes still in flight at the renew deadline")
		return
	}
	e.mu.Lock()
	next := e.observed
	e.mu.Unlock()
	if next.HolderIdentity != e.opts.Identity {
		return
	}
	next.HolderIdentity = ""
	next.RenewTime = e.clock.Now().Round(0)
	out, err := e.store.Update(rctx, e.key, next)
	if err != nil {
		e.logWriteErr(rctx, err, "release")
		return
	}
	e.observe(out)
	e.log.Info("released lease")
}

// observe records rec as the latest known state and returns when its version was first seen.
func (e *Elector) observe(rec Record) time.Time {
	e.mu.Lock()
	changedHolder := !e.haveObserved || rec.HolderIdentity != e.observed.HolderIdentity
	if !e.haveObserved || rec.ResourceVersion != e.observed.ResourceVersion {
		e.observedAt = e.clock.Now()
	}
	e.observed = rec
	e.haveObserved = true
	at := e.observedAt
	e.mu.Unlock()
	if changedHolder {
		e.log.V(1).Info("observed lease holder", "holder", rec.HolderIdentity)
		select {
		case e.notify <- struct{}{}:
		default:
		}
	}
	return at
}

// notifyLoop delivers OnNewLeader calls in order, coalescing bursts.
func (e *Elector) notifyLoop(ctx context.Context) {
	delivered, first := "", true
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.notify:
		}
		holder := e.Leader()
		if first || holder != delivered {
			first, delivered = false, holder
			e.opts.OnNewLeader(holder)
		}
	}
}

// logWriteErr logs conflicts at V(1) (they are the normal race of an election) and other
// failures at V(0), unless ctx has ended.
func (e *Elector) logWriteErr(ctx context.Context, err error, op string) {
	switch {
	case ctx.Err() != nil:
	case errors.Is(err, ErrLeaseConflict):
		e.log.V(1).Info("lease write lost a race", "op", op, "err", err.Error())
	default:
		e.log.Error(err, "lease write failed", "op", op)
	}
}
