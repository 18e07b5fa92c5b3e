package informer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// DeltaType says what happened to an object.
type DeltaType uint8

const (
	// Added: the watch reported a new object.
	Added DeltaType = iota + 1
	// Updated: the watch reported a changed object.
	Updated
	// Deleted: the object is gone. When the delete was inferred from a relist
	// rather than seen on the watch, the delta's FinalStateUnknown is set.
	Deleted
	// Replaced: the object was in a full list (the first list or a relist).
	Replaced
	// Sync: a periodic resync re-delivered the cached object unchanged.
	Sync
)

func (t DeltaType) String() string {
	switch t {
	case Added:
		return "Added"
	case Updated:
		return "Updated"
	case Deleted:
		return "Deleted"
	case Replaced:
		return "Replaced"
	case Sync:
		return "Sync"
	}
	return fmt.Sprintf("DeltaType(%d)", uint8(t))
}

// Delta is one change to one object.
type Delta[T Object] struct {
	Type DeltaType
	// Object is the object after the change; for Deleted, the last state
	// seen (the final state, unless FinalStateUnknown).
	Object T
	// FinalStateUnknown is only ever set on a Deleted delta. It means the
	// object vanished while the watch was down, so Object is the last state
	// the cache knew, not the state it had when it was deleted.
	FinalStateUnknown bool
}

// shrinkAbove: a drained queue or map that grew beyond this many entries is
// replaced by an empty one, returning a relist's memory.
const shrinkAbove = 1024

// ErrRequeue, returned (possibly wrapped) by a [PopFunc], puts the popped
// deltas back into the queue, ahead of any deltas for the same key that
// arrived meanwhile.
var ErrRequeue = errors.New("informer: requeue")

// ErrFIFOClosed is returned by [DeltaFIFO.Pop] once the queue is closed and
// empty.
var ErrFIFOClosed = errors.New("informer: DeltaFIFO closed")

// PopFunc processes the deltas of one key, oldest first. isInInitialList
// reports that the deltas were popped before the FIFO had synced.
type PopFunc[T Object] func(key string, deltas []Delta[T], isInInitialList bool) error

// KnownObjects is what a [DeltaFIFO] needs from the cache its consumer
// fills: a relist compares against it to find deletions, and a resync
// re-delivers its objects. [Indexer] implements it.
type KnownObjects[T Object] interface {
	ListKeys() []string
	Get(key string) (T, bool)
}

var _ KnownObjects[Object] = (*Indexer[Object])(nil)

// knownHas is an optional capability of KnownObjects: telling whether a key
// is known without producing its object (which a compact [Indexer] would
// decode).
type knownHas interface {
	has(key string) bool
}

// DeltaFIFOOptions configures [NewDeltaFIFO]. The zero value is valid.
type DeltaFIFOOptions[T Object] struct {
	// KnownObjects is the cache filled from the popped deltas. Without it,
	// Resync does nothing and a relist can only report deletions of keys
	// still queued.
	KnownObjects KnownObjects[T]
	// Transform, if set, is applied to every object entering the queue
	// through Add, Update, Delete and Replace (not to Sync deltas, whose
	// objects come from KnownObjects and were transformed already). It may
	// return obj modified in place: the object is not shared yet. An error
	// rejects the object and is returned to the caller.
	Transform func(obj T) (T, error)
}

// DeltaFIFO is a producer/consumer queue of per-object changes. A Reflector
// produces (Add, Update, Delete, Replace, Resync); one consumer pops.
//
// Guarantees:
//   - A key is queued at most once; its deltas accumulate in arrival order
//     and are popped together, oldest first.
//   - Two consecutive Deleted deltas for a key collapse into one, keeping the
//     one with a known final state.
//   - Replace delivers each listed object as Replaced and, for each key that
//     is queued or in KnownObjects but not in the list, a Deleted delta with
//     FinalStateUnknown set.
//   - The process function runs with the queue locked, so KnownObjects stays
//     consistent with what Replace and Resync see. It must not call back into
//     the DeltaFIFO.
//   - Synced is closed once the items of the first Replace (or the first
//     Add/Update/Delete, if that comes first) have all been popped.
//
// Per-object delivery order is identical to client-go's DeltaFIFO (with
// EmitDeltaTypeReplaced); so is the order across keys, except that the
// deletions a Replace infers, and the keys a Resync queues, are queued in an
// unspecified order (client-go too takes them from map iteration).
type DeltaFIFO[T Object] struct {
	mu sync.Mutex
	// items holds the pending deltas per key; a key is in items iff it is
	// in queue. Guarded by mu.
	items map[string][]Delta[T]
	// queue holds keys in first-arrival order, from head onward. Guarded by mu.
	queue []string
	head  int
	// itemsPeak is the most keys items has held since it was last
	// replaced. Guarded by mu.
	itemsPeak int
	// populated: something was added or a Replace happened. initialCount:
	// items of the first Replace still to pop. Guarded by mu.
	populated    bool
	initialCount int
	synced       chan struct{}
	syncedClosed bool
	closed       bool
	// signal has room for one wake-up; it is sent to when the queue gains
	// an item or is closed.
	signal chan struct{}

	known     KnownObjects[T]
	knownHas  knownHas // known, if it implements knownHas
	transform func(T) (T, error)
}

