package replicaset

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/capstan-io/capstan/examples/internal/controllerref"
	"github.com/capstan-io/capstan/examples/internal/podutil"
	"github.com/capstan-io/capstan/informer"
	"github.com/capstan-io/capstan/reconcile"
)

// Defaults of Options, kube-controller-manager's.
const (
	// DefaultWorkers is kube-controller-manager's
	// --concurrent-replicaset-syncs.
	DefaultWorkers = 5
	// DefaultBurstReplicas bounds the creates or deletes of one sync, so
	// that a ReplicaSet scaled by thousands progresses in observed steps.
	DefaultBurstReplicas = 500
)

// ControllerName names the controller in logs and metrics, and its
// expectations' metrics.
const ControllerName = "replicaset"

// EventSource is the component its Events are attributed to, as upstream.
const EventSource = "replicaset-controller"

// Event reasons, as upstream.
const (
	EventSuccessfulCreate = "SuccessfulCreate"
	EventFailedCreate     = "FailedCreate"
	EventSuccessfulDelete = "SuccessfulDelete"
	EventFailedDelete     = "FailedDelete"
)

// Options configures the controller; zero value valid.
type Options struct {
	// Workers is the number of ReplicaSets synced at once. Default
	// DefaultWorkers (kcm --concurrent-replicaset-syncs).
	Workers int
	// BurstReplicas bounds the pods one sync creates or deletes. Default
	// DefaultBurstReplicas.
	BurstReplicas int
	// Logger receives the controller's logs. Default:
	// mgr.Logger().WithName("replicaset").
	Logger logr.Logger
	// QPS and Burst give the controller's API writes a client-side rate
	// limit of their own (one token bucket for all its clients, as
	// kube-controller-manager gives each controller one clientset). Zero:
	// the Manager's configuration as it is (each client gets its config's
	// limit).
	QPS   float32
	Burst int
}

func (o Options) withDefaults(mgr *reconcile.Manager) (Options, error) {
	if o.Workers < 0 {
		return o, fmt.Errorf("replicaset: Options.Workers is %d, want >= 0", o.Workers)
	}
	if o.BurstReplicas < 0 {
		return o, fmt.Errorf("replicaset: Options.BurstReplicas is %d, want >= 0", o.BurstReplicas)
	}
	if o.Workers == 0 {
		o.Workers = DefaultWorkers
	}
	if o.BurstReplicas == 0 {
		o.BurstReplicas = DefaultBurstReplicas
	}
	if o.Logger.GetSink() == nil {
		o.Logger = mgr.Logger().WithName(ControllerName)
	}
	return o, nil
}

