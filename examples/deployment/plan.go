package deployment

import (
	"fmt"
	"math"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The decisions of a sync, as pure functions of what the caches show. The
// controller applies their results in order and stops at the first failed
// write, as kcm does; unit tests check them without an API server.

// scaleOp is one ReplicaSet resize. force also refreshes the replica
// annotations of a ReplicaSet whose size stays the same (proportional
// scaling does, so that every active ReplicaSet records the new size).
type scaleOp struct {
	rs    *appsv1.ReplicaSet
	to    int32
	force bool
}

// podCounts maps a ReplicaSet's UID to the number of its pods that have
// not finished (phase neither Succeeded nor Failed), terminating ones
// included: the pods that occupy a place, as the surge limit counts them.
type podCounts map[types.UID]int32

// countPods counts, per ReplicaSet of rss, the pods it controls that have
// not finished (unfinished), and of those the ones not being deleted
// (undeleted: no deletionTimestamp). Pods of other controllers are left
// out.
func countPods(pods []*corev1.Pod, rss []*appsv1.ReplicaSet) (unfinished, undeleted podCounts) {
	unfinished = make(podCounts, len(rss))
	undeleted = make(podCounts, len(rss))
	for _, rs := range rss {
		unfinished[rs.UID] = 0
		undeleted[rs.UID] = 0
	}
	for _, p := range pods {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		ref := metav1.GetControllerOfNoCopy(p)
		if ref == nil {
			continue
		}
		if _, ok := unfinished[ref.UID]; ok {
			unfinished[ref.UID]++
			if p.DeletionTimestamp == nil {
				undeleted[ref.UID]++
			}
		}
	}
	return unfinished, undeleted
}

// newRSReplicas is the size the new ReplicaSet may grow to now (kcm's
// NewRSNewReplicas). Recreate: all replicas. RollingUpdate: as many as
// keep the deployment within spec.replicas + maxSurge, never above
// spec.replicas.
//
// Deliberate difference from kcm: the pods already running count towards
// the surge limit, a ReplicaSet counting for the larger of its
// spec.replicas and its unfinished pods (terminating ones included). kcm
// counts spec.replicas only, so the pods of an old ReplicaSet it has just
// scaled down, still shutting down (or not yet deleted by the ReplicaSet
// controller), and the new ReplicaSet's new pods run together above the
// surge limit. This makes each step wait for the old pods to be gone, like
// the TerminationComplete pod replacement policy of KEP-3973. While the
// ReplicaSet controller has yet to issue the deletions of such pods, the
// step waits for all of them rather than growing pod by pod (undeleted
// counts the pods without a deletionTimestamp).
func newRSReplicas(d *appsv1.Deployment, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, pods, undeleted podCounts) (int32, error) {
	switch d.Spec.Strategy.Type {
	case appsv1.RollingUpdateDeploymentStrategyType:
		surge, _, err := fenceposts(d)
		if err != nil {
			return 0, err
		}
		var current, bySpec int64
		deleting := false // the ReplicaSet controller has pods of an old ReplicaSet left to delete
		for _, rs := range allRSs {
			if rs == nil {
				continue
			}
			n := rsReplicas(rs)
			bySpec += int64(n)
			if rs.UID != "" {
				n = max(n, pods[rs.UID])
				deleting = deleting || (rs != newRS && undeleted[rs.UID] > rsReplicas(rs))
			}
			current += int64(n)
		}
		maxTotal := int64(replicas(d)) + int64(surge)
		cur := rsReplicas(newRS)
		if current >= maxTotal {
			return cur, nil
		}
		need := int64(replicas(d)) - int64(cur)
		up := min(maxTotal-current, need)
		// While the ReplicaSet controller is still deleting the pods of an
		// old ReplicaSet it was told to shrink, the room they hold frees up
		// one pod at a time, as fast as its client's rate limit lets it
		// delete; following it pod by pod would cost a write and an event
		// per pod. Wait until it has issued every deletion (each deletion
		// wakes the Deployment), unless the room already makes the whole
		// step sizes alone would allow. Pods merely terminating (marked,
		// waiting for their kubelet) do not hold the step back.
		if deleting && up < min(maxTotal-bySpec, need) {
			return cur, nil
		}
		return clampInt32(int(int64(cur) + max(up, 0))), nil
	case appsv1.RecreateDeploymentStrategyType:
		return replicas(d), nil
	}
	return 0, fmt.Errorf("strategy type %q is not supported", d.Spec.Strategy.Type)
}

// planOldScaleDown decides how far the old ReplicaSets of a rolling update
// may shrink (kcm's reconcileOldReplicaSets): first their unhealthy
// replicas, which costs no availability, then available ones down to
// spec.replicas - maxUnavailable, never counting the new ReplicaSet's
// unavailable pods as available. oldRSs are the active old ReplicaSets;
// the result is in the order the writes are to be made.
func planOldScaleDown(d *appsv1.Deployment, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) []scaleOp {
	if specReplicas(oldRSs) == 0 {
		return nil
	}
	allPods := specReplicas(oldRSs) + rsReplicas(newRS)
	minAvailable := replicas(d) - maxUnavailable(d)
	newUnavailable := rsReplicas(newRS) - rsAvailable(newRS)
	maxScaledDown := allPods - minAvailable - newUnavailable
	if maxScaledDown <= 0 {
		return nil
	}

	// planned holds the old ReplicaSets' sizes as the ops leave them.
	old := slices.Clone(oldRSs)
	slices.SortStableFunc(old, byCreation)
	planned := make([]int32, len(old))
	for i, rs := range old {
		planned[i] = rsReplicas(rs)
	}
	var ops []scaleOp
	resize := func(i int, to int32) {
		for j := range ops {
			if ops[j].rs == old[i] {
				ops[j].to = to
				planned[i] = to
				return
			}
		}
		ops = append(ops, scaleOp{rs: old[i], to: to})
		planned[i] = to
	}

	// Unhealthy replicas first: they would block the rollout until the
	// deadline (kubernetes#16737), and removing them costs nothing.
	var cleaned int32
	for i, rs := range old {
		if cleaned >= maxScaledDown {
			break
		}
		unhealthy := planned[i] - rsAvailable(rs)
		if planned[i] == 0 || unhealthy <= 0 {
			continue
		}
		n := min(maxScaledDown-cleaned, unhealthy)
		resize(i, planned[i]-n)
		cleaned += n
	}

	// Then available ones, keeping minAvailable.
	available := rsAvailable(newRS)
	for i, rs := range old {
		available += min(rs.Status.AvailableReplicas, planned[i])
	}
	if available <= minAvailable {
		return ops
	}
	budget := available - minAvailable
	for i := range old {
		if budget <= 0 {
			break
		}
		if planned[i] == 0 {
			continue
		}
		n := min(planned[i], budget)
		resize(i, planned[i]-n)
		budget -= n
	}
	return ops
}

// planScale sizes the ReplicaSets on a scaling event or while paused
// (kcm's scale): one active ReplicaSet (or none: the newest) simply takes
// spec.replicas; a saturated new ReplicaSet means the old ones go to zero;
// otherwise, in a rolling update, the replicas to add or remove are shared
// among the active ReplicaSets in proportion to their size
// (proportionalSizes).
func planScale(d *appsv1.Deployment, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) []scaleOp {
	want := replicas(d)
	if rs := findActiveOrLatest(newRS, slices.Clone(oldRSs)); rs != nil {
		if rsReplicas(rs) == want {
			return nil
		}
		return []scaleOp{{rs: rs, to: want}}
	}
	if isSaturated(d, newRS) {
		var ops []scaleOp
		for _, rs := range activeReplicaSets(oldRSs) {
			ops = append(ops, scaleOp{rs: rs, to: 0})
		}
		return ops
	}
	if !isRollingUpdate(d) {
		return nil
	}
	var ops []scaleOp
	rss, sizes := proportionalSizes(d, activeReplicaSets(append(slices.Clone(oldRSs), newRS)))
	for i, rs := range rss {
		ops = append(ops, scaleOp{rs: rs, to: sizes[i], force: true})
	}
	return ops
}

// proportionalSizes shares the difference between the allowed size
// (spec.replicas + maxSurge, or zero when scaling to zero) and the active
// ReplicaSets' current total among them in proportion to their size
// relative to the deployment's size when they were last scaled
// (MaxReplicasAnnotation), largest first; the rounding leftover goes to
// the first. Ties go to newer ReplicaSets when growing and take from older
// ones when shrinking. It returns the ReplicaSets in that order with their
// new sizes.
func proportionalSizes(d *appsv1.Deployment, active []*appsv1.ReplicaSet) ([]*appsv1.ReplicaSet, []int32) {
	rss := slices.Clone(active)
	allowed := int32(0)
	if replicas(d) > 0 {
		allowed = replicas(d) + maxSurge(d)
	}
	toAdd := allowed - specReplicas(rss)
	switch {
	case toAdd > 0:
		slices.SortStableFunc(rss, bySizeNewer)
	case toAdd < 0:
		slices.SortStableFunc(rss, bySizeOlder)
	}
	sizes := make([]int32, len(rss))
	var added int32
	for i, rs := range rss {
		sizes[i] = rsReplicas(rs)
		if toAdd != 0 {
			p := proportion(d, rs, toAdd, added)
			sizes[i] += p
			added += p
		}
	}
	if len(rss) > 0 && toAdd != 0 {
		sizes[0] = max(sizes[0]+toAdd-added, 0)
	}
	return rss, sizes
}

// proportion is how many replicas rs gains (or loses, negative) of toAdd,
// of which added are already handed out: its fraction, bounded by what is
// left.
func proportion(d *appsv1.Deployment, rs *appsv1.ReplicaSet, toAdd, added int32) int32 {
	if rs == nil || rsReplicas(rs) == 0 || toAdd == 0 || toAdd == added {
		return 0
	}
	f := fraction(d, rs)
	left := toAdd - added
	if toAdd > 0 {
		return min(f, left)
	}
	return max(f, left)
}

// fraction is rs's share of the deployment's new maximum size, based on
// the maximum size recorded when rs was last scaled, minus its size.
func fraction(d *appsv1.Deployment, rs *appsv1.ReplicaSet) int32 {
	if replicas(d) == 0 {
		return -rsReplicas(rs)
	}
	newMax := replicas(d) + maxSurge(d)
	oldMax, ok := annotationInt32(rs, MaxReplicasAnnotation)
	if !ok || oldMax == 0 {
		// No annotation (edited by hand): the current size is the best
		// guess; the min/max bounds in proportion keep the total right.
		oldMax = d.Status.Replicas
		if oldMax == 0 {
			return 0
		}
	}
	size := rsReplicas(rs)
	return int32(math.Round(float64(size*newMax)/float64(oldMax))) - size
}

// oldPodsRunning reports whether Recreate must still wait before starting
// the new pods: an old ReplicaSet reports replicas, or a pod of an old
// ReplicaSet has not finished (terminating pods included).
func oldPodsRunning(newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet, pods podCounts) bool {
	if actualReplicas(oldRSs) > 0 {
		return true
	}
	for uid, n := range pods {
		if newRS != nil && uid == newRS.UID {
			continue
		}
		if n > 0 {
			return true
		}
	}
	return false
}
