package deployment

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/capstan-io/capstan/examples/internal/controllerref"
	"github.com/capstan-io/capstan/reconcile"
)

// syncer is one sync of one Deployment: kcm's syncDeployment and the
// functions it calls, with the Deployment being worked on (a copy the
// syncer owns) and what the sync did.
type syncer struct {
	r   *reconciler
	d   *appsv1.Deployment
	log logr.Logger
	now time.Time

	// wrote is set by every successful write.
	wrote bool
	// checkAfter, if positive, is when the progress deadline needs to be
	// checked again.
	checkAfter time.Duration
	// pods counts the unfinished pods of each claimed ReplicaSet,
	// undeleted those of them not being deleted.
	pods, undeleted podCounts
}

// sync is kcm's syncDeployment, less the parts the capstan controller
// does (the cache read, the retries).
func (s *syncer) sync(ctx context.Context) error {
	d := s.d
	if d.Spec.Selector == nil {
		return reconcile.TerminalError(errors.New("spec.selector is required"))
	}
	if len(d.Spec.Selector.MatchLabels) == 0 && len(d.Spec.Selector.MatchExpressions) == 0 {
		s.r.events.Eventf(d, corev1.EventTypeWarning, "SelectingAll", "This deployment is selecting all pods. A non-empty selector is required.")
		if d.Status.ObservedGeneration < d.Generation {
			d.Status.ObservedGeneration = d.Generation
			return s.updateStatus(ctx)
		}
		return nil
	}
	if isRollingUpdate(d) {
		if _, _, err := fenceposts(d); err != nil {
			return reconcile.TerminalError(fmt.Errorf("spec.strategy.rollingUpdate: %w", err))
		}
	}

	rss, err := s.claimReplicaSets(ctx)
	if err != nil {
		return err
	}
	if s.pods, s.undeleted, err = s.podCounts(ctx, rss); err != nil {
		return err
	}
	if d.DeletionTimestamp != nil {
		return s.syncStatusOnly(ctx, rss)
	}
	// Pausing and resuming show as an Unknown Progressing condition, so a
	// resumed Deployment does not time out for the time it was paused.
	// (From here on s.d may be the server's answer to a write.)
	if err := s.checkPausedConditions(ctx); err != nil {
		return err
	}
	if s.d.Spec.Paused {
		return s.scaleAndSync(ctx, rss)
	}
	// Rollback is not re-entrant: the annotation is cleared before the
	// ReplicaSets are touched again.
	if rollbackTo(s.d) != nil {
		return s.rollback(ctx, rss)
	}
	scaling, err := s.isScalingEvent(ctx, rss)
	if err != nil {
		return err
	}
	if scaling {
		return s.scaleAndSync(ctx, rss)
	}
	switch t := s.d.Spec.Strategy.Type; t {
	case appsv1.RecreateDeploymentStrategyType:
		return s.rolloutRecreate(ctx, rss)
	case appsv1.RollingUpdateDeploymentStrategyType:
		return s.rolloutRolling(ctx, rss)
	default:
		return reconcile.TerminalError(fmt.Errorf("spec.strategy.type: unexpected %q", t))
	}
}

// claimReplicaSets returns the ReplicaSets the Deployment controls, after
// adopting the orphans its selector matches and releasing the ones it no
// longer matches (controllerref, with kcm's guards: a live re-read of the
// Deployment before the first adoption).
func (s *syncer) claimReplicaSets(ctx context.Context) ([]*appsv1.ReplicaSet, error) {
	d := s.d
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, reconcile.TerminalError(fmt.Errorf("spec.selector is invalid: %w", err))
	}
	all, err := s.r.replicaSets.List(ctx, reconcile.ListOptions{Namespace: d.Namespace})
	if err != nil {
		return nil, err
	}
	c := &controllerref.Claimer[*appsv1.ReplicaSet]{
		Owner:    d,
		OwnerGVK: deploymentGVK,
		Selector: sel,
		CanAdopt: controllerref.RecheckOwner(d, deploymentGVK.Kind, func(ctx context.Context) (metav1.Object, error) {
			return s.r.deployments.Live(ctx, d.Namespace, d.Name)
		}),
		Adopt: func(ctx context.Context, rs *appsv1.ReplicaSet) error {
			data, err := controllerref.AdoptPatch(d, deploymentGVK, rs.UID)
			if err != nil {
				return err
			}
			if _, err := s.r.replicaSets.Patch(ctx, rs.Namespace, rs.Name, types.StrategicMergePatchType, data, metav1.PatchOptions{}); err != nil {
				return err
			}
			s.wrote = true
			s.log.V(2).Info("adopted replica set", "replicaSet", rs.Name)
			return nil
		},
		Release: func(ctx context.Context, rs *appsv1.ReplicaSet) error {
			data, err := controllerref.ReleasePatch(d.UID, rs.UID)
			if err != nil {
				return err
			}
			_, err = s.r.replicaSets.Patch(ctx, rs.Namespace, rs.Name, types.StrategicMergePatchType, data, metav1.PatchOptions{})
			switch {
			case apierrors.IsNotFound(err), apierrors.IsInvalid(err):
				// Gone, replaced (another UID) or already released.
				return nil
			case err != nil:
				return err
			}
			s.wrote = true
			s.log.V(2).Info("released replica set", "replicaSet", rs.Name)
			return nil
		},
	}
	return c.Claim(ctx, all)
}

