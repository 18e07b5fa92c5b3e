package nodesim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Each node gets a /20 of pod IPs (10.128.0.0/20 for the first, then
// 10.128.16.0/20, ...) and a host IP in 172.18.0.0/16; 2048 nodes fit.
const (
	podIPsPerNode = 4094
	maxNodes      = 2048
	// nodeLeaseSeconds is the kubelet's default lease duration.
	nodeLeaseSeconds = 40
	// conflictRetries bounds read-modify-write loops on Nodes and Leases.
	conflictRetries = 10
)

func podCIDR(i int) string { return fmt.Sprintf("10.%d.%d.0/20", 128+i/16, (i%16)*16) }

func podIP(i, off int) string {
	return fmt.Sprintf("10.%d.%d.%d", 128+i/16, (i%16)*16+off/256, off%256)
}

func hostIP(i int) string { return fmt.Sprintf("172.18.%d.%d", i/250, i%250+2) }

// AddNode registers one more node, Ready, and returns once the simulator's
// cache shows it (so the next scheduling decision may use it).
func (s *Simulator) AddNode(ctx context.Context, spec NodeSpec) error {
	if err := spec.validate(); err != nil {
		return fmt.Errorf("nodesim: AddNode: %w", err)
	}
	if err := s.checkRunning(); err != nil {
		return err
	}
	rv, err := s.registerNode(ctx, spec)
	if err != nil {
		return err
	}
	return s.nodes.WaitForResourceVersion(ctx, rv)
}

// registerNode creates (or takes over) the Node and its Lease and returns
// the Node's resourceVersion.
func (s *Simulator) registerNode(ctx context.Context, spec NodeSpec) (string, error) {
	s.mu.Lock()
	if _, ok := s.sim[spec.Name]; ok {
		s.mu.Unlock()
		return "", fmt.Errorf("nodesim: node %q is already simulated", spec.Name)
	}
	if s.nextIndex >= maxNodes {
		s.mu.Unlock()
		return "", fmt.Errorf("nodesim: node %q: at most %d nodes can be simulated", spec.Name, maxNodes)
	}
	n := &simNode{name: spec.Name, index: s.nextIndex, ready: true, ips: map[string]string{}, nextIP: 2}
	n.hostIP = hostIP(n.index)
	s.nextIndex++
	// Registered first, so the Node's add event retries unschedulable pods.
	s.sim[spec.Name] = n
	s.mu.Unlock()

	node, err := s.ensureNode(ctx, spec, n)
	if err == nil {
		err = s.ensureLease(ctx, node)
	}
	if err != nil {
		s.mu.Lock()
		delete(s.sim, spec.Name)
		s.mu.Unlock()
		return "", fmt.Errorf("nodesim: registering node %q: %w", spec.Name, err)
	}
	s.log.V(1).Info("Registered node", "node", spec.Name)
	return node.ResourceVersion, nil
}

func (s *Simulator) buildNode(spec NodeSpec, n *simNode) *corev1.Node {
	labels := map[string]string{
		corev1.LabelHostname:   spec.Name,
		corev1.LabelOSStable:   "linux",
		corev1.LabelArchStable: runtime.GOARCH,
		LabelSimulated:         "true",
	}
	maps.Copy(labels, spec.Labels)
	capacity := DefaultCapacity()
	maps.Copy(capacity, spec.Capacity)
	now := metav1.NewTime(s.now())
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: spec.Name, Labels: labels},
		Spec: corev1.NodeSpec{
			PodCIDR:    podCIDR(n.index),
			PodCIDRs:   []string{podCIDR(n.index)},
			ProviderID: "nodesim://" + spec.Name,
			Taints:     slices.Clone(spec.Taints),
		},
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity.DeepCopy(),
			Phase:       corev1.NodeRunning,
			Conditions:  nodeConditions(nil, true, now),
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: n.hostIP},
				{Type: corev1.NodeHostName, Address: spec.Name},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
			NodeInfo: corev1.NodeSystemInfo{
				MachineID:               fmt.Sprintf("nodesim-%d", n.index),
				SystemUUID:              fmt.Sprintf("nodesim-%d", n.index),
				BootID:                  fmt.Sprintf("nodesim-%d", n.index),
				KernelVersion:           "nodesim",
				OSImage:                 "capstan nodesim",
				ContainerRuntimeVersion: "nodesim://1.0.0",
				KubeletVersion:          "v0.0.0-nodesim",
				OperatingSystem:         "linux",
				Architecture:            runtime.GOARCH,
			},
		},
	}
}

