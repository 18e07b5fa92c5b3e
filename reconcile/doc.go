// Package reconcile is the runtime operators are written against: a
// Reconciler says how to bring one object to its desired state; a Controller
// feeds it from informers through a rate-limited, prioritised workqueue; a
// Manager runs controllers with shared caches, leader election, metrics and
// health probes.
//
// # The shortest correct operator
//
//	mgr, err := reconcile.NewManager(reconcile.ManagerOptions{
//		Config:         cfg,
//		MetricsAddr:    ":8080",
//		HealthAddr:     ":8081",
//		LeaderElection: &reconcile.LeaderElection{Namespace: "ops", Name: "widget-operator"},
//	})
//	...
//	_, err = mgr.NewController(myReconciler, reconcile.Options{Name: "widget"},
//		reconcile.For[*v1.Widget](reconcile.GenerationChanged),
//		reconcile.Owns[*appsv1.Deployment](),
//	)
//	...
//	err = mgr.Start(ctx) // until ctx ends
//
// See Example_operator for a complete program.
//
// # Guarantees
//
//   - Level-based, per-key: a Request names an object, never an event.
//     Events for one object coalesce into one reconcile, and one object is
//     never reconciled by two workers at once.
//   - Nothing is lost: an error requeues with per-request exponential
//     backoff (5ms doubling to 1000s, plus a 10 qps / 100 burst overall
//     bucket); RequeueAfter(d) requeues after d; only TerminalError stops
//     the retries until the next event. Panics are recovered into errors.
//   - No decision on a half-filled cache: workers start only after every
//     watched informer has synced and each handler has seen the initial
//     list (signalled, not polled).
//   - No cold-start starvation: requests caused only by the initial list
//     are queued at PriorityInitialList, so fresh changes overtake a large
//     backlog, while workqueue's aging bounds every backlog item's wait.
//   - Why a reconcile runs (self, owned, watched, requeue, resync,
//     initialList, manual) is logged under "trigger", counted in
//     capstan_reconcile_triggers_total and readable with
//     TriggerFromContext, but is never part of the key.
//   - Fenced leadership: with leader election, controllers run only on the
//     leader; the instant the lease is lost their contexts end and writes
//     through Manager.Config are refused, then the Manager campaigns again.
//   - Correct on a stale cache by default: after a reconcile writes an
//     object (through Client, or any client plus RecordWrite), the next
//     reconcile of that key waits, without holding a worker, until the cache
//     has observed the write; the watch event of the controller's own write
//     does not trigger a reconcile, while any other change does; update
//     conflicts are quiet requeues. Expectations make batch creates and
//     deletes exact on a lagging cache (kube-controller-manager's pattern,
//     typed and tracking deletes by UID). ConsistencyOptions turn each part
//     off per controller.
//   - Metrics use controller-runtime's names (controller_runtime_reconcile_*,
//     workqueue_*), so existing dashboards work.
//
// # Caveats
//
//   - Objects from informers are shared with the cache: DeepCopy before
//     modifying one.
//   - Predicates only filter events; a reconcile may still run for another
//     reason (a requeue, an owned object), so reconcilers must not assume
//     why they run.
//
// Migrating from controller-runtime: Result{RequeueAfter: d} becomes
// RequeueAfter(d); Result{Requeue: true} becomes returning an error (or
// RequeueAfter); builder.For/Owns/Watches become the For, Owns and Watches
// arguments of Manager.NewController.
package reconcile
