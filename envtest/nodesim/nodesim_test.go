package nodesim_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/capstan-io/capstan/envtest/nodesim"
)

// Every wait is bounded by waitTimeout and polls the API server every
// pollEvery; no test sleeps to let something happen.
const (
	waitTimeout = 30 * time.Second
	pollEvery   = 20 * time.Millisecond
)

// fixture is one test's share of the control plane: a namespace of its
// own, nodes named after it, and a simulator for both.
type fixture struct {
	cs  kubernetes.Interface
	ns  string
	sim *nodesim.Simulator
}

// start creates a namespace and starts a simulator for its Pods on
// opts.Nodes (default one node "a"), whose names it prefixes with the
// namespace's (see node). The simulator is stopped when t ends.
func start(t *testing.T, opts nodesim.Options) *fixture {
	t.Helper()
	env := sharedEnv(t)
	cfg := env.Config()
	cfg.QPS = -1 // the tests poll; client-side throttling would only slow them
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("clientset: %v", err)
	}
	ns, err := cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "nodesim-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	f := &fixture{cs: cs, ns: ns.Name}
	if len(opts.Nodes) == 0 {
		opts.Nodes = []nodesim.NodeSpec{{Name: "a"}}
	}
	opts.Nodes = slices.Clone(opts.Nodes)
	for i := range opts.Nodes {
		opts.Nodes[i].Name = f.node(opts.Nodes[i].Name)
	}
	opts.Namespace = f.ns
	opts.Logger = testr.New(t)
	f.sim, err = nodesim.Start(t.Context(), env.Config(), opts)
	if err != nil {
		t.Fatalf("nodesim.Start: %v", err)
	}
	t.Cleanup(f.sim.Stop)
	return f
}

// node returns the full name of the test's node called short.
func (f *fixture) node(short string) string { return f.ns + "-" + short }

// createPod creates a Pod with one container, changed by mutate (if not
// nil) before it is sent.
func (f *fixture) createPod(t *testing.T, name string, mutate func(*corev1.Pod)) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: "example.com/app:v1"}},
		},
	}
	if mutate != nil {
		mutate(p)
	}
	out, err := f.cs.CoreV1().Pods(f.ns).Create(t.Context(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod %s: %v", name, err)
	}
	return out
}

// eventually polls check until it reports done, and fails t if that does
// not happen within waitTimeout, with the last state check described.
func eventually(t *testing.T, what string, check func() (done bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		done, state := check()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last seen: %s", what, waitTimeout, state)
		}
		time.Sleep(pollEvery)
	}
}

