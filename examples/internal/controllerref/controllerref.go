// Package controllerref decides which objects a controller controls, with
// kube-controller-manager's ControllerRefManager semantics: a controller
// adopts the orphans its selector matches and releases the objects it
// controls that its selector no longer matches. The ReplicaSet controller
// claims Pods with it, the Deployment controller ReplicaSets.
//
// Guarantees (those of upstream's ClaimObject):
//   - An object controlled by another owner (a controller reference with
//     another UID) is never touched nor returned.
//   - An orphan is adopted only if the selector matches it, it is in the
//     owner's namespace, neither it nor the owner is being deleted, and
//     CanAdopt (a fresh read of the owner, typically) agrees. CanAdopt runs
//     at most once per Claim, just before the first adoption.
//   - An owned object the selector no longer matches is released, unless
//     the owner is being deleted (the garbage collector then takes them
//     together).
//   - An adoption or release that fails with NotFound means the object is
//     gone: it is skipped silently. Any other failure is returned, joined
//     with the others, and the object is left out of the result; the caller
//     retries on a fresher cache.
//
// The patches AdoptPatch and ReleasePatch build carry the object's UID, so
// a patch never lands on a newer object that reuses the name: the API
// server refuses it as Invalid (the UID is immutable).
package controllerref

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/capstan-io/capstan/informer"
)

// Claimer claims objects of type T for one owner. Build one per reconcile
// (it captures the owner as the cache showed it); it is not safe for
// concurrent Claims.
type Claimer[T informer.Object] struct {
	// Owner is the controller (a ReplicaSet, a Deployment). Required.
	Owner metav1.Object
	// OwnerGVK is the owner's kind, for error messages and patches.
	OwnerGVK schema.GroupVersionKind
	// Selector picks the objects the owner wants. Required; an empty
	// selector matches everything (callers normally refuse those earlier,
	// as upstream does).
	Selector labels.Selector
	// CanAdopt is called at most once per Claim, before the first
	// adoption; an error stops every adoption of this Claim (releases go
	// on). Use RecheckOwner to build it from a live read of the owner.
	// Nil allows adoption.
	CanAdopt func(ctx context.Context) error
	// Adopt and Release patch the object's ownerReferences (with the UID
	// precondition, see AdoptPatch and ReleasePatch). Required.
	Adopt   func(ctx context.Context, obj T) error
	Release func(ctx context.Context, obj T) error

	canAdoptDone bool
	canAdoptErr  error
}

// Decision is what Claim does with one object.
type Decision int

const (
	// Ignore: not ours and not to be adopted (another controller's, not
	// matching, being deleted, or our owner is being deleted).
	Ignore Decision = iota
	// Keep: already controlled by the owner and matching.
	Keep
	// Adopt: an orphan to adopt.
	Adopt
	// Release: controlled by the owner but no longer matching.
	Release
)

func (d Decision) String() string {
	switch d {
	case Keep:
		return "keep"
	case Adopt:
		return "adopt"
	case Release:
		return "release"
	default:
		return "ignore"
	}
}

// Decide says what a Claim by owner with selector does with obj, without
// side effects.
func Decide(owner metav1.Object, selector labels.Selector, obj metav1.Object) Decision {
	matches := selector != nil && selector.Matches(labels.Set(obj.GetLabels()))
	if ref := metav1.GetControllerOfNoCopy(obj); ref != nil {
		switch {
		case ref.UID != owner.GetUID():
			return Ignore
		case matches:
			return Keep
		case owner.GetDeletionTimestamp() != nil:
			// Being deleted: leave our objects to the garbage collector.
			return Ignore
		default:
			return Release
		}
	}
	switch {
	case owner.GetDeletionTimestamp() != nil, !matches, obj.GetDeletionTimestamp() != nil:
		return Ignore
	case owner.GetNamespace() != "" && owner.GetNamespace() != obj.GetNamespace():
		return Ignore
	default:
		return Adopt
	}
}

