package reconcile_test

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/capstan-io/capstan/reconcile"
)

// A ReplicaSet-like reconcile gated by expectations. The cache and the API
// server are played by a map and a function here, and the informer by
// direct calls to the handler, so that the output is deterministic.
func ExampleExpectations() {
	owner := reconcile.Request{Namespace: "default", Name: "web"}
	exp, err := reconcile.NewExpectations(reconcile.ExpectationsOptions[reconcile.Request]{
		// With a Controller: func(r reconcile.Request) { ctl.Enqueue(r) }.
		OnSatisfied: func(r reconcile.Request) { fmt.Println("satisfied: enqueue", r) },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// Registered on the Pod informer before it starts:
	// pods.AddHandler(handler, informer.HandlerOptions{Name: "expectations"}).
	handler := reconcile.ExpectationsHandler(exp, func(p *corev1.Pod) (reconcile.Request, bool) {
		ref := metav1.GetControllerOf(p)
		if ref == nil || ref.Kind != "ReplicaSet" {
			return reconcile.Request{}, false
		}
		return reconcile.Request{Namespace: p.Namespace, Name: ref.Name}, true
	})

	cache := map[string]*corev1.Pod{} // what the Pod informer holds
	var server []*corev1.Pod          // created, not yet in the cache
	createCalls := 0
	createPod := func(context.Context) error {
		createCalls++
		if createCalls == 2 {
			return errors.New("exceeded quota")
		}
		yes := true
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
			Namespace: "default", Name: fmt.Sprint("web-", createCalls), UID: types.UID(fmt.Sprint("uid-", createCalls)),
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: "rs", Controller: &yes}},
		}}
		server = append(server, p)
		return nil
	}

	reconcileFn := func(ctx context.Context, req reconcile.Request, replicas int) (reconcile.Result, error) {
		if !exp.Satisfied(req) {
			// Earlier creates are not all in the cache yet: counting now
			// would create them again. Status may still be written here.
			p, _ := exp.Pending(req)
			fmt.Printf("waiting for %d creates\n", p.Creates)
			return reconcile.RequeueAfter(p.TimeLeft), nil
		}
		diff := replicas - len(cache)
		if diff <= 0 {
			fmt.Println("in sync")
			return reconcile.Done(), nil
		}
		exp.ExpectCreates(req, diff) // before the first create call
		var errs []error
		for range diff {
			if err := createPod(ctx); err != nil {
				exp.CreateFailed(req, 1) // its event will never come
				errs = append(errs, err)
			}
		}
		fmt.Printf("created %d of %d\n", diff-len(errs), diff)
		return reconcile.Done(), errors.Join(errs...)
	}
	// The informer: each pod enters the cache, then handlers hear of it.
	deliver := func() {
		for _, p := range server {
			cache[p.Name] = p
			handler.OnAdd(p, false)
		}
		server = nil
	}

	ctx := context.Background()
	_, err = reconcileFn(ctx, owner, 3)
	fmt.Println("error:", err)
	_, _ = reconcileFn(ctx, owner, 3) // the error's requeue, before any event
	deliver()
	_, _ = reconcileFn(ctx, owner, 3) // the enqueue from OnSatisfied
	deliver()
	_, _ = reconcileFn(ctx, owner, 3)
	// Output:
	// created 2 of 3
	// error: exceeded quota
	// waiting for 2 creates
	// satisfied: enqueue default/web
	// created 1 of 1
	// satisfied: enqueue default/web
	// in sync
}
