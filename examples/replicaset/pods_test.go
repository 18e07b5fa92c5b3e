package replicaset

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

func TestPodFromTemplate(t *testing.T) {
	rs := testRS(1, 0)
	rs.Spec.Template.Annotations = map[string]string{"a": "b"}
	rs.Spec.Template.Finalizers = []string{"example.com/keep"}
	rs.Spec.Template.Name = "ignored"
	rs.Spec.Template.Spec = corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img"}}}
	got := PodFromTemplate(&rs.Spec.Template, rs.Name, controllerRef(rs))
	yes := true
	want := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "rs-",
			Labels:       map[string]string{"app": "web", "tier": "front"},
			Annotations:  map[string]string{"a": "b"},
			Finalizers:   []string{"example.com/keep"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: "rs-uid", Controller: &yes, BlockOwnerDeletion: &yes,
			}},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img"}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pod (-want +got):\n%s", diff)
	}
	// The pod owns copies: changing it leaves the template alone.
	got.Labels["x"] = "y"
	got.Spec.Containers[0].Image = "other"
	got.Finalizers[0] = "z"
	if _, ok := rs.Spec.Template.Labels["x"]; ok || rs.Spec.Template.Spec.Containers[0].Image != "img" || rs.Spec.Template.Finalizers[0] != "example.com/keep" {
		t.Error("the pod shares memory with the template")
	}
}

func TestPodNamePrefix(t *testing.T) {
	tests := []struct {
		name, want string
	}{
		{name: "web", want: "web-"},
		{name: strings.Repeat("a", 252), want: strings.Repeat("a", 252) + "-"},
		{name: strings.Repeat("a", 253), want: strings.Repeat("a", 253)},
	}
	for _, tt := range tests {
		t.Run(tt.name[:min(len(tt.name), 10)]+"…", func(t *testing.T) {
			if got := podNamePrefix(tt.name); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSplitPods(t *testing.T) {
	rs := testRS(1, 0)
	sel := labels.SelectorFromSet(labels.Set{"app": "web"})
	yes := true
	ctl := func(uid types.UID) func(*corev1.Pod) {
		return func(pod *corev1.Pod) {
			pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "x", UID: uid, Controller: &yes}}
		}
	}
	deleting := func(pod *corev1.Pod) { ts := metav1.NewTime(now); pod.DeletionTimestamp = &ts }
	web := withLabels(map[string]string{"app": "web"})
	pods := []*corev1.Pod{
		p("ours", web, ctl("rs-uid")),
		p("orphan", web),
		p("orphan-other-labels", withLabels(map[string]string{"app": "db"})),
		p("foreign", web, ctl("other")),
		p("ours-terminating", web, ctl("rs-uid"), deleting),
		p("ours-terminating-not-matching", withLabels(map[string]string{"app": "db"}), ctl("rs-uid"), deleting),
		p("orphan-terminating", web, deleting),
		p("foreign-terminating", web, ctl("other"), deleting),
		p("ours-succeeded", web, ctl("rs-uid"), phase(corev1.PodSucceeded)),
		p("ours-failed-deleting", web, ctl("rs-uid"), phase(corev1.PodFailed), deleting),
	}
	candidates, terminating := splitPods(rs, sel, pods)
	if got, want := names(candidates), []string{"ours", "orphan", "orphan-other-labels"}; !slices.Equal(got, want) {
		t.Errorf("candidates: got %v, want %v", got, want)
	}
	if got, want := names(terminating), []string{"ours-terminating"}; !slices.Equal(got, want) {
		t.Errorf("terminating: got %v, want %v", got, want)
	}
}