// Claim returns the objects the owner controls after adopting matching
// orphans and releasing owned non-matching ones, in the order of objs.
// Adopted objects are returned as given (their ownerReferences in objs are
// the old ones). Errors of several objects are joined; the objects claimed
// so far are returned with them.
func (c *Claimer[T]) Claim(ctx context.Context, objs []T) ([]T, error) {
	if c.Owner == nil || c.Adopt == nil || c.Release == nil {
		return nil, errors.New("controllerref: Claimer needs Owner, Adopt and Release")
	}
	var claimed []T
	var errs []error
	for _, obj := range objs {
		switch Decide(c.Owner, c.Selector, obj) {
		case Keep:
			claimed = append(claimed, obj)
		case Release:
			if err := c.Release(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("releasing %q from %s: %w", informer.KeyOf(obj), c.ownerRef(), err))
			}
		case Adopt:
			if err := c.canAdopt(ctx); err != nil {
				errs = append(errs, fmt.Errorf("cannot adopt %q: %w", informer.KeyOf(obj), err))
				continue
			}
			if err := c.Adopt(ctx, obj); err != nil {
				if !apierrors.IsNotFound(err) {
					errs = append(errs, fmt.Errorf("adopting %q for %s: %w", informer.KeyOf(obj), c.ownerRef(), err))
				}
				continue
			}
			claimed = append(claimed, obj)
		}
	}
	return claimed, errors.Join(errs...)
}

func (c *Claimer[T]) canAdopt(ctx context.Context) error {
	if !c.canAdoptDone {
		c.canAdoptDone = true
		if c.CanAdopt != nil {
			c.canAdoptErr = c.CanAdopt(ctx)
		}
	}
	return c.canAdoptErr
}

func (c *Claimer[T]) ownerRef() string {
	kind := c.OwnerGVK.Kind
	if kind == "" {
		kind = "owner"
	}
	return fmt.Sprintf("%s %q", kind, informer.KeyOf(c.Owner))
}

// RecheckOwner returns a CanAdopt that reads the owner afresh with get
// (from the API server, never a cache) and refuses adoption if it is gone,
// was replaced by a newer object of the same name (another UID), or is
// being deleted: upstream's RecheckDeletionTimestamp guard.
func RecheckOwner(owner metav1.Object, kind string, get func(ctx context.Context) (metav1.Object, error)) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		ref := fmt.Sprintf("%s %q", kind, informer.KeyOf(owner))
		fresh, err := get(ctx)
		if err != nil {
			return fmt.Errorf("rechecking %s before adoption: %w", ref, err)
		}
		if fresh.GetUID() != owner.GetUID() {
			return fmt.Errorf("original %s is gone: got uid %s, want %s", ref, fresh.GetUID(), owner.GetUID())
		}
		if ts := fresh.GetDeletionTimestamp(); ts != nil {
			return fmt.Errorf("%s has just been deleted at %s", ref, ts.UTC().Format("2006-01-02T15:04:05Z"))
		}
		return nil
	}
}

// Patch bodies: strategic merge patches, which merge ownerReferences by
// UID, so other owners' references are kept. metadata.uid is the
// precondition: a patch meant for an older object of the same name fails
// as Invalid.
type patchMeta struct {
	OwnerReferences []any     `json:"ownerReferences"`
	UID             types.UID `json:"uid"`
}

type patchBody struct {
	Metadata patchMeta `json:"metadata"`
}

// AdoptPatch is the strategic merge patch (types.StrategicMergePatchType)
// that makes the owner with gvk, name and uid the controller of the object
// with objUID (controller and blockOwnerDeletion true), if the object still
// has that UID.
func AdoptPatch(owner metav1.Object, gvk schema.GroupVersionKind, objUID types.UID) ([]byte, error) {
	t := true
	ref := metav1.OwnerReference{
		APIVersion:         gvk.GroupVersion().String(),
		Kind:               gvk.Kind,
		Name:               owner.GetName(),
		UID:                owner.GetUID(),
		Controller:         &t,
		BlockOwnerDeletion: &t,
	}
	return json.Marshal(patchBody{Metadata: patchMeta{OwnerReferences: []any{ref}, UID: objUID}})
}

// ReleasePatch is the strategic merge patch (types.StrategicMergePatchType)
// that removes the owner reference with ownerUID from the object with
// objUID, if the object still has that UID. The API server answers Invalid
// if the UID changed (the object was replaced) or no such reference is
// left; callers treat both as released.
func ReleasePatch(ownerUID, objUID types.UID) ([]byte, error) {
	del := map[string]any{"$patch": "delete", "uid": ownerUID}
	return json.Marshal(patchBody{Metadata: patchMeta{OwnerReferences: []any{del}, UID: objUID}})
}