// ensureNode creates the Node, or makes an existing one match spec.
func (s *Simulator) ensureNode(ctx context.Context, spec NodeSpec, n *simNode) (*corev1.Node, error) {
	want := s.buildNode(spec, n)
	nodes := s.client.CoreV1().Nodes()
	created, err := nodes.Create(ctx, want, metav1.CreateOptions{})
	if err == nil {
		// The TaintNodesByCondition admission plugin (on by default) taints
		// every new Node not-ready:NoSchedule, and the node lifecycle
		// controller removes the taint once the Node is Ready. Without it,
		// no Pod without a toleration would ever be scheduled here.
		if slices.ContainsFunc(created.Spec.Taints, isNotReadyTaint) && !slices.ContainsFunc(want.Spec.Taints, isNotReadyTaint) {
			return s.dropNotReadyTaint(ctx, created)
		}
		return created, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	for range conflictRetries {
		cur, err := nodes.Get(ctx, spec.Name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		cur.Labels = want.Labels
		cur.Spec.Taints = want.Spec.Taints
		cur.Spec.Unschedulable = false
		if cur.Spec.PodCIDR == "" {
			cur.Spec.PodCIDR, cur.Spec.PodCIDRs = want.Spec.PodCIDR, want.Spec.PodCIDRs
		}
		cur, err = nodes.Update(ctx, cur, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		st := want.Status
		st.Conditions = nodeConditions(cur.Status.Conditions, true, metav1.NewTime(s.now()))
		cur.Status = st
		cur, err = nodes.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		return cur, err
	}
	return nil, fmt.Errorf("node %q kept changing", spec.Name)
}

// dropNotReadyTaint removes the not-ready taint from node.
func (s *Simulator) dropNotReadyTaint(ctx context.Context, node *corev1.Node) (*corev1.Node, error) {
	nodes := s.client.CoreV1().Nodes()
	cur := node.DeepCopy()
	for range conflictRetries {
		cur.Spec.Taints = slices.DeleteFunc(cur.Spec.Taints, isNotReadyTaint)
		out, err := nodes.Update(ctx, cur, metav1.UpdateOptions{})
		if !apierrors.IsConflict(err) {
			return out, err
		}
		if cur, err = nodes.Get(ctx, node.Name, metav1.GetOptions{}); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("node %q kept changing", node.Name)
}

// nodeConditions returns the kubelet's node conditions, keeping the
// transition times of old where the status is unchanged.
func nodeConditions(old []corev1.NodeCondition, ready bool, now metav1.Time) []corev1.NodeCondition {
	readyStatus, reason, msg := corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"
	if !ready {
		readyStatus, reason, msg = corev1.ConditionFalse, "KubeletNotReady", "nodesim: node set not ready"
	}
	conds := []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"},
		{Type: corev1.NodeReady, Status: readyStatus, Reason: reason, Message: msg},
	}
	for i := range conds {
		conds[i].LastHeartbeatTime = now
		conds[i].LastTransitionTime = now
		for _, o := range old {
			if o.Type == conds[i].Type && o.Status == conds[i].Status && !o.LastTransitionTime.IsZero() {
				conds[i].LastTransitionTime = o.LastTransitionTime
			}
		}
	}
	return conds
}

// SetNodeReady makes a node Ready or not Ready. Not Ready plays a kubelet
// that stopped: the Node's Ready condition turns False and it gets the
// node.kubernetes.io/not-ready:NoSchedule taint (as the node lifecycle
// controller would add), its Pods' Ready conditions turn False, and on it
// no Pod starts, exits or finishes terminating, and its Lease is not
// renewed, until it is Ready again. It returns once the simulator's cache
// shows the change, so the next scheduling decision sees it (a Pod created
// after SetNodeReady(ctx, name, false) returns is not bound to the node).
func (s *Simulator) SetNodeReady(ctx context.Context, name string, ready bool) error {
	if err := s.checkRunning(); err != nil {
		return err
	}
	s.mu.Lock()
	n := s.sim[name]
	if n != nil {
		n.ready = ready
	}
	s.mu.Unlock()
	if n == nil {
		return fmt.Errorf("%w: %q", ErrUnknownNode, name)
	}
	rv, err := s.writeNodeReady(ctx, name, ready)
	if err != nil {
		return fmt.Errorf("nodesim: SetNodeReady %q: %w", name, err)
	}
	for _, k := range s.podsOn(name) {
		s.queue.Add(k)
	}
	// Scheduling reads the taint from the cache: until it is there, a new
	// Pod could still be bound to a node that is no longer Ready.
	if err := s.nodes.WaitForResourceVersion(ctx, rv); err != nil {
		return fmt.Errorf("nodesim: SetNodeReady %q: %w", name, err)
	}
	return nil
}

var notReadyTaint = corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}

func isNotReadyTaint(t corev1.Taint) bool { return t.MatchTaint(&notReadyTaint) }

// writeNodeReady writes the node's taint and Ready condition and returns
// the resourceVersion of the last write.
func (s *Simulator) writeNodeReady(ctx context.Context, name string, ready bool) (string, error) {
	nodes := s.client.CoreV1().Nodes()
	for range conflictRetries {
		cur, err := nodes.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		has := slices.ContainsFunc(cur.Spec.Taints, isNotReadyTaint)
		if has == ready {
			if ready {
				cur.Spec.Taints = slices.DeleteFunc(cur.Spec.Taints, isNotReadyTaint)
			} else {
				cur.Spec.Taints = append(cur.Spec.Taints, notReadyTaint)
			}
			if cur, err = nodes.Update(ctx, cur, metav1.UpdateOptions{}); apierrors.IsConflict(err) {
				continue
			} else if err != nil {
				return "", err
			}
		}
		cur.Status.Conditions = nodeConditions(cur.Status.Conditions, ready, metav1.NewTime(s.now()))
		out, err := nodes.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return "", err
		}
		return out.ResourceVersion, nil
	}
	return "", fmt.Errorf("node %q kept changing", name)
}

// DeleteNode stops simulating a node and deletes its Node and Lease. Its
// Pods are deleted at once (grace period 0), as the pod garbage collector
// does for Pods bound to a Node that no longer exists.
func (s *Simulator) DeleteNode(ctx context.Context, name string) error {
	if err := s.checkRunning(); err != nil {
		return err
	}
	s.mu.Lock()
	n := s.sim[name]
	delete(s.sim, name)
	s.mu.Unlock()
	if n == nil {
		return fmt.Errorf("%w: %q", ErrUnknownNode, name)
	}
	var errs []error
	if err := s.client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, err)
	}
	if err := s.client.CoordinationV1().Leases(NodeLeaseNamespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, err)
	}
	for _, p := range s.pods.Lister().List(nil) {
		if p.Spec.NodeName != name {
			continue
		}
		err := s.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
			GracePeriodSeconds: new(int64),
			Preconditions:      &metav1.Preconditions{UID: &p.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("nodesim: DeleteNode %q: %w", name, err)
	}
	return nil
}

