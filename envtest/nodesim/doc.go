// Package nodesim simulates nodes for workload tests on a bare API server
// (envtest): it registers fake Nodes and plays kube-scheduler and the
// kubelets for them, so that the Pods a controller creates get bound, run,
// become Ready, finish and go away as in a cluster, without a scheduler,
// kubelets, a container runtime or images.
//
// Everything it does goes through the API server, as the components it
// stands in for would do it: Bindings, pod status updates, deletions with a
// UID precondition, Nodes and Leases; tests assert on those objects, as
// they would in a cluster.
//
// # Guarantees
//
//   - Registration: Start returns once every Options.Nodes entry has a Node
//     (Ready, with its labels, taints and capacity, allocatable equal to
//     capacity, a pod CIDR and an InternalIP) and a Lease in kube-node-lease,
//     and once its caches have synced and the Pods already bound to its
//     nodes are accounted for. The not-ready:NoSchedule taint that the
//     TaintNodesByCondition admission plugin puts on every new Node is
//     removed, as the node lifecycle controller would. An existing Node of
//     the same name is taken over, and its running Pods adopted. AddNode
//     returns once the new node can be scheduled to; SetNodeReady once the
//     next scheduling decision sees the change.
//   - Scheduling: an unbound Pod with spec.schedulerName Options.SchedulerName,
//     no scheduling gates and no deletionTimestamp is bound to a simulated
//     node that fits it, as kube-scheduler's filters decide: spec.nodeSelector,
//     the required node affinity (matchExpressions on labels, matchFields on
//     metadata.name), taints with effect NoSchedule or NoExecute against
//     tolerations, spec.unschedulable, the pod count and resource requests
//     (cpu, memory, ephemeral-storage and any resource named in
//     NodeSpec.Capacity; init containers, sidecars, pod-level requests and
//     overhead counted as NodeResourcesFit counts them). Among fitting nodes
//     the least allocated one wins (cpu, memory and pod fractions), ties to
//     the first by name. Requests are reserved before the Binding is sent, so
//     concurrent workers never overcommit a node.
//   - Unschedulable Pods get PodScheduled=False with reason Unschedulable and
//     kube-scheduler's message ("0/2 nodes are available: 2 Insufficient
//     cpu."); they are retried whenever a simulated node changes (AddNode,
//     SetNodeReady) or a Pod on one ends or goes.
//   - Running: a bound Pod is reported Pending (start time, host IP,
//     containers ContainerCreating) at once, and Running after
//     Options.ReadyDelay: pod IP from its node's pod CIDR (the host IP with
//     hostNetwork), init containers completed, sidecars and containers
//     running and ready, and Ready=True unless a readiness gate's condition
//     is not True.
//   - Exits: per the annotations below and spec.restartPolicy a Pod ends
//     Succeeded or Failed, or its containers restart after a crash-loop
//     back-off (Options.RestartBackoff, doubling up to
//     Options.MaxRestartBackoff) with restartCount and lastState as the
//     kubelet reports them. FailPod fails a running Pod on demand.
//   - Deletion: a Pod with a deletionTimestamp on a Ready simulated node is,
//     after Options.StopDelay capped by its grace period, given a terminal
//     status (Failed, exit code 137, unless it had already ended) and then
//     deleted with grace period 0; finalizers keep it, as usual.
//   - Heartbeats: each Ready node renews its Lease every
//     Options.HeartbeatPeriod.
//   - Stop (or the end of Start's context) ends every goroutine the
//     simulator started before Done is closed; Nodes and Pods stay as they
//     are.
//
// # Use
//
//	env := envtest.StartForTest(t, envtest.Options{})
//	sim, err := nodesim.Start(t.Context(), env.Config(), nodesim.Options{})
//	if err != nil {
//		t.Fatal(err)
//	}
//	t.Cleanup(sim.Stop)
//	// Pods created from now on are bound to node-0..node-2 and become
//	// Running and Ready.
//
// Tests that share one control plane keep apart with Options.Namespace and
// node names of their own (see Caveats).
//
// # Annotations
//
// Set these on a Pod, or on a workload's pod template:
//
//   - nodesim.capstan.io/exit-after (AnnotationExitAfter): a Go duration;
//     the containers exit this long after they started running (again after
//     each restart).
//   - nodesim.capstan.io/exit-code (AnnotationExitCode): their exit code,
//     0 to 255, default 0. restartPolicy Never: 0 gives Succeeded, any other
//     code Failed. OnFailure: 0 gives Succeeded, any other code a restart.
//     Always: every exit restarts.
//
// A bad value is logged once and the Pod runs as if it had none.
//
// # Caveats
//
// It simulates the API traffic of a scheduler and kubelets, not what they
// manage:
//
//   - Nothing runs: no containers, images, volumes, probes, resource
//     limits, OOM kills or node-pressure evictions; a Pod is Ready when
//     ReadyDelay has passed (and its readiness gates allow). Init containers
//     are reported completed at start.
//   - Scheduling is filters plus least-allocated scoring only: no priorities
//     or preemption, no inter-pod affinity or anti-affinity, no topology
//     spread constraints, no preferred node affinity, no PreferNoSchedule
//     scoring, no host ports, no volume binding or volume limits. Pods are
//     scheduled in the order they are handled, not by priority.
//   - No taint-based eviction: NoExecute taints only keep new Pods off.
//   - SetNodeReady(false) plays a kubelet that stopped plus the node
//     lifecycle controller's first steps: the node's Ready condition turns
//     False and it gets the node.kubernetes.io/not-ready:NoSchedule taint,
//     its Pods' Ready conditions turn False (phase unchanged), and on it
//     nothing starts, exits or finishes terminating, and its Lease is not
//     renewed, until it is Ready again. Its Pods are never evicted.
//   - A Pod created with spec.nodeName set to a simulated node is run as is,
//     without a fit check (as a kubelet would, minus its admission).
//   - Node status is written at registration and by SetNodeReady only; the
//     conditions' heartbeat times do not advance (the Lease does).
//   - DeleteNode deletes the node's Pods at once (grace period 0), as the pod
//     garbage collector does, without running them through termination.
//   - With Options.Namespace set, the simulator does not see the Pods of
//     other namespaces, so it cannot count what they use: two simulators
//     must not share nodes.
//   - Pod IPs are unique per simulator only: each one numbers its nodes'
//     pod CIDRs from 10.128.0.0/20.
//   - All timing (ReadyDelay, exits, back-offs, StopDelay, heartbeats) runs
//     on Options.Clock; with a fake clock nothing timed happens until the
//     test steps it.
package nodesim