// podCounts counts the unfinished pods of each of rss, and of those the
// ones not being deleted.
func (s *syncer) podCounts(ctx context.Context, rss []*appsv1.ReplicaSet) (unfinished, undeleted podCounts, err error) {
	pods, err := s.r.pods.List(ctx, reconcile.ListOptions{Namespace: s.d.Namespace})
	if err != nil {
		return nil, nil, err
	}
	unfinished, undeleted = countPods(pods, rss)
	return unfinished, undeleted, nil
}

// syncStatusOnly writes the status of a Deployment being deleted, and
// nothing else.
func (s *syncer) syncStatusOnly(ctx context.Context, rss []*appsv1.ReplicaSet) error {
	newRS, oldRSs, err := s.replicaSetsAndSyncRevision(ctx, rss, false)
	if err != nil {
		return err
	}
	return s.syncStatus(ctx, append(oldRSs, newRS), newRS)
}

// scaleAndSync handles a scaling event and paused Deployments (kcm's
// sync): resize the ReplicaSets, clean up old ones when paused, write the
// status.
func (s *syncer) scaleAndSync(ctx context.Context, rss []*appsv1.ReplicaSet) error {
	newRS, oldRSs, err := s.replicaSetsAndSyncRevision(ctx, rss, false)
	if err != nil {
		return err
	}
	for _, op := range planScale(s.d, newRS, oldRSs) {
		if _, _, err := s.scaleReplicaSet(ctx, op.rs, op.to, op.force); err != nil {
			return err
		}
	}
	if s.d.Spec.Paused && rollbackTo(s.d) == nil {
		if err := s.cleanup(ctx, oldRSs); err != nil {
			return err
		}
	}
	return s.syncStatus(ctx, append(oldRSs, newRS), newRS)
}

// checkPausedConditions records a pause or a resume in the Progressing
// condition, unless the rollout has already timed out.
func (s *syncer) checkPausedConditions(ctx context.Context) error {
	d := s.d
	if !hasProgressDeadline(d) {
		return nil
	}
	cond := getCondition(d.Status, appsv1.DeploymentProgressing)
	if cond != nil && cond.Reason == ReasonTimedOut {
		return nil
	}
	pausedShown := cond != nil && cond.Reason == ReasonPaused
	switch {
	case d.Spec.Paused && !pausedShown:
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonPaused, "Deployment is paused", s.now))
	case !d.Spec.Paused && pausedShown:
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonResumed, "Deployment is resumed", s.now))
	default:
		return nil
	}
	return s.updateStatus(ctx)
}

// replicaSetsAndSyncRevision splits rss into the new ReplicaSet (nil if
// none matches the template and create is false) and the old ones, and
// brings the new one's annotations and the Deployment's revision up to
// date.
func (s *syncer) replicaSetsAndSyncRevision(ctx context.Context, rss []*appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet, error) {
	oldRSs := findOldReplicaSets(s.d, rss)
	newRS, err := s.newReplicaSet(ctx, rss, oldRSs, create)
	if err != nil {
		return nil, nil, err
	}
	return newRS, oldRSs, nil
}

