package workqueue

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"
)

// Options configure a Queue. The zero value is valid: an unnamed queue
// without metrics, on the real clock, with DefaultControllerRateLimiter and
// the default aging step.
type Options[T comparable] struct {
	// Name identifies the queue in metrics. Required when Metrics is set.
	Name string

	// Clock is the source of time for delays, rate limiting and metrics.
	// Defaults to the real clock. Tests may pass a fake clock
	// (k8s.io/utils/clock/testing) or run under testing/synctest.
	Clock clock.WithTicker

	// RateLimiter decides the delay of AddRateLimited and answers
	// NumRequeues; Forget is passed to it. Defaults to
	// DefaultControllerRateLimiter on Clock.
	RateLimiter RateLimiter[T]

	// Metrics, if set, creates the queue's metrics (see
	// NewPrometheusMetrics). When nil no metric is recorded and nothing is
	// paid for them.
	Metrics MetricsProvider

	// AgingStep bounds how long an item can be overtaken by items of higher
	// priority: a waiting item gains one priority level for every AgingStep
	// items queued after it. An item queued with priority p is therefore
	// handed out before every item queued more than (q-p)*AgingStep
	// queueings after it with priority q. Zero means DefaultAgingStep; the
	// maximum is MaxAgingStep. Queues that never use priorities are not
	// affected.
	AgingStep int
}

const (
	// DefaultAgingStep is the AgingStep used when Options.AgingStep is zero.
	// With the low priority of -100 that capstan uses for the initial list,
	// fresh changes may overtake a backlog item for 10,000 queueings, and
	// no longer.
	DefaultAgingStep = 100
	// MaxAgingStep is the largest accepted Options.AgingStep.
	MaxAgingStep = 1 << 30

	// MaxPriority and MinPriority bound the priorities the queue
	// distinguishes; priorities outside are clamped to them.
	MaxPriority = 1 << 20
	MinPriority = -MaxPriority
)

// ErrInvalidOptions is wrapped by the errors New returns for bad Options.
var ErrInvalidOptions = errors.New("workqueue: invalid options")

// setDefaults fills the zero fields of o; every default lives here.
func (o *Options[T]) setDefaults() {
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.RateLimiter == nil {
		o.RateLimiter = DefaultControllerRateLimiter[T](o.Clock)
	}
	if o.AgingStep == 0 {
		o.AgingStep = DefaultAgingStep
	}
}

func (o *Options[T]) validate() error {
	if o.AgingStep < 0 || o.AgingStep > MaxAgingStep {
		return fmt.Errorf("%w: AgingStep %d is outside [0, %d]", ErrInvalidOptions, o.AgingStep, MaxAgingStep)
	}
	if o.Metrics != nil && o.Name == "" {
		return fmt.Errorf("%w: Name must be set when Metrics is set", ErrInvalidOptions)
	}
	return nil
}

// AddOptions qualify one add; the zero value is a plain Add.
type AddOptions struct {
	// Priority orders waiting items: higher goes first, FIFO within a
	// priority, subject to aging (Options.AgingStep). Default 0.
	Priority int
	// After delays the add, as AddAfter does.
	After time.Duration
	// RateLimited delays the add by the rate limiter's When(item), as
	// AddRateLimited does. With After also set, the longer delay applies.
	RateLimited bool
}

// item state flags. An item is in Queue.items exactly when one is set.
const (
	// flagDirty: the item needs processing. Alone, the item is waiting in a
	// level; with flagProcessing it will be queued again on Done.
	flagDirty uint8 = 1 << iota
	// flagProcessing: a worker holds the item (between Get and Done).
	flagProcessing
)

type itemState struct {
	// v is the virtual deadline of the item's live entry in its level: the
	// queueing sequence number minus AgingStep times the priority. Items are
	// handed out in increasing v. Meaningful when the item is waiting.
	v int64
	// prio is the level holding the live entry (when waiting), or the
	// priority to queue with on Done (when dirty while processing).
	prio  int32
	flags uint8
	// hot: the item is in the hot cache, which must be told of every
	// change of its dirty flag or prio (see hotCache).
	hot bool
}

