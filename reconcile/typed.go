package reconcile

import (
	"context"

	"github.com/capstan-io/capstan/informer"
)

// ObjectReconciler reconciles objects of type T as the cache holds them,
// which ForObjects fetches for it.
type ObjectReconciler[T informer.Object] interface {
	// Reconcile is called with the cached object. It is shared with the
	// cache and every other reader: DeepCopy it before changing it.
	Reconcile(ctx context.Context, obj T) (Result, error)
	// Gone is called when the cache holds no object for req: it was deleted
	// (finalizers, if any, have run) or never existed.
	Gone(ctx context.Context, req Request) (Result, error)
}

// ObjectFuncs adapts functions to ObjectReconciler; a nil GoneFunc does
// nothing.
type ObjectFuncs[T informer.Object] struct {
	ReconcileFunc func(ctx context.Context, obj T) (Result, error)
	GoneFunc      func(ctx context.Context, req Request) (Result, error)
}

// Reconcile calls ReconcileFunc.
func (f ObjectFuncs[T]) Reconcile(ctx context.Context, obj T) (Result, error) {
	return f.ReconcileFunc(ctx, obj)
}

// Gone calls GoneFunc, if set.
func (f ObjectFuncs[T]) Gone(ctx context.Context, req Request) (Result, error) {
	if f.GoneFunc == nil {
		return Done(), nil
	}
	return f.GoneFunc(ctx, req)
}

// ForObjects adapts r to a Reconciler that reads each request's object
// from store and tells a present object (Reconcile) from a missing one
// (Gone). No API call is made.
func ForObjects[T informer.Object](store informer.Reader[T], r ObjectReconciler[T]) Reconciler {
	return Func(func(ctx context.Context, req Request) (Result, error) {
		obj, ok := store.Get(informer.Key(req.Namespace, req.Name))
		if !ok {
			return r.Gone(ctx, req)
		}
		return r.Reconcile(ctx, obj)
	})
}