// newReplicaSet is kcm's getNewReplicaSet: it returns the ReplicaSet
// running the Deployment's template, with its revision raised above every
// old one, creating it (named <deployment>-<hash>) if create is set. A
// ReplicaSet of that name with another template is a hash collision: the
// Deployment's collisionCount goes up and the create is retried with the
// next hash.
func (s *syncer) newReplicaSet(ctx context.Context, rss, oldRSs []*appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, error) {
	d := s.d
	existing := findNewReplicaSet(d, rss)
	newRevision := maxRevision(oldRSs) + 1

	if existing != nil {
		rs := existing.DeepCopy()
		annotationsChanged := setNewReplicaSetAnnotations(d, rs, newRevision, true)
		if annotationsChanged || rs.Spec.MinReadySeconds != d.Spec.MinReadySeconds {
			rs.Spec.MinReadySeconds = d.Spec.MinReadySeconds
			return s.updateReplicaSet(ctx, rs)
		}
		changed := setDeploymentRevision(d, rs.Annotations[RevisionAnnotation])
		// A Deployment that never had a Progressing condition (a progress
		// deadline added later) starts counting from now.
		if hasProgressDeadline(d) && getCondition(d.Status, appsv1.DeploymentProgressing) == nil {
			setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue,
				ReasonFoundNewReplicaSet, fmt.Sprintf("Found new replica set %q", rs.Name), s.now))
			changed = true
		}
		if changed {
			if err := s.updateStatus(ctx); err != nil {
				return nil, err
			}
		}
		return rs, nil
	}
	if !create {
		return nil, nil
	}

	template := d.Spec.Template.DeepCopy()
	hash := ComputeHash(template, d.Status.CollisionCount)
	template.Labels = cloneWithLabel(d.Spec.Template.Labels, appsv1.DefaultDeploymentUniqueLabelKey, hash)
	selector := d.Spec.Selector.DeepCopy()
	selector.MatchLabels = cloneWithLabel(selector.MatchLabels, appsv1.DefaultDeploymentUniqueLabelKey, hash)
	newRS := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:            replicaSetName(d.Name, hash),
			Namespace:       d.Namespace,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, deploymentGVK)},
			Labels:          template.Labels,
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        new(int32),
			MinReadySeconds: d.Spec.MinReadySeconds,
			Selector:        selector,
			Template:        *template,
		},
	}
	size, err := newRSReplicas(d, append(slices.Clone(oldRSs), newRS), newRS, s.pods, s.undeleted)
	if err != nil {
		return nil, err
	}
	*newRS.Spec.Replicas = size
	setNewReplicaSetAnnotations(d, newRS, newRevision, false)

	created, err := s.r.replicaSets.Create(ctx, newRS, metav1.CreateOptions{})
	alreadyExists := false
	switch {
	case apierrors.IsAlreadyExists(err):
		// A slow cache, or a hash collision.
		alreadyExists = true
		found, ferr := s.lookupReplicaSet(ctx, newRS.Namespace, newRS.Name)
		if ferr != nil {
			return nil, ferr
		}
		if ref := metav1.GetControllerOfNoCopy(found); ref != nil && ref.UID == d.UID && equalIgnoreHash(&d.Spec.Template, &found.Spec.Template) {
			created, err = found, nil
			break
		}
		if d.Status.CollisionCount == nil {
			d.Status.CollisionCount = new(int32)
		}
		before := *d.Status.CollisionCount
		*d.Status.CollisionCount++
		if uerr := s.updateStatus(ctx); uerr == nil {
			s.log.V(2).Info("found a hash collision, bumping collisionCount to resolve it",
				"replicaSet", newRS.Name, "oldCollisionCount", before, "newCollisionCount", *d.Status.CollisionCount)
		}
		return nil, err
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return nil, err
	case err != nil:
		msg := fmt.Sprintf("Failed to create new replica set %q: %v", newRS.Name, err)
		if hasProgressDeadline(d) {
			setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, ReasonReplicaSetCreateErr, msg, s.now))
			// The create error is the one to report.
			_ = s.updateStatus(ctx)
		}
		s.r.events.Eventf(d, corev1.EventTypeWarning, ReasonReplicaSetCreateErr, "%s", msg)
		return nil, err
	}
	s.wrote = true
	if !alreadyExists && size > 0 {
		s.r.events.Eventf(d, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled up replica set %s from 0 to %d", created.Name, size)
	}
	if !alreadyExists {
		s.log.V(2).Info("created new replica set", "replicaSet", created.Name, "replicas", size, "revision", newRevision)
	}

	changed := setDeploymentRevision(d, strconv.FormatInt(newRevision, 10))
	if !alreadyExists && hasProgressDeadline(d) {
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue,
			ReasonNewReplicaSetCreated, fmt.Sprintf("Created new replica set %q", created.Name), s.now))
		changed = true
	}
	if changed {
		if err := s.updateStatus(ctx); err != nil {
			return created, err
		}
	}
	return created, nil
}

// lookupReplicaSet reads a ReplicaSet from the cache or, when the cache
// has not seen it yet, from the API server.
func (s *syncer) lookupReplicaSet(ctx context.Context, namespace, name string) (*appsv1.ReplicaSet, error) {
	rs, err := s.r.replicaSets.Get(ctx, namespace, name)
	if apierrors.IsNotFound(err) {
		return s.r.replicaSets.Live(ctx, namespace, name)
	}
	return rs, err
}

// isScalingEvent reports whether spec.replicas differs from the size an
// active ReplicaSet was last scaled for: a scale, not a rollout.
func (s *syncer) isScalingEvent(ctx context.Context, rss []*appsv1.ReplicaSet) (bool, error) {
	newRS, oldRSs, err := s.replicaSetsAndSyncRevision(ctx, rss, false)
	if err != nil {
		return false, err
	}
	for _, rs := range activeReplicaSets(append(oldRSs, newRS)) {
		if desired, ok := annotationInt32(rs, DesiredReplicasAnnotation); ok && desired != replicas(s.d) {
			return true, nil
		}
	}
	return false, nil
}