// slot holds an item in the queue and its state (see Queue.slots).
type slot[T comparable] struct {
	item T
	st   itemState
}

// qentry is an element of a level: the item in slots[slot], queued with
// virtual deadline v. It is live when that slot's state is waiting in this
// level with this v; otherwise it is stale (left behind when a re-add with
// a higher priority moved the item, or when the slot was freed and given
// to another item, which then has another v) and skipped.
type qentry struct {
	v    int64
	slot int32
}

// level is the FIFO of one priority. Within a level v increases from front
// to back, so the next item overall is the front of some level.
type level struct {
	prio int32
	q    ring[qentry]
}

// handoff is what a blocked Get receives.
type handoff[T comparable] struct {
	item     T
	shutdown bool
}

// Queue is a work queue: it hands items to workers, never the same item to
// two workers at once, with deduplication, delays, rate limiting and
// priorities. See the package documentation for the guarantees.
//
// A Queue is safe for concurrent use. Create it with New.
type Queue[T comparable] struct {
	mu sync.Mutex

	// items maps every item that is waiting or being processed to its slot
	// in slots, which holds its state; free lists the unused slots. The
	// levels refer to slots, so that handing an item out costs no map
	// access. The number of waiting (dirty, not processing) items is
	// queued; each has exactly one live entry in levels.
	items  map[T]int32
	slots  []slot[T]
	free   []int32
	queued int

	// levels holds one FIFO per priority in use; levels[0] is priority 0
	// and is never removed. Few distinct priorities are expected, so the
	// levels are scanned linearly.
	levels []*level
	// stale counts stale entries in levels.
	stale int
	// seq numbers queueings; with agingStep it gives each entry its v.
	seq       int64
	agingStep int64

	// processing counts items held by workers.
	processing int

	// waiters are blocked Gets, oldest first. Non-empty only while
	// queued == 0 and the intake is empty: an item added then is handed
	// straight to a waiter.
	waiters   []chan handoff[T]
	waiterBuf sync.Pool // of chan handoff[T], capacity 1

	// The intake lets Add of an item at priority 0 return without waiting
	// for mu when another goroutine holds it and no Get is blocked: it
	// appends the item under imu, and the next operation to take mu
	// applies the intake, in order, before it looks at the queue
	// (applyIntakeLocked). With one goroutine adding and several workers
	// taking items, the adder then rarely waits for the workers' Gets and
	// Dones, and they apply its adds in batches. So the intake is a log of
	// adds not yet applied, and nothing that holds mu can tell it from adds
	// applied at once. See intakeAdd for why no item can wait in it while a
	// Get is blocked.
	_       [64]byte
	imu     sync.Mutex
	intake  []intakeEntry[T] // under imu
	intakeN atomic.Int32     // len(intake); written under imu
	parked  atomic.Int32     // len(waiters); raised under mu and imu, lowered under mu
	_       [64]byte
	spare   []intakeEntry[T] // under mu: the intake's other buffer

	shuttingDown atomic.Bool // written with mu held
	drain        bool
	drained      sync.Cond // signalled when processing drops to 0 or drain ends

	// Delays have their own mutex, so that AddAfter does not contend with
	// Get and Done: dmu guards delays, timerAt and loopStarted. Lock order:
	// mu before dmu (only shutDown holds both); loop never holds both.
	dmu         sync.Mutex
	delays      delayQueue[T]
	timerAt     int64 // deadline the loop's timer is (about to be) armed for
	loopStarted bool
	epoch       time.Time
	// loop owns the one timer and moves due items into the queue.
	kick chan struct{} // wakes loop when timerAt moves earlier or is overdue
	stop chan struct{} // closed by ShutDown
	wg   sync.WaitGroup

	// The hot cache lets a repeated Add of an item that is already dirty
	// return without taking mu (see hotCache). hot counts the items in it;
	// Add does not look there while it is 0.
	hot      atomic.Int32
	hotCache atomic.Pointer[hotCache[T]] // made on first use, under mu
	hotSeed  maphash.Seed
	hotGen   uint64 // generations of hot items; under mu

	clock   clock.WithTicker
	limiter RateLimiter[T]
	metrics *queueMetrics[T] // nil when metrics are off
}