// NewDeltaFIFO returns an empty DeltaFIFO.
func NewDeltaFIFO[T Object](opts DeltaFIFOOptions[T]) *DeltaFIFO[T] {
	f := &DeltaFIFO[T]{
		items:     map[string][]Delta[T]{},
		synced:    make(chan struct{}),
		signal:    make(chan struct{}, 1),
		known:     opts.KnownObjects,
		transform: opts.Transform,
	}
	f.knownHas, _ = opts.KnownObjects.(knownHas)
	return f
}

// Synced is closed once the first list has been popped; see [DeltaFIFO].
func (f *DeltaFIFO[T]) Synced() <-chan struct{} { return f.synced }

// HasSynced reports whether Synced is closed.
func (f *DeltaFIFO[T]) HasSynced() bool {
	select {
	case <-f.synced:
		return true
	default:
		return false
	}
}

// Len returns the number of keys queued.
func (f *DeltaFIFO[T]) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.queue) - f.head
}

// Close wakes Pop, which returns ErrFIFOClosed once the queue is empty.
func (f *DeltaFIFO[T]) Close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.wake()
}

func (f *DeltaFIFO[T]) wake() {
	select {
	case f.signal <- struct{}{}:
	default:
	}
}

func (f *DeltaFIFO[T]) markPopulatedLocked() {
	f.populated = true
	f.checkSyncedLocked()
}

func (f *DeltaFIFO[T]) checkSyncedLocked() {
	if f.populated && f.initialCount == 0 && !f.syncedClosed {
		f.syncedClosed = true
		close(f.synced)
	}
}

// Add queues an Added delta.
func (f *DeltaFIFO[T]) Add(obj T) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.markPopulatedLocked()
	return f.queueLocked(KeyOf(obj), Delta[T]{Type: Added, Object: obj}, true)
}

// Update queues an Updated delta.
func (f *DeltaFIFO[T]) Update(obj T) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.markPopulatedLocked()
	return f.queueLocked(KeyOf(obj), Delta[T]{Type: Updated, Object: obj}, true)
}

// Delete queues a Deleted delta, unless the key is neither queued nor known
// (a delete of something never seen is dropped).
func (f *DeltaFIFO[T]) Delete(obj T) error {
	key := KeyOf(obj)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.markPopulatedLocked()
	if _, queued := f.items[key]; !queued {
		switch {
		case f.known == nil:
			return nil
		case f.knownHas != nil:
			if !f.knownHas.has(key) {
				return nil
			}
		default:
			if _, known := f.known.Get(key); !known {
				return nil
			}
		}
	}
	return f.queueLocked(key, Delta[T]{Type: Deleted, Object: obj}, true)
}

// queueLocked appends d to the deltas of key, transforming its object if
// transform is set and the FIFO has a Transform.
func (f *DeltaFIFO[T]) queueLocked(key string, d Delta[T], transform bool) error {
	if transform && f.transform != nil {
		obj, err := f.transform(d.Object)
		if err != nil {
			return fmt.Errorf("informer: transform %q: %w", key, err)
		}
		d.Object = obj
	}
	old, queued := f.items[key]
	deltas := appendDelta(old, d)
	if !queued {
		f.queue = append(f.queue, key)
		f.items[key] = deltas
		f.itemsPeak = max(f.itemsPeak, len(f.items))
		f.wake()
		return nil
	}
	f.items[key] = deltas
	return nil
}

// appendDelta appends d, collapsing two consecutive deletes into one: the
// newer one if the older has an unknown final state, else the older one.
func appendDelta[T Object](deltas []Delta[T], d Delta[T]) []Delta[T] {
	if n := len(deltas); n > 0 && d.Type == Deleted && deltas[n-1].Type == Deleted {
		if deltas[n-1].FinalStateUnknown {
			deltas[n-1] = d
		}
		return deltas
	}
	return append(deltas, d)
}

