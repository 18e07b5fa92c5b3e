package reconcile

import (
	"maps"

	"github.com/capstan-io/capstan/informer"
)

// EventType is the kind of change an Event reports.
type EventType uint8

const (
	// EventCreate: the object appeared (including the initial list).
	EventCreate EventType = iota + 1
	// EventUpdate: the object changed, or was re-delivered by a resync
	// (Old and Object then have the same resourceVersion).
	EventUpdate
	// EventDelete: the object is gone.
	EventDelete
)

// Event is what a Predicate judges. Objects are shared with the cache and
// must not be modified.
type Event[T informer.Object] struct {
	Type EventType
	// Object is the object after the change (the last known state for a
	// delete).
	Object T
	// Old is the object before an update; the zero T otherwise.
	Old T
	// InInitialList marks a create from the informer's initial list.
	InInitialList bool
	// FinalStateUnknown marks a delete inferred from a relist: Object is the
	// last state seen, not the final one.
	FinalStateUnknown bool
}

// Predicate decides whether an event should cause a reconcile. The
// built-in predicates are generic functions that can be passed without
// naming their type, e.g. reconcile.For[*corev1.Pod](reconcile.GenerationChanged).
type Predicate[T informer.Object] func(ev Event[T]) bool

// GenerationChanged passes creates, deletes and updates that change
// metadata.generation (the spec, for types with a status subresource).
// Resyncs and status-only updates are filtered out.
func GenerationChanged[T informer.Object](ev Event[T]) bool {
	return ev.Type != EventUpdate || ev.Old.GetGeneration() != ev.Object.GetGeneration()
}

// LabelsChanged passes creates, deletes and updates that change labels.
func LabelsChanged[T informer.Object](ev Event[T]) bool {
	return ev.Type != EventUpdate || !maps.Equal(ev.Old.GetLabels(), ev.Object.GetLabels())
}

// AnnotationsChanged passes creates, deletes and updates that change
// annotations.
func AnnotationsChanged[T informer.Object](ev Event[T]) bool {
	return ev.Type != EventUpdate || !maps.Equal(ev.Old.GetAnnotations(), ev.Object.GetAnnotations())
}

// ResourceVersionChanged passes creates, deletes and real updates,
// filtering out resyncs.
func ResourceVersionChanged[T informer.Object](ev Event[T]) bool {
	return ev.Type != EventUpdate || ev.Old.GetResourceVersion() != ev.Object.GetResourceVersion()
}

// Any passes an event when at least one of preds does.
func Any[T informer.Object](preds ...Predicate[T]) Predicate[T] {
	return func(ev Event[T]) bool {
		for _, p := range preds {
			if p(ev) {
				return true
			}
		}
		return false
	}
}

// Not inverts p.
func Not[T informer.Object](p Predicate[T]) Predicate[T] {
	return func(ev Event[T]) bool { return !p(ev) }
}
