package reconcile

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	crreconcile "sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Backoff of controller-runtime's deprecated Result{Requeue: true}: the
// per-item part of controller-runtime's default rate limiter (5ms doubling
// to 1000s), which is what such a requeue gets there.
const (
	crRequeueBase = 5 * time.Millisecond
	crRequeueMax  = 1000 * time.Second
)

// FromControllerRuntime runs a controller-runtime reconciler on a capstan
// Controller:
//
//	c, err := reconcile.New(reconcile.FromControllerRuntime(myCRReconciler), reconcile.Options{Name: "foo"})
//
// The results translate as follows:
//   - An error is retried with the controller's backoff, whatever the
//     Result; an error for which errors.Is(err, crreconcile.TerminalError(nil))
//     holds becomes a TerminalError (not retried), keeping its chain.
//   - Result{RequeueAfter: d} is RequeueAfter(d).
//   - Result{Requeue: true} (deprecated in controller-runtime) is a requeue
//     after a per-request backoff, 5ms doubling to 1000s, reset by any other
//     outcome: controller-runtime's rate-limited requeue, without passing
//     for a failure in logs and error metrics.
//   - Result.Priority is ignored: capstan queues every event at its own
//     priority.
//
// ctx reaches the reconciler with the controller's logger, so
// controller-runtime's log.FromContext(ctx) (which reads logr's context
// key) returns it with the controller, namespace, name and reconcileID
// keys; a context without a logger gets logr.Discard rather than
// controller-runtime's global logger.
func FromControllerRuntime(r crreconcile.Reconciler) Reconciler {
	return TypedFromControllerRuntime(r, func(req Request) crreconcile.Request {
		return crreconcile.Request{NamespacedName: types.NamespacedName{Namespace: req.Namespace, Name: req.Name}}
	})
}

// TypedFromControllerRuntime is FromControllerRuntime for a
// controller-runtime TypedReconciler of any request type, given how to
// build its request from a capstan Request.
func TypedFromControllerRuntime[R comparable](r crreconcile.TypedReconciler[R], toRequest func(Request) R) Reconciler {
	return &crAdapter[R]{r: r, toRequest: toRequest, requeues: map[Request]int{}}
}

// crAdapter runs a controller-runtime reconciler.
type crAdapter[R comparable] struct {
	r         crreconcile.TypedReconciler[R]
	toRequest func(Request) R

	mu sync.Mutex
	// requeues counts the consecutive Requeue:true results per request; an
	// entry lives only while its request keeps asking to be requeued.
	requeues map[Request]int
}

func (a *crAdapter[R]) Reconcile(ctx context.Context, req Request) (Result, error) {
	if _, err := logr.FromContext(ctx); err != nil {
		ctx = logr.NewContext(ctx, logr.Discard())
	}
	res, err := a.r.Reconcile(ctx, a.toRequest(req))
	if err != nil || !res.Requeue || res.RequeueAfter > 0 {
		a.mu.Lock()
		delete(a.requeues, req)
		a.mu.Unlock()
	}
	switch {
	case err != nil:
		if errors.Is(err, crreconcile.TerminalError(nil)) {
			return Result{}, TerminalError(err)
		}
		return Result{}, err
	case res.RequeueAfter > 0:
		return RequeueAfter(res.RequeueAfter), nil
	case res.Requeue:
		return RequeueAfter(a.nextBackoff(req)), nil
	default:
		return Done(), nil
	}
}

// nextBackoff returns the delay of req's next Requeue:true and counts it.
func (a *crAdapter[R]) nextBackoff(req Request) time.Duration {
	a.mu.Lock()
	n := a.requeues[req]
	a.requeues[req] = n + 1
	a.mu.Unlock()
	d := crRequeueBase
	for range n {
		d *= 2
		if d >= crRequeueMax {
			return crRequeueMax
		}
	}
	return d
}
