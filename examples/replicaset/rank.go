package replicaset

import (
	"math"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/capstan-io/capstan/examples/internal/podutil"
)

// PodDeletionCostAnnotation lets users rank the pods of a ReplicaSet for
// scale-down: pods with a lower cost are deleted first (an int32; missing
// or invalid means 0).
const PodDeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"

// phaseOrder ranks phases for deletion: Pending before Unknown before
// Running. Phases it does not name (including "") rank with Pending.
var phaseOrder = map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodUnknown: 1, corev1.PodRunning: 2}

// rankedPod is a pod with what its ranking needs, computed once.
type rankedPod struct {
	pod      *corev1.Pod
	colocate int // active related pods on the pod's node
	ready    bool
	readyAt  time.Time // zero unless ready
	cost     int32
	restarts int32 // most restarts of a regular container
	sidecar  int32 // most restarts of a sidecar (restartable init) container
}

// sortForDeletion orders pods in place so that those to delete first come
// first, as kube-controller-manager does when it scales a ReplicaSet down
// (ActivePodsWithRanks with LogarithmicScaleDown and PodDeletionCost on).
// Each rule decides only if the previous ones tie:
//
//  1. unscheduled before scheduled;
//  2. Pending before Unknown before Running;
//  3. not ready before ready;
//  4. lower pod-deletion-cost before higher;
//  5. more active related pods on the same node before fewer (related are
//     the pods of every ReplicaSet with the same controller);
//  6. both ready: ready more recently before ready longer, compared on a
//     log2 scale of time since now (ties broken by UID);
//  7. more container restarts before fewer (regular containers, then
//     sidecars);
//  8. created more recently before older, on the same log2 scale (ties
//     broken by UID).
//
// A zero now compares times exactly instead of on a log scale.
func sortForDeletion(pods, related []*corev1.Pod, now time.Time) {
	onNode := make(map[string]int)
	for _, p := range related {
		if podutil.IsPodActive(p) {
			onNode[p.Spec.NodeName]++
		}
	}
	ranked := make([]rankedPod, len(pods))
	for i, p := range pods {
		r := rankedPod{pod: p, colocate: onNode[p.Spec.NodeName], ready: podutil.IsPodReady(p), cost: deletionCost(p)}
		r.restarts, r.sidecar = maxRestarts(p)
		if r.ready {
			r.readyAt = podutil.GetPodReadyCondition(&p.Status).LastTransitionTime.Time
		}
		ranked[i] = r
	}
	slices.SortStableFunc(ranked, func(a, b rankedPod) int {
		switch {
		case deleteFirst(a, b, now):
			return -1
		case deleteFirst(b, a, now):
			return 1
		default:
			return 0
		}
	})
	for i := range ranked {
		pods[i] = ranked[i].pod
	}
}

// deleteFirst reports whether a should be deleted before b.
func deleteFirst(a, b rankedPod, now time.Time) bool {
	an, bn := a.pod.Spec.NodeName, b.pod.Spec.NodeName
	if an != bn && (an == "" || bn == "") {
		return an == ""
	}
	if pa, pb := phaseOrder[a.pod.Status.Phase], phaseOrder[b.pod.Status.Phase]; pa != pb {
		return pa < pb
	}
	if a.ready != b.ready {
		return !a.ready
	}
	if a.cost != b.cost {
		return a.cost < b.cost
	}
	if a.colocate != b.colocate {
		return a.colocate > b.colocate
	}
	if a.ready && b.ready && !a.readyAt.Equal(b.readyAt) {
		if d, decided := newerFirst(a, b, a.readyAt, b.readyAt, now); decided {
			return d
		}
	}
	if a.restarts != b.restarts {
		return a.restarts > b.restarts
	}
	if a.sidecar != b.sidecar {
		return a.sidecar > b.sidecar
	}
	ac, bc := a.pod.CreationTimestamp.Time, b.pod.CreationTimestamp.Time
	if !ac.Equal(bc) {
		if d, decided := newerFirst(a, b, ac, bc, now); decided {
			return d
		}
	}
	return false
}

// newerFirst compares two different times ta (of a) and tb (of b): the
// zero time first, then the more recent, on a log2 scale of their age at
// now when now and both times are set, where equal ranks fall back to
// the UIDs. decided is false only when a rank tie leaves the UIDs equal.
func newerFirst(a, b rankedPod, ta, tb, now time.Time) (aFirst, decided bool) {
	if now.IsZero() || ta.IsZero() || tb.IsZero() {
		return afterOrZero(ta, tb), true
	}
	ra, rb := logRank(now.Sub(ta)), logRank(now.Sub(tb))
	if ra != rb {
		return ra < rb, true
	}
	if a.pod.UID == b.pod.UID {
		return false, false
	}
	return a.pod.UID < b.pod.UID, true
}

// afterOrZero: a zero time sorts first, then the later time.
func afterOrZero(t1, t2 time.Time) bool {
	if t1.IsZero() || t2.IsZero() {
		return t1.IsZero()
	}
	return t1.After(t2)
}

// logRank is floor(log2(age in nanoseconds)), -1 for an age <= 0.
func logRank(age time.Duration) int64 {
	if age <= 0 {
		return -1
	}
	return int64(math.Log2(float64(age)))
}

// maxRestarts returns the most restarts of a regular container and of a
// sidecar (an init container with restartPolicy Always).
func maxRestarts(p *corev1.Pod) (regular, sidecar int32) {
	for _, c := range p.Status.ContainerStatuses {
		regular = max(regular, c.RestartCount)
	}
	sidecars := map[string]bool{}
	for _, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars[c.Name] = true
		}
	}
	for _, c := range p.Status.InitContainerStatuses {
		if sidecars[c.Name] {
			sidecar = max(sidecar, c.RestartCount)
		}
	}
	return regular, sidecar
}

// deletionCost reads PodDeletionCostAnnotation as the API server validates
// it: a decimal int32 without a plus sign or leading zeros. Anything else
// counts as 0.
func deletionCost(p *corev1.Pod) int32 {
	v, ok := p.Annotations[PodDeletionCostAnnotation]
	if !ok || v == "" {
		return 0
	}
	if !(v[0] == '-' || v == "0" || (v[0] >= '1' && v[0] <= '9')) {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0
	}
	return int32(n)
}

// podsToDelete returns the n pods of active to delete first (active is
// reordered); related are the pods of the ReplicaSets sharing its
// controller, for the co-location rule.
func podsToDelete(active, related []*corev1.Pod, n int, now time.Time) []*corev1.Pod {
	if n < len(active) {
		sortForDeletion(active, related, now)
	}
	return active[:min(n, len(active))]
}
