package replicaset

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/capstan-io/capstan/examples/internal/podutil"
)

// Reasons of the ReplicaFailure condition, as kube-controller-manager
// writes them.
const (
	ReasonFailedCreate = "FailedCreate"
	ReasonFailedDelete = "FailedDelete"
)

// manageResult is what a sync's create/delete step reports to the status.
type manageResult struct {
	// ran: creates and deletes were decided (expectations satisfied, the
	// ReplicaSet not being deleted). When false the ReplicaFailure
	// condition is left as it is.
	ran bool
	// err is the first create or delete failure, as the API server
	// phrased it (the condition's message).
	err error
}

// calculateStatus returns rs's status computed from its active pods (not
// finished, not being deleted, claimed) and its terminating pods, at now.
// observedGeneration is left to the writer.
func calculateStatus(rs *appsv1.ReplicaSet, active, terminating []*corev1.Pod, m manageResult, now time.Time) appsv1.ReplicaSetStatus {
	st := *rs.Status.DeepCopy()
	// The template's labels are a superset of the selector's, so the pods
	// labelled like the template are among the active ones.
	template := labels.SelectorFromSet(rs.Spec.Template.Labels)
	var fullyLabeled, ready, available int32
	for _, p := range active {
		if template.Matches(labels.Set(p.Labels)) {
			fullyLabeled++
		}
		if podutil.IsPodReady(p) {
			ready++
			if podutil.IsPodAvailable(p, rs.Spec.MinReadySeconds, now) {
				available++
			}
		}
	}
	if m.ran {
		failure := getCondition(st, appsv1.ReplicaSetReplicaFailure)
		switch {
		case m.err != nil && failure == nil:
			reason := ""
			if diff := len(active) - int(replicasOf(rs)); diff < 0 {
				reason = ReasonFailedCreate
			} else if diff > 0 {
				reason = ReasonFailedDelete
			}
			setCondition(&st, appsv1.ReplicaSetCondition{
				Type:               appsv1.ReplicaSetReplicaFailure,
				Status:             corev1.ConditionTrue,
				LastTransitionTime: metav1.NewTime(now),
				Reason:             reason,
				Message:            m.err.Error(),
			})
		case m.err == nil && failure != nil:
			removeCondition(&st, appsv1.ReplicaSetReplicaFailure)
		}
	}
	st.Replicas = int32(len(active))
	st.FullyLabeledReplicas = fullyLabeled
	st.ReadyReplicas = ready
	st.AvailableReplicas = available
	t := int32(len(terminating))
	st.TerminatingReplicas = &t
	return st
}

// statusChanged reports whether writing st would change rs: the counts,
// the conditions, or an observedGeneration behind the generation.
func statusChanged(rs *appsv1.ReplicaSet, st appsv1.ReplicaSetStatus) bool {
	cur := rs.Status
	return cur.Replicas != st.Replicas ||
		cur.FullyLabeledReplicas != st.FullyLabeledReplicas ||
		cur.ReadyReplicas != st.ReadyReplicas ||
		cur.AvailableReplicas != st.AvailableReplicas ||
		!equalPtr(cur.TerminatingReplicas, st.TerminatingReplicas) ||
		rs.Generation != cur.ObservedGeneration ||
		!equality.Semantic.DeepEqual(cur.Conditions, st.Conditions)
}

func equalPtr(a, b *int32) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// replicasOf is spec.replicas, 1 when unset (the API server defaults it).
func replicasOf(rs *appsv1.ReplicaSet) int32 {
	if rs.Spec.Replicas == nil {
		return 1
	}
	return *rs.Spec.Replicas
}

func getCondition(st appsv1.ReplicaSetStatus, t appsv1.ReplicaSetConditionType) *appsv1.ReplicaSetCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

// setCondition adds c, replacing a condition of its type unless that one
// already has c's status and reason (then it, and its transition time, are
// kept).
func setCondition(st *appsv1.ReplicaSetStatus, c appsv1.ReplicaSetCondition) {
	if cur := getCondition(*st, c.Type); cur != nil && cur.Status == c.Status && cur.Reason == c.Reason {
		return
	}
	removeCondition(st, c.Type)
	st.Conditions = append(st.Conditions, c)
}

func removeCondition(st *appsv1.ReplicaSetStatus, t appsv1.ReplicaSetConditionType) {
	kept := st.Conditions[:0:0]
	for _, c := range st.Conditions {
		if c.Type != t {
			kept = append(kept, c)
		}
	}
	if len(kept) == 0 {
		kept = nil
	}
	st.Conditions = kept
}

// nextAvailabilityCheck returns when the next of pods, ready but not yet
// available with minReadySeconds, becomes available, measured from now;
// false if none will.
func nextAvailabilityCheck(pods []*corev1.Pod, minReadySeconds int32, now time.Time) (time.Duration, bool) {
	var next time.Duration
	found := false
	for _, p := range pods {
		if d, ok := podutil.AvailableAfter(p, minReadySeconds, now); ok && (!found || d < next) {
			next, found = d, true
		}
	}
	return next, found
}
