package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Request names the object to reconcile. It is the workqueue key: two
// events for one object coalesce into one reconcile. Why a reconcile runs
// (its Trigger) is kept beside the key, never in it.
type Request struct {
	// Namespace is empty for cluster-scoped objects.
	Namespace string
	Name      string
}

// String is "namespace/name", or "name" for a cluster-scoped object.
func (r Request) String() string {
	if r.Namespace == "" {
		return r.Name
	}
	return r.Namespace + "/" + r.Name
}

// Result says what to do after a successful reconcile. Build it with Done
// or RequeueAfter; the zero value is Done.
//
// There is no "requeue now": to be called again because something is not
// ready, return an error (rate-limited backoff) or RequeueAfter a duration.
type Result struct {
	after time.Duration
}

// Done is the result of a reconcile that reached the desired state: the
// request is forgotten by the rate limiter and runs again only on the next
// event.
func Done() Result { return Result{} }

// RequeueAfter asks for another reconcile after d, forgetting the request's
// backoff. d <= 0 is Done.
func RequeueAfter(d time.Duration) Result {
	if d <= 0 {
		return Result{}
	}
	return Result{after: d}
}

// After reports the requeue delay, and whether there is one.
func (r Result) After() (time.Duration, bool) { return r.after, r.after > 0 }

// IsDone reports whether no requeue was asked for.
func (r Result) IsDone() bool { return r.after <= 0 }

// String describes the result for logs.
func (r Result) String() string {
	if r.after > 0 {
		return "requeue after " + r.after.String()
	}
	return "done"
}

// Reconciler drives the world towards the desired state of one object. It
// must be idempotent and level-based: it is told which object, never what
// changed, and may be called again at any time.
//
// Guarantees from a Controller:
//   - Requests for one object are never reconciled concurrently.
//   - A failed reconcile (error other than a TerminalError) is retried with
//     per-request exponential backoff; nothing is dropped silently.
//   - ctx carries a logger (logr.FromContextOrDiscard) with the keys
//     controller, namespace, name and reconcileID, and ends when the
//     controller stops after its shutdown grace period, or at the
//     per-reconcile timeout.
type Reconciler interface {
	Reconcile(ctx context.Context, req Request) (Result, error)
}

// Func adapts a function to Reconciler.
type Func func(ctx context.Context, req Request) (Result, error)

// Reconcile calls f.
func (f Func) Reconcile(ctx context.Context, req Request) (Result, error) { return f(ctx, req) }

var _ Reconciler = Func(nil)

// terminalError marks an error that retrying cannot fix.
type terminalError struct{ err error }

func (e *terminalError) Error() string { return "terminal error: " + e.err.Error() }
func (e *terminalError) Unwrap() error { return e.err }

// TerminalError wraps err to tell the controller not to retry: the error is
// logged and counted, and the request waits for the next event. Use it for
// errors in the user's spec that only a change to the object can fix.
// TerminalError(nil) is nil.
func TerminalError(err error) error {
	if err == nil {
		return nil
	}
	return &terminalError{err: err}
}

// IsTerminal reports whether err, or an error it wraps, is a TerminalError.
func IsTerminal(err error) bool {
	var t *terminalError
	return errors.As(err, &t)
}

// PanicError is the error a recovered panic in a Reconciler becomes.
type PanicError struct {
	// Value is what was passed to panic.
	Value any
	// Stack is the goroutine's stack at the panic.
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic in reconciler: %v", e.Value) }
