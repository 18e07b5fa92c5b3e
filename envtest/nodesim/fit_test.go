package nodesim

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func testNode(name string, labels map[string]string, taints []corev1.Taint, capacity corev1.ResourceList) *corev1.Node {
	alloc := DefaultCapacity()
	for k, v := range capacity {
		alloc[k] = v
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       corev1.NodeSpec{Taints: taints},
		Status:     corev1.NodeStatus{Allocatable: alloc},
	}
}

func requiredAffinity(terms ...corev1.NodeSelectorTerm) *corev1.Affinity {
	return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms},
	}}
}

func expr(key string, op corev1.NodeSelectorOperator, values ...string) corev1.NodeSelectorRequirement {
	return corev1.NodeSelectorRequirement{Key: key, Operator: op, Values: values}
}

func cpuPod(cpu string) corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)},
	}}}}
}

func TestFit(t *testing.T) {
	dedicated := corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}
	noExec := corev1.Taint{Key: "gpu", Effect: corev1.TaintEffectNoExecute}
	prefer := corev1.Taint{Key: "soft", Effect: corev1.TaintEffectPreferNoSchedule}
	small := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourcePods: resource.MustParse("2")}

	tests := []struct {
		name string
		spec corev1.PodSpec
		node *corev1.Node
		used resources
		want []string // nil: fits
	}{
		{name: "no constraints", node: testNode("n", nil, nil, nil)},
		{name: "nodeSelector matches", spec: corev1.PodSpec{NodeSelector: map[string]string{"zone": "a"}},
			node: testNode("n", map[string]string{"zone": "a", "x": "y"}, nil, nil)},
		{name: "nodeSelector value differs", spec: corev1.PodSpec{NodeSelector: map[string]string{"zone": "a"}},
			node: testNode("n", map[string]string{"zone": "b"}, nil, nil), want: []string{reasonAffinity}},
		{name: "nodeSelector label missing", spec: corev1.PodSpec{NodeSelector: map[string]string{"zone": "a"}},
			node: testNode("n", nil, nil, nil), want: []string{reasonAffinity}},
		{name: "affinity In", spec: corev1.PodSpec{Affinity: requiredAffinity(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{expr("zone", corev1.NodeSelectorOpIn, "a", "b")}})},
			node: testNode("n", map[string]string{"zone": "b"}, nil, nil)},
		{name: "affinity In misses", spec: corev1.PodSpec{Affinity: requiredAffinity(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{expr("zone", corev1.NodeSelectorOpIn, "a")}})},
			node: testNode("n", map[string]string{"zone": "b"}, nil, nil), want: []string{reasonAffinity}},
		{name: "affinity NotIn with label absent", spec: corev1.PodSpec{Affinity: requiredAffinity(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{expr("zone", corev1.NodeSelectorOpNotIn, "a")}})},
			node: testNode("n", nil, nil, nil)},
		{name: "affinity Exists and DoesNotExist", spec: corev1.PodSpec{Affinity: requiredAffinity(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
			expr("ssd", corev1.NodeSelectorOpExists), expr("spot", corev1.NodeSelectorOpDoesNotExist)}})},
			node: testNode("n", map[string]string{"ssd": ""}, nil, nil)},
		{name: "affinity expressions are ANDed", spec: corev1.PodSpec{Affinity: requiredAffinity(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
			expr("ssd", corev1.NodeSelectorOpExists), expr("spot", corev1.NodeSelectorOpDoesNotExist)}})},
			node: testNode("n", map[string]string{"ssd": "", "spot": "true"}, nil, nil), want: []string{reasonAffinity}},
		{name: "affinity terms are ORed", spec: corev1.PodSpec{Affinity: requiredAffinity(
			corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{expr("zone", corev1.NodeSelectorOpIn, "a")}},
			corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{expr("zone", corev1.NodeSelectorOpIn, "b")}})},
			node: testNode("n", map[string]string{"zone": "b"}, nil, nil)},
		{name: "empty term matches nothing", spec: corev1.PodSpec{Affinity: requiredAffinity(corev1.NodeSelectorTerm{})},
			node: testNode("n", nil, nil, nil), want: []string{reasonAffinity}},
		{name: "affinity Gt", spec: corev1.PodSpec{Affinity: requiredAffinity(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{expr("cores", corev1.NodeSelectorOpGt, "4")}})},
			node: testNode("n", map[string]string{"cores": "8"}, nil, nil)},
		{name: "affinity Gt not greater", spec: corev1.PodSpec{Affinity: requiredAffinity(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{expr("cores", corev1.NodeSelectorOpGt, "8")}})},
			node: testNode("n", map[string]string{"cores": "8"}, nil, nil), want: []string{reasonAffinity}},
		{name: "affinity Lt non-numeric label", spec: corev1.PodSpec{Affinity: requiredAffinity(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{expr("cores", corev1.NodeSelectorOpLt, "8")}})},
			node: testNode("n", map[string]string{"cores": "many"}, nil, nil), want: []string{reasonAffinity}},
		{name: "matchFields metadata.name In", spec: corev1.PodSpec{Affinity: requiredAffinity(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{expr("metadata.name", corev1.NodeSelectorOpIn, "n")}})},
			node: testNode("n", nil, nil, nil)},
		{name: "matchFields metadata.name In other node", spec: corev1.PodSpec{Affinity: requiredAffinity(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{expr("metadata.name", corev1.NodeSelectorOpIn, "m")}})},
			node: testNode("n", nil, nil, nil), want: []string{reasonAffinity}},
		{name: "matchFields metadata.name NotIn", spec: corev1.PodSpec{Affinity: requiredAffinity(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{expr("metadata.name", corev1.NodeSelectorOpNotIn, "n")}})},
			node: testNode("n", nil, nil, nil), want: []string{reasonAffinity}},
		{name: "matchFields unknown field", spec: corev1.PodSpec{Affinity: requiredAffinity(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{expr("metadata.uid", corev1.NodeSelectorOpIn, "n")}})},
			node: testNode("n", nil, nil, nil), want: []string{reasonAffinity}},
		{name: "nodeSelector and affinity both apply", spec: corev1.PodSpec{NodeSelector: map[string]string{"zone": "a"},
			Affinity: requiredAffinity(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{expr("metadata.name", corev1.NodeSelectorOpIn, "n")}})},
			node: testNode("n", map[string]string{"zone": "b"}, nil, nil), want: []string{reasonAffinity}},
		{name: "untolerated NoSchedule taint", node: testNode("n", nil, []corev1.Taint{dedicated}, nil),
			want: []string{"node(s) had untolerated taint {dedicated: db}"}},
		{name: "Equal toleration", spec: corev1.PodSpec{Tolerations: []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "db", Effect: corev1.TaintEffectNoSchedule}}},
			node: testNode("n", nil, []corev1.Taint{dedicated}, nil)},
		{name: "Equal toleration with another value", spec: corev1.PodSpec{Tolerations: []corev1.Toleration{{Key: "dedicated", Value: "web"}}},
			node: testNode("n", nil, []corev1.Taint{dedicated}, nil), want: []string{"node(s) had untolerated taint {dedicated: db}"}},
		{name: "Exists toleration on the key, any effect", spec: corev1.PodSpec{Tolerations: []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}},
			node: testNode("n", nil, []corev1.Taint{dedicated}, nil)},
		{name: "toleration for another effect", spec: corev1.PodSpec{Tolerations: []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}}},
			node: testNode("n", nil, []corev1.Taint{dedicated}, nil), want: []string{"node(s) had untolerated taint {dedicated: db}"}},
		{name: "empty key Exists tolerates everything", spec: corev1.PodSpec{Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}},
			node: testNode("n", nil, []corev1.Taint{dedicated, noExec}, nil)},
		{name: "NoExecute taint blocks scheduling", spec: corev1.PodSpec{Tolerations: []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}},
			node: testNode("n", nil, []corev1.Taint{dedicated, noExec}, nil), want: []string{"node(s) had untolerated taint {gpu: }"}},
		{name: "PreferNoSchedule is only a preference", node: testNode("n", nil, []corev1.Taint{prefer}, nil)},
		{name: "cordoned node", node: func() *corev1.Node { n := testNode("n", nil, nil, nil); n.Spec.Unschedulable = true; return n }(),
			want: []string{reasonUnschedulable}},
		{name: "cordoned node, tolerated", spec: corev1.PodSpec{Tolerations: []corev1.Toleration{{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists}}},
			node: func() *corev1.Node { n := testNode("n", nil, nil, nil); n.Spec.Unschedulable = true; return n }()},
		{name: "cpu fits exactly", spec: cpuPod("500m"), node: testNode("n", nil, nil, small), used: resources{corev1.ResourceCPU: 500, corev1.ResourcePods: 1}},
		{name: "cpu short", spec: cpuPod("501m"), node: testNode("n", nil, nil, small), used: resources{corev1.ResourceCPU: 500, corev1.ResourcePods: 1},
			want: []string{"Insufficient cpu"}},
		{name: "too many pods", node: testNode("n", nil, nil, small), used: resources{corev1.ResourcePods: 2}, want: []string{reasonTooManyPods}},
		{name: "cpu and memory short", spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("9"), corev1.ResourceMemory: resource.MustParse("33Gi")}}}}},
			node: testNode("n", nil, nil, nil), want: []string{"Insufficient cpu", "Insufficient memory"}},
		{name: "extended resource the node lacks", spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{"example.com/gpu": resource.MustParse("1")}}}}},
			node: testNode("n", nil, nil, nil), want: []string{"Insufficient example.com/gpu"}},
		{name: "taint checked before affinity", spec: corev1.PodSpec{NodeSelector: map[string]string{"zone": "a"}},
			node: testNode("n", nil, []corev1.Taint{dedicated}, nil), want: []string{"node(s) had untolerated taint {dedicated: db}"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: tt.spec}
			got := fit(pod, podRequests(pod), tt.node, tt.used)
			if !slices.Equal(got, tt.want) {
				t.Errorf("fit: got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPodRequests(t *testing.T) {
	c := func(cpu string) corev1.Container {
		return corev1.Container{Name: "c" + cpu, Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}}
	}
	always := corev1.ContainerRestartPolicyAlways
	sidecar := c("100m")
	sidecar.RestartPolicy = &always
	tests := []struct {
		name    string
		spec    corev1.PodSpec
		wantCPU int64
	}{
		{name: "none", spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}, wantCPU: 0},
		{name: "containers add up", spec: corev1.PodSpec{Containers: []corev1.Container{c("100m"), c("250m")}}, wantCPU: 350},
		{name: "larger init container wins", spec: corev1.PodSpec{InitContainers: []corev1.Container{c("1")}, Containers: []corev1.Container{c("100m"), c("250m")}}, wantCPU: 1000},
		{name: "smaller init container", spec: corev1.PodSpec{InitContainers: []corev1.Container{c("200m")}, Containers: []corev1.Container{c("100m"), c("250m")}}, wantCPU: 350},
		{name: "sidecar adds to containers", spec: corev1.PodSpec{InitContainers: []corev1.Container{sidecar}, Containers: []corev1.Container{c("250m")}}, wantCPU: 350},
		{name: "overhead", spec: corev1.PodSpec{Containers: []corev1.Container{c("250m")}, Overhead: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")}}, wantCPU: 300},
		{name: "pod-level requests", spec: corev1.PodSpec{Containers: []corev1.Container{c("250m")},
			Resources: &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}}}, wantCPU: 2000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := podRequests(&corev1.Pod{Spec: tt.spec})
			if got[corev1.ResourceCPU] != tt.wantCPU {
				t.Errorf("cpu: got %dm, want %dm", got[corev1.ResourceCPU], tt.wantCPU)
			}
			if got[corev1.ResourcePods] != 1 {
				t.Errorf("pods: got %d, want 1", got[corev1.ResourcePods])
			}
		})
	}
}