// waitPod waits until the Pod satisfies cond and returns it.
func (f *fixture) waitPod(t *testing.T, name, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	eventually(t, fmt.Sprintf("pod %s/%s %s", f.ns, name, what), func() (bool, string) {
		p, err := f.cs.CoreV1().Pods(f.ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		pod = p
		return cond(p), describePod(p)
	})
	return pod
}

// waitPodGone waits until the Pod no longer exists.
func (f *fixture) waitPodGone(t *testing.T, name string) {
	t.Helper()
	eventually(t, fmt.Sprintf("pod %s/%s gone", f.ns, name), func() (bool, string) {
		p, err := f.cs.CoreV1().Pods(f.ns).Get(t.Context(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, ""
		}
		if err != nil {
			return false, err.Error()
		}
		return false, describePod(p)
	})
}

// waitNode waits until the Node satisfies cond and returns it.
func (f *fixture) waitNode(t *testing.T, name, what string, cond func(*corev1.Node) bool) *corev1.Node {
	t.Helper()
	var node *corev1.Node
	eventually(t, fmt.Sprintf("node %s %s", name, what), func() (bool, string) {
		n, err := f.cs.CoreV1().Nodes().Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		node = n
		return cond(n), fmt.Sprintf("conditions %v, taints %v", n.Status.Conditions, n.Spec.Taints)
	})
	return node
}

// renewTime returns the RenewTime of the node's Lease.
func (f *fixture) renewTime(t *testing.T, node string) time.Time {
	t.Helper()
	l, err := f.cs.CoordinationV1().Leases(nodesim.NodeLeaseNamespace).Get(t.Context(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting lease of node %s: %v", node, err)
	}
	if l.Spec.RenewTime == nil {
		t.Fatalf("lease of node %s: got no renewTime, want one", node)
	}
	return l.Spec.RenewTime.Time
}

// waitLeaseRenewed waits until the node's Lease is renewed after since.
func (f *fixture) waitLeaseRenewed(t *testing.T, node string, since time.Time) {
	t.Helper()
	eventually(t, fmt.Sprintf("lease of node %s renewed after %v", node, since), func() (bool, string) {
		got := f.renewTime(t, node)
		return got.After(since), "renewTime " + got.String()
	})
}

// --- predicates and descriptions ---

func podCondition(p *corev1.Pod, typ corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == typ {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func hasPodCondition(p *corev1.Pod, typ corev1.PodConditionType, status corev1.ConditionStatus) bool {
	c := podCondition(p, typ)
	return c != nil && c.Status == status
}

func nodeCondition(n *corev1.Node, typ corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == typ {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

func runningReady(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && hasPodCondition(p, corev1.PodReady, corev1.ConditionTrue)
}

func phaseIs(phase corev1.PodPhase) func(*corev1.Pod) bool {
	return func(p *corev1.Pod) bool { return p.Status.Phase == phase }
}

// unschedulable matches an unbound Pod whose PodScheduled condition is
// False with reason Unschedulable and the given message.
func unschedulable(message string) func(*corev1.Pod) bool {
	return func(p *corev1.Pod) bool {
		c := podCondition(p, corev1.PodScheduled)
		return p.Spec.NodeName == "" && c != nil && c.Status == corev1.ConditionFalse &&
			c.Reason == corev1.PodReasonUnschedulable && c.Message == message
	}
}

func hasNotReadyTaint(n *corev1.Node) bool {
	return slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool {
		return t.Key == corev1.TaintNodeNotReady && t.Effect == corev1.TaintEffectNoSchedule
	})
}

func describePod(p *corev1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s node=%q", p.Status.Phase, p.Spec.NodeName)
	if p.Status.Reason != "" {
		fmt.Fprintf(&b, " reason=%q", p.Status.Reason)
	}
	if p.DeletionTimestamp != nil {
		b.WriteString(" deleting")
	}
	for _, c := range p.Status.Conditions {
		fmt.Fprintf(&b, " %s=%s", c.Type, c.Status)
		if c.Reason != "" {
			fmt.Fprintf(&b, "(%s: %s)", c.Reason, c.Message)
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		fmt.Fprintf(&b, " container %s: ready=%t restarts=%d state=%s", cs.Name, cs.Ready, cs.RestartCount, describeState(cs.State))
	}
	return b.String()
}

func describeState(s corev1.ContainerState) string {
	switch {
	case s.Running != nil:
		return "running"
	case s.Waiting != nil:
		return "waiting(" + s.Waiting.Reason + ")"
	case s.Terminated != nil:
		return fmt.Sprintf("terminated(%s, %d)", s.Terminated.Reason, s.Terminated.ExitCode)
	}
	return "none"
}

func quantity(s string) resource.Quantity { return resource.MustParse(s) }

func requests(rl corev1.ResourceList) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Spec.Containers[0].Resources.Requests = rl }
}

// sameResources reports whether a and b hold equal quantities of the same
// resources.
func sameResources(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for k, q := range a {
		if o, ok := b[k]; !ok || q.Cmp(o) != 0 {
			return false
		}
	}
	return true
}

// --- tests ---

func TestNodesRegistered(t *testing.T) {
	t.Parallel()
	const heartbeat = 100 * time.Millisecond
	taints := []corev1.Taint{{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoSchedule}}
	f := start(t, nodesim.Options{
		HeartbeatPeriod: heartbeat,
		Nodes: []nodesim.NodeSpec{
			{
				Name:     "a",
				Labels:   map[string]string{"zone": "z1"},
				Taints:   taints,
				Capacity: corev1.ResourceList{corev1.ResourceCPU: quantity("4"), corev1.ResourcePods: quantity("20")},
			},
			{Name: "b"},
		},
	})
	if got, want := f.sim.Nodes(), []string{f.node("a"), f.node("b")}; !slices.Equal(got, want) {
		t.Errorf("Nodes(): got %v, want %v", got, want)
	}
	capA := nodesim.DefaultCapacity()
	capA[corev1.ResourceCPU], capA[corev1.ResourcePods] = quantity("4"), quantity("20")

	for _, tc := range []struct {
		name     string
		labels   map[string]string
		taints   []corev1.Taint
		capacity corev1.ResourceList
	}{
		{name: "a", labels: map[string]string{"zone": "z1"}, taints: taints, capacity: capA},
		{name: "b", capacity: nodesim.DefaultCapacity()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := f.node(tc.name)
			n, err := f.cs.CoreV1().Nodes().Get(t.Context(), name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("getting node: %v", err)
			}
			if c := nodeCondition(n, corev1.NodeReady); c == nil || c.Status != corev1.ConditionTrue {
				t.Errorf("Ready condition: got %v, want status True", c)
			}
			wantLabels := map[string]string{
				corev1.LabelHostname:   name,
				corev1.LabelOSStable:   "linux",
				corev1.LabelArchStable: runtime.GOARCH,
				nodesim.LabelSimulated: "true",
			}
			maps.Copy(wantLabels, tc.labels)
			if !maps.Equal(n.Labels, wantLabels) {
				t.Errorf("labels: got %v, want %v", n.Labels, wantLabels)
			}
			if !slices.EqualFunc(n.Spec.Taints, tc.taints, func(a, b corev1.Taint) bool { return a.MatchTaint(&b) && a.Value == b.Value }) {
				t.Errorf("taints: got %v, want %v", n.Spec.Taints, tc.taints)
			}
			if !sameResources(n.Status.Capacity, tc.capacity) {
				t.Errorf("capacity: got %v, want %v", n.Status.Capacity, tc.capacity)
			}
			if !sameResources(n.Status.Allocatable, tc.capacity) {
				t.Errorf("allocatable: got %v, want %v", n.Status.Allocatable, tc.capacity)
			}
			if !slices.ContainsFunc(n.Status.Addresses, func(a corev1.NodeAddress) bool { return a.Type == corev1.NodeInternalIP }) {
				t.Errorf("addresses: got %v, want an InternalIP", n.Status.Addresses)
			}
			if _, err := netip.ParsePrefix(n.Spec.PodCIDR); err != nil {
				t.Errorf("podCIDR: got %q, want a CIDR (%v)", n.Spec.PodCIDR, err)
			}

			l, err := f.cs.CoordinationV1().Leases(nodesim.NodeLeaseNamespace).Get(t.Context(), name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("getting lease: %v", err)
			}
			if got := l.Spec.HolderIdentity; got == nil || *got != name {
				t.Errorf("lease holderIdentity: got %v, want %q", got, name)
			}
			if got := l.Spec.LeaseDurationSeconds; got == nil || *got != 40 {
				t.Errorf("lease leaseDurationSeconds: got %v, want 40", got)
			}
			if l.Spec.RenewTime == nil {
				t.Fatalf("lease renewTime: got nil, want a time")
			}
			f.waitLeaseRenewed(t, name, l.Spec.RenewTime.Time)
		})
	}
}

// Regression: the TaintNodesByCondition admission plugin taints every new
// Node node.kubernetes.io/not-ready:NoSchedule, and nothing but the
// simulator (playing the node lifecycle controller) removes it here; it
// used not to, so no Pod without a toleration was ever scheduled.
func TestNewNodesLoseAdmissionNotReadyTaint(t *testing.T) {
	t.Parallel()
	f := start(t, nodesim.Options{Nodes: []nodesim.NodeSpec{{Name: "by-start"}}})
	if err := f.sim.AddNode(t.Context(), nodesim.NodeSpec{Name: f.node("by-addnode")}); err != nil {
		t.Fatalf("AddNode: %v", err)
	}
	for _, short := range []string{"by-start", "by-addnode"} {
		t.Run(short, func(t *testing.T) {
			name := f.node(short)
			n, err := f.cs.CoreV1().Nodes().Get(t.Context(), name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("getting node: %v", err)
			}
			if len(n.Spec.Taints) != 0 {
				t.Errorf("taints: got %v, want none", n.Spec.Taints)
			}
			f.createPod(t, short, func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{corev1.LabelHostname: name} })
			f.waitPod(t, short, "Running and Ready", runningReady)
		})
	}
}

func TestPodBecomesRunningAndReady(t *testing.T) {
	t.Parallel()
	const readyDelay = time.Second
	f := start(t, nodesim.Options{ReadyDelay: readyDelay})
	created := time.Now()
	f.createPod(t, "web", nil)

	p := f.waitPod(t, "web", "bound and Pending with containers being created", func(p *corev1.Pod) bool {
		return p.Spec.NodeName != "" && p.Status.Phase == corev1.PodPending && p.Status.StartTime != nil &&
			len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil
	})
	if got, want := p.Spec.NodeName, f.node("a"); got != want {
		t.Errorf("nodeName: got %q, want %q", got, want)
	}
	if got, want := p.Status.ContainerStatuses[0].State.Waiting.Reason, "ContainerCreating"; got != want {
		t.Errorf("container waiting reason while Pending: got %q, want %q", got, want)
	}
	if hasPodCondition(p, corev1.PodReady, corev1.ConditionTrue) {
		t.Errorf("Ready while Pending: got True, want False")
	}

	p = f.waitPod(t, "web", "Running and Ready", runningReady)
	if elapsed := time.Since(created); elapsed < readyDelay {
		t.Errorf("Ready after %v, want at least ReadyDelay (%v)", elapsed, readyDelay)
	}
	for _, typ := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		if !hasPodCondition(p, typ, corev1.ConditionTrue) {
			t.Errorf("condition %s: got %v, want True", typ, podCondition(p, typ))
		}
	}
	cs := p.Status.ContainerStatuses[0]
	if !cs.Ready || cs.State.Running == nil || cs.Started == nil || !*cs.Started {
		t.Errorf("container status: got ready=%t state=%s started=%v, want ready, running and started", cs.Ready, describeState(cs.State), cs.Started)
	}

	node, err := f.cs.CoreV1().Nodes().Get(t.Context(), f.node("a"), metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting node: %v", err)
	}
	cidr := netip.MustParsePrefix(node.Spec.PodCIDR)
	if ip, err := netip.ParseAddr(p.Status.PodIP); err != nil || !cidr.Contains(ip) {
		t.Errorf("podIP: got %q, want an address in the node's podCIDR %s", p.Status.PodIP, cidr)
	}
	var internalIP string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			internalIP = a.Address
		}
	}
	if p.Status.HostIP != internalIP {
		t.Errorf("hostIP: got %q, want the node's InternalIP %q", p.Status.HostIP, internalIP)
	}
}