var _ Interface[string] = (*Queue[string])(nil)

// Interface is the consumer-side view of a Queue, for code that takes a
// queue as a dependency and fakes it in tests.
type Interface[T comparable] interface {
	Add(item T)
	AddAfter(item T, d time.Duration)
	AddRateLimited(item T)
	AddWithOptions(item T, o AddOptions)
	Get() (item T, shutdown bool)
	Done(item T)
	Forget(item T)
	NumRequeues(item T) int
	Len() int
	ShutDown()
	ShutDownWithDrain()
	ShuttingDown() bool
}

// New returns an empty queue. It starts no goroutine until the first
// delayed add (or at once when metrics are on); ShutDown stops it.
func New[T comparable](o Options[T]) (*Queue[T], error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	o.setDefaults()
	q := &Queue[T]{
		items:     make(map[T]int32),
		agingStep: int64(o.AgingStep),
		epoch:     o.Clock.Now(),
		timerAt:   math.MaxInt64,
		kick:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		clock:     o.Clock,
		limiter:   o.RateLimiter,
		hotSeed:   maphash.MakeSeed(),
	}
	q.levels = []*level{{prio: 0}}
	q.drained.L = &q.mu
	if o.Metrics != nil {
		q.metrics = newQueueMetrics[T](o.Metrics, o.Name, o.Clock)
		q.dmu.Lock()
		q.startLoopLocked()
		q.dmu.Unlock()
	}
	return q, nil
}

// Add marks item as needing processing at priority 0. An item already
// waiting is not added twice; an item being processed is handed out again
// after Done. Adds after ShutDown are ignored.
func (q *Queue[T]) Add(item T) { q.add(item, 0) }

// AddAfter adds item once d has passed. While several delays for one item
// are pending, the earliest wins. d <= 0 adds at once. The delay is
// independent of the item's other state: an item added now and also after d
// is processed now and again after d, as with client-go.
func (q *Queue[T]) AddAfter(item T, d time.Duration) { q.addAfter(item, d, 0) }

// AddRateLimited adds item after the rate limiter's When(item).
func (q *Queue[T]) AddRateLimited(item T) { q.addAfter(item, q.limiter.When(item), 0) }

// AddWithOptions adds item with a priority and optional delay.
func (q *Queue[T]) AddWithOptions(item T, o AddOptions) {
	d := o.After
	if o.RateLimited {
		d = max(d, q.limiter.When(item))
	}
	q.addAfter(item, d, clampPriority(o.Priority))
}

// Forget tells the rate limiter to stop tracking item (its failures reset).
// It does not remove the item from the queue; call Done as usual.
func (q *Queue[T]) Forget(item T) { q.limiter.Forget(item) }

// NumRequeues returns how many times the rate limiter has delayed item
// since it was last forgotten.
func (q *Queue[T]) NumRequeues(item T) int { return q.limiter.NumRequeues(item) }

func clampPriority(p int) int32 {
	return int32(min(max(p, MinPriority), MaxPriority))
}

func (q *Queue[T]) add(item T, prio int32) {
	hot := false
	if q.hot.Load() != 0 {
		var noop bool
		if noop, hot = q.addHot(item, prio); noop {
			return
		}
	}
	// Take mu if it is free; if another goroutine holds it, leave the add
	// in the intake rather than wait. Not for a hot item: applied now, it
	// becomes dirty, and the hot cache absorbs its next adds; left in the
	// intake, each of them would be queued there too.
	if !q.mu.TryLock() {
		if prio == 0 && !hot && q.intakeAdd(item) {
			return
		}
		q.mu.Lock()
	}
	if q.shuttingDown.Load() {
		q.mu.Unlock()
		return
	}
	q.applyIntakeLocked()
	w := q.addLocked(item, prio, time.Time{})
	q.mu.Unlock()
	if w != nil {
		w <- handoff[T]{item: item}
	}
}

// intakeMax bounds the intake: an Add that finds it full applies it.
const intakeMax = 256

