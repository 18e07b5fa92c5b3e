package replicaset

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func testRS(replicas, minReady int32, conds ...appsv1.ReplicaSetCondition) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "rs", UID: "rs-uid", Generation: 3},
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        &replicas,
			MinReadySeconds: minReady,
			Selector:        &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", "tier": "front"}},
			},
		},
		Status: appsv1.ReplicaSetStatus{ObservedGeneration: 2, Conditions: conds},
	}
}

func withLabels(l map[string]string) func(*corev1.Pod) {
	return func(pod *corev1.Pod) { pod.Labels = l }
}

var full = map[string]string{"app": "web", "tier": "front"}

func TestCalculateStatus(t *testing.T) {
	quota := errors.New(`pods "rs-x" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2`)
	oldFailure := appsv1.ReplicaSetCondition{Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue, Reason: ReasonFailedCreate, Message: "old", LastTransitionTime: metav1.NewTime(now.Add(-time.Hour))}
	tests := []struct {
		name        string
		rs          *appsv1.ReplicaSet
		active      []*corev1.Pod
		terminating int
		manage      manageResult
		want        appsv1.ReplicaSetStatus
	}{
		{
			name: "counts",
			rs:   testRS(4, 0),
			active: []*corev1.Pod{
				p("full-ready", withLabels(full)),
				p("partial-ready", withLabels(map[string]string{"app": "web"})),
				p("full-not-ready", withLabels(full), notReady),
				p("superset", withLabels(map[string]string{"app": "web", "tier": "front", "x": "y"}), notReady),
			},
			terminating: 2,
			manage:      manageResult{ran: true},
			want:        appsv1.ReplicaSetStatus{Replicas: 4, FullyLabeledReplicas: 3, ReadyReplicas: 2, AvailableReplicas: 2, TerminatingReplicas: ptr(2), ObservedGeneration: 2},
		},
		{
			name:   "minReadySeconds: ready 5s of 10 is not available",
			rs:     testRS(2, 10),
			active: []*corev1.Pod{p("a", withLabels(full), readyFor(5*time.Second)), p("b", withLabels(full), readyFor(11*time.Second))},
			manage: manageResult{ran: true},
			want:   appsv1.ReplicaSetStatus{Replicas: 2, FullyLabeledReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 1, TerminatingReplicas: ptr(0), ObservedGeneration: 2},
		},
		{
			name:   "create failure adds FailedCreate with the error's message",
			rs:     testRS(3, 0),
			active: []*corev1.Pod{p("a", withLabels(full))},
			manage: manageResult{ran: true, err: quota},
			want: appsv1.ReplicaSetStatus{Replicas: 1, FullyLabeledReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1, TerminatingReplicas: ptr(0), ObservedGeneration: 2,
				Conditions: []appsv1.ReplicaSetCondition{{Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue, Reason: ReasonFailedCreate, Message: quota.Error(), LastTransitionTime: metav1.NewTime(now)}}},
		},
		{
			name:   "delete failure adds FailedDelete",
			rs:     testRS(0, 0),
			active: []*corev1.Pod{p("a", withLabels(full))},
			manage: manageResult{ran: true, err: errors.New("nope")},
			want: appsv1.ReplicaSetStatus{Replicas: 1, FullyLabeledReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1, TerminatingReplicas: ptr(0), ObservedGeneration: 2,
				Conditions: []appsv1.ReplicaSetCondition{{Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue, Reason: ReasonFailedDelete, Message: "nope", LastTransitionTime: metav1.NewTime(now)}}},
		},
		{
			name:   "an existing failure is kept as it is",
			rs:     testRS(3, 0, oldFailure),
			manage: manageResult{ran: true, err: quota},
			want:   appsv1.ReplicaSetStatus{TerminatingReplicas: ptr(0), ObservedGeneration: 2, Conditions: []appsv1.ReplicaSetCondition{oldFailure}},
		},
		{
			name:   "success removes the failure",
			rs:     testRS(0, 0, oldFailure),
			manage: manageResult{ran: true},
			want:   appsv1.ReplicaSetStatus{TerminatingReplicas: ptr(0), ObservedGeneration: 2},
		},
		{
			name:   "no decision (expectations pending) leaves the failure",
			rs:     testRS(3, 0, oldFailure),
			manage: manageResult{},
			want:   appsv1.ReplicaSetStatus{TerminatingReplicas: ptr(0), ObservedGeneration: 2, Conditions: []appsv1.ReplicaSetCondition{oldFailure}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			terminating := make([]*corev1.Pod, tt.terminating)
			got := calculateStatus(tt.rs, tt.active, terminating, tt.manage, now)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
		})
	}
}

