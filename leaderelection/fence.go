package leaderelection

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
)

// ErrFenced is returned (wrapped) by Fence.Check and by fenced clients when leader-only work is
// attempted without valid leadership.
var ErrFenced = errors.New("leaderelection: fenced: not the leader")

// FencedError is the error a fenced round tripper returns for a refused request. It matches
// ErrFenced with errors.Is. client-go surfaces it wrapped in a *url.Error.
type FencedError struct {
	Method string
	URL    string
	Reason string
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("leaderelection: fenced: %s %s refused: %s", e.Method, e.URL, e.Reason)
}

// Is reports whether target is ErrFenced.
func (e *FencedError) Is(target error) bool { return target == ErrFenced }

// Fence is raised whenever its Elector does not hold valid leadership, and lowered only for a
// term the Elector has acquired, until the term's deadline.
//
// The deadline is (send time of the last successful write of the lease, measured on the local
// clock) + RenewDeadline. Raised compares the clock with the deadline on every call, so the
// fence rises at the deadline even if the elector's goroutine is starved or blocked; no timer
// has to fire for it.
//
// A Fence is safe for concurrent use. It starts raised.
type Fence struct {
	clock clock.PassiveClock

	mu       sync.Mutex
	term     uint64    // guarded by mu; incremented by each lowerLocked
	open     bool      // guarded by mu; true between lower and raise of term
	deadline time.Time // guarded by mu; meaningful while open
	// leaderCancel ends the term's leader context (on any raise). abortCancel ends the context
	// that in-flight fenced writes are tied to (on a loss, not on a graceful release).
	leaderCancel context.CancelCauseFunc
	abortCtx     context.Context
	abortCancel  context.CancelFunc
	inflight     int           // guarded by mu; fenced writes between admit and return
	idle         chan struct{} // guarded by mu; closed when inflight drops to 0; nil when 0
}

func newFence(clk clock.PassiveClock) *Fence {
	return &Fence{clock: clk}
}

type termKey struct{}

type termMark struct {
	f    *Fence
	term uint64
}

type unfencedKey struct{}

// Unfenced marks ctx so that writes made with it are not leader-only: a fenced client lets them
// through whether or not this process leads. Use it only for work that is safe to run on every
// replica (for example events or writes to per-replica objects).
func Unfenced(ctx context.Context) context.Context {
	return context.WithValue(ctx, unfencedKey{}, true)
}

// Raised reports whether leader-only writes are refused now.
func (f *Fence) Raised() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.raisedLocked()
}

func (f *Fence) raisedLocked() bool {
	return !f.open || !f.clock.Now().Before(f.deadline)
}

// Deadline returns the instant (on the elector's clock) at which the fence rises unless the
// lease is renewed first, and false if it is raised already.
func (f *Fence) Deadline() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.raisedLocked() {
		return time.Time{}, false
	}
	return f.deadline, true
}

// Check returns nil if leader-only work may write now on behalf of ctx, and an error wrapping
// ErrFenced otherwise. A ctx derived from an OnStartedLeading ctx belongs to that term: it is
// refused once that term has ended, even if this process leads again in a later term. A ctx
// marked with Unfenced is always allowed.
func (f *Fence) Check(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.checkLocked(ctx)
}

func (f *Fence) checkLocked(ctx context.Context) error {
	if ctx != nil {
		if v, _ := ctx.Value(unfencedKey{}).(bool); v {
			return nil
		}
		if m, ok := ctx.Value(termKey{}).(termMark); ok && m.f == f && m.term != f.term {
			return fmt.Errorf("%w: leadership term %d has ended", ErrFenced, m.term)
		}
	}
	if !f.open {
		return fmt.Errorf("%w: not leading", ErrFenced)
	}
	if now := f.clock.Now(); !now.Before(f.deadline) {
		return fmt.Errorf("%w: renew deadline passed %v ago", ErrFenced, now.Sub(f.deadline))
	}
	return nil
}

// lower opens a new term until deadline and returns the term's leader context (derived from
// parent's values, cancelled by raise) and the term number.
func (f *Fence) lower(parent context.Context, deadline time.Time) (context.Context, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.term++
	f.open = true
	f.deadline = deadline
	base := context.WithValue(context.WithoutCancel(parent), termKey{}, termMark{f: f, term: f.term})
	var leaderCtx context.Context
	leaderCtx, f.leaderCancel = context.WithCancelCause(base)
	f.abortCtx, f.abortCancel = context.WithCancel(context.Background())
	return leaderCtx, f.term
}

