package nodesim

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
)

// podState is the kubelet's memory of one pod. Only the worker holding the
// pod's key reads or writes it (the map holding it is guarded by
// Simulator.mu).
type podState struct {
	uid  types.UID
	node string
	ip   string
	// seen: the kubelet accepted the pod (its status.startTime).
	seen time.Time
	// started: the containers (re)started running; zero before they first
	// run and during a crash-loop back-off.
	started time.Time
	// restarts, last and backoffUntil track restarts after exits.
	restarts     int32
	last         *corev1.ContainerStateTerminated
	backoffUntil time.Time
	// exit: the containers terminated for good; the pod is terminal.
	exit *corev1.ContainerStateTerminated
	// terminating: the kubelet saw the deletionTimestamp; deleteSent: it
	// sent the final delete.
	terminating time.Time
	deleteSent  bool
	// writtenRV is the resourceVersion of the kubelet's last status write;
	// an older cached pod is ignored until the write shows up.
	writtenRV     string
	badAnnotation bool
}

// nodeView is what the kubelet needs from its node, copied under the lock.
type nodeView struct {
	ready  bool
	hostIP string
}

// runPod plays the kubelet of the pod's node.
func (s *Simulator) runPod(ctx context.Context, key string, pod *corev1.Pod) (time.Duration, error) {
	s.mu.Lock()
	n := s.sim[pod.Spec.NodeName]
	if n == nil {
		s.mu.Unlock()
		return 0, nil
	}
	st := s.kubelet[key]
	if st != nil && st.uid != pod.UID {
		s.forgetPodLocked(key)
		st = nil
	}
	if st == nil {
		st = &podState{uid: pod.UID, node: n.name}
		s.kubelet[key] = st
		s.adoptLocked(key, pod, st, n)
	}
	nv := nodeView{ready: n.ready, hostIP: n.hostIP}
	s.mu.Unlock()

	if st.writtenRV != "" {
		if c, err := resourceversion.CompareResourceVersion(pod.ResourceVersion, st.writtenRV); err == nil && c < 0 {
			return 0, nil // the cache has not seen our last write yet
		}
	}
	now := s.now()
	switch {
	case !nv.ready:
		return 0, s.markNotReady(ctx, pod, st, now)
	case pod.DeletionTimestamp != nil:
		return s.terminate(ctx, key, pod, st, nv, now)
	case isTerminal(pod):
		return 0, nil
	}

	var wait time.Duration
	if st.seen.IsZero() {
		st.seen = now
	}
	if st.exit == nil && st.started.IsZero() && st.backoffUntil.IsZero() {
		due := st.seen.Add(s.opts.ReadyDelay)
		if now.Before(due) {
			// Accepted, containers being created: Pending with a start
			// time and host IP, as the kubelet reports it.
			return due.Sub(now), s.writeStatus(ctx, pod, st, nv, now, "", "")
		}
		if err := s.allocateIP(key, st); err != nil {
			return 0, err
		}
		st.started = now
	}
	if !st.backoffUntil.IsZero() {
		if now.Before(st.backoffUntil) {
			wait = st.backoffUntil.Sub(now)
		} else {
			st.backoffUntil = time.Time{}
			st.started = now
		}
	}
	if !st.started.IsZero() && st.exit == nil {
		if after, code, ok := s.exitSpec(pod, st); ok {
			due := st.started.Add(after)
			if now.Before(due) {
				wait = due.Sub(now)
			} else {
				wait = s.exitContainers(pod, st, code, due)
				if wait > 0 {
					// Back-off deadlines are relative to the exit, which
					// may be in the past if the sync ran late.
					wait = max(st.backoffUntil.Sub(now), 0) + time.Nanosecond
				}
			}
		}
	}
	return wait, s.writeStatus(ctx, pod, st, nv, now, "", "")
}

// exitContainers applies an exit at time at: a restart per the pod's
// restartPolicy (returning the back-off) or a terminal exit (returning 0).
func (s *Simulator) exitContainers(pod *corev1.Pod, st *podState, code int32, at time.Time) time.Duration {
	term := &corev1.ContainerStateTerminated{
		ExitCode: code, Reason: exitReason(code),
		StartedAt: metaTime(st.started), FinishedAt: metaTime(at),
	}
	restart := false
	switch pod.Spec.RestartPolicy {
	case corev1.RestartPolicyAlways, "":
		restart = true
	case corev1.RestartPolicyOnFailure:
		restart = code != 0
	}
	if !restart {
		st.exit = term
		return 0
	}
	st.restarts++
	st.last = term
	st.started = time.Time{}
	backoff := s.opts.RestartBackoff
	for i := int32(1); i < st.restarts && backoff < s.opts.MaxRestartBackoff; i++ {
		backoff *= 2
	}
	backoff = min(backoff, s.opts.MaxRestartBackoff)
	st.backoffUntil = at.Add(backoff)
	return backoff
}

