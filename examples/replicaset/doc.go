// Package replicaset is the reference ReplicaSet controller: it keeps
// spec.replicas pods running for every apps/v1 ReplicaSet, behaving like
// kube-controller-manager's (v1.37) and built only on capstan (reconcile,
// informer) and the Kubernetes API types and clients.
//
// The shortest use:
//
//	mgr, err := reconcile.NewManager(reconcile.ManagerOptions{Config: cfg})
//	...
//	if _, err := replicaset.New(mgr, replicaset.Options{}); err != nil { ... }
//	err = mgr.Start(ctx)
//
// # Guarantees
//
//   - Selection and ownership as upstream: a ReplicaSet controls the pods
//     with its controller reference; it adopts active orphans its selector
//     matches (after an uncached read of itself proving it is neither
//     replaced nor being deleted, never adopting a pod being deleted) and
//     releases the pods it controls that its selector no longer matches.
//     Adopt and release are strategic merge patches carrying the pod's UID,
//     so they never land on a namesake.
//   - No double creates or deletes on a stale cache: creates are counted
//     and deletes tracked by UID in reconcile.Expectations (fed by the pod
//     informer); while a batch is unobserved the ReplicaSet decides no
//     create or delete, and capstan's read-your-writes holds its next sync
//     until the cache has seen its own writes.
//   - Creates go in slow-start batches of 1, 2, 4, ... (at most
//     BurstReplicas per sync) and stop at the first failure, so a quota
//     that refuses every pod costs a few calls, not hundreds. Pods are
//     created from the template (labels, annotations, finalizers, spec)
//     with generateName "<name>-" and the controller reference.
//   - Scale-down deletes, at most BurstReplicas per sync, the pods upstream
//     would: unscheduled before scheduled, Pending before Unknown before
//     Running, not ready before ready, lower
//     controller.kubernetes.io/pod-deletion-cost first, pods sharing a node
//     with more pods of the same Deployment first, then ready for less
//     time, more restarts and younger (times on upstream's log2 scale).
//   - Status as upstream: replicas, fullyLabeledReplicas, readyReplicas,
//     availableReplicas (with minReadySeconds, re-synced when the next pod
//     becomes available), terminatingReplicas, observedGeneration, and the
//     ReplicaFailure condition (reason FailedCreate or FailedDelete, the
//     API server's message) while creates or deletes fail, removed once
//     they succeed. Status is written through the status subresource, and
//     only when it changed.
//   - Events as upstream: SuccessfulCreate, FailedCreate, SuccessfulDelete,
//     FailedDelete, from "replicaset-controller".
//   - Bad input never crash-loops: the API server rejects invalid specs (a
//     selector that does not match the template, for one); a failed sync is
//     retried with backoff; nothing panics on user data.
//
// # Differences from kube-controller-manager
//
//   - While expectations are pending, the ReplicaFailure condition is left
//     as it is rather than removed: upstream clears it on every sync that
//     does not try to create, so it flaps under a quota.
//   - Deletes carry a UID precondition, and a delete answered NotFound
//     while the cache still holds the pod keeps waiting for its event
//     (upstream stops waiting at once, and may decide on a cache that still
//     counts the pod).
//   - A sync with creates or deletes still unobserved is requeued at its
//     expectations' timeout, as a backstop to the pod events.
//   - status.terminatingReplicas is always reported, unless the API server
//     is seen to drop it (its DeploymentReplicaSetTerminatingReplicas gate,
//     beta and on by default in v1.37, is off); upstream follows its own
//     copy of the gate.
//   - Not ported: ReplicationControllers, and the
//     replicaset_controller_sorting_deletion_age_ratio metric.
//
// # Caveats
//
//   - Pods are listed per namespace from the shared cache (the shared
//     informer has no controller-UID index), so a sync costs O(pods in the
//     namespace).
package replicaset
