package invariant

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func dep(replicas int32, surge, unavailable string) *appsv1.Deployment {
	s, u := intstr.Parse(surge), intstr.Parse(unavailable)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &s, MaxUnavailable: &u}},
		},
	}
}

type podState int

const (
	pending podState = iota
	ready
	terminating
	succeeded
)

func pod(name, hash string, st podState) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns",
			Labels: map[string]string{"app": "web", appsv1.DefaultDeploymentUniqueLabelKey: hash}},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
	switch st {
	case ready, terminating:
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		if st == terminating {
			now := metav1.Now()
			p.DeletionTimestamp = &now
		}
	case succeeded:
		p.Status.Phase = corev1.PodSucceeded
	}
	return p
}

// step is one event: a Deployment change, a pod add/update, or a pod
// deletion.
type step struct {
	d      *appsv1.Deployment
	pod    *corev1.Pod
	delete bool
}

func TestChecker(t *testing.T) {
	tests := []struct {
		name    string
		overlap bool
		steps   []step
		want    []Kind
	}{
		{
			name: "clean rolling update, surge 1 unavailable 0",
			steps: []step{
				{d: dep(2, "1", "0")},
				{pod: pod("a1", "a", ready)}, {pod: pod("a2", "a", ready)},
				{pod: pod("b1", "b", pending)}, {pod: pod("b1", "b", ready)},
				{pod: pod("a1", "a", terminating)}, {pod: pod("a1", "a", terminating), delete: true},
				{pod: pod("b2", "b", pending)}, {pod: pod("b2", "b", ready)},
				{pod: pod("a2", "a", terminating)}, {pod: pod("a2", "a", terminating), delete: true},
			},
		},
		{
			name: "a terminating pod still counts towards the surge",
			steps: []step{
				{d: dep(2, "1", "0")},
				{pod: pod("a1", "a", ready)}, {pod: pod("a2", "a", ready)},
				{pod: pod("b1", "b", ready)},
				{pod: pod("a1", "a", terminating)},
				{pod: pod("b2", "b", pending)}, // a1 has not gone yet
			},
			want: []Kind{Surge},
		},
		{
			name: "finished pods do not count",
			steps: []step{
				{d: dep(1, "1", "0")},
				{pod: pod("a1", "a", ready)}, {pod: pod("b1", "b", succeeded)}, {pod: pod("b2", "b", ready)},
			},
		},
		{
			name: "availability drop below replicas - maxUnavailable",
			steps: []step{
				{d: dep(3, "1", "1")},
				{pod: pod("a1", "a", ready)}, {pod: pod("a2", "a", ready)}, {pod: pod("a3", "a", ready)},
				{pod: pod("a1", "a", terminating)}, // 2 left: allowed
				{pod: pod("a2", "a", terminating)}, // 1 left: below 2
			},
			want: []Kind{Availability},
		},
		{
			name: "no availability promise before the Deployment was first available",
			steps: []step{
				{d: dep(3, "1", "0")},
				{pod: pod("a1", "a", pending)}, {pod: pod("a1", "a", ready)}, {pod: pod("a2", "a", ready)},
			},
		},
		{
			name: "a scale up raises the floor only once the new pods are available",
			steps: []step{
				{d: dep(2, "0", "1")},
				{pod: pod("a1", "a", ready)}, {pod: pod("a2", "a", ready)},
				{d: dep(4, "0", "1")}, // floor 3, but only 2 available yet
				{pod: pod("a3", "a", pending)}, {pod: pod("a3", "a", ready)},
				{pod: pod("a4", "a", ready)},
				{pod: pod("a1", "a", terminating)}, // 3 left: fine
				{pod: pod("a2", "a", terminating)}, // 2 left: below the new floor
			},
			want: []Kind{Availability},
		},
		{
			name: "a scale down lowers the ceiling only once the surplus pods are gone",
			steps: []step{
				{d: dep(4, "1", "1")},
				{pod: pod("a1", "a", ready)}, {pod: pod("a2", "a", ready)}, {pod: pod("a3", "a", ready)}, {pod: pod("a4", "a", ready)},
				{d: dep(2, "1", "1")},                            // ceiling 3, 4 pods still run
				{pod: pod("a4", "a", terminating), delete: true}, // 3: the new ceiling holds
				{pod: pod("a5", "a", pending)},                   // 4: above it
			},
			want: []Kind{Surge},
		},
		{
			name:    "recreate: old and new pods at once",
			overlap: true,
			steps: []step{
				{d: func() *appsv1.Deployment {
					d := dep(1, "0", "0")
					d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
					return d
				}()},
				{pod: pod("a1", "a", ready)},
				{pod: pod("a1", "a", terminating)},
				{pod: pod("b1", "b", pending)},
			},
			want: []Kind{Surge, Overlap},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Checker{opts: Options{CheckOverlap: tc.overlap}, pods: map[string]*corev1.Pod{}, observed: Observed{MinAvailable: -1}}
			c.log = c.opts.Logger
			for _, s := range tc.steps {
				if s.d != nil {
					c.setDeployment(s.d)
				} else {
					c.podEvent(s.pod, s.delete)
				}
			}
			got := c.Violations()
			if len(got) != len(tc.want) {
				t.Fatalf("got %d violations %v, want kinds %v", len(got), got, tc.want)
			}
			for i := range got {
				if got[i].Kind != tc.want[i] {
					t.Fatalf("got violations %v, want kinds %v", got, tc.want)
				}
			}
		})
	}
}

func TestObserved(t *testing.T) {
	c := &Checker{pods: map[string]*corev1.Pod{}, observed: Observed{MinAvailable: -1}}
	c.setDeployment(dep(2, "1", "0"))
	for _, p := range []*corev1.Pod{pod("a1", "a", ready), pod("a2", "a", ready), pod("b1", "b", pending)} {
		c.podEvent(p, false)
	}
	if got := c.Observed(); got.PodEvents != 3 || got.MaxPods != 3 || got.MinAvailable != 2 {
		t.Fatalf("got %+v, want 3 events, max 3 pods, min 2 available", got)
	}
}
