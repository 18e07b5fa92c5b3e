package podutil

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func pod(phase corev1.PodPhase, ready corev1.ConditionStatus, readySince time.Time, deleting bool) *corev1.Pod {
	p := &corev1.Pod{Status: corev1.PodStatus{Phase: phase}}
	if ready != "" {
		p.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
			{Type: corev1.PodReady, Status: ready, LastTransitionTime: metav1.NewTime(readySince)},
		}
	}
	if deleting {
		ts := metav1.NewTime(now)
		p.DeletionTimestamp = &ts
	}
	return p
}

func TestPredicates(t *testing.T) {
	tests := []struct {
		name                                            string
		pod                                             *corev1.Pod
		minReady                                        int32
		ready, available, active, terminating, terminal bool
	}{
		{name: "nil", pod: nil},
		{name: "pending, no conditions", pod: pod(corev1.PodPending, "", time.Time{}, false), active: true},
		{name: "running, not ready", pod: pod(corev1.PodRunning, corev1.ConditionFalse, now, false), active: true},
		{name: "ready, minReady 0", pod: pod(corev1.PodRunning, corev1.ConditionTrue, now, false), ready: true, available: true, active: true},
		{name: "ready 5s, minReady 10", pod: pod(corev1.PodRunning, corev1.ConditionTrue, now.Add(-5*time.Second), false), minReady: 10, ready: true, active: true},
		{name: "ready exactly 10s, minReady 10", pod: pod(corev1.PodRunning, corev1.ConditionTrue, now.Add(-10*time.Second), false), minReady: 10, ready: true, active: true},
		{name: "ready 11s, minReady 10", pod: pod(corev1.PodRunning, corev1.ConditionTrue, now.Add(-11*time.Second), false), minReady: 10, ready: true, available: true, active: true},
		{name: "ready without transition time, minReady 10", pod: pod(corev1.PodRunning, corev1.ConditionTrue, time.Time{}, false), minReady: 10, ready: true, active: true},
		{name: "ready and deleting", pod: pod(corev1.PodRunning, corev1.ConditionTrue, now, true), ready: true, available: true, terminating: true},
		{name: "succeeded", pod: pod(corev1.PodSucceeded, "", time.Time{}, false), terminal: true},
		{name: "failed and deleting", pod: pod(corev1.PodFailed, "", time.Time{}, true), terminal: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct {
				what      string
				got, want bool
			}{
				{"IsPodReady", IsPodReady(tt.pod), tt.ready},
				{"IsPodAvailable", IsPodAvailable(tt.pod, tt.minReady, now), tt.available},
				{"IsPodActive", IsPodActive(tt.pod), tt.active},
				{"IsPodTerminating", IsPodTerminating(tt.pod), tt.terminating},
				{"IsPodTerminal", IsPodTerminal(tt.pod), tt.terminal},
			} {
				if c.got != c.want {
					t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
				}
			}
		})
	}
}

func TestAvailableAfter(t *testing.T) {
	tests := []struct {
		name     string
		pod      *corev1.Pod
		minReady int32
		want     time.Duration
		ok       bool
	}{
		{name: "not ready", pod: pod(corev1.PodRunning, corev1.ConditionFalse, now, false), minReady: 10},
		{name: "no minReady", pod: pod(corev1.PodRunning, corev1.ConditionTrue, now, false)},
		{name: "already available", pod: pod(corev1.PodRunning, corev1.ConditionTrue, now.Add(-time.Minute), false), minReady: 10},
		{name: "ready 4s of 10", pod: pod(corev1.PodRunning, corev1.ConditionTrue, now.Add(-4*time.Second), false), minReady: 10, want: 6*time.Second + time.Nanosecond, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := AvailableAfter(tt.pod, tt.minReady, now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
			if ok && !IsPodAvailable(tt.pod, tt.minReady, now.Add(got)) {
				t.Errorf("not available %v later", got)
			}
		})
	}
}

func TestGetPodCondition(t *testing.T) {
	p := pod(corev1.PodRunning, corev1.ConditionTrue, now, false)
	if i, c := GetPodCondition(&p.Status, corev1.PodReady); i != 1 || c == nil || c.Type != corev1.PodReady {
		t.Errorf("Ready: got %d, %v; want 1 and the Ready condition", i, c)
	}
	if i, c := GetPodCondition(&p.Status, corev1.ContainersReady); i != -1 || c != nil {
		t.Errorf("ContainersReady: got %d, %v; want -1, nil", i, c)
	}
	if i, c := GetPodCondition(nil, corev1.PodReady); i != -1 || c != nil {
		t.Errorf("nil status: got %d, %v; want -1, nil", i, c)
	}
}
