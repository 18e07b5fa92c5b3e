package workqueue

import (
	"math"
	"math/bits"
)

// delayQueue holds the items waiting for AddAfter. At most one delay per
// item is live: a second AddAfter for an item already waiting keeps the
// earlier deadline (and the higher priority).
//
// Deadlines are kept in a radix heap: a monotone priority queue for integer
// keys that are never below the last key taken out (deadlines are at least
// the time of their AddAfter, which is at least the time of any earlier
// move). An entry goes into the bucket of the highest bit in which its
// deadline differs from last, so every entry of a bucket is earlier than
// every entry of a higher one. Adding is an append to one of a few bucket
// tails; taking out redistributes the lowest bucket into lower ones when
// it falls due. Each move takes an entry to a lower bucket, so it moves at
// most 63 times, and in practice about 8 (delays spread over 1 s, 10 µs
// apart, as in BenchmarkAddAfter), always through sequential memory, where
// a binary or 4-ary heap of tens of thousands of deadlines pays a cache
// miss per level of every sift. A deadline below last (a clock reading
// older than the mover's) counts as last: it is overdue either way.
//
// An earlier deadline for an item already waiting does not move its entry:
// a new entry is added and the old one left behind as stale (lazy
// deletion). index holds each item's live deadline; an entry is live
// exactly when it matches it. Stale entries are dropped as they come out
// or, when they outnumber the live ones, by compact.
//
// delayQueue is not safe for concurrent use; the Queue's dmu guards it.
type delayQueue[T comparable] struct {
	// index maps each waiting item to its live deadline and priority; peak
	// is the most items it has held since it was made.
	index map[T]delayState
	peak  int
	// last is the deadline of the last bucket redistributed (or 0); every
	// entry's deadline is at least last.
	last int64
	// buckets[0] holds the entries due at last; buckets[i], i > 0, those
	// whose deadline first differs from last in bit i-1. mins[i] is the
	// earliest deadline in buckets[i], and bit i of nonEmpty is set when
	// buckets[i] is not empty. Deadlines are below 1<<63, so 64 buckets do.
	buckets  [64][]delayEntry[T]
	mins     [64]int64
	nonEmpty uint64
	// entries counts the entries in buckets, live and stale.
	entries int
}

type delayEntry[T comparable] struct {
	at   int64 // deadline, nanoseconds since the Queue's epoch
	item T
}

type delayState struct {
	at   int64
	prio int32
}

// dueItem is an item whose delay has passed, with its priority.
type dueItem[T comparable] struct {
	item T
	prio int32
}

// compactMin is the number of stale entries below which compact is not
// worth its pass over every entry.
const compactMin = 1024

// len returns the number of waiting items.
func (h *delayQueue[T]) len() int { return len(h.index) }

// minAt returns the earliest deadline, or math.MaxInt64 when empty. The
// earliest entry may be stale, so the next item may in fact be due later.
func (h *delayQueue[T]) minAt() int64 {
	if h.nonEmpty == 0 {
		return math.MaxInt64
	}
	return h.mins[bits.TrailingZeros64(h.nonEmpty)]
}

// add schedules item at deadline at, keeping the earlier deadline and the
// higher priority when the item is already waiting. A deadline below last
// counts as last.
func (h *delayQueue[T]) add(item T, at int64, prio int32) {
	at = max(at, h.last)
	if h.index == nil {
		h.index = make(map[T]delayState)
	}
	st, ok := h.index[item]
	if !ok {
		h.index[item] = delayState{at: at, prio: prio}
		h.peak = max(h.peak, len(h.index))
		h.put(delayEntry[T]{at: at, item: item})
		h.entries++
		return
	}
	if at >= st.at && prio <= st.prio {
		return
	}
	st.prio = max(st.prio, prio)
	if at < st.at {
		// The old entry goes stale.
		st.at = at
		h.put(delayEntry[T]{at: at, item: item})
		h.entries++
	}
	h.index[item] = st
	if stale := h.entries - len(h.index); stale > compactMin && stale > len(h.index) {
		h.compact()
	}
}