// intakeAdd appends item to the intake and reports true, or reports false
// when the add must be applied under mu: when a Get is blocked (the item
// must be handed to it now), when the queue is shutting down, or when the
// intake is full.
//
// No item waits in the intake while a Get is blocked: a Get registers as
// blocked (parked) holding mu and imu, after applying the intake under
// them, and an Add appends only under imu and while none is parked.
func (q *Queue[T]) intakeAdd(item T) bool {
	if q.parked.Load() != 0 {
		return false // saves taking imu; checked again under it
	}
	e := intakeEntry[T]{item: item}
	if q.metrics != nil {
		e.at = q.clock.Now() // the item waits from now
	}
	q.imu.Lock()
	if q.parked.Load() != 0 || q.shuttingDown.Load() || len(q.intake) >= intakeMax {
		q.imu.Unlock()
		return false
	}
	q.intake = append(q.intake, e)
	q.intakeN.Store(int32(len(q.intake)))
	q.imu.Unlock()
	return true
}

// applyIntakeLocked applies the adds waiting in the intake; mu must be
// held.
func (q *Queue[T]) applyIntakeLocked() {
	if q.intakeN.Load() == 0 {
		return
	}
	q.imu.Lock()
	batch := q.takeIntakeLocked()
	q.imu.Unlock()
	q.applyLocked(batch)
}

// intakeEntry is an add waiting in the intake: its item and, when metrics
// are on, when it was made.
type intakeEntry[T comparable] struct {
	item T
	at   time.Time
}

// takeIntakeLocked empties the intake and returns what it held; mu and imu
// must be held.
func (q *Queue[T]) takeIntakeLocked() []intakeEntry[T] {
	batch := q.intake
	q.intake = q.spare[:0]
	q.spare = nil
	q.intakeN.Store(0)
	return batch
}

// applyLocked adds the items of batch, taken from the intake, and keeps
// batch as the intake's spare buffer; mu must be held.
func (q *Queue[T]) applyLocked(batch []intakeEntry[T]) {
	for _, e := range batch {
		// No Get is blocked (see intakeAdd), so no item is handed over;
		// were one, the send would not block (the channel has room).
		if w := q.addLocked(e.item, 0, e.at); w != nil {
			w <- handoff[T]{item: e.item}
		}
	}
	clear(batch)
	q.spare = batch[:0]
}

// addLocked records an add of item. When a Get is blocked it marks the item
// as processing and returns that Get's channel; the caller sends the item on
// it (after unlocking: the channel has room, so the send never blocks).
func (q *Queue[T]) addLocked(item T, prio int32, at time.Time) chan handoff[T] {
	i, ok := q.items[item]
	if ok {
		st := q.slots[i].st
		switch {
		case st.flags&flagDirty == 0:
			// Being processed: queue it again on Done.
			st.flags |= flagDirty
			st.prio = prio
			q.slots[i].st = st
			if st.hot {
				q.syncHotLocked(item, st)
			}
			if q.metrics != nil {
				q.metrics.add(item, at)
			}
			return nil
		case st.flags&flagProcessing != 0:
			// Dirty while processing: remember the highest priority.
			st.prio = max(st.prio, prio)
		case prio > st.prio:
			// Waiting at a lower priority: move it to the back of the new
			// priority unless aging already placed it further ahead.
			v := q.seq + 1 - q.agingStep*int64(prio)
			if v < st.v {
				q.seq++
				q.level(prio).q.push(qentry{v: v, slot: i})
				q.stale++
				st.v, st.prio = v, prio
			}
		}
		// Added again while dirty: the item is hot.
		if st.hot {
			q.syncHotLocked(item, st)
		} else {
			q.promoteHotLocked(item, st)
			st.hot = true
		}
		q.slots[i].st = st
		return nil
	}
	if q.metrics != nil {
		q.metrics.add(item, at)
	}
	if len(q.waiters) > 0 {
		w := q.popWaiterLocked()
		q.newSlotLocked(item, itemState{flags: flagProcessing})
		q.processing++
		if q.metrics != nil {
			q.metrics.get(item)
		}
		return w
	}
	q.pushLocked(q.newSlotLocked(item, itemState{}), prio, false)
	return nil
}

