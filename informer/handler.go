package informer

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// Handler receives the changes an informer observes, for one object at a
// time, in the order they happened to that object. Methods are called from
// one goroutine per handler, never concurrently with each other. Objects
// are shared with the cache and must not be modified.
type Handler[T Object] interface {
	// OnAdd: obj entered the cache. isInInitialList: it was there when the
	// informer (or, for a late handler, this handler) started.
	OnAdd(obj T, isInInitialList bool)
	// OnUpdate: an object changed, or (oldObj and newObj with the same
	// resourceVersion) was re-delivered by a resync.
	OnUpdate(oldObj, newObj T)
	// OnDelete: obj left the cache. finalStateUnknown: the delete was
	// inferred from a relist, and obj is the last state seen, not the final
	// one.
	OnDelete(obj T, finalStateUnknown bool)
}

// HandlerFuncs adapts functions to a [Handler]; nil funcs are skipped.
type HandlerFuncs[T Object] struct {
	AddFunc    func(obj T, isInInitialList bool)
	UpdateFunc func(oldObj, newObj T)
	DeleteFunc func(obj T, finalStateUnknown bool)
}

var _ Handler[Object] = HandlerFuncs[Object]{}

// OnAdd calls AddFunc if it is set.
func (f HandlerFuncs[T]) OnAdd(obj T, isInInitialList bool) {
	if f.AddFunc != nil {
		f.AddFunc(obj, isInInitialList)
	}
}

// OnUpdate calls UpdateFunc if it is set.
func (f HandlerFuncs[T]) OnUpdate(oldObj, newObj T) {
	if f.UpdateFunc != nil {
		f.UpdateFunc(oldObj, newObj)
	}
}

// OnDelete calls DeleteFunc if it is set.
func (f HandlerFuncs[T]) OnDelete(obj T, finalStateUnknown bool) {
	if f.DeleteFunc != nil {
		f.DeleteFunc(obj, finalStateUnknown)
	}
}

// HandlerOptions configures one handler registration. The zero value is
// valid.
type HandlerOptions struct {
	// Name identifies the handler in metrics and logs; default "handler-N".
	Name string
	// ResyncPeriod, if positive, re-delivers every cached object to this
	// handler (as OnUpdate(obj, obj)) at about this interval, checked every
	// informer ResyncCheckPeriod. Zero: never.
	ResyncPeriod time.Duration
}

type notificationKind uint8

const (
	notifyAdd notificationKind = iota
	notifyUpdate
	notifyDelete
	// notifySynced marks the end of what this handler must see to be synced.
	notifySynced
)

type notification[T Object] struct {
	kind     notificationKind
	flag     bool // isInInitialList for add, finalStateUnknown for delete
	old, obj T
}

// Registration is a handler added to a [SharedInformer]. Its Done channel
// closes once the handler has processed every object the cache held when
// the informer synced (or, for a handler added later, when it was added).
type Registration struct {
	name string
	// synced closes when the handler has processed its initial objects.
	synced  chan struct{}
	pending func() int
	remove  func()
}

// Name returns the handler's name.
func (r *Registration) Name() string { return r.name }

// Done is closed once the handler has synced; see [Registration].
func (r *Registration) Done() <-chan struct{} { return r.synced }

// HasSynced reports whether Done is closed.
func (r *Registration) HasSynced() bool {
	select {
	case <-r.synced:
		return true
	default:
		return false
	}
}

// Pending returns the number of notifications not yet fully processed by
// the handler: those buffered and the one in progress, if any.
func (r *Registration) Pending() int { return r.pending() }

// listener feeds one handler from its own unbounded buffer, so a slow
// handler delays nobody else. One goroutine (run) calls the handler.
type listener[T Object] struct {
	name string
	h    Handler[T]
	log  logr.Logger
	reg  *Registration

	mu  sync.Mutex
	buf []notification[T] // guarded by mu
	// pending counts notifications added and not yet delivered (buf plus
	// the batch run is working through).
	pending atomic.Int64
	// resyncPeriod and nextResync are guarded by the informer's handler
	// lock.
	resyncPeriod time.Duration
	nextResync   time.Time
	resyncing    bool

	signal chan struct{} // capacity 1: buffer became non-empty
	stop   chan struct{} // closed by RemoveHandler
	once   sync.Once
}

func newListener[T Object](name string, h Handler[T], log logr.Logger, resync time.Duration, now time.Time) *listener[T] {
	l := &listener[T]{name: name, h: h, log: log.WithValues("handler", name), resyncPeriod: resync, signal: make(chan struct{}, 1), stop: make(chan struct{})}
	if resync > 0 {
		l.nextResync = now.Add(resync)
	}
	l.reg = &Registration{name: name, synced: make(chan struct{}), pending: l.len}
	return l
}

func (l *listener[T]) len() int { return int(l.pending.Load()) }

func (l *listener[T]) add(n notification[T]) {
	l.pending.Add(1)
	l.mu.Lock()
	l.buf = append(l.buf, n)
	l.mu.Unlock()
	select {
	case l.signal <- struct{}{}:
	default:
	}
}

func (l *listener[T]) close() { l.once.Do(func() { close(l.stop) }) }

// run delivers notifications until the listener is removed or done closes.
func (l *listener[T]) run(done <-chan struct{}) {
	var batch []notification[T]
	for {
		l.mu.Lock()
		batch, l.buf = l.buf, batch[:0]
		l.mu.Unlock()
		if len(batch) == 0 {
			select {
			case <-l.signal:
				continue
			case <-l.stop:
				return
			case <-done:
				return
			}
		}
		for i := range batch {
			select {
			case <-l.stop:
				return
			case <-done:
				return
			default:
			}
			l.deliver(batch[i])
			l.pending.Add(-1)
			batch[i] = notification[T]{}
		}
	}
}

func (l *listener[T]) deliver(n notification[T]) {
	defer func() {
		if r := recover(); r != nil {
			l.log.Error(fmt.Errorf("panic: %v", r), "Handler panicked; notification dropped")
		}
	}()
	switch n.kind {
	case notifyAdd:
		l.h.OnAdd(n.obj, n.flag)
	case notifyUpdate:
		l.h.OnUpdate(n.old, n.obj)
	case notifyDelete:
		l.h.OnDelete(n.obj, n.flag)
	case notifySynced:
		close(l.reg.synced)
	}
}
