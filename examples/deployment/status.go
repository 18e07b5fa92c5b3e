package deployment

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// calculateStatus computes d's status from its ReplicaSets (newRS may be
// nil, and allRSs may hold it or a nil): the counts, collisionCount carried
// over, observedGeneration set, and the Available condition.
func calculateStatus(allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment, now time.Time) appsv1.DeploymentStatus {
	available := availableReplicas(allRSs)
	unavailable := max(specReplicas(allRSs)-available, 0)
	st := appsv1.DeploymentStatus{
		ObservedGeneration:  d.Generation,
		Replicas:            actualReplicas(allRSs),
		UpdatedReplicas:     actualReplicas([]*appsv1.ReplicaSet{newRS}),
		ReadyReplicas:       readyReplicas(allRSs),
		AvailableReplicas:   available,
		UnavailableReplicas: unavailable,
		TerminatingReplicas: terminatingReplicas(allRSs),
		CollisionCount:      d.Status.CollisionCount,
	}
	// Copy the conditions one by one: d may be shared.
	for _, c := range d.Status.Conditions {
		st.Conditions = append(st.Conditions, c)
	}
	if available >= replicas(d)-maxUnavailable(d) {
		setCondition(&st, newCondition(appsv1.DeploymentAvailable, corev1.ConditionTrue,
			ReasonMinimumReplicasAvailable, "Deployment has minimum availability.", now))
	} else {
		setCondition(&st, newCondition(appsv1.DeploymentAvailable, corev1.ConditionFalse,
			ReasonMinimumReplicasUnavailable, "Deployment does not have minimum availability.", now))
	}
	return st
}

// rolloutStatus is the status a rollout step (rolling or recreate)
// writes: calculateStatus plus the Progressing condition (complete,
// progressing or timed out, when a progress deadline is set) and the
// ReplicaFailure condition promoted from the ReplicaSets.
func rolloutStatus(allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment, now time.Time) appsv1.DeploymentStatus {
	st := calculateStatus(allRSs, newRS, d, now)
	if !hasProgressDeadline(d) {
		removeCondition(&st, appsv1.DeploymentProgressing)
	}
	cur := getCondition(d.Status, appsv1.DeploymentProgressing)
	// One active ReplicaSet and a rollout already reported complete: a
	// resync, with no progress to estimate.
	settled := st.Replicas == st.UpdatedReplicas && cur != nil && cur.Reason == ReasonNewRSAvailable
	if hasProgressDeadline(d) && !settled {
		subject := fmt.Sprintf("Deployment %q", d.Name)
		if newRS != nil {
			subject = fmt.Sprintf("ReplicaSet %q", newRS.Name)
		}
		switch {
		case deploymentComplete(d, &st):
			setCondition(&st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue,
				ReasonNewRSAvailable, subject+" has successfully progressed.", now))
		case deploymentProgressing(d, &st):
			c := newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue,
				ReasonReplicaSetUpdated, subject+" is progressing.", now)
			// Progress refreshes lastUpdateTime even when the reason stays
			// the same, which setCondition alone would not do.
			if cur != nil {
				if cur.Status == corev1.ConditionTrue {
					c.LastTransitionTime = cur.LastTransitionTime
				}
				removeCondition(&st, appsv1.DeploymentProgressing)
			}
			setCondition(&st, c)
		case deploymentTimedOut(d, &st, now):
			setCondition(&st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse,
				ReasonTimedOut, subject+" has timed out progressing.", now))
		}
	}
	if fails := replicaFailures(allRSs, newRS); len(fails) > 0 {
		setCondition(&st, fails[0])
	} else {
		removeCondition(&st, appsv1.DeploymentReplicaFailure)
	}
	return st
}

// replicaFailures converts the ReplicaFailure conditions of the new
// ReplicaSet, or else of any ReplicaSet, to Deployment conditions.
func replicaFailures(allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) []appsv1.DeploymentCondition {
	collect := func(rss ...*appsv1.ReplicaSet) []appsv1.DeploymentCondition {
		var out []appsv1.DeploymentCondition
		for _, rs := range rss {
			if rs == nil {
				continue
			}
			for _, c := range rs.Status.Conditions {
				if c.Type == appsv1.ReplicaSetReplicaFailure {
					out = append(out, replicaSetToDeploymentCondition(c))
				}
			}
		}
		return out
	}
	if fails := collect(newRS); len(fails) > 0 {
		return fails
	}
	return collect(allRSs...)
}

// progressCheckAfter says when d must be synced again to notice that its
// progress deadline passed, given the status just computed: ok is false
// when no check is needed (no deadline, no Progressing condition, rollout
// complete, or already timed out). It is kcm's requeueStuckDeployment: the
// check is due progressDeadlineSeconds after the condition's
// lastUpdateTime, plus a second against clock skew.
func progressCheckAfter(d *appsv1.Deployment, st appsv1.DeploymentStatus, now time.Time) (time.Duration, bool) {
	cur := getCondition(d.Status, appsv1.DeploymentProgressing)
	if !hasProgressDeadline(d) || cur == nil {
		return 0, false
	}
	if deploymentComplete(d, &st) || cur.Reason == ReasonTimedOut {
		return 0, false
	}
	after := cur.LastUpdateTime.Add(progressDeadline(d)).Sub(now)
	return max(after, 0) + time.Second, true
}