// popWaiterLocked removes the oldest blocked Get, which must exist, and
// returns its channel.
func (q *Queue[T]) popWaiterLocked() chan handoff[T] {
	w := q.waiters[0]
	n := len(q.waiters)
	copy(q.waiters, q.waiters[1:])
	q.waiters[n-1] = nil
	q.waiters = q.waiters[:n-1]
	q.parked.Add(-1)
	return w
}

// newSlotLocked records item, which must not be in items, with state st and
// returns its slot.
func (q *Queue[T]) newSlotLocked(item T, st itemState) int32 {
	var i int32
	if n := len(q.free); n > 0 {
		i = q.free[n-1]
		q.free = q.free[:n-1]
		q.slots[i] = slot[T]{item: item, st: st}
	} else {
		// More than 1<<31 items at once would take hundreds of GiB.
		i = int32(len(q.slots))
		q.slots = append(q.slots, slot[T]{item: item, st: st})
	}
	q.items[item] = i
	return i
}

// slabKeep is how many slots the queue keeps when it empties; beyond that it
// lets the garbage collector have them.
const slabKeep = 4096

// freeSlotLocked forgets item, whose slot is i.
func (q *Queue[T]) freeSlotLocked(item T, i int32) {
	delete(q.items, item)
	q.slots[i] = slot[T]{}
	q.free = append(q.free, i)
	if len(q.items) == 0 && len(q.slots) > slabKeep && q.stale == 0 {
		// No entry refers to a slot: the levels hold only live entries,
		// and there is no item.
		q.slots, q.free = nil, nil
	}
}

// pushLocked queues the item of slot i, which must be in no level, at the
// back of prio. hot is the item's hot flag (its dirty flag and prio do not
// change).
func (q *Queue[T]) pushLocked(i int32, prio int32, hot bool) {
	q.seq++
	v := q.seq - q.agingStep*int64(prio)
	q.level(prio).q.push(qentry{v: v, slot: i})
	q.slots[i].st = itemState{v: v, prio: prio, flags: flagDirty, hot: hot}
	q.queued++
}

// level returns the level of prio, creating it if needed.
func (q *Queue[T]) level(prio int32) *level {
	for _, l := range q.levels {
		if l.prio == prio {
			return l
		}
	}
	l := &level{prio: prio}
	q.levels = append(q.levels, l)
	return l
}

// popLocked removes the next waiting item and marks it processing; q.queued
// must be positive.
func (q *Queue[T]) popLocked() T {
	for {
		best := q.levels[0]
		if len(q.levels) > 1 {
			bi := -1
			for i, l := range q.levels {
				if l.q.len() == 0 {
					continue
				}
				// Ties go to the lower priority: it was queued earlier.
				if bi < 0 || l.q.front().v < q.levels[bi].q.front().v ||
					(l.q.front().v == q.levels[bi].q.front().v && l.prio < q.levels[bi].prio) {
					bi = i
				}
			}
			best = q.levels[bi]
			if best.q.len() == 1 && bi > 0 {
				// The level empties: drop it (levels[0] stays).
				q.levels = append(q.levels[:bi], q.levels[bi+1:]...)
			}
		}
		e := best.q.pop()
		s := &q.slots[e.slot]
		st := s.st
		if st.flags != flagDirty || st.prio != best.prio || st.v != e.v {
			q.stale--
			continue
		}
		s.st = itemState{flags: flagProcessing, hot: st.hot}
		item := s.item
		if st.hot {
			q.syncHotLocked(item, itemState{flags: flagProcessing})
		}
		q.queued--
		q.processing++
		if q.queued == 0 && q.stale > 0 {
			for _, l := range q.levels {
				l.q.reset()
			}
			q.levels = q.levels[:1]
			q.stale = 0
		}
		if q.metrics != nil {
			q.metrics.get(item)
		}
		return item
	}
}

