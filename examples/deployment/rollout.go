package deployment

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// rolloutRolling is one step of a rolling update (kcm's rolloutRolling):
// create or find the new ReplicaSet, grow it within the surge limit; if it
// did not grow, shrink the old ones within the unavailability limit; once
// the rollout is complete, delete old ReplicaSets beyond the history limit;
// write the status.
func (s *syncer) rolloutRolling(ctx context.Context, rss []*appsv1.ReplicaSet) error {
	newRS, oldRSs, err := s.replicaSetsAndSyncRevision(ctx, rss, true)
	if err != nil {
		return err
	}
	allRSs := append(slices.Clone(oldRSs), newRS)

	scaledUp, err := s.reconcileNewReplicaSet(ctx, allRSs, newRS)
	if err != nil {
		return err
	}
	if scaledUp {
		return s.syncRolloutStatus(ctx, allRSs, newRS)
	}

	scaledDown := false
	for _, op := range planOldScaleDown(s.d, newRS, activeReplicaSets(oldRSs)) {
		scaled, _, err := s.scaleReplicaSet(ctx, op.rs, op.to, op.force)
		if err != nil {
			return err
		}
		scaledDown = scaledDown || scaled
	}
	if scaledDown {
		return s.syncRolloutStatus(ctx, allRSs, newRS)
	}

	if Complete(s.d) {
		if err := s.cleanup(ctx, oldRSs); err != nil {
			return err
		}
	}
	return s.syncRolloutStatus(ctx, allRSs, newRS)
}

// reconcileNewReplicaSet grows the new ReplicaSet as far as the surge
// limit allows, or shrinks it to spec.replicas if it is larger.
func (s *syncer) reconcileNewReplicaSet(ctx context.Context, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) (bool, error) {
	want := replicas(s.d)
	switch cur := rsReplicas(newRS); {
	case cur == want:
		return false, nil
	case cur > want:
		scaled, _, err := s.scaleReplicaSet(ctx, newRS, want, false)
		return scaled, err
	}
	size, err := newRSReplicas(s.d, allRSs, newRS, s.pods, s.undeleted)
	if err != nil {
		return false, err
	}
	scaled, _, err := s.scaleReplicaSet(ctx, newRS, size, false)
	return scaled, err
}

// rolloutRecreate is one step of a Recreate rollout (kcm's
// rolloutRecreate): scale every old ReplicaSet to zero, wait until none
// of their pods runs (terminating ones included), only then create or
// grow the new ReplicaSet.
func (s *syncer) rolloutRecreate(ctx context.Context, rss []*appsv1.ReplicaSet) error {
	// Do not create the new ReplicaSet yet: it must not start before the
	// old pods are gone.
	newRS, oldRSs, err := s.replicaSetsAndSyncRevision(ctx, rss, false)
	if err != nil {
		return err
	}
	allRSs := append(slices.Clone(oldRSs), newRS)

	scaledDown := false
	for _, rs := range activeReplicaSets(oldRSs) {
		scaled, _, err := s.scaleReplicaSet(ctx, rs, 0, false)
		if err != nil {
			return err
		}
		scaledDown = scaledDown || scaled
	}
	if scaledDown {
		return s.syncRolloutStatus(ctx, allRSs, newRS)
	}
	if oldPodsRunning(newRS, oldRSs, s.pods) {
		return s.syncRolloutStatus(ctx, allRSs, newRS)
	}

	if newRS == nil {
		if newRS, oldRSs, err = s.replicaSetsAndSyncRevision(ctx, rss, true); err != nil {
			return err
		}
		allRSs = append(slices.Clone(oldRSs), newRS)
	}
	if _, _, err := s.scaleReplicaSet(ctx, newRS, replicas(s.d), false); err != nil {
		return err
	}
	if Complete(s.d) {
		if err := s.cleanup(ctx, oldRSs); err != nil {
			return err
		}
	}
	return s.syncRolloutStatus(ctx, allRSs, newRS)
}

// rollbackTo returns the revision the deprecated rollbackTo annotation
// (deprecated.deployment.rollback.to, set by old clients of
// extensions/v1beta1 and apps/v1beta1) asks for, or nil. An unparseable
// value is ignored, as by kcm.
func rollbackTo(d *appsv1.Deployment) *int64 {
	v := d.Annotations[appsv1.DeprecatedRollbackTo]
	if v == "" {
		return nil
	}
	rev, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil
	}
	return &rev
}

// rollback handles the deprecated rollbackTo annotation: the Deployment
// takes the template (and annotations) of the ReplicaSet with the asked
// revision (0: the previous one), and the annotation is cleared in the
// same update. The rollout itself then happens like any template change,
// reusing the old ReplicaSet with a new revision. Today's clients (kubectl
// rollout undo) write the old template themselves.
func (s *syncer) rollback(ctx context.Context, rss []*appsv1.ReplicaSet) error {
	newRS, oldRSs, err := s.replicaSetsAndSyncRevision(ctx, rss, true)
	if err != nil {
		return err
	}
	allRSs := append(slices.Clone(oldRSs), newRS)
	target := *rollbackTo(s.d)
	if target == 0 {
		if target = lastRevision(allRSs); target == 0 {
			s.r.events.Eventf(s.d, corev1.EventTypeWarning, reasonRollbackRevisionNotFound, "%s", "Unable to find last revision.")
			return s.clearRollbackTo(ctx)
		}
	}
	for _, rs := range allRSs {
		if rs == nil {
			continue
		}
		v, err := revision(rs)
		if err != nil || v != target {
			continue
		}
		if equalIgnoreHash(&s.d.Spec.Template, &rs.Spec.Template) {
			s.r.events.Eventf(s.d, corev1.EventTypeWarning, reasonRollbackTemplateUnchanged,
				"The rollback revision contains the same template as current deployment %q", s.d.Name)
			return s.clearRollbackTo(ctx)
		}
		s.d.Spec.Template.ObjectMeta = *rs.Spec.Template.ObjectMeta.DeepCopy()
		s.d.Spec.Template.Spec = *rs.Spec.Template.Spec.DeepCopy()
		delete(s.d.Spec.Template.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
		setDeploymentAnnotationsTo(s.d, rs)
		if err := s.clearRollbackTo(ctx); err != nil {
			return err
		}
		s.r.events.Eventf(s.d, corev1.EventTypeNormal, reasonRollbackDone, "%s",
			fmt.Sprintf("Rolled back deployment %q to revision %d", s.d.Name, target))
		return nil
	}
	s.r.events.Eventf(s.d, corev1.EventTypeWarning, reasonRollbackRevisionNotFound, "%s", "Unable to find the revision to rollback to.")
	return s.clearRollbackTo(ctx)
}

func (s *syncer) clearRollbackTo(ctx context.Context) error {
	delete(s.d.Annotations, appsv1.DeprecatedRollbackTo)
	return s.update(ctx)
}
