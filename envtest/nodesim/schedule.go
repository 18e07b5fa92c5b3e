package nodesim

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/capstan-io/capstan/informer"
)

// resources maps resource names to quantities in milli-units, plus the
// number of pods under corev1.ResourcePods.
type resources map[corev1.ResourceName]int64

func (r resources) add(o resources) resources {
	out := maps.Clone(r)
	if out == nil {
		out = resources{}
	}
	for k, v := range o {
		out[k] += v
	}
	return out
}

func (r resources) sub(o resources) resources {
	out := maps.Clone(r)
	if out == nil {
		out = resources{}
	}
	for k, v := range o {
		out[k] -= v
		if out[k] == 0 {
			delete(out, k)
		}
	}
	return out
}

func fromList(l corev1.ResourceList) resources {
	r := resources{}
	for k, q := range l {
		if k == corev1.ResourcePods {
			r[k] = q.Value()
			continue
		}
		r[k] = q.MilliValue()
	}
	return r
}

// maxInto sets r[k] = max(r[k], o[k]) for every k.
func (r resources) maxInto(o resources) {
	for k, v := range o {
		if v > r[k] {
			r[k] = v
		}
	}
}

// podUse is what one pod takes from the node it is bound to.
type podUse struct {
	node string
	req  resources
	// assumed: the simulator chose the node and a binding is in flight or
	// not yet observed in the cache.
	assumed bool
}

// podRequests returns what pod takes from a node, counted as the
// scheduler's NodeResourcesFit does: the larger of the app containers plus
// sidecars and the largest regular init container plus sidecars, plus the
// pod overhead; pod-level requests, when set, replace the containers'. It
// includes one pod.
func podRequests(pod *corev1.Pod) resources {
	apps, sidecars, init := resources{}, resources{}, resources{}
	for _, c := range pod.Spec.Containers {
		apps = apps.add(fromList(c.Resources.Requests))
	}
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars = sidecars.add(fromList(c.Resources.Requests))
			continue
		}
		init.maxInto(fromList(c.Resources.Requests))
	}
	req := apps.add(sidecars)
	req.maxInto(init.add(sidecars))
	if pod.Spec.Resources != nil && len(pod.Spec.Resources.Requests) > 0 {
		for k, v := range fromList(pod.Spec.Resources.Requests) {
			req[k] = v
		}
	}
	req = req.add(fromList(pod.Spec.Overhead))
	delete(req, corev1.ResourcePods)
	req[corev1.ResourcePods] = 1
	return req
}

// Reasons a node does not fit, worded as kube-scheduler words them.
const (
	reasonUnschedulable = "node(s) were unschedulable"
	reasonAffinity      = "node(s) didn't match Pod's node affinity/selector"
	reasonTooManyPods   = "Too many pods"
)

// fit returns why pod does not fit node, given what the node's pods use
// already; nil if it fits. Filters run in kube-scheduler's order
// (NodeUnschedulable, TaintToleration, NodeAffinity, NodeResourcesFit),
// and the first that fails gives the reasons.
func fit(pod *corev1.Pod, req resources, node *corev1.Node, used resources) []string {
	if node.Spec.Unschedulable && !tolerated(pod.Spec.Tolerations, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}) {
		return []string{reasonUnschedulable}
	}
	for _, t := range node.Spec.Taints {
		if t.Effect == corev1.TaintEffectPreferNoSchedule {
			continue
		}
		if !tolerated(pod.Spec.Tolerations, t) {
			return []string{fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value)}
		}
	}
	if !matchesNodeSelector(pod, node) {
		return []string{reasonAffinity}
	}
	alloc := fromList(node.Status.Allocatable)
	if used[corev1.ResourcePods]+1 > alloc[corev1.ResourcePods] {
		return []string{reasonTooManyPods}
	}
	var short []string
	for _, k := range slices.Sorted(maps.Keys(req)) {
		if k == corev1.ResourcePods || req[k] == 0 {
			continue
		}
		if used[k]+req[k] > alloc[k] {
			short = append(short, "Insufficient "+string(k))
		}
	}
	return short
}

// tolerated reports whether some toleration tolerates taint, with the
// semantics of corev1.Toleration.
func tolerated(tols []corev1.Toleration, taint corev1.Taint) bool {
	for _, t := range tols {
		if t.Effect != "" && t.Effect != taint.Effect {
			continue
		}
		if t.Key != "" && t.Key != taint.Key {
			continue
		}
		switch t.Operator {
		case corev1.TolerationOpExists:
			return true
		case "", corev1.TolerationOpEqual:
			if t.Value == taint.Value {
				return true
			}
		}
	}
	return false
}

// matchesNodeSelector applies spec.nodeSelector and the required node
// affinity: every nodeSelector label must match, and so must at least one
// of the required terms (each an AND of its matchExpressions on labels and
// matchFields on metadata.name; an empty term matches nothing).
func matchesNodeSelector(pod *corev1.Pod, node *corev1.Node) bool {
	for k, v := range pod.Spec.NodeSelector {
		if got, ok := node.Labels[k]; !ok || got != v {
			return false
		}
	}
	aff := pod.Spec.Affinity
	if aff == nil || aff.NodeAffinity == nil || aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return true
	}
	for _, term := range aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		if matchesTerm(term, node) {
			return true
		}
	}
	return false
}

func matchesTerm(term corev1.NodeSelectorTerm, node *corev1.Node) bool {
	if len(term.MatchExpressions) == 0 && len(term.MatchFields) == 0 {
		return false
	}
	for _, r := range term.MatchExpressions {
		v, ok := node.Labels[r.Key]
		if !matchesRequirement(r, v, ok) {
			return false
		}
	}
	for _, r := range term.MatchFields {
		// metadata.name is the only field the API server accepts, with In
		// and NotIn.
		if r.Key != "metadata.name" || (r.Operator != corev1.NodeSelectorOpIn && r.Operator != corev1.NodeSelectorOpNotIn) {
			return false
		}
		if !matchesRequirement(r, node.Name, true) {
			return false
		}
	}
	return true
}