// New registers the ReplicaSet controller with mgr (it starts with
// mgr.Start). It watches ReplicaSets and Pods through mgr's shared
// informers and writes through mgr's (fenced) configuration.
func New(mgr *reconcile.Manager, opts Options) (*reconcile.Controller, error) {
	if mgr == nil {
		return nil, errors.New("replicaset: New: manager is nil")
	}
	opts, err := opts.withDefaults(mgr)
	if err != nil {
		return nil, err
	}
	rsInf, err := informer.For[*appsv1.ReplicaSet](mgr.Informers(), informer.Scope{})
	if err != nil {
		return nil, fmt.Errorf("replicaset: %w", err)
	}
	podInf, err := informer.For[*corev1.Pod](mgr.Informers(), informer.Scope{})
	if err != nil {
		return nil, fmt.Errorf("replicaset: %w", err)
	}
	clients := reconcile.RateLimited(mgr, opts.QPS, opts.Burst)
	rsClient, err := reconcile.ClientFor[*appsv1.ReplicaSet](clients)
	if err != nil {
		return nil, fmt.Errorf("replicaset: %w", err)
	}
	podClient, err := reconcile.ClientFor[*corev1.Pod](clients)
	if err != nil {
		return nil, fmt.Errorf("replicaset: %w", err)
	}
	recorder, err := mgr.EventRecorder(EventSource)
	if err != nil {
		return nil, fmt.Errorf("replicaset: %w", err)
	}
	r := &reconciler{
		rsClient:  rsClient,
		podClient: podClient,
		rsCache:   rsInf.Lister(),
		podCache:  podInf.Lister(),
		recorder:  recorder,
		burst:     opts.BurstReplicas,
		clock:     clock.RealClock{},
	}
	r.exp, err = reconcile.NewExpectations(reconcile.ExpectationsOptions[reconcile.Request]{
		Name:       ControllerName,
		Registerer: mgr.Registry(),
		Logger:     opts.Logger.WithValues("controller", ControllerName),
		// The events of our own creates and deletes are filtered as echoes
		// from the pod watch: the last observation wakes the owner.
		OnSatisfied: func(req reconcile.Request) {
			if c := r.ctrl.Load(); c != nil {
				c.Enqueue(req)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("replicaset: %w", err)
	}
	c, err := mgr.NewController(r, reconcile.Options{
		Name:                    ControllerName,
		MaxConcurrentReconciles: opts.Workers,
		Logger:                  opts.Logger,
	},
		reconcile.For[*appsv1.ReplicaSet]().From(rsInf),
		reconcile.Watches[*corev1.Pod](r.podOwners).From(podInf),
	)
	if err != nil {
		return nil, fmt.Errorf("replicaset: %w", err)
	}
	r.ctrl.Store(c)
	if _, err := podInf.AddHandler(reconcile.ExpectationsHandler(r.exp, r.ownerOf),
		informer.HandlerOptions{Name: ControllerName + "/expectations"}); err != nil {
		return nil, fmt.Errorf("replicaset: watching pods for expectations: %w", err)
	}
	return c, nil
}

// reconciler syncs one ReplicaSet at a time; it is safe for concurrent
// reconciles of different ReplicaSets.
type reconciler struct {
	rsClient  *reconcile.Client[*appsv1.ReplicaSet]
	podClient *reconcile.Client[*corev1.Pod]
	rsCache   *informer.Lister[*appsv1.ReplicaSet]
	podCache  *informer.Lister[*corev1.Pod]
	recorder  record.EventRecorder
	exp       *reconcile.Expectations[reconcile.Request]
	burst     int
	clock     clock.PassiveClock
	ctrl      atomic.Pointer[reconcile.Controller]
	// noTerminating is set once the API server dropped
	// status.terminatingReplicas from a write (its
	// DeploymentReplicaSetTerminatingReplicas gate is off): the field is
	// then left unset, else every sync would see a change and write again.
	noTerminating atomic.Bool
	// uids remembers the UID of each ReplicaSet last synced (Request ->
	// types.UID), so that one deleted and re-created under the same name
	// between two syncs does not inherit its predecessor's expectations.
	uids sync.Map
}

var _ reconcile.Reconciler = (*reconciler)(nil)

// ownerOf names the ReplicaSet controlling pod, if it is in the cache with
// the UID the pod's controller reference names.
func (r *reconciler) ownerOf(pod *corev1.Pod) (reconcile.Request, bool) {
	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil || !isReplicaSetRef(ref) {
		return reconcile.Request{}, false
	}
	rs, ok := r.rsCache.Get(pod.Namespace, ref.Name)
	if !ok || rs.UID != ref.UID {
		return reconcile.Request{}, false
	}
	return reconcile.Request{Namespace: pod.Namespace, Name: ref.Name}, true
}

func isReplicaSetRef(ref *metav1.OwnerReference) bool {
	gv, err := parseGroup(ref.APIVersion)
	return err == nil && gv == gvk.Group && ref.Kind == gvk.Kind
}

// podOwners maps a pod event to the ReplicaSets that care: its controller
// if it has one, else (an orphan not being deleted) every ReplicaSet of
// its namespace whose selector matches it, which may adopt it.
func (r *reconciler) podOwners(_ context.Context, pod *corev1.Pod) []reconcile.Request {
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
		if !isReplicaSetRef(ref) {
			return nil
		}
		return []reconcile.Request{{Namespace: pod.Namespace, Name: ref.Name}}
	}
	if pod.DeletionTimestamp != nil {
		return nil
	}
	var reqs []reconcile.Request
	set := labels.Set(pod.Labels)
	for _, rs := range r.rsCache.ListNamespace(pod.Namespace, nil) {
		sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
		// A nil or empty selector matches nothing here, not everything.
		if err != nil || sel.Empty() || !sel.Matches(set) {
			continue
		}
		reqs = append(reqs, reconcile.Request{Namespace: rs.Namespace, Name: rs.Name})
	}
	return reqs
}

// Reconcile syncs the ReplicaSet req names: it claims its pods, creates or
// deletes pods towards spec.replicas when its expectations allow, and
// writes its status.
func (r *reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := logr.FromContextOrDiscard(ctx)
	rs, err := r.rsClient.Get(ctx, req.Namespace, req.Name)
	if apierrors.IsNotFound(err) {
		r.exp.Forget(req)
		r.uids.Delete(req)
		log.V(4).Info("replicaSet deleted")
		return reconcile.Done(), nil
	}
	if err != nil {
		return reconcile.Done(), err
	}
	if prev, ok := r.uids.Swap(req, rs.UID); ok && prev.(types.UID) != rs.UID {
		// Re-created under the same name: what the old one expected will
		// never be observed for this one.
		r.exp.Forget(req)
		log.V(4).Info("replicaSet re-created, dropping its predecessor's expectations", "uid", rs.UID)
	}
	key := req.String()
	satisfied := r.exp.Satisfied(req)
	selector, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil {
		// The API server validates selectors: only a change of the spec can
		// fix this one.
		return reconcile.Done(), reconcile.TerminalError(fmt.Errorf("ReplicaSet %q: spec.selector: %w", key, err))
	}

	all, err := r.podClient.List(ctx, reconcile.ListOptions{Namespace: rs.Namespace})
	if err != nil {
		return reconcile.Done(), fmt.Errorf("listing pods of ReplicaSet %q: %w", key, err)
	}
	candidates, terminating := splitPods(rs, selector, all)
	claimer := &controllerref.Claimer[*corev1.Pod]{
		Owner:    rs,
		OwnerGVK: gvk,
		Selector: selector,
		// A fresh read, after the list: never adopt for a ReplicaSet that
		// is being deleted, or that was replaced by a namesake.
		CanAdopt: controllerref.RecheckOwner(rs, gvk.Kind, func(ctx context.Context) (metav1.Object, error) {
			return r.rsClient.Live(ctx, rs.Namespace, rs.Name)
		}),
		Adopt:   func(ctx context.Context, pod *corev1.Pod) error { return r.adopt(ctx, rs, pod) },
		Release: func(ctx context.Context, pod *corev1.Pod) error { return r.release(ctx, rs, pod) },
	}
	active, err := claimer.Claim(ctx, candidates)
	if err != nil {
		return reconcile.Done(), fmt.Errorf("claiming pods for ReplicaSet %q: %w", key, err)
	}

	now := r.clock.Now()
	var m manageResult
	if satisfied && rs.DeletionTimestamp == nil {
		m.ran = true
		m.err = r.manageReplicas(ctx, req, rs, active, now)
	}
	st := calculateStatus(rs, active, terminating, m, now)
	if r.noTerminating.Load() {
		st.TerminatingReplicas = nil
	}
	updated := rs
	if statusChanged(rs, st) {
		if updated, err = r.writeStatus(ctx, rs, st); err != nil {
			return reconcile.Done(), errors.Join(fmt.Errorf("updating status of ReplicaSet %q: %w", key, err), wrapManage(key, m.err))
		}
		if st.TerminatingReplicas != nil && updated.Status.TerminatingReplicas == nil && !r.noTerminating.Swap(true) {
			log.Info("the API server drops status.terminatingReplicas (feature gate DeploymentReplicaSetTerminatingReplicas off); no longer reporting it")
		}
	}
	if m.err != nil {
		return reconcile.Done(), wrapManage(key, m.err)
	}

	var after time.Duration
	if !satisfied {
		// A backstop: the observations wake the ReplicaSet (OnSatisfied)
		// long before the expectations time out.
		if p, ok := r.exp.Pending(req); ok {
			after = p.TimeLeft
		}
	}
	if mrs := updated.Spec.MinReadySeconds; mrs > 0 && updated.Status.ReadyReplicas != updated.Status.AvailableReplicas {
		// Nothing will happen to the pods when they become available: come
		// back then to report it.
		next := time.Duration(mrs) * time.Second
		if d, ok := nextAvailabilityCheck(active, mrs, now); ok {
			next = d
		}
		if after <= 0 || next < after {
			after = next
		}
	}
	return reconcile.RequeueAfter(after), nil
}

func wrapManage(key string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("managing the replicas of ReplicaSet %q: %w", key, err)
}

// splitPods picks from a namespace's pods those a ReplicaSet with selector
// may claim (active, and controlled by rs or by nobody) and those it
// reports as terminating (controlled by rs, matching, terminating).
func splitPods(rs *appsv1.ReplicaSet, selector labels.Selector, pods []*corev1.Pod) (candidates, terminating []*corev1.Pod) {
	for _, p := range pods {
		ref := metav1.GetControllerOfNoCopy(p)
		if ref != nil && ref.UID != rs.UID {
			continue
		}
		switch {
		case podutil.IsPodActive(p):
			candidates = append(candidates, p)
		case ref != nil && podutil.IsPodTerminating(p) && selector.Matches(labels.Set(p.Labels)):
			terminating = append(terminating, p)
		}
	}
	return candidates, terminating
}

// manageReplicas creates or deletes pods of rs (at most burst) so that
// active has spec.replicas pods, recording expectations first. It returns
// the first failure, as the API server phrased it.
func (r *reconciler) manageReplicas(ctx context.Context, req reconcile.Request, rs *appsv1.ReplicaSet, active []*corev1.Pod, now time.Time) error {
	log := logr.FromContextOrDiscard(ctx)
	want := replicasOf(rs)
	diff := len(active) - int(want)
	switch {
	case diff < 0:
		n := min(-diff, r.burst)
		r.exp.ExpectCreates(req, n)
		log.V(2).Info("too few replicas", "replicas", want, "active", len(active), "creating", n)
		// A namespace being deleted refuses every create: not an error of
		// ours, and nothing to retry (the ReplicaSet goes with it).
		var nsGone atomic.Int64
		created, err := slowStartBatch(n, slowStartInitialBatch, func() error {
			err := r.createPod(ctx, rs)
			if err != nil && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				nsGone.Add(1)
				return nil
			}
			return err
		})
		// Creates that failed or were never tried will never be observed.
		if skipped := n - created + int(nsGone.Load()); skipped > 0 {
			log.V(2).Info("slow-start failure, skipping creation of pods", "skipped", skipped)
			r.exp.CreateFailed(req, skipped)
		}
		return err
	case diff > 0:
		n := min(diff, r.burst)
		victims := podsToDelete(slices.Clone(active), r.relatedPods(rs), n, now)
		uids := make([]types.UID, len(victims))
		for i, p := range victims {
			uids[i] = p.UID
		}
		r.exp.ExpectDeletes(req, uids...)
		log.V(2).Info("too many replicas", "replicas", want, "active", len(active), "deleting", n)
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			firstErr error
		)
		for _, p := range victims {
			wg.Go(func() {
				if err := r.deletePod(ctx, req, rs, p); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return firstErr
	}
	return nil
}

// createPod creates one pod of rs. Errors are the API server's, unwrapped,
// so that the ReplicaFailure condition reads like upstream's.
func (r *reconciler) createPod(ctx context.Context, rs *appsv1.ReplicaSet) error {
	pod := PodFromTemplate(&rs.Spec.Template, rs.Name, controllerRef(rs))
	pod.Namespace = rs.Namespace
	if len(pod.Labels) == 0 {
		return errNoLabels
	}
	created, err := r.podClient.Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		err = apiError(err)
		if !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			r.recorder.Eventf(rs, corev1.EventTypeWarning, EventFailedCreate, "Error creating: %v", err)
		}
		return err
	}
	logr.FromContextOrDiscard(ctx).V(4).Info("created pod", "pod", created.Name)
	r.recorder.Eventf(rs, corev1.EventTypeNormal, EventSuccessfulCreate, "Created pod: %v", created.Name)
	return nil
}

// deletePod deletes pod (only that incarnation: UID precondition) and
// settles its expectation when no delete event will come.
func (r *reconciler) deletePod(ctx context.Context, req reconcile.Request, rs *appsv1.ReplicaSet, pod *corev1.Pod) error {
	log := logr.FromContextOrDiscard(ctx).WithValues("pod", pod.Name)
	uid := pod.UID
	err := r.podClient.Delete(ctx, pod.Namespace, pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	switch {
	case err == nil:
		log.V(4).Info("deleted pod")
		r.recorder.Eventf(rs, corev1.EventTypeNormal, EventSuccessfulDelete, "Deleted pod: %v", pod.Name)
		return nil
	case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
		// Already gone (a conflict on the UID precondition: replaced by a
		// namesake). If the cache still holds it, its delete event is on
		// its way and will be observed; else it never will.
		if cached, ok := r.podCache.Get(pod.Namespace, pod.Name); !ok || cached.UID != uid || cached.DeletionTimestamp != nil {
			r.exp.DeleteFailed(req, uid)
		}
		log.V(4).Info("pod already deleted")
		return nil
	default:
		r.exp.DeleteFailed(req, uid)
		err = apiError(err)
		log.V(2).Info("failed to delete pod, lowered expectations", "error", err.Error())
		r.recorder.Eventf(rs, corev1.EventTypeWarning, EventFailedDelete, "Error deleting: %v", err)
		return fmt.Errorf("unable to delete pods: %w", err)
	}
}

// relatedPods returns the pods of every ReplicaSet with rs's controller
// (its Deployment's other revisions, and rs itself), for the co-location
// rule of scale-down; none if rs has no controller.
func (r *reconciler) relatedPods(rs *appsv1.ReplicaSet) []*corev1.Pod {
	ref := metav1.GetControllerOfNoCopy(rs)
	if ref == nil {
		return nil
	}
	var out []*corev1.Pod
	seen := map[types.UID]bool{}
	for _, sib := range r.rsCache.ListNamespace(rs.Namespace, nil) {
		if sref := metav1.GetControllerOfNoCopy(sib); sref == nil || sref.UID != ref.UID {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(sib.Spec.Selector)
		if err != nil {
			continue // an invalid selector matches no pod
		}
		for _, p := range r.podCache.ListNamespace(sib.Namespace, sel) {
			if !seen[p.UID] {
				seen[p.UID] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// adopt makes rs the controller of the orphan pod.
func (r *reconciler) adopt(ctx context.Context, rs *appsv1.ReplicaSet, pod *corev1.Pod) error {
	patch, err := controllerref.AdoptPatch(rs, gvk, pod.UID)
	if err != nil {
		return err
	}
	if _, err := r.podClient.Patch(ctx, pod.Namespace, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return err
	}
	logr.FromContextOrDiscard(ctx).V(2).Info("adopted pod", "pod", pod.Name)
	return nil
}

// release removes rs's owner reference from pod.
func (r *reconciler) release(ctx context.Context, rs *appsv1.ReplicaSet, pod *corev1.Pod) error {
	patch, err := controllerref.ReleasePatch(rs.UID, pod.UID)
	if err != nil {
		return err
	}
	_, err = r.podClient.Patch(ctx, pod.Namespace, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	switch {
	case err == nil:
		logr.FromContextOrDiscard(ctx).V(2).Info("released pod", "pod", pod.Name)
		return nil
	case apierrors.IsNotFound(err), apierrors.IsInvalid(err):
		// Gone, replaced by a namesake (the UID precondition), or no longer
		// ours: released either way.
		return nil
	default:
		return err
	}
}

// writeStatus writes st (with observedGeneration) through the status
// subresource, retrying once on a fresh read after a conflict.
func (r *reconciler) writeStatus(ctx context.Context, rs *appsv1.ReplicaSet, st appsv1.ReplicaSetStatus) (*appsv1.ReplicaSet, error) {
	// Save the generation acted on, so that a reader never takes an old
	// status for the current spec's.
	st.ObservedGeneration = rs.Generation
	cur := rs.DeepCopy()
	cur.Status = st
	out, err := r.rsClient.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
	if err == nil || !apierrors.IsConflict(err) {
		return out, err
	}
	fresh, err := r.rsClient.Live(ctx, rs.Namespace, rs.Name)
	if err != nil {
		return nil, err
	}
	fresh.Status = st
	return r.rsClient.UpdateStatus(ctx, fresh, metav1.UpdateOptions{})
}

// apiError returns the API server's error inside err, or err.
func apiError(err error) error {
	var se *apierrors.StatusError
	if errors.As(err, &se) {
		return se
	}
	return err
}