func exitReason(code int32) string {
	if code == 0 {
		return "Completed"
	}
	return "Error"
}

// exitSpec reads the exit annotations; ok is false when the pod has none
// (or bad ones, which are logged once and ignored).
func (s *Simulator) exitSpec(pod *corev1.Pod, st *podState) (after time.Duration, code int32, ok bool) {
	a, has := pod.Annotations[AnnotationExitAfter]
	if !has {
		return 0, 0, false
	}
	after, err := time.ParseDuration(a)
	if err == nil && after < 0 {
		err = fmt.Errorf("must not be negative")
	}
	if err == nil {
		if c, has := pod.Annotations[AnnotationExitCode]; has {
			var n int64
			n, err = strconv.ParseInt(c, 10, 32)
			code = int32(n)
			if err == nil && (n < 0 || n > 255) {
				err = fmt.Errorf("%s: must be in [0, 255], got %d", AnnotationExitCode, n)
			}
		}
	} else {
		err = fmt.Errorf("%s: %w", AnnotationExitAfter, err)
	}
	if err != nil {
		if !st.badAnnotation {
			st.badAnnotation = true
			s.log.Error(err, "Ignoring bad exit annotation", "namespace", pod.Namespace, "name", pod.Name)
		}
		return 0, 0, false
	}
	return after, code, true
}

// markNotReady does what the node lifecycle controller does to the pods of
// a node that stopped being Ready: their Ready condition turns False.
// Nothing else happens to them while the node's kubelet is down.
func (s *Simulator) markNotReady(ctx context.Context, pod *corev1.Pod, st *podState, now time.Time) error {
	c := findCondition(pod.Status.Conditions, corev1.PodReady)
	if isTerminal(pod) || c == nil || c.Status != corev1.ConditionTrue {
		return nil
	}
	p := pod.DeepCopy()
	setCondition(&p.Status.Conditions, corev1.PodCondition{
		Type: corev1.PodReady, Status: corev1.ConditionFalse,
		Reason: "NodeNotReady", Message: "node " + pod.Spec.NodeName + " is not ready",
	}, now)
	return s.updateStatus(ctx, p, st)
}

// terminate completes the deletion of a pod with a deletionTimestamp, as
// the kubelet does: once its containers have stopped (StopDelay, capped by
// the grace period) it writes a terminal status and deletes the pod with
// grace period 0 and a UID precondition.
func (s *Simulator) terminate(ctx context.Context, key string, pod *corev1.Pod, st *podState, nv nodeView, now time.Time) (time.Duration, error) {
	if st.deleteSent {
		return 0, nil // finalizers hold it; nothing left for a kubelet
	}
	if st.terminating.IsZero() {
		st.terminating = now
	}
	delay := s.opts.StopDelay
	if g := pod.DeletionGracePeriodSeconds; g != nil && time.Duration(*g)*time.Second < delay {
		delay = time.Duration(*g) * time.Second
	}
	if due := st.terminating.Add(delay); now.Before(due) {
		return due.Sub(now), nil
	}
	if !isTerminal(pod) {
		if st.exit == nil {
			// Killed: exit code 137 as after SIGKILL; upstream marks such
			// pods Failed before deleting them.
			st.exit = &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "Error", StartedAt: metaTime(st.started), FinishedAt: metaTime(now)}
		}
		if err := s.writeStatus(ctx, pod, st, nv, now, "", ""); err != nil {
			return 0, err
		}
	}
	err := s.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return 0, fmt.Errorf("deleting pod %s: %w", key, err)
	}
	st.deleteSent = true
	s.log.V(1).Info("Deleted pod", "namespace", pod.Namespace, "name", pod.Name)
	return 0, nil
}

// writeStatus writes the status st implies, if the pod's differs.
func (s *Simulator) writeStatus(ctx context.Context, pod *corev1.Pod, st *podState, nv nodeView, now time.Time, reason, message string) error {
	want := desiredStatus(pod, st, nv, now)
	if reason != "" {
		want.Reason, want.Message = reason, message
	}
	if equality.Semantic.DeepEqual(&pod.Status, want) {
		return nil
	}
	p := pod.DeepCopy()
	p.Status = *want
	return s.updateStatus(ctx, p, st)
}