func TestScheduling(t *testing.T) {
	t.Parallel()
	taint := corev1.Taint{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoSchedule}
	zone := func(z string) map[string]string { return map[string]string{"zone": z} }
	cpu := func(q string) corev1.ResourceList { return corev1.ResourceList{corev1.ResourceCPU: quantity(q)} }
	required := func(terms ...corev1.NodeSelectorTerm) *corev1.Affinity {
		return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms},
		}}
	}

	for _, tc := range []struct {
		name  string
		nodes []nodesim.NodeSpec
		// pod (if not nil) changes the Pod; node gives the full name of a
		// test node.
		pod func(p *corev1.Pod, node func(string) string)
		// wantNode is the node the Pod is bound to; "" wants it
		// unschedulable with wantMessage.
		wantNode    string
		wantMessage string
	}{{
		name:  "nodeSelector picks the matching node",
		nodes: []nodesim.NodeSpec{{Name: "a", Labels: zone("z1")}, {Name: "b", Labels: zone("z2")}},
		pod: func(p *corev1.Pod, _ func(string) string) {
			p.Spec.NodeSelector = zone("z2")
		},
		wantNode: "b",
	}, {
		name:  "nodeSelector matching no node",
		nodes: []nodesim.NodeSpec{{Name: "a", Labels: zone("z1")}, {Name: "b", Labels: zone("z2")}},
		pod: func(p *corev1.Pod, _ func(string) string) {
			p.Spec.NodeSelector = zone("z3")
		},
		wantMessage: "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.",
	}, {
		name:  "required affinity matchFields metadata.name In",
		nodes: []nodesim.NodeSpec{{Name: "a"}, {Name: "b"}},
		pod: func(p *corev1.Pod, node func(string) string) {
			p.Spec.Affinity = required(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{
				{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node("b")}},
			}})
		},
		wantNode: "b",
	}, {
		name:  "required affinity matchFields metadata.name NotIn",
		nodes: []nodesim.NodeSpec{{Name: "a"}, {Name: "b"}},
		pod: func(p *corev1.Pod, node func(string) string) {
			p.Spec.Affinity = required(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{
				{Key: "metadata.name", Operator: corev1.NodeSelectorOpNotIn, Values: []string{node("a")}},
			}})
		},
		wantNode: "b",
	}, {
		name:  "required affinity matchFields naming a node not simulated",
		nodes: []nodesim.NodeSpec{{Name: "a"}, {Name: "b"}},
		pod: func(p *corev1.Pod, node func(string) string) {
			p.Spec.Affinity = required(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{
				{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node("c")}},
			}})
		},
		wantMessage: "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.",
	}, {
		name:  "required affinity terms are ORed",
		nodes: []nodesim.NodeSpec{{Name: "a", Labels: zone("z1")}, {Name: "b", Labels: zone("z2")}},
		pod: func(p *corev1.Pod, node func(string) string) {
			p.Spec.Affinity = required(
				corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{
					{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node("c")}},
				}},
				corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
					{Key: "zone", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"z1"}},
				}},
			)
		},
		wantNode: "b",
	}, {
		name:        "untolerated taint keeps the pod off",
		nodes:       []nodesim.NodeSpec{{Name: "a", Taints: []corev1.Taint{taint}}},
		wantMessage: "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: infra}.",
	}, {
		name:  "untolerated taint sends the pod elsewhere",
		nodes: []nodesim.NodeSpec{{Name: "a", Taints: []corev1.Taint{taint}}, {Name: "b"}},
		// a would win the tie between two empty nodes.
		wantNode: "b",
	}, {
		name:  "toleration with Equal allows the node",
		nodes: []nodesim.NodeSpec{{Name: "a", Taints: []corev1.Taint{taint}}},
		pod: func(p *corev1.Pod, _ func(string) string) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "infra", Effect: corev1.TaintEffectNoSchedule}}
		},
		wantNode: "a",
	}, {
		name:  "toleration with Exists allows the node",
		nodes: []nodesim.NodeSpec{{Name: "a", Taints: []corev1.Taint{taint}}},
		pod: func(p *corev1.Pod, _ func(string) string) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}
		},
		wantNode: "a",
	}, {
		name:  "toleration of another value does not",
		nodes: []nodesim.NodeSpec{{Name: "a", Taints: []corev1.Taint{taint}}},
		pod: func(p *corev1.Pod, _ func(string) string) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "web", Effect: corev1.TaintEffectNoSchedule}}
		},
		wantMessage: "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: infra}.",
	}, {
		name:     "PreferNoSchedule taint does not keep the pod off",
		nodes:    []nodesim.NodeSpec{{Name: "a", Taints: []corev1.Taint{{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectPreferNoSchedule}}}},
		wantNode: "a",
	}, {
		name:  "requests within capacity",
		nodes: []nodesim.NodeSpec{{Name: "a", Capacity: cpu("1")}},
		pod: func(p *corev1.Pod, _ func(string) string) {
			requests(cpu("1"))(p)
		},
		wantNode: "a",
	}, {
		name:  "cpu requests exceeding capacity",
		nodes: []nodesim.NodeSpec{{Name: "a", Capacity: cpu("1")}},
		pod: func(p *corev1.Pod, _ func(string) string) {
			requests(cpu("1500m"))(p)
		},
		wantMessage: "0/1 nodes are available: 1 Insufficient cpu.",
	}, {
		name:  "memory requests exceeding capacity",
		nodes: []nodesim.NodeSpec{{Name: "a", Capacity: corev1.ResourceList{corev1.ResourceMemory: quantity("1Gi")}}},
		pod: func(p *corev1.Pod, _ func(string) string) {
			requests(corev1.ResourceList{corev1.ResourceMemory: quantity("2Gi")})(p)
		},
		wantMessage: "0/1 nodes are available: 1 Insufficient memory.",
	}, {
		name:  "requests fitting only the larger node",
		nodes: []nodesim.NodeSpec{{Name: "a", Capacity: cpu("1")}, {Name: "b", Capacity: cpu("4")}},
		pod: func(p *corev1.Pod, _ func(string) string) {
			requests(cpu("2"))(p)
		},
		wantNode: "b",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := start(t, nodesim.Options{Nodes: tc.nodes})
			f.createPod(t, "p", func(p *corev1.Pod) {
				if tc.pod != nil {
					tc.pod(p, f.node)
				}
			})
			if tc.wantNode == "" {
				f.waitPod(t, "p", "unschedulable: "+tc.wantMessage, unschedulable(tc.wantMessage))
				return
			}
			p := f.waitPod(t, "p", "bound", func(p *corev1.Pod) bool { return p.Spec.NodeName != "" })
			if got, want := p.Spec.NodeName, f.node(tc.wantNode); got != want {
				t.Errorf("nodeName: got %q, want %q", got, want)
			}
		})
	}
}

