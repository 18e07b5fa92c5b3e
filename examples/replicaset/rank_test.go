package replicaset

import (
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// p builds a pod for ranking tests: scheduled on node-1, Running and ready
// for an hour, created two hours ago, unless options say otherwise.
func p(name string, opts ...func(*corev1.Pod)) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name), CreationTimestamp: metav1.NewTime(now.Add(-2 * time.Hour))},
		Spec:       corev1.PodSpec{NodeName: "node-1"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now.Add(-time.Hour))},
		}},
	}
	for _, o := range opts {
		o(pod)
	}
	return pod
}

func unscheduled(pod *corev1.Pod)      { pod.Spec.NodeName = "" }
func on(node string) func(*corev1.Pod) { return func(pod *corev1.Pod) { pod.Spec.NodeName = node } }
func phase(ph corev1.PodPhase) func(*corev1.Pod) {
	return func(pod *corev1.Pod) { pod.Status.Phase = ph }
}
func notReady(pod *corev1.Pod) { pod.Status.Conditions[0].Status = corev1.ConditionFalse }
func readyFor(d time.Duration) func(*corev1.Pod) {
	return func(pod *corev1.Pod) { pod.Status.Conditions[0].LastTransitionTime = metav1.NewTime(now.Add(-d)) }
}
func createdAgo(d time.Duration) func(*corev1.Pod) {
	return func(pod *corev1.Pod) { pod.CreationTimestamp = metav1.NewTime(now.Add(-d)) }
}
func cost(v string) func(*corev1.Pod) {
	return func(pod *corev1.Pod) {
		pod.Annotations = map[string]string{PodDeletionCostAnnotation: v}
	}
}
func restarts(n int32) func(*corev1.Pod) {
	return func(pod *corev1.Pod) {
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "a", RestartCount: 0}, {Name: "b", RestartCount: n}}
	}
}

func sidecarRestarts(n int32) func(*corev1.Pod) {
	return func(pod *corev1.Pod) {
		always := corev1.ContainerRestartPolicyAlways
		pod.Spec.InitContainers = []corev1.Container{{Name: "init"}, {Name: "sidecar", RestartPolicy: &always}}
		pod.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "init", RestartCount: 9}, {Name: "sidecar", RestartCount: n}}
	}
}

func names(pods []*corev1.Pod) []string {
	out := make([]string, len(pods))
	for i, pod := range pods {
		out[i] = pod.Name
	}
	return out
}