// Get blocks until an item is waiting and returns it; the caller must call
// Done(item) when finished with it. It returns shutdown == true once the
// queue is shutting down and empty. After ShutDown, items still waiting are
// handed out (as with client-go) until none is left.
func (q *Queue[T]) Get() (item T, shutdown bool) {
	q.mu.Lock()
	q.applyIntakeLocked()
	for {
		if q.queued > 0 {
			item = q.popLocked()
			q.mu.Unlock()
			return item, false
		}
		if q.shuttingDown.Load() {
			q.mu.Unlock()
			return item, true
		}
		// Park, unless an Add filled the intake meanwhile: then apply it
		// and look again (its adds may all have been of items already
		// waiting or being processed).
		q.imu.Lock()
		if len(q.intake) == 0 {
			break
		}
		batch := q.takeIntakeLocked()
		q.imu.Unlock()
		q.applyLocked(batch)
	}
	q.parked.Add(1)
	q.imu.Unlock()
	w, _ := q.waiterBuf.Get().(chan handoff[T])
	if w == nil {
		w = make(chan handoff[T], 1)
	}
	q.waiters = append(q.waiters, w)
	q.mu.Unlock()
	h := <-w
	q.waiterBuf.Put(w)
	return h.item, h.shutdown
}

// Done marks the end of processing item. If item was added again meanwhile,
// it is queued again now. Done for an item that is not being processed does
// nothing.
func (q *Queue[T]) Done(item T) {
	q.mu.Lock()
	q.applyIntakeLocked()
	i, ok := q.items[item]
	if !ok || q.slots[i].st.flags&flagProcessing == 0 {
		q.mu.Unlock()
		return
	}
	st := q.slots[i].st
	if q.metrics != nil {
		q.metrics.done(item)
	}
	q.processing--
	var w chan handoff[T]
	if st.flags&flagDirty != 0 {
		if len(q.waiters) > 0 {
			w = q.popWaiterLocked()
			q.processing++
			q.slots[i].st = itemState{flags: flagProcessing, hot: st.hot}
			if st.hot {
				q.syncHotLocked(item, itemState{flags: flagProcessing})
			}
			if q.metrics != nil {
				q.metrics.get(item)
			}
		} else {
			q.pushLocked(i, st.prio, st.hot)
		}
	} else {
		q.freeSlotLocked(item, i)
		if st.hot {
			q.dropHotLocked(item)
		}
	}
	if q.processing == 0 && q.drain {
		q.drained.Broadcast()
	}
	q.mu.Unlock()
	if w != nil {
		w <- handoff[T]{item: item}
	}
}

// Len returns the number of waiting items (not those being processed nor
// those delayed). It is for information only: do not gate Add or Get on it.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.applyIntakeLocked()
	return q.queued
}

// ShutDown makes the queue ignore new adds and drop delayed ones; Gets
// blocked on an empty queue return shutdown == true at once, and later Gets
// do so once the items still waiting are handed out. It does not wait for
// workers; it may be called more than once, and ends a ShutDownWithDrain
// wait.
func (q *Queue[T]) ShutDown() {
	q.shutDown(false)
}

// ShutDownWithDrain is ShutDown, then waits until no item is being
// processed (every Get has had its Done). Workers must call Done, or it
// blocks for ever; a concurrent ShutDown ends the wait.
func (q *Queue[T]) ShutDownWithDrain() {
	q.shutDown(true)
}

func (q *Queue[T]) shutDown(drain bool) {
	q.mu.Lock()
	q.drain = drain
	first := !q.shuttingDown.Load()
	// Adds in the intake came before the shutdown: apply them. Setting the
	// flag under imu orders every later intakeAdd after it.
	q.imu.Lock()
	q.shuttingDown.Store(true)
	batch := q.takeIntakeLocked()
	q.imu.Unlock()
	q.applyLocked(batch)
	waiters := q.waiters
	q.waiters = nil
	q.parked.Store(0)
	q.dmu.Lock()
	q.delays.reset()
	q.timerAt = math.MaxInt64
	q.dmu.Unlock()
	if first {
		close(q.stop)
	}
	q.drained.Broadcast()
	for _, w := range waiters {
		w <- handoff[T]{shutdown: true}
	}
	for drain && q.drain && q.processing > 0 {
		q.drained.Wait()
	}
	q.mu.Unlock()
	q.wg.Wait()
}