func TestUnschedulableUntilNodeAdded(t *testing.T) {
	t.Parallel()
	cpu := func(q string) corev1.ResourceList { return corev1.ResourceList{corev1.ResourceCPU: quantity(q)} }
	f := start(t, nodesim.Options{Nodes: []nodesim.NodeSpec{{Name: "a", Capacity: cpu("1")}}})
	f.createPod(t, "big", requests(cpu("2")))
	p := f.waitPod(t, "big", "unschedulable", unschedulable("0/1 nodes are available: 1 Insufficient cpu."))
	if p.Status.Phase != corev1.PodPending {
		t.Errorf("phase: got %s, want Pending", p.Status.Phase)
	}

	if err := f.sim.AddNode(t.Context(), nodesim.NodeSpec{Name: f.node("b"), Capacity: cpu("4")}); err != nil {
		t.Fatalf("AddNode: %v", err)
	}
	if got, want := f.sim.Nodes(), []string{f.node("a"), f.node("b")}; !slices.Equal(got, want) {
		t.Errorf("Nodes(): got %v, want %v", got, want)
	}
	p = f.waitPod(t, "big", "Running and Ready", runningReady)
	if got, want := p.Spec.NodeName, f.node("b"); got != want {
		t.Errorf("nodeName: got %q, want %q", got, want)
	}
	if !hasPodCondition(p, corev1.PodScheduled, corev1.ConditionTrue) {
		t.Errorf("PodScheduled: got %v, want True", podCondition(p, corev1.PodScheduled))
	}

	for _, tc := range []struct {
		name string
		spec nodesim.NodeSpec
	}{
		{"already simulated", nodesim.NodeSpec{Name: f.node("b")}},
		{"invalid name", nodesim.NodeSpec{Name: "Not_A_Name"}},
		{"taint without key", nodesim.NodeSpec{Name: f.node("c"), Taints: []corev1.Taint{{Effect: corev1.TaintEffectNoSchedule}}}},
	} {
		if err := f.sim.AddNode(t.Context(), tc.spec); err == nil {
			t.Errorf("AddNode %s: got no error, want one", tc.name)
		}
	}
}

