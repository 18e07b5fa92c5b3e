// Package podutil answers the questions workload controllers ask of a Pod
// (is it ready, available, active, terminating), with the meaning
// kube-controller-manager gives them, so that the reference ReplicaSet,
// Deployment, Job and DaemonSet controllers agree with each other and with
// upstream.
//
// Every function reads its arguments only and is safe on objects shared
// with a cache. A nil Pod is never ready, available, active or terminating.
package podutil

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// GetPodCondition returns the index and a pointer to the condition of type t
// in status, or -1 and nil if status (possibly nil) has none. The pointer
// aliases status: do not modify it when status comes from a cache.
func GetPodCondition(status *corev1.PodStatus, t corev1.PodConditionType) (int, *corev1.PodCondition) {
	if status == nil {
		return -1, nil
	}
	for i := range status.Conditions {
		if status.Conditions[i].Type == t {
			return i, &status.Conditions[i]
		}
	}
	return -1, nil
}

// GetPodReadyCondition returns the Ready condition of status, or nil.
func GetPodReadyCondition(status *corev1.PodStatus) *corev1.PodCondition {
	_, c := GetPodCondition(status, corev1.PodReady)
	return c
}

// IsPodReady reports whether pod's Ready condition is True.
func IsPodReady(pod *corev1.Pod) bool {
	if pod == nil {
		return false
	}
	c := GetPodReadyCondition(&pod.Status)
	return c != nil && c.Status == corev1.ConditionTrue
}

// IsPodAvailable reports whether pod has been ready for at least
// minReadySeconds at now: it is ready, and either minReadySeconds is zero
// or its Ready condition turned True more than minReadySeconds before now.
// A ready pod whose Ready condition has no transition time is available
// only when minReadySeconds is zero (upstream's reading).
func IsPodAvailable(pod *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	if !IsPodReady(pod) {
		return false
	}
	if minReadySeconds <= 0 {
		return true
	}
	c := GetPodReadyCondition(&pod.Status)
	if c.LastTransitionTime.IsZero() {
		return false
	}
	return c.LastTransitionTime.Add(time.Duration(minReadySeconds) * time.Second).Before(now)
}

// AvailableAfter returns how long after now pod, ready and not yet
// available, becomes available with minReadySeconds; ok is false if it is
// not ready, already available, or minReadySeconds is zero. Controllers
// requeue after it to report availableReplicas on time.
func AvailableAfter(pod *corev1.Pod, minReadySeconds int32, now time.Time) (d time.Duration, ok bool) {
	if minReadySeconds <= 0 || !IsPodReady(pod) || IsPodAvailable(pod, minReadySeconds, now) {
		return 0, false
	}
	c := GetPodReadyCondition(&pod.Status)
	if c.LastTransitionTime.IsZero() {
		return 0, false
	}
	// Available strictly after the instant; one more nanosecond is enough,
	// and callers add their own slack.
	return c.LastTransitionTime.Add(time.Duration(minReadySeconds)*time.Second).Sub(now) + time.Nanosecond, true
}

// IsPodTerminal reports whether pod has finished: phase Succeeded or
// Failed.
func IsPodTerminal(pod *corev1.Pod) bool {
	if pod == nil {
		return false
	}
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// IsPodActive reports whether pod counts towards a workload's replicas: it
// has not finished (phase neither Succeeded nor Failed) and is not marked
// for deletion.
func IsPodActive(pod *corev1.Pod) bool {
	return pod != nil && !IsPodTerminal(pod) && pod.DeletionTimestamp == nil
}

// IsPodTerminating reports whether pod is marked for deletion and has not
// finished: it still runs (or may run) while its containers stop.
// Controllers report such pods as terminatingReplicas.
func IsPodTerminating(pod *corev1.Pod) bool {
	return pod != nil && !IsPodTerminal(pod) && pod.DeletionTimestamp != nil
}