// matchesRequirement evaluates r against a value (present or not).
func matchesRequirement(r corev1.NodeSelectorRequirement, v string, present bool) bool {
	switch r.Operator {
	case corev1.NodeSelectorOpIn:
		return present && slices.Contains(r.Values, v)
	case corev1.NodeSelectorOpNotIn:
		return !present || !slices.Contains(r.Values, v)
	case corev1.NodeSelectorOpExists:
		return present
	case corev1.NodeSelectorOpDoesNotExist:
		return !present
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if !present || len(r.Values) != 1 {
			return false
		}
		got, err1 := strconv.ParseInt(v, 10, 64)
		want, err2 := strconv.ParseInt(r.Values[0], 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if r.Operator == corev1.NodeSelectorOpGt {
			return got > want
		}
		return got < want
	}
	return false
}

// score rates placing req on a node (lower is better): the fractions of
// allocatable cpu, memory and pods in use afterwards, summed, so pods
// spread to the least allocated node, as kube-scheduler's default
// LeastAllocated strategy does.
func score(req resources, node *corev1.Node, used resources) float64 {
	alloc := fromList(node.Status.Allocatable)
	var s float64
	for _, k := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourcePods} {
		if alloc[k] > 0 {
			s += float64(used[k]+req[k]) / float64(alloc[k])
		}
	}
	return s
}

// candidate is a node offered to the scheduler.
type candidate struct {
	node *corev1.Node
	used resources
}

// choose picks the best fitting node among nodes (in order; ties go to the
// first), or returns the reasons none fits in kube-scheduler's message
// format.
func choose(pod *corev1.Pod, req resources, nodes []candidate) (*corev1.Node, string) {
	var best *corev1.Node
	bestScore := 0.0
	counts := map[string]int{}
	for _, c := range nodes {
		if reasons := fit(pod, req, c.node, c.used); len(reasons) > 0 {
			for _, r := range reasons {
				counts[r]++
			}
			continue
		}
		if sc := score(req, c.node, c.used); best == nil || sc < bestScore {
			best, bestScore = c.node, sc
		}
	}
	if best != nil {
		return best, ""
	}
	if len(nodes) == 0 {
		return nil, "no nodes available to schedule pods"
	}
	parts := make([]string, 0, len(counts))
	for r, n := range counts {
		parts = append(parts, fmt.Sprintf("%d %s", n, r))
	}
	slices.Sort(parts)
	return nil, fmt.Sprintf("0/%d nodes are available: %s.", len(nodes), strings.Join(parts, ", "))
}

// schedule binds an unbound pod to the best fitting simulated node, or
// records it as unschedulable in a PodScheduled=False condition.
func (s *Simulator) schedule(ctx context.Context, key string, pod *corev1.Pod) error {
	if pod.DeletionTimestamp != nil || pod.Spec.SchedulerName != s.opts.SchedulerName ||
		len(pod.Spec.SchedulingGates) > 0 || isTerminal(pod) {
		return nil
	}
	req := podRequests(pod)
	s.mu.Lock()
	if u, ok := s.uses[key]; ok && u.assumed {
		// Bound already; the cache has not caught up.
		s.mu.Unlock()
		return nil
	}
	names := slices.Sorted(maps.Keys(s.sim))
	cands := make([]candidate, 0, len(names))
	for _, n := range names {
		if node, ok := s.nodes.Lister().Get("", n); ok {
			cands = append(cands, candidate{node: node, used: s.usage[n]})
		}
	}
	node, why := choose(pod, req, cands)
	if node == nil {
		s.unschedulable[key] = struct{}{}
		s.mu.Unlock()
		return s.markUnschedulable(ctx, pod, why)
	}
	delete(s.unschedulable, key)
	s.setUseLocked(key, podUse{node: node.Name, req: req, assumed: true}, true)
	s.mu.Unlock()

	err := s.client.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node.Name},
	}, metav1.CreateOptions{})
	if err == nil {
		s.log.V(1).Info("Bound pod", "namespace", pod.Namespace, "name", pod.Name, "node", node.Name)
		return nil
	}
	s.mu.Lock()
	if u, ok := s.uses[key]; ok && u.assumed {
		s.setUseLocked(key, podUse{}, false)
	}
	s.mu.Unlock()
	if apierrors.IsNotFound(err) {
		return nil
	}
	// Conflicts (bound by someone else, being deleted, or recreated with a
	// new UID) are settled by the next event for the pod.
	return fmt.Errorf("binding pod %s to node %s: %w", key, node.Name, err)
}

// markUnschedulable sets PodScheduled=False (reason Unschedulable) with
// why, as kube-scheduler does, unless the pod says so already.
func (s *Simulator) markUnschedulable(ctx context.Context, pod *corev1.Pod, why string) error {
	if c := findCondition(pod.Status.Conditions, corev1.PodScheduled); c != nil &&
		c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable && c.Message == why {
		return nil
	}
	p := pod.DeepCopy()
	setCondition(&p.Status.Conditions, corev1.PodCondition{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
		Reason: corev1.PodReasonUnschedulable, Message: why,
	}, s.now())
	_, err := s.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("marking pod %s unschedulable: %w", informer.KeyOf(pod), err)
	}
	s.log.V(1).Info("Pod is unschedulable", "namespace", pod.Namespace, "name", pod.Name, "reason", why)
	return nil
}
