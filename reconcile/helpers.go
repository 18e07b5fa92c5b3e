package reconcile

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/capstan-io/capstan/informer"
)

// AlreadyOwnedError is returned by SetControllerReference when the object
// already has a different controller owner.
type AlreadyOwnedError struct {
	// Object names the dependent, "namespace/name".
	Object string
	// Owner is its existing controller reference.
	Owner metav1.OwnerReference
}

func (e *AlreadyOwnedError) Error() string {
	return fmt.Sprintf("reconcile: %q is already controlled by %s %q", e.Object, e.Owner.Kind, e.Owner.Name)
}

// SetControllerReference makes owner the controller of obj: it adds (or
// updates) an owner reference with controller and blockOwnerDeletion set,
// so the garbage collector deletes obj with owner and Owns watches map obj
// to owner. The kind of owner comes from scheme.
//
// It refuses, with an error naming both objects:
//   - an obj controlled by another owner (an *AlreadyOwnedError);
//   - an owner that was not created yet (no UID);
//   - an owner the garbage collector would not honour: a namespaced owner
//     of a cluster-scoped obj, or an owner in another namespace.
func SetControllerReference(owner informer.Object, obj metav1.Object, scheme *runtime.Scheme) error {
	ref, err := ownerReference(owner, obj, scheme)
	if err != nil {
		return err
	}
	ref.Controller, ref.BlockOwnerDeletion = ptrTo(true), ptrTo(true)
	refs := obj.GetOwnerReferences()
	for _, r := range refs {
		if r.Controller != nil && *r.Controller && !sameOwner(r, ref) {
			return &AlreadyOwnedError{Object: informer.KeyOf(obj), Owner: r}
		}
	}
	obj.SetOwnerReferences(upsertOwnerRef(refs, ref, false))
	return nil
}

// SetOwnerReference adds (or updates) a plain owner reference to owner on
// obj: the garbage collector deletes obj once every owner is gone, and the
// reference does not make owner a controller. An existing reference to the
// same owner keeps its controller and blockOwnerDeletion flags. The checks
// are SetControllerReference's, less the one on controllers.
func SetOwnerReference(owner informer.Object, obj metav1.Object, scheme *runtime.Scheme) error {
	ref, err := ownerReference(owner, obj, scheme)
	if err != nil {
		return err
	}
	obj.SetOwnerReferences(upsertOwnerRef(obj.GetOwnerReferences(), ref, true))
	return nil
}

// RemoveOwnerReference removes obj's owner references to owner, reporting
// whether there was one. The owner's kind comes from scheme.
func RemoveOwnerReference(owner informer.Object, obj metav1.Object, scheme *runtime.Scheme) (bool, error) {
	gvk, err := kindOf(owner, scheme)
	if err != nil {
		return false, err
	}
	target := metav1.OwnerReference{APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind, Name: owner.GetName()}
	refs := obj.GetOwnerReferences()
	kept := slices.DeleteFunc(slices.Clone(refs), func(r metav1.OwnerReference) bool { return sameOwner(r, target) })
	if len(kept) == len(refs) {
		return false, nil
	}
	obj.SetOwnerReferences(kept)
	return true, nil
}

func ownerReference(owner informer.Object, obj metav1.Object, scheme *runtime.Scheme) (metav1.OwnerReference, error) {
	if owner == nil || obj == nil {
		return metav1.OwnerReference{}, errors.New("reconcile: owner reference: owner and object are required")
	}
	if scheme == nil {
		return metav1.OwnerReference{}, errors.New("reconcile: owner reference: scheme is nil")
	}
	gvk, err := kindOf(owner, scheme)
	if err != nil {
		return metav1.OwnerReference{}, err
	}
	ownerRef := fmt.Sprintf("%s %q", gvk.Kind, informer.KeyOf(owner))
	if owner.GetName() == "" || owner.GetUID() == "" {
		return metav1.OwnerReference{}, fmt.Errorf("reconcile: owner reference to %s on %q: the owner has no name or uid (create it first)", ownerRef, informer.KeyOf(obj))
	}
	if ns := owner.GetNamespace(); ns != "" {
		switch objNS := obj.GetNamespace(); {
		case objNS == "":
			return metav1.OwnerReference{}, fmt.Errorf("reconcile: owner reference to %s on %q: a cluster-scoped object cannot have a namespaced owner", ownerRef, informer.KeyOf(obj))
		case objNS != ns:
			return metav1.OwnerReference{}, fmt.Errorf("reconcile: owner reference to %s on %q: owners must be in the object's namespace (cross-namespace owner references are not allowed)", ownerRef, informer.KeyOf(obj))
		}
	}
	return metav1.OwnerReference{
		APIVersion: gvk.GroupVersion().String(),
		Kind:       gvk.Kind,
		Name:       owner.GetName(),
		UID:        owner.GetUID(),
	}, nil
}

func kindOf(obj runtime.Object, scheme *runtime.Scheme) (schema.GroupVersionKind, error) {
	gvks, _, err := scheme.ObjectKinds(obj)
	if err != nil {
		return schema.GroupVersionKind{}, fmt.Errorf("reconcile: owner reference: kind of %T: %w", obj, err)
	}
	return gvks[0], nil
}

// sameOwner compares references by group, kind and name: the version of
// an owner's API does not make it another owner.
func sameOwner(a, b metav1.OwnerReference) bool {
	ga, errA := schema.ParseGroupVersion(a.APIVersion)
	gb, errB := schema.ParseGroupVersion(b.APIVersion)
	if errA != nil || errB != nil {
		return false
	}
	return ga.Group == gb.Group && a.Kind == b.Kind && a.Name == b.Name
}

