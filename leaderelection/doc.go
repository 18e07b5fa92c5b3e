// Package leaderelection elects one leader among replicas with a coordination.k8s.io/v1 Lease,
// and fences the leader's writes so that a deposed leader cannot act.
//
// # Shortest correct use
//
//	el, err := leaderelection.New(leaderelection.Options{
//		Namespace:       "my-system",
//		Name:            "my-operator",
//		Client:          kubernetes.NewForConfigOrDie(cfg).CoordinationV1(), // not fenced
//		ReleaseOnCancel: true,
//		OnStartedLeading: func(ctx context.Context) {
//			run(ctx, el.Fence().WrapConfig(cfg)) // leader-only work, fenced client
//		},
//	})
//	if err != nil { ... }
//	err = el.Run(ctx) // campaigns, leads, rejoins after a loss, until ctx ends
//
// # How it decides
//
// A candidate acquires the Lease when it is absent, released (no holder), held by itself, or
// unchanged (same resourceVersion) for LeaseDuration — or the holder's declared duration, if
// longer — measured on the candidate's own monotonic clock from the moment it first saw that
// version. Remote timestamps (renewTime, acquireTime) are written for humans and never
// compared with the local clock. The leader renews every RetryPeriod. Every write carries the
// resourceVersion it read; conflicts are the normal race of an election and are logged at
// V(1). Candidates poll every RetryPeriod jittered downwards by up to 20%, and poll exactly at
// the instant the observed lease expires, so takeover needs no extra period.
//
// # Guarantees
//
//   - At most one leader. A candidate believes it leads only after a successful
//     resourceVersion-checked write, and stops believing it at D = S + RenewDeadline, where S
//     is the local instant at which it *sent* its last write that succeeded. Any other
//     candidate first sees that write at some instant O >= S and cannot acquire before
//     O + LeaseDuration > D. A write that races it on the same resourceVersion conflicts.
//   - The fence is raised at D by construction: Fence.Raised, Fence.Check, IsLeader and the
//     fenced round tripper all compare the clock with D on every call, so no timer or goroutine
//     has to run for the fence to rise. The leader's context (OnStartedLeading's ctx) is
//     cancelled by a timer at D with cause ErrRenewDeadline, or at once when a renewal finds
//     the Lease taken or deleted.
//   - No write leaves the process through a fenced client (Fence.Wrap, Fence.WrapConfig) after
//     D: non-GET/HEAD/OPTIONS requests are refused with *FencedError (errors.Is ErrFenced)
//     without touching the network. A write admitted before D carries a context deadline of D
//     and is cancelled client-side at D, or at once when leadership is lost to a deposition.
//     A ctx derived from one term's OnStartedLeading ctx is refused after that term even if
//     the process leads again later.
//   - Between D and the earliest takeover there are at least LeaseDuration - RenewDeadline
//     (5 s by default): the margin for a write already on the wire at D, and for clock-rate
//     differences.
//   - Graceful release (ReleaseOnCancel): the fence is raised first, then the elector waits for
//     OnStartedLeading to return and for fenced writes in flight to finish, and clears the
//     holder only if all that happened before D. A successor takes over at its next poll
//     (<= RetryPeriod).
//   - After a loss the candidate campaigns again (or Run returns ErrLeadershipLost with
//     ReturnOnLoss). At most one OnStartedLeading runs at a time per Elector: a new term starts
//     only after the previous one's callback returned.
//   - Every goroutine Run starts has ended when Run returns; the fence is raised then.
//
// # Caveats
//
//   - A write the server received before D may still be applied after D (client-side
//     cancellation cannot recall bytes already sent). The guarantee above bounds this: it
//     would have to stay in the server for LeaseDuration - RenewDeadline after D to overlap a
//     successor. Make reconcilers idempotent and use resourceVersion preconditions as usual.
//   - Only clients built through the Fence are fenced. Writes made with other clients, or with
//     an Unfenced ctx, are not. The elector's own Lease client must not be fenced.
//   - The reasoning assumes local clocks run at about the same rate (not that they agree).
//     A paused VM or a suspended host whose monotonic clock stops can break it, as it breaks
//     every lease protocol.
//   - Deleting the Lease or editing its holder by hand bypasses the protocol: a candidate may
//     take over at once while the old leader keeps its fence down until its next renewal
//     (<= RetryPeriod) reveals the change. (The Lease API creates on update, so after a
//     deletion the leader's next renewal may simply recreate the Lease; if a candidate created
//     it first, that renewal conflicts and the leader steps down.)
//   - Two processes must never share an identity; the default identity (hostname + random
//     suffix) guarantees that.
//   - Fenced writes are refused, not queued: leader-only work sees *FencedError and its ctx is
//     cancelled at the same moment, so it should stop.
//
// # Health and metrics
//
// HealthCheck(tolerance) fails while a term's step-down is stuck past RenewDeadline + tolerance
// since the last renewal (a leader callback that ignores its ctx). With Options.Registerer, the
// gauge leader_election_master_status{name} is 1 while leading (client-go's metric name).
//
// Package leasetest has an in-memory LeaseStore with per-client faults (errors, latency,
// hangs, lost responses) for testing code that uses an Elector, and a conformance test for
// LeaseStore implementations.
package leaderelection