// scaleReplicaSet resizes rs to size and records the Deployment's size in
// its annotations (also when only those are stale, or with force). It
// returns whether the size changed and the ReplicaSet as written.
func (s *syncer) scaleReplicaSet(ctx context.Context, rs *appsv1.ReplicaSet, size int32, force bool) (bool, *appsv1.ReplicaSet, error) {
	cur := rsReplicas(rs)
	if !force && cur == size {
		return false, rs, nil
	}
	d := s.d
	want, maxReplicas := replicas(d), replicas(d)+maxSurge(d)
	if cur == size && !replicasAnnotationsNeedUpdate(rs, want, maxReplicas) {
		return false, rs, nil
	}
	cp := rs.DeepCopy()
	cp.Spec.Replicas = &size
	setReplicasAnnotations(cp, want, maxReplicas)
	out, err := s.updateReplicaSet(ctx, cp)
	if err != nil {
		return false, nil, err
	}
	if cur == size {
		return false, out, nil
	}
	op := "up"
	if size < cur {
		op = "down"
	}
	s.r.events.Eventf(d, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled %s replica set %s from %d to %d", op, out.Name, cur, size)
	s.log.V(2).Info("scaled replica set", "replicaSet", out.Name, "from", cur, "to", size)
	return true, out, nil
}

// cleanup deletes the oldest old ReplicaSets beyond
// revisionHistoryLimit, skipping any that still has pods or replicas, has
// not caught up with its spec, or is being deleted.
func (s *syncer) cleanup(ctx context.Context, oldRSs []*appsv1.ReplicaSet) error {
	d := s.d
	if !hasRevisionHistoryLimit(d) {
		return nil
	}
	var alive []*appsv1.ReplicaSet
	for _, rs := range oldRSs {
		if rs != nil && rs.DeletionTimestamp == nil {
			alive = append(alive, rs)
		}
	}
	excess := len(alive) - int(*d.Spec.RevisionHistoryLimit)
	if excess <= 0 {
		return nil
	}
	slices.SortStableFunc(alive, byRevision)
	for _, rs := range alive[:excess] {
		if rs.Status.Replicas != 0 || rsReplicas(rs) != 0 || rs.Generation > rs.Status.ObservedGeneration || rs.DeletionTimestamp != nil {
			continue
		}
		uid := rs.UID
		err := s.r.replicaSets.Delete(ctx, rs.Namespace, rs.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) {
			// Stop at the first failure rather than pile on an API server
			// that may be overloaded.
			return err
		}
		s.wrote = true
		s.log.V(2).Info("deleted old replica set beyond the revision history limit", "replicaSet", rs.Name)
	}
	return nil
}

// syncStatus writes the status computed from the ReplicaSets, if it
// changed.
func (s *syncer) syncStatus(ctx context.Context, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) error {
	st := calculateStatus(allRSs, newRS, s.d, s.now)
	if reflect.DeepEqual(s.d.Status, st) {
		return nil
	}
	s.d.Status = st
	return s.updateStatus(ctx)
}

// syncRolloutStatus writes the status of a rollout step, with the
// Progressing condition, and arranges the progress-deadline check.
func (s *syncer) syncRolloutStatus(ctx context.Context, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) error {
	st := rolloutStatus(allRSs, newRS, s.d, s.now)
	if reflect.DeepEqual(s.d.Status, st) {
		if after, ok := progressCheckAfter(s.d, st, s.now); ok {
			s.checkAfter = after
		}
		return nil
	}
	s.d.Status = st
	return s.updateStatus(ctx)
}

// updateStatus writes s.d's status (and annotations, which the status
// subresource of Deployments accepts) and continues with the server's
// answer, so that later writes of the same sync do not conflict.
func (s *syncer) updateStatus(ctx context.Context) error {
	out, err := s.r.deployments.UpdateStatus(ctx, s.d, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	s.wrote = true
	s.d = out
	return nil
}

// update writes s.d (spec and metadata).
func (s *syncer) update(ctx context.Context) error {
	out, err := s.r.deployments.Update(ctx, s.d, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	s.wrote = true
	s.d = out
	return nil
}

func (s *syncer) updateReplicaSet(ctx context.Context, rs *appsv1.ReplicaSet) (*appsv1.ReplicaSet, error) {
	out, err := s.r.replicaSets.Update(ctx, rs, metav1.UpdateOptions{})
	if err != nil {
		return nil, err
	}
	s.wrote = true
	return out, nil
}
