package deployment

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/capstan-io/capstan/reconcile"
)

// Options configure New. The zero value is valid.
type Options struct {
	// Workers is the number of Deployments synced at once. Default 5,
	// kube-controller-manager's --concurrent-deployment-syncs.
	Workers int
	// Logger receives the controller's logs. Default
	// mgr.Logger().WithName("deployment").
	Logger logr.Logger
	// Clock tells the time of conditions and progress deadlines. Default
	// the real clock.
	Clock clock.PassiveClock
	// QPS and Burst give the controller's API writes a client-side rate
	// limit of their own (one token bucket for all its clients, as
	// kube-controller-manager gives each controller one clientset). Zero:
	// the Manager's configuration as it is (each client gets its config's
	// limit).
	QPS   float32
	Burst int
}

const (
	// ControllerName names the controller in logs and metrics.
	ControllerName = "deployment"
	// eventComponent is the source of the Events the controller records,
	// kcm's.
	eventComponent = "deployment-controller"
	defaultWorkers = 5
	// resyncAfterWrite is when a Deployment whose sync wrote something is
	// synced again. kcm's next step is driven by the watch event of its
	// own write; capstan filters those echoes out, so the controller asks
	// for the next sync itself, and read-your-writes holds that sync until
	// the caches show the write.
	resyncAfterWrite = 50 * time.Millisecond
)

var (
	deploymentGVK = appsv1.SchemeGroupVersion.WithKind("Deployment")
	replicaSetGVK = appsv1.SchemeGroupVersion.WithKind("ReplicaSet")
)