func TestCapacityFreed(t *testing.T) {
	t.Parallel()
	cpu := func(q string) corev1.ResourceList { return corev1.ResourceList{corev1.ResourceCPU: quantity(q)} }
	for _, tc := range []struct {
		name string
		// free makes the running pod "first" give its node back.
		free func(t *testing.T, f *fixture)
	}{{
		name: "by deletion",
		free: func(t *testing.T, f *fixture) {
			if err := f.cs.CoreV1().Pods(f.ns).Delete(t.Context(), "first", metav1.DeleteOptions{}); err != nil {
				t.Fatalf("deleting pod: %v", err)
			}
			f.waitPodGone(t, "first")
		},
	}, {
		name: "by failure",
		free: func(t *testing.T, f *fixture) {
			if err := f.sim.FailPod(t.Context(), f.ns, "first", "Evicted", "test"); err != nil {
				t.Fatalf("FailPod: %v", err)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := start(t, nodesim.Options{Nodes: []nodesim.NodeSpec{{Name: "a", Capacity: cpu("1")}}})
			f.createPod(t, "first", requests(cpu("600m")))
			f.waitPod(t, "first", "Running and Ready", runningReady)
			f.createPod(t, "second", requests(cpu("600m")))
			f.waitPod(t, "second", "unschedulable", unschedulable("0/1 nodes are available: 1 Insufficient cpu."))
			tc.free(t, f)
			p := f.waitPod(t, "second", "Running and Ready", runningReady)
			if got, want := p.Spec.NodeName, f.node("a"); got != want {
				t.Errorf("nodeName: got %q, want %q", got, want)
			}
		})
	}
}

func TestExit(t *testing.T) {
	t.Parallel()
	const exitAfter = 300 * time.Millisecond
	f := start(t, nodesim.Options{RestartBackoff: 100 * time.Millisecond, MaxRestartBackoff: 200 * time.Millisecond})
	for _, tc := range []struct {
		name     string
		policy   corev1.RestartPolicy
		code     string // "" leaves the annotation out
		wantCode int32
		// wantPhase is the Pod's final phase; "" wants it Running with
		// restarting containers.
		wantPhase  corev1.PodPhase
		wantReason string
	}{
		{name: "Never, exit code 0", policy: corev1.RestartPolicyNever, code: "0", wantPhase: corev1.PodSucceeded, wantReason: "Completed"},
		{name: "Never, default exit code", policy: corev1.RestartPolicyNever, wantPhase: corev1.PodSucceeded, wantReason: "Completed"},
		{name: "Never, exit code 1", policy: corev1.RestartPolicyNever, code: "1", wantCode: 1, wantPhase: corev1.PodFailed, wantReason: "Error"},
		{name: "OnFailure, exit code 0", policy: corev1.RestartPolicyOnFailure, code: "0", wantPhase: corev1.PodSucceeded, wantReason: "Completed"},
		{name: "OnFailure, exit code 3", policy: corev1.RestartPolicyOnFailure, code: "3", wantCode: 3, wantReason: "Error"},
		{name: "Always, exit code 0", policy: corev1.RestartPolicyAlways, code: "0", wantReason: "Completed"},
		{name: "Always, exit code 1", policy: corev1.RestartPolicyAlways, code: "1", wantCode: 1, wantReason: "Error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := strings.ToLower(strings.NewReplacer(",", "", " ", "-").Replace(tc.name))
			created := time.Now()
			f.createPod(t, name, func(p *corev1.Pod) {
				p.Spec.RestartPolicy = tc.policy
				p.Annotations = map[string]string{nodesim.AnnotationExitAfter: exitAfter.String()}
				if tc.code != "" {
					p.Annotations[nodesim.AnnotationExitCode] = tc.code
				}
			})
			if tc.wantPhase != "" {
				p := f.waitPod(t, name, "in phase "+string(tc.wantPhase), phaseIs(tc.wantPhase))
				if elapsed := time.Since(created); elapsed < exitAfter {
					t.Errorf("%s after %v, want at least exit-after (%v)", tc.wantPhase, elapsed, exitAfter)
				}
				cs := p.Status.ContainerStatuses[0]
				if term := cs.State.Terminated; term == nil || term.ExitCode != tc.wantCode || term.Reason != tc.wantReason {
					t.Errorf("container state: got %s, want terminated(%s, %d)", describeState(cs.State), tc.wantReason, tc.wantCode)
				}
				if cs.RestartCount != 0 {
					t.Errorf("restartCount: got %d, want 0", cs.RestartCount)
				}
				if hasPodCondition(p, corev1.PodReady, corev1.ConditionTrue) {
					t.Errorf("Ready: got True, want False")
				}
				return
			}
			p := f.waitPod(t, name, "restarted twice", func(p *corev1.Pod) bool {
				return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 2
			})
			if p.Status.Phase != corev1.PodRunning {
				t.Errorf("phase: got %s, want Running", p.Status.Phase)
			}
			last := p.Status.ContainerStatuses[0].LastTerminationState
			if term := last.Terminated; term == nil || term.ExitCode != tc.wantCode || term.Reason != tc.wantReason {
				t.Errorf("container lastState: got %s, want terminated(%s, %d)", describeState(last), tc.wantReason, tc.wantCode)
			}
		})
	}
}