func (s *Simulator) updateStatus(ctx context.Context, p *corev1.Pod, st *podState) error {
	out, err := s.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("updating status of pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	st.writtenRV = out.ResourceVersion
	return nil
}

// desiredStatus returns the pod's status as the kubelet reports it, given
// its memory st: Running (containers running and Ready, or waiting in a
// crash-loop back-off) or terminal (containers terminated). Fields it does
// not own (qosClass, other conditions) are kept.
func desiredStatus(pod *corev1.Pod, st *podState, nv nodeView, now time.Time) *corev1.PodStatus {
	out := pod.Status.DeepCopy()
	running := st.exit == nil && !st.started.IsZero()
	// creating: accepted, containers not started yet (ReadyDelay).
	creating := st.exit == nil && st.started.IsZero() && st.backoffUntil.IsZero() && st.restarts == 0
	out.Phase = corev1.PodRunning
	if creating {
		out.Phase = corev1.PodPending
	}
	if st.exit != nil {
		out.Phase = corev1.PodFailed
		if st.exit.ExitCode == 0 {
			out.Phase = corev1.PodSucceeded
		}
	}
	out.ObservedGeneration = pod.Generation
	out.HostIP = nv.hostIP
	out.HostIPs = []corev1.HostIP{{IP: nv.hostIP}}
	ip := st.ip
	if pod.Spec.HostNetwork {
		ip = nv.hostIP
	}
	if ip != "" {
		out.PodIP = ip
		out.PodIPs = []corev1.PodIP{{IP: ip}}
	}
	if !st.seen.IsZero() && out.StartTime == nil {
		t := metaTime(st.seen)
		out.StartTime = &t
	}

	var notReady []string
	out.ContainerStatuses = make([]corev1.ContainerStatus, 0, len(pod.Spec.Containers))
	for _, c := range pod.Spec.Containers {
		cs := containerStatus(pod, c, st)
		switch {
		case st.exit != nil:
			term := *st.exit
			term.ContainerID = cs.ContainerID
			cs.State = corev1.ContainerState{Terminated: &term}
		case running:
			cs.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metaTime(st.started)}}
			cs.Ready, cs.Started = true, new(true)
		case creating:
			cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
			cs.Started = new(false)
		default:
			cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
				Reason:  "CrashLoopBackOff",
				Message: fmt.Sprintf("back-off restarting failed container=%s pod=%s_%s(%s)", c.Name, pod.Name, pod.Namespace, pod.UID),
			}}
		}
		if !cs.Ready {
			notReady = append(notReady, c.Name)
		}
		out.ContainerStatuses = append(out.ContainerStatuses, cs)
	}
	out.InitContainerStatuses = nil
	for _, c := range pod.Spec.InitContainers {
		cs := containerStatus(pod, c, st)
		cs.RestartCount, cs.LastTerminationState = 0, corev1.ContainerState{}
		sidecar := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		if creating {
			cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}
			cs.Started = new(false)
		} else if sidecar && st.exit == nil {
			cs.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metaTime(st.seen)}}
			cs.Ready, cs.Started = true, new(true)
		} else {
			cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 0, Reason: "Completed", StartedAt: metaTime(st.seen), FinishedAt: metaTime(st.seen), ContainerID: cs.ContainerID,
			}}
			cs.Ready, cs.Started = !sidecar, new(false)
		}
		out.InitContainerStatuses = append(out.InitContainerStatuses, cs)
	}
	if len(out.InitContainerStatuses) == 0 {
		out.InitContainerStatuses = nil
	}

	gen := pod.Generation
	set := func(t corev1.PodConditionType, ok bool, reason, msg string) {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, ObservedGeneration: gen}
		if !ok {
			c.Status, c.Reason, c.Message = corev1.ConditionFalse, reason, msg
		}
		setCondition(&out.Conditions, c, now)
	}
	set(corev1.PodScheduled, true, "", "")
	set(corev1.PodReadyToStartContainers, st.exit == nil, "", "")
	var uninit []string
	if creating {
		for _, c := range pod.Spec.InitContainers {
			uninit = append(uninit, c.Name)
		}
	}
	set(corev1.PodInitialized, len(uninit) == 0, "ContainersNotInitialized", fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(uninit, " ")))
	reason, msg := "ContainersNotReady", fmt.Sprintf("containers with unready status: [%s]", strings.Join(notReady, " "))
	if out.Phase == corev1.PodSucceeded {
		reason = "PodCompleted"
	}
	set(corev1.ContainersReady, len(notReady) == 0, reason, msg)
	ready := len(notReady) == 0
	if ready {
		for _, g := range pod.Spec.ReadinessGates {
			if c := findCondition(pod.Status.Conditions, g.ConditionType); c == nil || c.Status != corev1.ConditionTrue {
				ready = false
				reason, msg = "ReadinessGatesNotReady", fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist or is not True", g.ConditionType)
				break
			}
		}
	}
	set(corev1.PodReady, ready, reason, msg)
	return out
}