func (o Options) withDefaults(mgr *reconcile.Manager) (Options, error) {
	if o.Workers < 0 {
		return o, fmt.Errorf("deployment: Options.Workers is %d, want >= 0", o.Workers)
	}
	if o.Workers == 0 {
		o.Workers = defaultWorkers
	}
	if o.Logger.GetSink() == nil {
		o.Logger = mgr.Logger().WithName(ControllerName)
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return o, nil
}

// reconciler syncs one Deployment per call. It holds no per-Deployment
// state: everything it decides on comes from the shared caches.
type reconciler struct {
	deployments *reconcile.Client[*appsv1.Deployment]
	replicaSets *reconcile.Client[*appsv1.ReplicaSet]
	pods        *reconcile.Client[*corev1.Pod]
	events      record.EventRecorder
	clock       clock.PassiveClock
}

// New returns the Deployment controller, registered with mgr: it runs
// when mgr starts (on the leader, with leader election). It watches
// Deployments, ReplicaSets and Pods through mgr's shared informers and
// writes ReplicaSets and Deployment status through mgr's fenced config.
// A ReplicaSet controller must run too for pods to exist.
func New(mgr *reconcile.Manager, opts Options) (*reconcile.Controller, error) {
	if mgr == nil {
		return nil, errors.New("deployment: New: manager is nil")
	}
	opts, err := opts.withDefaults(mgr)
	if err != nil {
		return nil, err
	}
	r := &reconciler{clock: opts.Clock}
	clients := reconcile.RateLimited(mgr, opts.QPS, opts.Burst)
	if r.deployments, err = reconcile.ClientFor[*appsv1.Deployment](clients); err != nil {
		return nil, fmt.Errorf("deployment: %w", err)
	}
	if r.replicaSets, err = reconcile.ClientFor[*appsv1.ReplicaSet](clients); err != nil {
		return nil, fmt.Errorf("deployment: %w", err)
	}
	if r.pods, err = reconcile.ClientFor[*corev1.Pod](clients); err != nil {
		return nil, fmt.Errorf("deployment: %w", err)
	}
	if r.events, err = mgr.EventRecorder(eventComponent); err != nil {
		return nil, fmt.Errorf("deployment: %w", err)
	}
	return mgr.NewController(r, reconcile.Options{
		Name:                    ControllerName,
		MaxConcurrentReconciles: opts.Workers,
		Logger:                  opts.Logger,
	},
		reconcile.For[*appsv1.Deployment](),
		reconcile.Watches[*appsv1.ReplicaSet](r.deploymentsForReplicaSet),
		// A pod that is gone may let a Recreate rollout start its new
		// pods, or a rolling update its next surge pod.
		reconcile.Watches[*corev1.Pod](r.deploymentForPod, func(ev reconcile.Event[*corev1.Pod]) bool {
			return ev.Type == reconcile.EventDelete
		}),
	)
}

// Reconcile syncs the Deployment req names.
func (r *reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := logr.FromContextOrDiscard(ctx)
	cached, err := r.deployments.Get(ctx, req.Namespace, req.Name)
	if apierrors.IsNotFound(err) {
		log.V(2).Info("deployment has been deleted")
		return reconcile.Done(), nil
	}
	if err != nil {
		return reconcile.Done(), err
	}
	s := &syncer{r: r, d: cached.DeepCopy(), log: log, now: r.clock.Now()}
	err = s.sync(ctx)
	switch {
	case err != nil && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		// Every later create fails too; the namespace controller is
		// deleting everything anyway.
		log.V(2).Info("namespace is terminating, giving up on the sync", "error", err.Error())
		return reconcile.Done(), nil
	case err != nil:
		return reconcile.Done(), fmt.Errorf("syncing Deployment %q: %w", req, err)
	case s.wrote:
		return reconcile.RequeueAfter(resyncAfterWrite), nil
	case s.checkAfter > 0:
		log.V(4).Info("requeueing for a progress check", "after", s.checkAfter)
		return reconcile.RequeueAfter(s.checkAfter), nil
	}
	return reconcile.Done(), nil
}

// deploymentsForReplicaSet maps a ReplicaSet to the Deployment that
// controls it or, for an orphan, to every Deployment whose selector
// matches it (one may adopt it).
func (r *reconciler) deploymentsForReplicaSet(ctx context.Context, rs *appsv1.ReplicaSet) []reconcile.Request {
	if ref := metav1.GetControllerOfNoCopy(rs); ref != nil {
		if d := r.resolveControllerRef(ctx, rs.Namespace, ref); d != nil {
			return []reconcile.Request{{Namespace: d.Namespace, Name: d.Name}}
		}
		return nil
	}
	if len(rs.Labels) == 0 {
		return nil
	}
	ds, err := r.deployments.List(ctx, reconcile.ListOptions{Namespace: rs.Namespace})
	if err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for _, d := range ds {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(rs.Labels)) {
			continue
		}
		reqs = append(reqs, reconcile.Request{Namespace: d.Namespace, Name: d.Name})
	}
	return reqs
}

// deploymentForPod maps a pod to the Deployment controlling its
// ReplicaSet.
func (r *reconciler) deploymentForPod(ctx context.Context, pod *corev1.Pod) []reconcile.Request {
	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil || ref.Kind != replicaSetGVK.Kind {
		return nil
	}
	rs, err := r.replicaSets.Get(ctx, pod.Namespace, ref.Name)
	if err != nil || rs.UID != ref.UID {
		return nil
	}
	rsRef := metav1.GetControllerOfNoCopy(rs)
	if rsRef == nil {
		return nil
	}
	if d := r.resolveControllerRef(ctx, rs.Namespace, rsRef); d != nil {
		return []reconcile.Request{{Namespace: d.Namespace, Name: d.Name}}
	}
	return nil
}

// resolveControllerRef returns the cached Deployment ref names, if it is
// a Deployment with ref's UID.
func (r *reconciler) resolveControllerRef(ctx context.Context, namespace string, ref *metav1.OwnerReference) *appsv1.Deployment {
	if ref.Kind != deploymentGVK.Kind {
		return nil
	}
	d, err := r.deployments.Get(ctx, namespace, ref.Name)
	if err != nil || d.UID != ref.UID {
		return nil
	}
	return d
}