// FailPod makes a Pod running on a simulated node fail now, as an eviction
// or a node shutdown does: phase Failed with the given reason and message,
// containers terminated with exit code 137.
func (s *Simulator) FailPod(ctx context.Context, namespace, name, reason, message string) error {
	if err := s.checkRunning(); err != nil {
		return err
	}
	key := namespace + "/" + name
	for range conflictRetries {
		pod, err := s.client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("nodesim: FailPod %s: %w", key, err)
		}
		if isTerminal(pod) {
			return fmt.Errorf("nodesim: FailPod %s: pod is already %s", key, pod.Status.Phase)
		}
		s.mu.Lock()
		n := s.sim[pod.Spec.NodeName]
		var st podState
		if cur := s.kubelet[key]; cur != nil && cur.uid == pod.UID {
			st = *cur
		}
		var nv nodeView
		if n != nil {
			nv = nodeView{ready: n.ready, hostIP: n.hostIP}
		}
		s.mu.Unlock()
		if n == nil {
			return fmt.Errorf("nodesim: FailPod %s: %w: %q", key, ErrUnknownNode, pod.Spec.NodeName)
		}
		now := s.now()
		st.exit = &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "Error", StartedAt: metaTime(st.started), FinishedAt: metaTime(now)}
		want := desiredStatus(pod, &st, nv, now)
		want.Reason, want.Message = reason, message
		p := pod.DeepCopy()
		p.Status = *want
		_, err = s.client.CoreV1().Pods(namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("nodesim: FailPod %s: %w", key, err)
		}
		return nil
	}
	return fmt.Errorf("nodesim: FailPod %s: pod kept changing", key)
}

// ensureLease creates or renews the node's Lease in kube-node-lease.
func (s *Simulator) ensureLease(ctx context.Context, node *corev1.Node) error {
	leases := s.client.CoordinationV1().Leases(NodeLeaseNamespace)
	now := metav1.NewMicroTime(s.now())
	for range conflictRetries {
		cur, err := leases.Get(ctx, node.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = leases.Create(ctx, &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{
					Name: node.Name, Namespace: NodeLeaseNamespace,
					OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}},
				},
				Spec: coordinationv1.LeaseSpec{
					HolderIdentity:       new(node.Name),
					LeaseDurationSeconds: new(int32(nodeLeaseSeconds)),
					RenewTime:            &now,
				},
			}, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				continue
			}
			return err
		}
		if err != nil {
			return err
		}
		cur.Spec.HolderIdentity = new(node.Name)
		cur.Spec.LeaseDurationSeconds = new(int32(nodeLeaseSeconds))
		cur.Spec.RenewTime = &now
		if _, err = leases.Update(ctx, cur, metav1.UpdateOptions{}); apierrors.IsConflict(err) {
			continue
		}
		return err
	}
	return fmt.Errorf("lease %q kept changing", node.Name)
}

// heartbeat renews the Leases of the Ready nodes every HeartbeatPeriod.
func (s *Simulator) heartbeat(ctx context.Context) {
	t := s.clock.NewTicker(s.opts.HeartbeatPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		for _, name := range s.Nodes() {
			s.mu.Lock()
			n := s.sim[name]
			ready := n != nil && n.ready
			s.mu.Unlock()
			node, ok := s.nodes.Lister().Get("", name)
			if !ready || !ok {
				continue
			}
			if err := s.ensureLease(ctx, node); err != nil && ctx.Err() == nil {
				s.log.Error(err, "Renewing node lease failed", "node", name)
			}
		}
	}
}
