// Package workqueue is the work queue between a controller's event handlers
// and its workers: a generic Queue[T] with deduplication, delays, rate
// limiting and starvation-free priorities.
//
// # Guarantees
//
//   - Deduplication: adding an item that is already waiting does nothing
//     (beyond possibly raising its priority).
//   - Exclusion: an item is never handed to two workers at once. An item
//     added while a worker holds it is handed out again after Done.
//   - No loss: every item added before ShutDown is handed out, unless it was
//     still delayed at ShutDown (delayed items are dropped, as with
//     client-go).
//   - Order: among items of one priority, first queued is first out. Items
//     of higher priority go first, but none starves (see Bound below).
//   - Delays: AddAfter(item, d) queues item after d; with several pending
//     delays for one item the earliest wins; d <= 0 adds at once. All delays
//     share one heap and one timer.
//   - Shutdown: ShutDown makes adds no-ops and releases blocked Gets at
//     once; items still waiting are handed out first. ShutDownWithDrain also
//     waits until every handed-out item is Done.
//   - The semantics of Add, AddAfter, AddRateLimited, Forget, NumRequeues,
//     Get, Done, Len, ShutDown, ShutDownWithDrain and ShuttingDown are those
//     of client-go's TypedRateLimitingQueue; a differential fuzz test keeps
//     them so.
//
// # Bound on waiting (aging)
//
// Each queueing gets a sequence number s; an item queued with priority p
// gets the virtual deadline v = s - AgingStep*p, and waiting items are
// handed out in increasing v. So a higher priority wins, but only against
// items queued within AgingStep queueings per priority level of difference:
// an item queued with priority p is handed out before every item queued more
// than (q-p)*AgingStep queueings later with priority q. When n items are
// waiting as it is queued, an item of priority p is handed out within
//
//	n + (Pmax - p) * AgingStep
//
// hand-outs, where Pmax is the highest priority queued while it waits; at a
// throughput of r items/s that is at most (n + (Pmax-p)*AgingStep)/r
// seconds, whatever the load. With DefaultAgingStep and capstan's initial
// list at priority -100 against fresh changes at 0, a backlog item is
// overtaken by at most 10,000 fresh changes. A re-add with a higher
// priority moves a waiting item to the back of that priority, unless aging
// has already put it further ahead. Without priorities the queue is a plain
// FIFO and the rule costs nothing.
//
// # Use
//
// The controller loop (see the Examples):
//
//	q, err := workqueue.New(workqueue.Options[string]{Name: "pods"})
//	...
//	go func() { defer q.ShutDown(); <-ctx.Done() }()
//	for {
//		key, shutdown := q.Get()
//		if shutdown {
//			return
//		}
//		func() {
//			defer q.Done(key)
//			if err := reconcile(ctx, key); err != nil {
//				q.AddRateLimited(key) // retry with backoff
//				return
//			}
//			q.Forget(key) // success: reset the backoff
//		}()
//	}
//
// # Caveats
//
//   - Items must be small comparable values (keys), not objects.
//   - Done for an item that is not being processed is ignored (client-go
//     would queue a duplicate).
//   - A delayed item is independent of the waiting one: an item added now
//     and also with AddAfter is processed now and again after the delay.
//   - Priorities are clamped to [MinPriority, MaxPriority]; keep the number
//     of distinct priorities small, as each has its own FIFO.
package workqueue