func TestFailPod(t *testing.T) {
	t.Parallel()
	f := start(t, nodesim.Options{})
	f.createPod(t, "victim", nil)
	f.waitPod(t, "victim", "Running and Ready", runningReady)

	const reason, message = "Evicted", "The node was low on resource: memory."
	if err := f.sim.FailPod(t.Context(), f.ns, "victim", reason, message); err != nil {
		t.Fatalf("FailPod: %v", err)
	}
	p := f.waitPod(t, "victim", "Failed", phaseIs(corev1.PodFailed))
	if p.Status.Reason != reason || p.Status.Message != message {
		t.Errorf("reason and message: got %q, %q, want %q, %q", p.Status.Reason, p.Status.Message, reason, message)
	}
	if term := p.Status.ContainerStatuses[0].State.Terminated; term == nil || term.ExitCode != 137 {
		t.Errorf("container state: got %s, want terminated with exit code 137", describeState(p.Status.ContainerStatuses[0].State))
	}
	if hasPodCondition(p, corev1.PodReady, corev1.ConditionTrue) {
		t.Errorf("Ready: got True, want False")
	}

	// A pod bound to a node that no simulator runs.
	f.createPod(t, "elsewhere", func(p *corev1.Pod) { p.Spec.NodeName = f.node("not-simulated") })
	for _, tc := range []struct {
		name  string
		pod   string
		check func(error) bool
		want  string
	}{
		{"already failed", "victim", func(err error) bool { return err != nil && strings.Contains(err.Error(), "already Failed") }, "an error saying it is already Failed"},
		{"missing pod", "missing", apierrors.IsNotFound, "NotFound"},
		{"pod on a node not simulated", "elsewhere", func(err error) bool { return errors.Is(err, nodesim.ErrUnknownNode) }, "ErrUnknownNode"},
	} {
		if err := f.sim.FailPod(t.Context(), f.ns, tc.pod, "Evicted", ""); !tc.check(err) {
			t.Errorf("FailPod, %s: got %v, want %s", tc.name, err, tc.want)
		}
	}
}

