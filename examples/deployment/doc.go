// Package deployment is the reference Deployment controller: it behaves
// like kube-controller-manager v1.37's (pkg/controller/deployment), and is
// built on nothing but capstan (a reconcile.Manager's shared informers,
// typed cached Client and workqueue) plus the k8s.io API types.
//
// It rolls a Deployment's pod template out through ReplicaSets named
// <deployment>-<pod-template-hash>, and needs a ReplicaSet controller
// (package examples/replicaset, or kcm's) to turn them into pods.
//
// # The shortest use
//
//	mgr, err := reconcile.NewManager(reconcile.ManagerOptions{Config: cfg})
//	...
//	if _, err := deployment.New(mgr, deployment.Options{}); err != nil { ... }
//	if _, err := replicaset.New(mgr, replicaset.Options{}); err != nil { ... }
//	err = mgr.Start(ctx)
//
// # Guarantees (kcm's, kept)
//
//   - The pod-template-hash, label of the ReplicaSet and its pods and
//     suffix of its name, is ComputeHash: kcm's value bit for bit
//     (checked against kcm v1.37 itself, collisions included). A name
//     taken by another ReplicaSet is a hash collision: status.collisionCount
//     goes up and the next hash is tried.
//   - RollingUpdate keeps the Deployment within spec.replicas + maxSurge
//     pods and, once available, above spec.replicas - maxUnavailable
//     available pods (ResolveFenceposts: percentages round up for surge and
//     down for unavailability; if both come out zero, unavailability is 1).
//     Unhealthy old replicas go first.
//   - Recreate scales every old ReplicaSet to zero and starts the new one
//     only when no old pod runs, terminating ones included.
//   - Revisions: the new ReplicaSet gets the highest revision + 1
//     (deployment.kubernetes.io/revision, mirrored on the Deployment);
//     restoring an old template reuses its ReplicaSet with a new revision
//     and records the old one in revision-history; the deprecated
//     deprecated.deployment.rollback.to annotation is honoured. Old
//     ReplicaSets beyond revisionHistoryLimit are deleted once the rollout
//     is complete (or while paused), never one with pods.
//   - A scale during a rollout (or of a paused Deployment) is shared among
//     the active ReplicaSets in proportion to their size, using the
//     desired-replicas and max-replicas annotations, as kcm does.
//   - A paused Deployment does not roll out but still scales. Pausing and
//     resuming show as an Unknown Progressing condition (DeploymentPaused,
//     DeploymentResumed), so paused time does not count towards the
//     progress deadline.
//   - Status: replicas, updatedReplicas, readyReplicas, availableReplicas,
//     unavailableReplicas, terminatingReplicas, observedGeneration,
//     collisionCount, and the Available (MinimumReplicasAvailable /
//     MinimumReplicasUnavailable) and Progressing (NewReplicaSetCreated,
//     FoundNewReplicaSet, ReplicaSetUpdated, NewReplicaSetAvailable,
//     ProgressDeadlineExceeded, ReplicaSetCreateError, DeploymentPaused,
//     DeploymentResumed) conditions, with kcm's messages; ReplicaFailure is
//     promoted from the ReplicaSets. A rollout without progress for
//     progressDeadlineSeconds is marked Progressing=False,
//     ProgressDeadlineExceeded (the controller comes back at the deadline on
//     its own).
//   - ReplicaSets are adopted and released by selector with kcm's guards
//     (controllerref: never another controller's; adoption only after a
//     live re-read shows the Deployment alive with the same UID; patches
//     with the UID precondition). A Deployment selecting everything is
//     refused with a SelectingAll event.
//   - Events: ScalingReplicaSet, ReplicaSetCreateError, SelectingAll and
//     the rollback events, from component deployment-controller.
//
// # Deliberate differences from kcm
//
//   - Surge counts pods, not only sizes: a ReplicaSet counts for the larger
//     of its spec.replicas and its unfinished pods (terminating ones
//     included). kcm counts spec.replicas only, so an old pod still shutting
//     down and the new pod replacing it can run together above
//     spec.replicas + maxSurge; the suite's invariant checker catches that.
//     Each step therefore waits for the old pods to be gone, as KEP-3973's
//     TerminationComplete policy would; a pod stuck terminating holds a
//     surge place until it goes.
//   - A scale-down decision counts at most spec.replicas available pods
//     per ReplicaSet: right after a scale-down its status still counts the
//     pods about to be deleted. (kcm reads the raw status; there the stale
//     status trips a sanity check that skips the scale-down of that sync.)
//   - Errors while scaling old ReplicaSets down are returned and retried
//     with backoff; kcm swallows them and waits for the next event.
//   - kcm's next step is often driven by the watch event of its own write;
//     capstan filters those echoes, so a sync that wrote asks for another
//     one itself (after a few milliseconds), and read-your-writes holds it
//     until the caches show the writes. Status writes continue from the
//     server's answer, so two writes in one sync do not conflict.
//   - A pod deletion wakes its Deployment whatever the strategy (kcm: only
//     Recreate), since a rolling update may now have room to surge.
//   - Invalid input the API server would refuse (no selector, a malformed
//     maxSurge, an unknown strategy) is a terminal error naming the field,
//     never a panic.
//   - A ReplicaSet deleted during cleanup carries a UID precondition.
//   - Retries never give up (kcm drops a Deployment after 15 failures and
//     waits for the next event); backoff is capstan's.
package deployment
