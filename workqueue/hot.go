package workqueue

import (
	"hash/maphash"
	"sync/atomic"
)

// hotCache holds the state of hot items, those added again while already
// dirty, so that a further Add of one can tell it is a no-op without taking
// Queue.mu. With one goroutine adding a few keys over and over while
// workers take them, it is the contended mutex, not the map, that costs:
// its cache line moves between cores on every Add, Get and Done. Reading
// the cache writes nothing, so an Add that finds its item dirty costs a
// hash and a few loads, and the cache lines move only when an item's state
// changes.
//
// The cache is set-associative: an item lives in one of the hotWays ways
// of the stripe its hash picks. Only goroutines holding Queue.mu write it;
// Add reads it holding nothing. A way's item is an immutable hotItem, so it
// can be read without a lock; its state word carries the generation of the
// hotItem it describes, so a reader that loads a way while it is being
// given to another item sees the generations differ and takes the slow
// path.
//
// The cached state of an item is exact, not a hint: it is stored in the
// same Queue.mu critical section as every change of the item's dirty flag
// or priority, before anyone can see the change (a Get returning the item,
// say). So an Add that finds the item dirty at no lower priority is
// ordered before the Get that hands it out next, as if it had taken
// Queue.mu and found the same.
//
// An item is promoted (one small allocation) by an Add that finds it dirty
// under Queue.mu; it is dropped when it leaves the queue, or evicted, round
// robin, when its stripe is full.
type hotCache[T comparable] [hotStripes]hotStripe[T]

const (
	hotStripes = 64
	hotWays    = 4
)

type hotStripe[T comparable] struct {
	ways [hotWays]hotWay[T]
	next int      // the way to evict next when all are in use; under Queue.mu
	_    [64]byte // keeps neighbouring stripes on separate cache lines
}

type hotWay[T comparable] struct {
	item  atomic.Pointer[hotItem[T]] // nil when the way is free
	state atomic.Uint64              // see hotWord
}

type hotItem[T comparable] struct {
	item T
	gen  uint64 // below 1<<31
}

// hotWord packs the state of the hot item of generation gen: the priority
// in the low 32 bits, the dirty flag in bit 32, the generation above.
func hotWord(gen uint64, st itemState) uint64 {
	w := gen<<33 | uint64(uint32(st.prio))
	if st.flags&flagDirty != 0 {
		w |= 1 << 32
	}
	return w
}

func (q *Queue[T]) stripe(c *hotCache[T], item T) *hotStripe[T] {
	return &c[maphash.Comparable(q.hotSeed, item)&(hotStripes-1)]
}

// addHot reports whether an Add of item with prio is a no-op because the
// hot cache has it dirty at a priority no lower (noop), and whether the
// cache has it at all (cached). It takes no lock.
func (q *Queue[T]) addHot(item T, prio int32) (noop, cached bool) {
	s := q.stripe(q.hotCache.Load(), item)
	for i := range s.ways {
		w := &s.ways[i]
		r := w.item.Load()
		if r == nil || r.item != item {
			continue
		}
		st := w.state.Load()
		return st>>33 == r.gen && st&(1<<32) != 0 && prio <= int32(uint32(st)), true
	}
	return false, false
}

// wayLocked returns the way holding item, which is in the hot cache; q.mu
// must be held.
func (q *Queue[T]) wayLocked(item T) *hotWay[T] {
	s := q.stripe(q.hotCache.Load(), item)
	for i := range s.ways {
		if r := s.ways[i].item.Load(); r != nil && r.item == item {
			return &s.ways[i]
		}
	}
	panic("workqueue: hot item not in the hot cache")
}

// promoteHotLocked puts item, in state st, in the hot cache, evicting
// another item of its stripe if need be. q.mu must be held; the caller
// sets st.hot.
func (q *Queue[T]) promoteHotLocked(item T, st itemState) {
	c := q.hotCache.Load()
	if c == nil {
		c = new(hotCache[T])
		q.hotCache.Store(c)
	}
	s := q.stripe(c, item)
	i := 0
	for i < hotWays && s.ways[i].item.Load() != nil {
		i++
	}
	if i == hotWays {
		i = s.next
		s.next = (s.next + 1) % hotWays
		victim := s.ways[i].item.Load().item
		q.slots[q.items[victim]].st.hot = false
	} else {
		q.hot.Add(1)
	}
	q.hotGen++
	gen := q.hotGen & (1<<31 - 1)
	// Readers load the item, then the state: in either order of these
	// stores, one that mixes the old way with the new sees two
	// generations.
	s.ways[i].state.Store(hotWord(gen, st))
	s.ways[i].item.Store(&hotItem[T]{item: item, gen: gen})
}

// syncHotLocked records st as the state of item, which is in the hot
// cache. q.mu must be held.
func (q *Queue[T]) syncHotLocked(item T, st itemState) {
	w := q.wayLocked(item)
	w.state.Store(hotWord(w.item.Load().gen, st))
}

// dropHotLocked removes item, which is leaving the queue (and so is not
// dirty), from the hot cache. q.mu must be held.
func (q *Queue[T]) dropHotLocked(item T) {
	q.wayLocked(item).item.Store(nil)
	q.hot.Add(-1)
}