func TestDeletion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		stopDelay time.Duration
		grace     *int64
		// The pod must disappear within [min, max] of the delete call.
		min, max time.Duration
	}{
		{name: "after StopDelay", stopDelay: time.Second, min: time.Second, max: waitTimeout},
		{name: "grace period caps StopDelay", stopDelay: time.Hour, grace: new(int64(1)), min: time.Second, max: 20 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := start(t, nodesim.Options{StopDelay: tc.stopDelay})
			f.createPod(t, "p", nil)
			p := f.waitPod(t, "p", "Running and Ready", runningReady)

			ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
			defer cancel()
			w, err := f.cs.CoreV1().Pods(f.ns).Watch(ctx, metav1.ListOptions{
				FieldSelector:   fields.OneTermEqualSelector("metadata.name", "p").String(),
				ResourceVersion: p.ResourceVersion,
			})
			if err != nil {
				t.Fatalf("watching pod: %v", err)
			}
			defer w.Stop()
			begin := time.Now()
			if err := f.cs.CoreV1().Pods(f.ns).Delete(t.Context(), "p", metav1.DeleteOptions{GracePeriodSeconds: tc.grace}); err != nil {
				t.Fatalf("deleting pod: %v", err)
			}
			last, deleted := p, false
			for ev := range w.ResultChan() {
				if ev.Type == watch.Error {
					t.Fatalf("watch error: %v", apierrors.FromObject(ev.Object))
				}
				last = ev.Object.(*corev1.Pod)
				if ev.Type == watch.Deleted {
					deleted = true
					break
				}
			}
			elapsed := time.Since(begin)
			if !deleted {
				t.Fatalf("pod not deleted within %v (watch ended: %v); last seen: %s", waitTimeout, ctx.Err(), describePod(last))
			}
			if elapsed < tc.min || elapsed > tc.max {
				t.Errorf("pod gone after %v, want within [%v, %v]", elapsed, tc.min, tc.max)
			}
			// The kubelet reports the killed containers before it deletes.
			if last.Status.Phase != corev1.PodFailed {
				t.Errorf("final phase: got %s, want Failed", last.Status.Phase)
			}
			if term := last.Status.ContainerStatuses[0].State.Terminated; term == nil || term.ExitCode != 137 {
				t.Errorf("final container state: got %s, want terminated with exit code 137", describeState(last.Status.ContainerStatuses[0].State))
			}
		})
	}
}

func TestSetNodeReady(t *testing.T) {
	t.Parallel()
	const heartbeat = 100 * time.Millisecond
	f := start(t, nodesim.Options{HeartbeatPeriod: heartbeat})
	a := f.node("a")
	f.createPod(t, "before", nil)
	f.waitPod(t, "before", "Running and Ready", runningReady)

	if err := f.sim.SetNodeReady(t.Context(), a, false); err != nil {
		t.Fatalf("SetNodeReady false: %v", err)
	}
	// Created at once: SetNodeReady returns only when scheduling sees the
	// taint.
	f.createPod(t, "during", nil)
	n := f.waitNode(t, a, "NotReady", func(n *corev1.Node) bool {
		c := nodeCondition(n, corev1.NodeReady)
		return c != nil && c.Status == corev1.ConditionFalse
	})
	if !hasNotReadyTaint(n) {
		t.Errorf("taints: got %v, want %s:NoSchedule", n.Spec.Taints, corev1.TaintNodeNotReady)
	}
	p := f.waitPod(t, "before", "not Ready", func(p *corev1.Pod) bool {
		return hasPodCondition(p, corev1.PodReady, corev1.ConditionFalse)
	})
	if got, want := podCondition(p, corev1.PodReady).Reason, "NodeNotReady"; got != want {
		t.Errorf("Ready condition reason: got %q, want %q", got, want)
	}
	if p.Status.Phase != corev1.PodRunning {
		t.Errorf("phase: got %s, want Running", p.Status.Phase)
	}
	f.waitPod(t, "during", "unschedulable", unschedulable("0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }."))

	// The Lease is no longer renewed. Watch it for ten heartbeats; one
	// renewal may have been under way when SetNodeReady returned.
	seen := map[time.Time]bool{f.renewTime(t, a): true}
	for end := time.Now().Add(10 * heartbeat); time.Now().Before(end); time.Sleep(pollEvery) {
		seen[f.renewTime(t, a)] = true
	}
	if got := len(seen) - 1; got > 1 {
		t.Errorf("lease renewals of a NotReady node in %v: got %d, want at most 1", 10*heartbeat, got)
	}
	stale := f.renewTime(t, a)

	if err := f.sim.SetNodeReady(t.Context(), a, true); err != nil {
		t.Fatalf("SetNodeReady true: %v", err)
	}
	f.waitNode(t, a, "Ready without the not-ready taint", func(n *corev1.Node) bool {
		c := nodeCondition(n, corev1.NodeReady)
		return c != nil && c.Status == corev1.ConditionTrue && !hasNotReadyTaint(n)
	})
	f.waitPod(t, "before", "Ready again", runningReady)
	p = f.waitPod(t, "during", "Running and Ready", runningReady)
	if p.Spec.NodeName != a {
		t.Errorf("nodeName: got %q, want %q", p.Spec.NodeName, a)
	}
	f.waitLeaseRenewed(t, a, stale)

	if err := f.sim.SetNodeReady(t.Context(), f.node("unknown"), false); !errors.Is(err, nodesim.ErrUnknownNode) {
		t.Errorf("SetNodeReady of an unknown node: got %v, want ErrUnknownNode", err)
	}
}

