package deployment

import (
	"strconv"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Builders for the unit tests: a Deployment and ReplicaSets as the caches
// would hold them, with only what a test cares about set.

var (
	t0    = time.Date(2026, 5, 20, 0, 0, 0, 0, time.UTC)
	older = metav1.NewTime(t0)
	old   = metav1.NewTime(t0.Add(time.Hour))
	newer = metav1.NewTime(t0.Add(2 * time.Hour))
)

func intOrStr(v string) *intstr.IntOrString {
	x := intstr.Parse(v)
	return &x
}

// testDeployment is a rolling-update Deployment of n replicas with the
// given maxSurge and maxUnavailable ("" for kcm tests' default of 0).
func testDeployment(n int32, surge, unavailable string) *appsv1.Deployment {
	if surge == "" {
		surge = "0"
	}
	if unavailable == "" {
		unavailable = "0"
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "foo", Namespace: "ns", UID: "d-uid", Generation: 1},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "foo"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "foo"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img:1"}}},
			},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxSurge:       intOrStr(surge),
					MaxUnavailable: intOrStr(unavailable),
				},
			},
		},
	}
}

func recreate(d *appsv1.Deployment) *appsv1.Deployment {
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	return d
}

// testRS is a ReplicaSet of the given size, all of whose replicas exist
// and are available, created at ts.
func testRS(name string, size int32, ts metav1.Time) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "ns", UID: types.UID(name + "-uid"), CreationTimestamp: ts,
			Generation: 1, Annotations: map[string]string{},
		},
		Spec: appsv1.ReplicaSetSpec{Replicas: &size},
		Status: appsv1.ReplicaSetStatus{
			Replicas: size, ReadyReplicas: size, AvailableReplicas: size, ObservedGeneration: 1,
		},
	}
}

func withAvailable(rs *appsv1.ReplicaSet, n int32) *appsv1.ReplicaSet {
	rs.Status.AvailableReplicas, rs.Status.ReadyReplicas = n, n
	return rs
}

func withRevision(rs *appsv1.ReplicaSet, rev int) *appsv1.ReplicaSet {
	rs.Annotations[RevisionAnnotation] = strconv.Itoa(rev)
	return rs
}

// sizes maps ReplicaSet names to the sizes ops leave them at.
func sizes(ops []scaleOp) map[string]int32 {
	out := map[string]int32{}
	for _, op := range ops {
		out[op.rs.Name] = op.to
	}
	return out
}

func equalSizes(t *testing.T, got, want map[string]int32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got sizes %v, want %v", got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Fatalf("got sizes %v, want %v", got, want)
		}
	}
}