// ShuttingDown reports whether ShutDown or ShutDownWithDrain was called.
func (q *Queue[T]) ShuttingDown() bool { return q.shuttingDown.Load() }

func (q *Queue[T]) addAfter(item T, d time.Duration, prio int32) {
	if d <= 0 {
		q.add(item, prio)
		return
	}
	now := int64(q.clock.Now().Sub(q.epoch))
	at := int64(math.MaxInt64 - 1)
	if now <= math.MaxInt64-1-int64(d) {
		at = now + int64(d)
	}
	q.dmu.Lock()
	// Checked under dmu: shutDown sets the flag before it empties delays
	// under dmu, so an item added here is either refused or dropped.
	if q.shuttingDown.Load() {
		q.dmu.Unlock()
		return
	}
	if q.metrics != nil {
		q.metrics.retry()
	}
	q.delays.add(item, at, prio)
	// Wake the loop when this deadline comes first, and also when the one
	// its timer is armed for has passed: the timer may fire late (on a fake
	// clock stepped between the loop's reading and its arming, never).
	if at < q.timerAt || q.timerAt <= now {
		q.timerAt = min(q.timerAt, at)
		q.startLoopLocked()
		select {
		case q.kick <- struct{}{}:
		default: // the loop already has a kick pending
		}
	}
	q.dmu.Unlock()
}

// startLoopLocked starts loop unless it runs; dmu must be held.
func (q *Queue[T]) startLoopLocked() {
	if !q.loopStarted {
		q.loopStarted = true
		q.wg.Go(q.loop)
	}
}

// moveBatch is the most due items loop moves per acquisition of the locks,
// so that a burst falling due at once does not hold up Get, Done or
// AddAfter for long.
const moveBatch = 1024

// loop owns the delay timer (and, when metrics are on, the unfinished-work
// ticker). It moves due items from delays into the queue, in batches: it
// takes them out under dmu, then adds them under mu. It stops when ShutDown
// closes q.stop.
func (q *Queue[T]) loop() {
	var timer clock.Timer // created when first armed
	var timerC <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var tick <-chan time.Time
	if q.metrics != nil {
		t := q.clock.NewTicker(unfinishedWorkPeriod)
		defer t.Stop()
		tick = t.C()
	}
	var batch []dueItem[T]
	for {
		select {
		case <-q.stop:
			return
		case <-tick:
			q.mu.Lock()
			if !q.shuttingDown.Load() {
				q.metrics.updateUnfinishedWork()
			}
			q.mu.Unlock()
			continue
		case <-timerC:
		case <-q.kick:
		}
		for {
			now := int64(q.clock.Now().Sub(q.epoch))
			q.dmu.Lock()
			if q.shuttingDown.Load() {
				q.dmu.Unlock()
				return
			}
			batch = q.delays.appendDue(now, batch[:0], moveBatch)
			next := q.delays.minAt()
			q.timerAt = next
			q.dmu.Unlock()
			if len(batch) > 0 {
				q.mu.Lock()
				// Items taken out before a ShutDown and not yet added are
				// dropped with the other delayed items.
				if !q.shuttingDown.Load() {
					q.applyIntakeLocked()
					for _, d := range batch {
						// Sending under the lock is safe: the channel has room.
						if w := q.addLocked(d.item, d.prio, time.Time{}); w != nil {
							w <- handoff[T]{item: d.item}
						}
					}
				}
				q.mu.Unlock()
				clear(batch) // drop the references for the garbage collector
				if len(batch) == moveBatch {
					continue // maybe more due
				}
			}
			if next == math.MaxInt64 {
				if timer != nil {
					timer.Stop()
				}
				break
			}
			// Arm from a fresh reading: moving many due items takes time,
			// and a timer armed from the reading above would fire late by
			// that much (on a fake clock stepped meanwhile to the exact
			// deadline, never). Anything that fell due meanwhile is moved
			// now instead.
			wait := time.Duration(next - int64(q.clock.Now().Sub(q.epoch)))
			if wait <= 0 {
				continue
			}
			if timer == nil {
				timer = q.clock.NewTimer(wait)
				timerC = timer.C()
			} else {
				timer.Reset(wait)
			}
			break
		}
	}
}