// upsertOwnerRef returns refs with ref replacing the reference to the same
// owner, or appended. keepFlags keeps the replaced reference's controller
// and blockOwnerDeletion flags.
func upsertOwnerRef(refs []metav1.OwnerReference, ref metav1.OwnerReference, keepFlags bool) []metav1.OwnerReference {
	out := slices.Clone(refs)
	for i, r := range out {
		if sameOwner(r, ref) {
			if keepFlags {
				ref.Controller, ref.BlockOwnerDeletion = r.Controller, r.BlockOwnerDeletion
			}
			out[i] = ref
			return out
		}
	}
	return append(out, ref)
}

func ptrTo[V any](v V) *V { return &v }

// AddFinalizer adds finalizer to obj unless it has it, reporting whether
// it changed obj.
func AddFinalizer(obj metav1.Object, finalizer string) bool {
	fs := obj.GetFinalizers()
	if slices.Contains(fs, finalizer) {
		return false
	}
	obj.SetFinalizers(append(slices.Clone(fs), finalizer))
	return true
}

// RemoveFinalizer removes every occurrence of finalizer from obj,
// reporting whether it changed obj.
func RemoveFinalizer(obj metav1.Object, finalizer string) bool {
	fs := obj.GetFinalizers()
	kept := slices.DeleteFunc(slices.Clone(fs), func(f string) bool { return f == finalizer })
	if len(kept) == len(fs) {
		return false
	}
	obj.SetFinalizers(kept)
	return true
}

// HasFinalizer reports whether obj has finalizer.
func HasFinalizer(obj metav1.Object, finalizer string) bool {
	return slices.Contains(obj.GetFinalizers(), finalizer)
}

// OperationResult says what CreateOrUpdate did.
type OperationResult string

const (
	// Created: the object did not exist and was created.
	Created OperationResult = "created"
	// Updated: the object existed, mutate changed it, and it was updated.
	Updated OperationResult = "updated"
	// Unchanged: the object existed and mutate left it as it was; no write
	// was made.
	Unchanged OperationResult = "unchanged"
)

// CreateOrUpdate makes the object named by obj's namespace and name look
// the way mutate says, and returns it with what was done.
//
// It reads the object from c's cache. If the cache does not hold it,
// mutate is called on obj, which is then created. Otherwise mutate is
// called on a deep copy of the cached object, which is updated only if
// mutate changed it (equality.Semantic.DeepEqual), so a steady state costs
// no API call. mutate must not change the name or namespace.
//
// The object returned is the caller's: the server's answer after a write,
// the mutated copy when Unchanged. On a cache that lags the server the
// write may fail with a Conflict or AlreadyExists error: return it from the
// reconcile, and the retry will find a fresher cache.
func CreateOrUpdate[T informer.Object](ctx context.Context, c *Client[T], obj T, mutate func(T) error) (T, OperationResult, error) {
	var zero T
	if mutate == nil {
		return zero, "", errors.New("reconcile: CreateOrUpdate: mutate is nil")
	}
	ns, name := obj.GetNamespace(), obj.GetName()
	cached, err := c.Get(ctx, ns, name)
	if err != nil && !apierrors.IsNotFound(err) {
		return zero, "", err
	}
	if err != nil { // not found: create
		if err := callMutate(mutate, obj, ns, name, c.gvk.Kind); err != nil {
			return zero, "", err
		}
		out, err := c.Create(ctx, obj, metav1.CreateOptions{})
		if err != nil {
			return zero, "", err
		}
		return out, Created, nil
	}
	cur := cached.DeepCopyObject().(T)
	if err := callMutate(mutate, cur, cached.GetNamespace(), name, c.gvk.Kind); err != nil {
		return zero, "", err
	}
	if equality.Semantic.DeepEqual(cached, cur) {
		return cur, Unchanged, nil
	}
	out, err := c.Update(ctx, cur, metav1.UpdateOptions{})
	if err != nil {
		return zero, "", err
	}
	return out, Updated, nil
}

// callMutate runs mutate on obj and checks it kept the object's identity.
func callMutate[T informer.Object](mutate func(T) error, obj T, ns, name, kind string) error {
	if err := mutate(obj); err != nil {
		return fmt.Errorf("reconcile: CreateOrUpdate %s: mutate: %w", objectRef(kind, ns, name), err)
	}
	if obj.GetNamespace() != ns || obj.GetName() != name {
		return fmt.Errorf("reconcile: CreateOrUpdate %s: mutate changed the object's namespace/name to %q", objectRef(kind, ns, name), informer.KeyOf(obj))
	}
	return nil
}

// Conflict retry backoff: five attempts, 10ms doubling, ±10% jitter, so a
// hot object gets ~150ms of retries before the conflict is returned (and
// the reconcile is retried with the controller's backoff).
const (
	conflictRetrySteps   = 5
	conflictRetryInitial = 10 * time.Millisecond
	conflictRetryJitter  = 0.1
)

// RetryOnConflict calls fn until it returns an error other than a Conflict
// (or nil), retrying Conflicts up to five times with a short, jittered,
// doubling backoff. fn must read the object afresh on each call (from the
// API server with Live, or from a cache it waited on): retrying a write of
// the same stale object conflicts again. It returns fn's last error, or
// ctx's error if ctx ends while waiting.
func RetryOnConflict(ctx context.Context, fn func(ctx context.Context) error) error {
	delay := conflictRetryInitial
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil || !apierrors.IsConflict(err) || attempt == conflictRetrySteps {
			return err
		}
		jittered := time.Duration(float64(delay) * (1 + conflictRetryJitter*(2*rand.Float64()-1)))
		t := time.NewTimer(jittered)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("reconcile: retrying on conflict: %w (last error: %w)", ctx.Err(), err)
		case <-t.C:
		}
		delay *= 2
	}
}