// Replace queues a Replaced delta for each object in list and a Deleted
// delta with FinalStateUnknown for each key queued or known but not listed.
// resourceVersion is the list's; the DeltaFIFO does not use it.
func (f *DeltaFIFO[T]) Replace(list []T, resourceVersion string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var knownKeys []string
	if f.known != nil {
		knownKeys = f.known.ListKeys()
	}
	// Deletions are inferred from keys queued or known; with neither (the
	// first list), the listed set is not needed.
	var listed map[string]struct{}
	if len(f.items) > 0 || len(knownKeys) > 0 {
		listed = make(map[string]struct{}, len(list))
	} else {
		// Size the queue for the list rather than grow it step by step.
		f.items = make(map[string][]Delta[T], len(list))
		f.queue = slices.Grow(f.queue, len(list))
	}
	for _, obj := range list {
		key := KeyOf(obj)
		if listed != nil {
			listed[key] = struct{}{}
		}
		if err := f.queueLocked(key, Delta[T]{Type: Replaced, Object: obj}, true); err != nil {
			return err
		}
	}
	if listed == nil {
		if !f.populated {
			f.populated = true
			f.initialCount = len(f.queue) - f.head
			f.checkSyncedLocked()
		}
		return nil
	}
	deletions := 0
	// Keys queued but not listed, in queue order.
	for _, key := range f.queue[f.head:] {
		if _, ok := listed[key]; ok {
			continue
		}
		deltas := f.items[key]
		last := deltas[len(deltas)-1]
		f.items[key] = appendDelta(deltas, Delta[T]{Type: Deleted, Object: last.Object, FinalStateUnknown: true})
		deletions++
	}
	if f.known != nil {
		for _, key := range knownKeys {
			if _, ok := listed[key]; ok {
				continue
			}
			if len(f.items[key]) > 0 {
				continue
			}
			obj, ok := f.known.Get(key)
			if !ok {
				// Only possible if KnownObjects is changed behind the
				// FIFO's back; there is no object to report.
				continue
			}
			deletions++
			if err := f.queueLocked(key, Delta[T]{Type: Deleted, Object: obj, FinalStateUnknown: true}, false); err != nil {
				return err
			}
		}
	}
	if !f.populated {
		f.populated = true
		f.initialCount = len(listed) + deletions
		f.checkSyncedLocked()
	}
	return nil
}

// Resync queues a Sync delta for each known object that has no pending
// deltas.
func (f *DeltaFIFO[T]) Resync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.known == nil {
		return nil
	}
	for _, key := range f.known.ListKeys() {
		if len(f.items[key]) > 0 {
			continue
		}
		obj, ok := f.known.Get(key)
		if !ok {
			continue
		}
		if err := f.queueLocked(key, Delta[T]{Type: Sync, Object: obj}, false); err != nil {
			return err
		}
	}
	return nil
}

// Pop waits for a key, removes it with its deltas and calls process with
// them while holding the queue's lock. It returns process's error; if that
// error is [ErrRequeue] (or wraps it), the deltas are queued again before
// any that arrived meanwhile. Pop returns ctx.Err() when ctx ends and
// ErrFIFOClosed when the queue is closed and empty.
func (f *DeltaFIFO[T]) Pop(ctx context.Context, process PopFunc[T]) error {
	for {
		f.mu.Lock()
		if f.head < len(f.queue) {
			break
		}
		closed := f.closed
		f.mu.Unlock()
		if closed {
			f.wake() // let other poppers see it too
			return ErrFIFOClosed
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-f.signal:
		}
	}
	defer f.mu.Unlock()
	isInInitialList := !f.syncedClosed
	key := f.queue[f.head]
	var zero string
	f.queue[f.head] = zero
	f.head++
	if f.head == len(f.queue) {
		f.queue, f.head = f.queue[:0], 0
		if cap(f.queue) > shrinkAbove {
			// A burst (a relist) grew the queue; Go maps and slices never
			// shrink, so let the burst's memory go once it is drained.
			f.queue = nil
		}
	} else {
		if f.head > 1024 && f.head*2 >= len(f.queue) {
			n := copy(f.queue, f.queue[f.head:])
			clear(f.queue[n:])
			f.queue, f.head = f.queue[:n], 0
		}
		f.wake() // more to pop: pass the wake-up on
	}
	if f.initialCount > 0 {
		f.initialCount--
		f.checkSyncedLocked()
	}
	deltas := f.items[key]
	delete(f.items, key)
	if len(f.items) == 0 && f.itemsPeak > shrinkAbove {
		f.items, f.itemsPeak = map[string][]Delta[T]{}, 0
	}
	err := process(key, deltas, isInInitialList)
	if err != nil && errors.Is(err, ErrRequeue) {
		f.requeueLocked(key, deltas)
	}
	return err
}

func (f *DeltaFIFO[T]) requeueLocked(key string, deltas []Delta[T]) {
	newer, queued := f.items[key]
	if !queued {
		f.items[key] = deltas
		f.itemsPeak = max(f.itemsPeak, len(f.items))
		f.queue = append(f.queue, key)
		f.wake()
		return
	}
	merged := deltas
	for _, d := range newer {
		merged = appendDelta(merged, d)
	}
	f.items[key] = merged
}