func TestChoose(t *testing.T) {
	a := testNode("a", map[string]string{"zone": "a"}, nil, nil)
	b := testNode("b", map[string]string{"zone": "b"}, nil, nil)
	tainted := testNode("c", nil, []corev1.Taint{{Key: "k", Value: "v", Effect: corev1.TaintEffectNoSchedule}}, nil)
	tests := []struct {
		name     string
		spec     corev1.PodSpec
		nodes    []candidate
		wantNode string
		wantWhy  string
	}{
		{name: "least allocated wins", nodes: []candidate{{node: a, used: resources{corev1.ResourcePods: 2}}, {node: b, used: resources{corev1.ResourcePods: 1}}}, wantNode: "b"},
		{name: "tie goes to the first", nodes: []candidate{{node: a}, {node: b}}, wantNode: "a"},
		{name: "cpu counts", spec: cpuPod("1"), nodes: []candidate{{node: a, used: resources{corev1.ResourceCPU: 4000, corev1.ResourcePods: 1}}, {node: b, used: resources{corev1.ResourcePods: 3}}}, wantNode: "b"},
		{name: "only fitting nodes", spec: corev1.PodSpec{NodeSelector: map[string]string{"zone": "b"}}, nodes: []candidate{{node: a}, {node: b, used: resources{corev1.ResourcePods: 50}}}, wantNode: "b"},
		{name: "none fits", spec: corev1.PodSpec{NodeSelector: map[string]string{"zone": "a"}}, nodes: []candidate{{node: b}, {node: tainted}, {node: testNode("d", nil, nil, nil)}},
			wantWhy: "0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2 node(s) didn't match Pod's node affinity/selector."},
		{name: "no nodes", wantWhy: "no nodes available to schedule pods"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: tt.spec}
			node, why := choose(pod, podRequests(pod), tt.nodes)
			got := ""
			if node != nil {
				got = node.Name
			}
			if got != tt.wantNode || why != tt.wantWhy {
				t.Errorf("choose: got (%q, %q), want (%q, %q)", got, why, tt.wantNode, tt.wantWhy)
			}
		})
	}
}