func TestSortForDeletion(t *testing.T) {
	tests := []struct {
		name    string
		pods    []*corev1.Pod
		related []*corev1.Pod // nil: none
		exact   bool          // compare times without a now (no log scale)
		want    []string
	}{
		{
			name: "unscheduled before scheduled",
			pods: []*corev1.Pod{p("scheduled"), p("unscheduled", unscheduled, phase(corev1.PodPending), notReady)},
			want: []string{"unscheduled", "scheduled"},
		},
		{
			name: "pending before unknown before running",
			pods: []*corev1.Pod{p("running"), p("unknown", phase(corev1.PodUnknown)), p("pending", phase(corev1.PodPending))},
			want: []string{"pending", "unknown", "running"},
		},
		{
			name: "not ready before ready",
			pods: []*corev1.Pod{p("ready"), p("not-ready", notReady)},
			want: []string{"not-ready", "ready"},
		},
		{
			name: "lower deletion cost first, invalid cost counts as 0",
			pods: []*corev1.Pod{p("c10", cost("10")), p("c-5", cost("-5")), p("c0", createdAgo(time.Minute)), p("c+3", cost("+3"), createdAgo(time.Hour)), p("c007", cost("007"), createdAgo(10*time.Hour))},
			want: []string{"c-5", "c0", "c+3", "c007", "c10"},
		},
		{
			name: "deletion cost outranks co-location and age",
			pods: []*corev1.Pod{p("crowded-young", on("crowded"), createdAgo(time.Minute), readyFor(time.Minute)), p("cheap-old", on("alone"), cost("-1"))},
			related: []*corev1.Pod{
				p("crowded-young", on("crowded")), p("x", on("crowded")), p("y", on("crowded")), p("cheap-old", on("alone")),
			},
			want: []string{"cheap-old", "crowded-young"},
		},
		{
			name: "more related active pods on the node first",
			pods: []*corev1.Pod{p("alone", on("a")), p("crowded", on("b")), p("pair", on("c"))},
			related: []*corev1.Pod{
				p("alone", on("a")),
				p("crowded", on("b")), p("b2", on("b")), p("b3", on("b")),
				p("pair", on("c")), p("c2", on("c")),
				p("inactive", on("a"), phase(corev1.PodSucceeded)), p("i2", on("a"), phase(corev1.PodFailed)),
			},
			want: []string{"crowded", "pair", "alone"},
		},
		{
			name: "ready more recently first, on a log scale",
			// 1m and 1h30m fall in different log2 buckets; 10m and 11m share
			// one (2^39ns ≈ 9.2m ... 18.3m), so their UIDs decide.
			pods: []*corev1.Pod{p("ready-90m", readyFor(90*time.Minute)), p("b-ready-11m", readyFor(11*time.Minute)), p("a-ready-10m", readyFor(10*time.Minute)), p("ready-1m", readyFor(time.Minute))},
			want: []string{"ready-1m", "a-ready-10m", "b-ready-11m", "ready-90m"},
		},
		{
			name:  "ready time compared exactly without now",
			pods:  []*corev1.Pod{p("b-ready-10m", readyFor(10*time.Minute)), p("a-ready-11m", readyFor(11*time.Minute))},
			exact: true,
			want:  []string{"b-ready-10m", "a-ready-11m"},
		},
		{
			name: "more restarts first",
			pods: []*corev1.Pod{p("r0"), p("r5", restarts(5)), p("r2", restarts(2))},
			want: []string{"r5", "r2", "r0"},
		},
		{
			name: "then more sidecar restarts first; plain init containers do not count",
			pods: []*corev1.Pod{p("s0", sidecarRestarts(0)), p("s3", sidecarRestarts(3)), p("r1-s0", restarts(1), sidecarRestarts(0))},
			want: []string{"r1-s0", "s3", "s0"},
		},
		{
			name: "younger first, on a log scale, UID breaking ties",
			pods: []*corev1.Pod{p("old", createdAgo(10*time.Hour)), p("b-young", createdAgo(10*time.Second)), p("a-young", createdAgo(9*time.Second)), p("zero", createdAgo(0), func(pod *corev1.Pod) { pod.CreationTimestamp = metav1.Time{} })},
			want: []string{"zero", "a-young", "b-young", "old"},
		},
		{
			name: "not-ready pods are not ranked by ready time",
			pods: []*corev1.Pod{p("nr-old", notReady, createdAgo(10*time.Hour)), p("nr-young", notReady, createdAgo(time.Minute), readyFor(100*time.Hour))},
			want: []string{"nr-young", "nr-old"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := now
			if tt.exact {
				at = time.Time{}
			}
			pods := slices.Clone(tt.pods)
			sortForDeletion(pods, tt.related, at)
			if got := names(pods); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			// The order must not depend on the input order.
			slices.Reverse(pods)
			sortForDeletion(pods, tt.related, at)
			if got := names(pods); !slices.Equal(got, tt.want) {
				t.Errorf("reversed input: got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPodsToDelete(t *testing.T) {
	active := []*corev1.Pod{p("ready"), p("pending", phase(corev1.PodPending), notReady), p("unscheduled", unscheduled, phase(corev1.PodPending), notReady), p("not-ready", notReady)}
	tests := []struct {
		n    int
		want []string
	}{
		{n: 1, want: []string{"unscheduled"}},
		{n: 2, want: []string{"unscheduled", "pending"}},
		{n: 3, want: []string{"unscheduled", "pending", "not-ready"}},
		{n: 4, want: []string{"ready", "pending", "unscheduled", "not-ready"}}, // all: not sorted
		{n: 9, want: []string{"ready", "pending", "unscheduled", "not-ready"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d of 4", tt.n), func(t *testing.T) {
			got := names(podsToDelete(slices.Clone(active), nil, tt.n, now))
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLogRank(t *testing.T) {
	tests := []struct {
		age  time.Duration
		want int64
	}{
		{age: -time.Second, want: -1},
		{age: 0, want: -1},
		{age: 1, want: 0},
		{age: 1024, want: 10},
		{age: 1025, want: 10},
		{age: 2047, want: 10},
		{age: 2048, want: 11},
	}
	for _, tt := range tests {
		t.Run(tt.age.String(), func(t *testing.T) {
			if got := logRank(tt.age); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}