// put adds e to its bucket.
func (h *delayQueue[T]) put(e delayEntry[T]) {
	i := bits.Len64(uint64(e.at ^ h.last))
	if h.nonEmpty&(1<<i) == 0 || e.at < h.mins[i] {
		h.mins[i] = e.at
	}
	h.nonEmpty |= 1 << i
	h.buckets[i] = append(h.buckets[i], e)
}

// appendDue takes out the items due at now (deadline <= now), at most
// limit of them, and appends them to dst in deadline order; items with one
// deadline come in the order they were added (or lowered onto it).
func (h *delayQueue[T]) appendDue(now int64, dst []dueItem[T], limit int) []dueItem[T] {
	for n := 0; h.nonEmpty != 0 && n < limit; {
		if h.nonEmpty&1 == 0 {
			j := bits.TrailingZeros64(h.nonEmpty)
			if h.mins[j] > now {
				break
			}
			h.redistribute(j)
		}
		// Every entry of buckets[0] is due at last <= now. Entries with one
		// deadline keep the order they were added in, through every
		// redistribution, so items due at the same instant come out
		// first added, first out.
		b := h.buckets[0]
		k := 0
		for k < len(b) && n < limit {
			e := b[k]
			k++
			if st, ok := h.index[e.item]; ok && st.at == e.at {
				delete(h.index, e.item)
				dst = append(dst, dueItem[T]{item: e.item, prio: st.prio})
				n++
			}
		}
		h.entries -= k
		rest := copy(b, b[k:])
		clear(b[rest:]) // drop the references for the garbage collector
		h.buckets[0] = b[:rest]
		if rest == 0 {
			h.nonEmpty &^= 1
			h.shrink(0)
		}
		if len(h.index) == 0 {
			h.emptied()
		}
	}
	return dst
}

// redistribute empties buckets[j], the lowest non-empty bucket, into lower
// buckets, making its earliest deadline the new last.
func (h *delayQueue[T]) redistribute(j int) {
	b := h.buckets[j]
	h.last = h.mins[j]
	h.buckets[j] = b[:0]
	h.nonEmpty &^= 1 << j
	for _, e := range b {
		h.put(e) // into a bucket below j: e.at and last agree above bit j-1
	}
	clear(b)
	h.shrink(j)
}

// shrink gives the memory of buckets[i], just emptied, back when it is much
// larger than what the queue now holds, so that one burst does not pin it.
func (h *delayQueue[T]) shrink(i int) {
	if c := cap(h.buckets[i]); c > ringShrinkCap && c > 4*h.entries {
		h.buckets[i] = nil
	}
}

// emptied is called when no item is waiting. Stale entries may be left:
// they are dropped now, and large buckets given back. A map never shrinks,
// so an index grown large by a burst is dropped too, to be made anew.
func (h *delayQueue[T]) emptied() {
	if h.entries > 0 {
		h.compact()
	}
	for i := range h.buckets {
		h.shrink(i)
	}
	if h.peak > ringShrinkCap {
		h.index, h.peak = nil, 0
	}
}

// compact drops the stale entries.
func (h *delayQueue[T]) compact() {
	h.nonEmpty, h.entries = 0, 0
	for i, b := range h.buckets {
		live := b[:0]
		for _, e := range b {
			if st, ok := h.index[e.item]; ok && st.at == e.at {
				live = append(live, e)
			}
		}
		clear(b[len(live):])
		h.buckets[i] = live
		h.entries += len(live)
		if len(live) > 0 {
			h.nonEmpty |= 1 << i
			h.mins[i] = live[0].at
			for _, e := range live[1:] {
				h.mins[i] = min(h.mins[i], e.at)
			}
		}
	}
}

// reset drops every entry.
func (h *delayQueue[T]) reset() {
	*h = delayQueue[T]{}
}