// containerStatus returns the parts of c's status that do not depend on
// its state.
func containerStatus(pod *corev1.Pod, c corev1.Container, st *podState) corev1.ContainerStatus {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%s/%d", pod.UID, c.Name, st.restarts)
	cs := corev1.ContainerStatus{
		Name:         c.Name,
		Image:        c.Image,
		ImageID:      "nodesim://" + c.Image,
		ContainerID:  fmt.Sprintf("nodesim://%016x", h.Sum64()),
		RestartCount: st.restarts,
	}
	if st.last != nil {
		cs.LastTerminationState = corev1.ContainerState{Terminated: st.last.DeepCopy()}
	}
	return cs
}

// adoptLocked takes over a pod that was running before the simulator
// (re)started: its IP, start time and restarts are read from its status.
func (s *Simulator) adoptLocked(key string, pod *corev1.Pod, st *podState, n *simNode) {
	if pod.Status.Phase != corev1.PodRunning {
		return
	}
	if pod.Status.StartTime != nil {
		st.seen = pod.Status.StartTime.Time
	}
	st.started = s.now()
	for _, cs := range pod.Status.ContainerStatuses {
		st.restarts = max(st.restarts, cs.RestartCount)
		if r := cs.State.Running; r != nil && r.StartedAt.Before(&metav1.Time{Time: st.started}) {
			st.started = r.StartedAt.Time
		}
	}
	if st.seen.IsZero() {
		st.seen = st.started
	}
	if ip := pod.Status.PodIP; ip != "" && !pod.Spec.HostNetwork {
		if _, used := n.ips[ip]; !used {
			n.ips[ip] = key
			st.ip = ip
		}
	}
}

// allocateIP gives the pod a free IP of its node's pod range.
func (s *Simulator) allocateIP(key string, st *podState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.ip != "" {
		return nil
	}
	n := s.sim[st.node]
	if n == nil {
		return fmt.Errorf("%w: %s", ErrUnknownNode, st.node)
	}
	for range podIPsPerNode {
		off := n.nextIP
		n.nextIP = n.nextIP%podIPsPerNode + 1
		ip := podIP(n.index, off)
		if _, used := n.ips[ip]; !used {
			n.ips[ip] = key
			st.ip = ip
			return nil
		}
	}
	return fmt.Errorf("node %s: no pod IP left in %s", n.name, podCIDR(n.index))
}

// forgetPod drops the kubelet's memory of a pod that is gone.
func (s *Simulator) forgetPod(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgetPodLocked(key)
	delete(s.unschedulable, key)
}

func (s *Simulator) forgetPodLocked(key string) {
	st := s.kubelet[key]
	if st == nil {
		return
	}
	if n := s.sim[st.node]; n != nil && st.ip != "" && n.ips[st.ip] == key {
		delete(n.ips, st.ip)
	}
	delete(s.kubelet, key)
}

func (s *Simulator) now() time.Time { return s.clock.Now() }

// metaTime truncates to seconds, the precision the API keeps, so statuses
// compare equal after a round trip.
func metaTime(t time.Time) metav1.Time {
	if t.IsZero() {
		return metav1.Time{}
	}
	return metav1.NewTime(t.Truncate(time.Second))
}

func findCondition(conds []corev1.PodCondition, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// setCondition sets c in conds, keeping the last transition time when the
// status does not change.
func setCondition(conds *[]corev1.PodCondition, c corev1.PodCondition, now time.Time) {
	if old := findCondition(*conds, c.Type); old != nil {
		c.LastProbeTime = old.LastProbeTime
		c.LastTransitionTime = old.LastTransitionTime
		if old.Status != c.Status {
			c.LastTransitionTime = metaTime(now)
		}
		*old = c
		return
	}
	c.LastTransitionTime = metaTime(now)
	*conds = append(*conds, c)
}
