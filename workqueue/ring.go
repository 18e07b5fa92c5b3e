package workqueue

// ring is a growable FIFO ring buffer. Its capacity is always a power of two
// so that indices wrap with a mask. Popping never reallocates, so a queue
// that repeatedly drains and refills does not allocate in steady state
// (client-go's slice FIFO re-makes its backing array each time it empties).
//
// ring is not safe for concurrent use; the Queue's mutex guards it.
type ring[E any] struct {
	buf  []E
	head int // index of the oldest element
	n    int // number of elements
}

const (
	ringMinCap = 16
	// ringShrinkCap is the capacity above which a mostly empty ring gives
	// memory back, so one burst does not pin a large buffer for ever.
	ringShrinkCap = 4096
)

func (r *ring[E]) len() int { return r.n }

func (r *ring[E]) push(e E) {
	if r.n == len(r.buf) {
		r.resize(max(2*len(r.buf), ringMinCap))
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = e
	r.n++
}

// front returns a pointer to the oldest element; r must not be empty.
func (r *ring[E]) front() *E { return &r.buf[r.head] }

// pop removes and returns the oldest element; r must not be empty.
func (r *ring[E]) pop() E {
	var zero E
	e := r.buf[r.head]
	r.buf[r.head] = zero // drop the reference for the garbage collector
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	if len(r.buf) > ringShrinkCap && r.n < len(r.buf)/8 {
		r.resize(len(r.buf) / 2)
	}
	return e
}

// reset drops every element, keeping the buffer.
func (r *ring[E]) reset() {
	clear(r.buf)
	r.head, r.n = 0, 0
}

func (r *ring[E]) resize(c int) {
	buf := make([]E, c)
	if r.n > 0 {
		if r.head+r.n <= len(r.buf) {
			copy(buf, r.buf[r.head:r.head+r.n])
		} else {
			k := copy(buf, r.buf[r.head:])
			copy(buf[k:], r.buf[:r.n-k])
		}
	}
	r.buf, r.head = buf, 0
}