func TestDeleteNode(t *testing.T) {
	t.Parallel()
	f := start(t, nodesim.Options{Nodes: []nodesim.NodeSpec{{Name: "a"}, {Name: "b"}}})
	a := f.node("a")
	onA := func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{corev1.LabelHostname: a} }
	f.createPod(t, "on-a", onA)
	f.waitPod(t, "on-a", "Running and Ready", runningReady)

	if err := f.sim.DeleteNode(t.Context(), a); err != nil {
		t.Fatalf("DeleteNode: %v", err)
	}
	if _, err := f.cs.CoreV1().Nodes().Get(t.Context(), a, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("getting the deleted node: got %v, want NotFound", err)
	}
	if _, err := f.cs.CoordinationV1().Leases(nodesim.NodeLeaseNamespace).Get(t.Context(), a, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("getting the deleted node's lease: got %v, want NotFound", err)
	}
	f.waitPodGone(t, "on-a")
	if got, want := f.sim.Nodes(), []string{f.node("b")}; !slices.Equal(got, want) {
		t.Errorf("Nodes(): got %v, want %v", got, want)
	}
	f.createPod(t, "on-a-again", onA)
	f.waitPod(t, "on-a-again", "unschedulable", unschedulable("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."))

	if err := f.sim.DeleteNode(t.Context(), a); !errors.Is(err, nodesim.ErrUnknownNode) {
		t.Errorf("DeleteNode again: got %v, want ErrUnknownNode", err)
	}
}

func TestStop(t *testing.T) {
	t.Parallel()
	f := start(t, nodesim.Options{})
	f.createPod(t, "p", nil)
	f.waitPod(t, "p", "Running and Ready", runningReady)

	f.sim.Stop()
	select {
	case <-f.sim.Done():
	default:
		t.Fatal("Done: got open after Stop returned, want closed")
	}
	f.sim.Stop() // again: a no-op

	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"AddNode", func() error { return f.sim.AddNode(t.Context(), nodesim.NodeSpec{Name: f.node("b")}) }},
		{"SetNodeReady", func() error { return f.sim.SetNodeReady(t.Context(), f.node("a"), false) }},
		{"DeleteNode", func() error { return f.sim.DeleteNode(t.Context(), f.node("a")) }},
		{"FailPod", func() error { return f.sim.FailPod(t.Context(), f.ns, "p", "Evicted", "") }},
	} {
		if err := tc.call(); !errors.Is(err, nodesim.ErrStopped) {
			t.Errorf("%s after Stop: got %v, want ErrStopped", tc.name, err)
		}
	}
	// Stop leaves the world as it was.
	p, err := f.cs.CoreV1().Pods(f.ns).Get(t.Context(), "p", metav1.GetOptions{})
	if err != nil || !runningReady(p) {
		t.Errorf("pod after Stop: got %v (err %v), want it still Running and Ready", p, err)
	}
}

func TestStopsWhenContextEnds(t *testing.T) {
	t.Parallel()
	env := sharedEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	// A namespace of its own (it need not exist) keeps it off other tests' pods.
	sim, err := nodesim.Start(ctx, env.Config(), nodesim.Options{
		Namespace: "nodesim-ctx-ends",
		Nodes:     []nodesim.NodeSpec{{Name: "nodesim-ctx-ends-a"}},
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	cancel()
	select {
	case <-sim.Done():
	case <-time.After(waitTimeout):
		t.Fatalf("Done: still open %v after the context ended", waitTimeout)
	}
}

func TestStartRejectsBadOptions(t *testing.T) {
	t.Parallel()
	// Options are checked before any request, so no API server is needed.
	cfg := &rest.Config{Host: "https://127.0.0.1:1"}
	for _, tc := range []struct {
		name    string
		cfg     *rest.Config
		opts    nodesim.Options
		wantErr string
	}{
		{"nil config", nil, nodesim.Options{}, "cfg is nil"},
		{"node without name", cfg, nodesim.Options{Nodes: []nodesim.NodeSpec{{}}}, "Options.Nodes[0]: Name: required"},
		{"node name not a DNS subdomain", cfg, nodesim.Options{Nodes: []nodesim.NodeSpec{{Name: "Node_1"}}}, "Options.Nodes[0]: Name"},
		{"duplicate node names", cfg, nodesim.Options{Nodes: []nodesim.NodeSpec{{Name: "n"}, {Name: "n"}}}, `Options.Nodes[1].Name: duplicate "n"`},
		{"taint with unknown effect", cfg, nodesim.Options{Nodes: []nodesim.NodeSpec{{Name: "n", Taints: []corev1.Taint{{Key: "k", Effect: "Sometimes"}}}}}, "Options.Nodes[0]: Taints[0].Effect"},
		{"taint without key", cfg, nodesim.Options{Nodes: []nodesim.NodeSpec{{Name: "n", Taints: []corev1.Taint{{Effect: corev1.TaintEffectNoSchedule}}}}}, "Options.Nodes[0]: Taints[0].Key: required"},
		{"negative ReadyDelay", cfg, nodesim.Options{ReadyDelay: -time.Second}, "Options.ReadyDelay"},
		{"negative StopDelay", cfg, nodesim.Options{StopDelay: -time.Second}, "Options.StopDelay"},
		{"negative HeartbeatPeriod", cfg, nodesim.Options{HeartbeatPeriod: -time.Second}, "Options.HeartbeatPeriod"},
		{"negative Workers", cfg, nodesim.Options{Workers: -1}, "Options.Workers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			sim, err := nodesim.Start(ctx, tc.cfg, tc.opts)
			if err == nil {
				sim.Stop()
				t.Fatalf("Start: got no error, want one containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Start: got error %q, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
