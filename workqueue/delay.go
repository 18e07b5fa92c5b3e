package workqueue

import "math"

// delayHeap holds the items waiting for AddAfter. There is at most one entry
// per item: a second AddAfter for an item already waiting keeps the earlier
// deadline (and the higher priority).
//
// Entries live in a slab indexed by int32 so that the heap itself is a slice
// of small values (deadline, slot) and sifting touches no map: the heap
// position of each entry is kept in the slab. Freed slots are reused, so a
// steady stream of AddAfter calls does not allocate.
//
// delayHeap is not safe for concurrent use; the Queue's mutex guards it.
type delayHeap[T comparable] struct {
	slab  []delayEntry[T]
	free  []int32
	heap  []heapNode // 4-ary min-heap on at
	index map[T]int32
}

type delayEntry[T comparable] struct {
	item T
	prio int32
	pos  int32 // index in heap
}

type heapNode struct {
	at   int64 // deadline, nanoseconds since the queue's epoch
	slot int32
}

const heapArity = 4

func (h *delayHeap[T]) len() int { return len(h.heap) }

// minAt returns the earliest deadline, or math.MaxInt64 when empty.
func (h *delayHeap[T]) minAt() int64 {
	if len(h.heap) == 0 {
		return math.MaxInt64
	}
	return h.heap[0].at
}

// add schedules item at deadline at, keeping the earlier deadline and the
// higher priority when the item is already waiting.
func (h *delayHeap[T]) add(item T, at int64, prio int32) {
	if h.index == nil {
		h.index = make(map[T]int32)
	}
	if slot, ok := h.index[item]; ok {
		e := &h.slab[slot]
		e.prio = max(e.prio, prio)
		if at < h.heap[e.pos].at {
			h.heap[e.pos].at = at
			h.up(int(e.pos))
		}
		return
	}
	var slot int32
	if n := len(h.free); n > 0 {
		slot = h.free[n-1]
		h.free = h.free[:n-1]
	} else {
		h.slab = append(h.slab, delayEntry[T]{})
		slot = int32(len(h.slab) - 1)
	}
	pos := len(h.heap)
	h.slab[slot] = delayEntry[T]{item: item, prio: prio, pos: int32(pos)}
	h.heap = append(h.heap, heapNode{at: at, slot: slot})
	h.index[item] = slot
	h.up(pos)
}

// popMin removes the entry with the earliest deadline; h must not be empty.
func (h *delayHeap[T]) popMin() (T, int32) {
	slot := h.heap[0].slot
	e := h.slab[slot]
	last := len(h.heap) - 1
	if last > 0 {
		h.heap[0] = h.heap[last]
		h.slab[h.heap[0].slot].pos = 0
	}
	h.heap = h.heap[:last]
	if last > 0 {
		h.down(0)
	}
	var zero delayEntry[T]
	h.slab[slot] = zero
	h.free = append(h.free, slot)
	delete(h.index, e.item)
	return e.item, e.prio
}

// reset drops every entry.
func (h *delayHeap[T]) reset() {
	h.slab, h.free, h.heap = nil, nil, nil
	h.index = nil
}

func (h *delayHeap[T]) up(i int) {
	n := h.heap[i]
	for i > 0 {
		p := (i - 1) / heapArity
		if h.heap[p].at <= n.at {
			break
		}
		h.heap[i] = h.heap[p]
		h.slab[h.heap[i].slot].pos = int32(i)
		i = p
	}
	h.heap[i] = n
	h.slab[n.slot].pos = int32(i)
}

func (h *delayHeap[T]) down(i int) {
	n := h.heap[i]
	size := len(h.heap)
	for {
		c := heapArity*i + 1
		if c >= size {
			break
		}
		best := c
		end := min(c+heapArity, size)
		for j := c + 1; j < end; j++ {
			if h.heap[j].at < h.heap[best].at {
				best = j
			}
		}
		if h.heap[best].at >= n.at {
			break
		}
		h.heap[i] = h.heap[best]
		h.slab[h.heap[i].slot].pos = int32(i)
		i = best
	}
	h.heap[i] = n
	h.slab[n.slot].pos = int32(i)
}