func ptr(v int32) *int32 { return &v }

func TestStatusChanged(t *testing.T) {
	base := func() *appsv1.ReplicaSet {
		rs := testRS(2, 0)
		rs.Status = appsv1.ReplicaSetStatus{Replicas: 2, FullyLabeledReplicas: 2, ReadyReplicas: 1, AvailableReplicas: 1, TerminatingReplicas: ptr(0), ObservedGeneration: 3}
		return rs
	}
	tests := []struct {
		name   string
		mutate func(rs *appsv1.ReplicaSet, st *appsv1.ReplicaSetStatus)
		want   bool
	}{
		{name: "same", mutate: func(*appsv1.ReplicaSet, *appsv1.ReplicaSetStatus) {}},
		{name: "replicas", mutate: func(_ *appsv1.ReplicaSet, st *appsv1.ReplicaSetStatus) { st.Replicas = 3 }, want: true},
		{name: "ready", mutate: func(_ *appsv1.ReplicaSet, st *appsv1.ReplicaSetStatus) { st.ReadyReplicas = 2 }, want: true},
		{name: "available", mutate: func(_ *appsv1.ReplicaSet, st *appsv1.ReplicaSetStatus) { st.AvailableReplicas = 0 }, want: true},
		{name: "fully labeled", mutate: func(_ *appsv1.ReplicaSet, st *appsv1.ReplicaSetStatus) { st.FullyLabeledReplicas = 1 }, want: true},
		{name: "terminating", mutate: func(_ *appsv1.ReplicaSet, st *appsv1.ReplicaSetStatus) { st.TerminatingReplicas = ptr(1) }, want: true},
		{name: "terminating unset before", mutate: func(rs *appsv1.ReplicaSet, _ *appsv1.ReplicaSetStatus) { rs.Status.TerminatingReplicas = nil }, want: true},
		{name: "new generation", mutate: func(rs *appsv1.ReplicaSet, _ *appsv1.ReplicaSetStatus) { rs.Generation = 4 }, want: true},
		{name: "condition", mutate: func(_ *appsv1.ReplicaSet, st *appsv1.ReplicaSetStatus) {
			st.Conditions = []appsv1.ReplicaSetCondition{{Type: appsv1.ReplicaSetReplicaFailure}}
		}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := base()
			st := *rs.Status.DeepCopy()
			tt.mutate(rs, &st)
			if got := statusChanged(rs, st); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNextAvailabilityCheck(t *testing.T) {
	tests := []struct {
		name     string
		pods     []*corev1.Pod
		minReady int32
		want     time.Duration
		ok       bool
	}{
		{name: "no minReadySeconds", pods: []*corev1.Pod{p("a", readyFor(time.Second))}},
		{name: "all available", pods: []*corev1.Pod{p("a", readyFor(time.Hour))}, minReady: 10},
		{name: "not ready", pods: []*corev1.Pod{p("a", notReady, readyFor(time.Second))}, minReady: 10},
		{
			name:     "the soonest",
			pods:     []*corev1.Pod{p("a", readyFor(2*time.Second)), p("b", readyFor(7*time.Second)), p("c", readyFor(time.Hour))},
			minReady: 10, want: 3*time.Second + time.Nanosecond, ok: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := nextAvailabilityCheck(tt.pods, tt.minReady, now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}