// extend moves term's deadline forward. It returns false, and changes nothing, if term is no
// longer open or its deadline has passed (then the term is lost).
func (f *Fence) extend(term uint64, deadline time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if term != f.term || f.raisedLocked() {
		return false
	}
	if deadline.After(f.deadline) {
		f.deadline = deadline
	}
	return true
}

// raise ends term: leader-only writes are refused from now on and the term's leader context is
// cancelled with cause (the first cause wins). With abort, in-flight fenced writes are cancelled too (leadership was lost); without
// (graceful release), they are left to finish by their own deadline. Raising a term that is not
// current is a no-op.
func (f *Fence) raise(term uint64, abort bool, cause error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if term != f.term {
		return
	}
	f.open = false
	if f.leaderCancel != nil {
		f.leaderCancel(cause)
	}
	if abort && f.abortCancel != nil {
		f.abortCancel()
	}
}

// finish releases the resources of term's contexts once nothing can use them.
func (f *Fence) finish(term uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if term == f.term && f.abortCancel != nil {
		f.abortCancel()
	}
}

// deadlineOf returns the deadline of term (zero if term is not current).
func (f *Fence) deadlineOf(term uint64) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if term != f.term {
		return time.Time{}
	}
	return f.deadline
}

// admit checks ctx like Check and, if allowed, counts one fenced write in flight until done is
// called. It returns the remaining time to the deadline and the context that aborts the write.
func (f *Fence) admit(ctx context.Context) (remaining time.Duration, abort context.Context, done func(), err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkLocked(ctx); err != nil {
		return 0, nil, nil, err
	}
	f.inflight++
	if f.inflight == 1 {
		f.idle = make(chan struct{})
	}
	var once sync.Once
	done = func() {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.inflight--
			if f.inflight == 0 {
				close(f.idle)
				f.idle = nil
			}
		})
	}
	return f.deadline.Sub(f.clock.Now()), f.abortCtx, done, nil
}

// waitIdle blocks until no fenced write is in flight, or ctx ends.
func (f *Fence) waitIdle(ctx context.Context) error {
	f.mu.Lock()
	idle := f.idle
	f.mu.Unlock()
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// isRead reports whether an HTTP method is a read (get, list and watch are GETs).
func isRead(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, "":
		return true
	}
	return false
}

// Wrap returns a RoundTripper that passes reads (GET, HEAD, OPTIONS: get, list, watch) through
// and lets any other request through only if Check(req.Context()) allows it. An admitted write
// carries a context deadline equal to the fence deadline at its start and is cancelled at once
// if leadership is lost while it is on the wire. A refused write returns a *FencedError without
// touching the network.
func (f *Fence) Wrap(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return &fencedRoundTripper{f: f, next: rt}
}

// WrapConfig returns a copy of cfg whose transport is wrapped by Wrap. Clients built from it
// obey the fence. Do not use it for the elector's own Lease client.
func (f *Fence) WrapConfig(cfg *rest.Config) *rest.Config {
	out := rest.CopyConfig(cfg)
	out.Wrap(func(rt http.RoundTripper) http.RoundTripper { return f.Wrap(rt) })
	return out
}

type fencedRoundTripper struct {
	f    *Fence
	next http.RoundTripper
}

var _ http.RoundTripper = (*fencedRoundTripper)(nil)

func (t *fencedRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	if isRead(req.Method) {
		return t.next.RoundTrip(req)
	}
	if v, _ := req.Context().Value(unfencedKey{}).(bool); v {
		return t.next.RoundTrip(req)
	}
	remaining, abort, done, err := t.f.admit(req.Context())
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close() // RoundTrippers must close the body, even on errors
		}
		return nil, &FencedError{Method: req.Method, URL: req.URL.Redacted(), Reason: err.Error()}
	}
	defer done()
	ctx, cancel := context.WithTimeout(req.Context(), remaining)
	stop := context.AfterFunc(abort, cancel)
	release := func() {
		stop()
		cancel()
	}
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		release()
		return nil, err
	}
	resp.Body = &releaseOnClose{ReadCloser: resp.Body, release: release}
	return resp, nil
}

// releaseOnClose keeps a write's context alive until its response body is closed.
type releaseOnClose struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releaseOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}
