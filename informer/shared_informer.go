package informer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"k8s.io/utils/clock"
)

// ErrAlreadyStarted is returned by a second call to [SharedInformer.Run].
var ErrAlreadyStarted = errors.New("informer: already started")

// ErrStopped is returned by waits on an informer that stopped before the
// awaited condition held.
var ErrStopped = errors.New("informer: stopped")

// defaultResyncCheckPeriod: how often handler resync deadlines are checked.
// Resync periods are rounded up to a multiple of it; one second keeps that
// rounding small and the check (a loop over the handlers) negligible.
const defaultResyncCheckPeriod = time.Second

// Options configures [New]. The zero value is valid.
type Options[T Object] struct {
	// Name identifies the informer in logs, errors and metrics; default the
	// ListerWatcher's Name() if it has one (see [ListWatch.Name]), else the
	// Go type of T (for example "*v1.ConfigMap").
	Name string
	// Logger receives logs; default logr.Discard().
	Logger logr.Logger
	// Clock drives the reflector and handler resyncs; default the real clock.
	Clock clock.WithTicker
	// Indexers are index functions besides the built-in NamespaceIndex.
	Indexers Indexers[T]
	// Transform is applied to each object before it is stored (and before
	// handlers see it). It may modify the object in place. It runs after
	// managedFields are stripped (unless KeepManagedFields).
	Transform func(obj T) (T, error)
	// KeepManagedFields keeps metadata.managedFields, which by default are
	// dropped before storing: they are often half an object's size and few
	// controllers read them.
	KeepManagedFields bool
	// Compact keeps the cache's objects encoded (protobuf for built-in
	// types) and decodes them on read, for about half the memory; a small
	// cache of decoded objects, holding the ones events last delivered,
	// spares most reads that follow an event the decoding. Handlers still
	// receive decoded objects. See [IndexerOptions.Compact] for the costs
	// and the fine print.
	Compact bool
	// CompactHotObjects is how many decoded objects a compact cache keeps:
	// 0 means [DefaultCompactHotObjects], a negative number none.
	CompactHotObjects int
	// ResyncCheckPeriod is how often handlers' resync deadlines are checked;
	// default 1s.
	ResyncCheckPeriod time.Duration
	// Registerer, if set, receives the informer's gauges:
	// capstan_informer_cached_objects, capstan_informer_cached_bytes and
	// capstan_informer_handler_pending, labelled with the informer's name.
	Registerer prometheus.Registerer
	// Reflector tunes listing and watching; its Name, Logger, Clock and
	// ResyncPeriod are set by the informer.
	Reflector ReflectorOptions
}

func (o *Options[T]) defaults() error {
	if o.Name == "" {
		o.Name = fmt.Sprintf("%T", *new(T))
	}
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.ResyncCheckPeriod == 0 {
		o.ResyncCheckPeriod = defaultResyncCheckPeriod
	}
	if o.ResyncCheckPeriod < 0 {
		return errors.New("informer: Options.ResyncCheckPeriod: must not be negative")
	}
	o.Reflector.Name = o.Name
	o.Reflector.Logger = o.Logger
	o.Reflector.Clock = o.Clock
	o.Reflector.ResyncPeriod = o.ResyncCheckPeriod
	return nil
}

// SharedInformer keeps an indexed cache of one kind of object in one scope
// and tells any number of handlers what changed.
//
// Guarantees:
//   - The cache is eventually consistent with the API server: every change
//     is applied, in the server's order per object; after a relist, objects
//     deleted meanwhile are removed and handlers see OnDelete with
//     finalStateUnknown.
//   - Each handler sees the changes to one object in order, from its own
//     goroutine and unbounded buffer: a slow handler delays no other handler
//     and not the cache. [Registration.Pending] and the
//     capstan_informer_handler_pending gauge show the backlog.
//   - A handler added after start first receives OnAdd for every cached
//     object, then the changes that follow, with nothing missed or doubled.
//   - Each object is stored once; by default without managedFields.
//
// Caveats:
//   - The cache may lag the server. To read your own write, pass the
//     write's resourceVersion to WaitForResourceVersion.
//   - Objects from the cache and from handlers are shared: never modify
//     them.
type SharedInformer[T Object] struct {
	opts      Options[T]
	log       logr.Logger
	indexer   *Indexer[T]
	lister    *Lister[T]
	fifo      *DeltaFIFO[T]
	reflector *Reflector[T]

	// hmu orders handler registration against event distribution: process
	// holds it for reading while it updates the cache and notifies, and
	// AddHandler holds it for writing while it snapshots the cache.
	hmu       sync.RWMutex
	listeners []*listener[T] // guarded by hmu
	nhandlers int            // guarded by hmu
	synced    bool           // guarded by hmu; closing syncedCh follows it
	syncedCh  chan struct{}

	// mu guards the run state.
	mu       sync.Mutex
	started  bool
	stopping bool
	runErr   error
	done     chan struct{} // closed when Run's context ends or Run fails
	wg       sync.WaitGroup

	// rvMu guards appliedRV and rvWait.
	rvMu      sync.Mutex
	appliedRV string
	rvWait    chan struct{} // closed and cleared when appliedRV advances

}

// New returns an informer fed by lw. Run starts it.
func New[T Object](lw ListerWatcher[T], opts Options[T]) (*SharedInformer[T], error) {
	if lw == nil {
		return nil, errors.New("informer: New: ListerWatcher is nil")
	}
	if n, ok := lw.(interface{ Name() string }); ok && opts.Name == "" {
		opts.Name = n.Name()
	}
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	log := opts.Logger.WithValues("informer", opts.Name)
	idx, err := newIndexer(IndexerOptions[T]{Indexers: opts.Indexers, Compact: opts.Compact, CompactHotObjects: opts.CompactHotObjects},
		func(key string, err error) {
			log.Error(err, "Compact cache could not encode or decode an object", "key", key)
		})
	if err != nil {
		return nil, fmt.Errorf("informer: Options: %w", err)
	}
	s := &SharedInformer[T]{
		opts:     opts,
		log:      log,
		indexer:  idx,
		lister:   NewLister(idx),
		syncedCh: make(chan struct{}),
		done:     make(chan struct{}),
	}
	s.fifo = NewDeltaFIFO(DeltaFIFOOptions[T]{KnownObjects: idx, Transform: s.transform()})
	s.reflector, err = NewReflector[T](lw, &resyncGate[T]{s: s}, opts.Reflector)
	if err != nil {
		return nil, err
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(newCollector(s)); err != nil {
			return nil, fmt.Errorf("informer: Options.Registerer: %w", err)
		}
	}
	return s, nil
}

func (s *SharedInformer[T]) transform() func(T) (T, error) {
	user := s.opts.Transform
	if s.opts.KeepManagedFields {
		return user
	}
	return func(obj T) (T, error) {
		if obj.GetManagedFields() != nil {
			obj.SetManagedFields(nil)
		}
		if user != nil {
			return user(obj)
		}
		return obj, nil
	}
}

// resyncGate passes the reflector's events to the FIFO and turns its
// periodic Resync into a resync only for the handlers that are due.
type resyncGate[T Object] struct {
	s *SharedInformer[T]
}

func (g *resyncGate[T]) Add(obj T) error    { return g.s.fifo.Add(obj) }
func (g *resyncGate[T]) Update(obj T) error { return g.s.fifo.Update(obj) }
func (g *resyncGate[T]) Delete(obj T) error { return g.s.fifo.Delete(obj) }
func (g *resyncGate[T]) Replace(list []T, rv string) error {
	g.s.indexer.reserve(list)
	if err := g.s.fifo.Replace(list, rv); err != nil {
		return err
	}
	if g.s.fifo.HasSynced() && !g.s.HasSynced() && g.s.fifo.Len() == 0 {
		// An empty first list: nothing will be popped to mark the sync.
		g.s.markSynced()
	}
	return nil
}
func (g *resyncGate[T]) Resync() error {
	s := g.s
	now := s.opts.Clock.Now()
	due := false
	s.hmu.Lock()
	for _, l := range s.listeners {
		l.resyncing = l.resyncPeriod > 0 && !now.Before(l.nextResync)
		if l.resyncing {
			l.nextResync = now.Add(l.resyncPeriod)
			due = true
		}
	}
	s.hmu.Unlock()
	if !due {
		return nil
	}
	return s.fifo.Resync()
}

// Name returns the informer's name.
func (s *SharedInformer[T]) Name() string { return s.opts.Name }

// Lister returns a typed reader of the cache.
func (s *SharedInformer[T]) Lister() *Lister[T] { return s.lister }

// Store returns the cache, read-only.
func (s *SharedInformer[T]) Store() Reader[T] { return s.indexer }

// Done is closed once the cache holds the first complete list.
func (s *SharedInformer[T]) Done() <-chan struct{} { return s.syncedCh }

// HasSynced reports whether Done is closed.
func (s *SharedInformer[T]) HasSynced() bool {
	select {
	case <-s.syncedCh:
		return true
	default:
		return false
	}
}

// Err returns the error that stopped the informer, if any (for example one
// wrapping [ErrNotServed]).
func (s *SharedInformer[T]) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runErr
}

// Len returns the number of cached objects.
func (s *SharedInformer[T]) Len() int { return s.indexer.Len() }

// ApproxBytes estimates the encoded size of the cached objects: the
// protobuf size for built-in types, an estimate of the JSON size for
// unstructured objects, 0 for types with neither. It measures a sample of
// at most 512 objects and scales by the count, so it costs the same at any
// cache size and nothing on the event path. For a compact cache it is
// exact: the bytes of the encoded objects and their keys.
func (s *SharedInformer[T]) ApproxBytes() int64 {
	const sample = 512
	x := s.indexer
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.c != nil {
		return x.c.bytes
	}
	n, total := 0, 0
	x.p.each(func(obj T) bool {
		total += approxSize(obj)
		n++
		return n < sample
	})
	if n == 0 {
		return 0
	}
	return int64(total) * int64(x.p.n) / int64(n)
}

// WaitForSync waits until the cache has synced, ctx ends, or the informer
// stops; it returns nil only in the first case.
func (s *SharedInformer[T]) WaitForSync(ctx context.Context) error {
	select {
	case <-s.syncedCh:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		select {
		case <-s.syncedCh:
			return nil
		default:
		}
		if err := s.Err(); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrStopped, s.opts.Name, err)
		}
		return fmt.Errorf("%w: %s", ErrStopped, s.opts.Name)
	}
}

// LastSyncResourceVersion returns the highest resourceVersion applied to the
// cache so far.
func (s *SharedInformer[T]) LastSyncResourceVersion() string {
	s.rvMu.Lock()
	defer s.rvMu.Unlock()
	return s.appliedRV
}

// WaitForResourceVersion waits until the cache has applied a change with a
// resourceVersion at least rv, which makes the cache reflect a write that
// returned rv (read-your-writes), or ctx ends.
func (s *SharedInformer[T]) WaitForResourceVersion(ctx context.Context, rv string) error {
	for {
		s.rvMu.Lock()
		cur := s.appliedRV
		if cur != "" {
			c, err := resourceversion.CompareResourceVersion(cur, rv)
			if err != nil {
				s.rvMu.Unlock()
				return fmt.Errorf("informer: WaitForResourceVersion %q: %w", rv, err)
			}
			if c >= 0 {
				s.rvMu.Unlock()
				return nil
			}
		}
		if s.rvWait == nil {
			s.rvWait = make(chan struct{})
		}
		ch := s.rvWait
		s.rvMu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return fmt.Errorf("%w: %s", ErrStopped, s.opts.Name)
		}
	}
}

func (s *SharedInformer[T]) observeRV(rv string) {
	s.rvMu.Lock()
	defer s.rvMu.Unlock()
	if s.appliedRV != "" {
		if c, err := resourceversion.CompareResourceVersion(rv, s.appliedRV); err != nil || c <= 0 {
			return
		}
	}
	s.appliedRV = rv
	if s.rvWait != nil {
		close(s.rvWait)
		s.rvWait = nil
	}
}

// AddHandler registers h. If the informer has objects already, h first gets
// OnAdd for each of them (with isInInitialList true). The returned
// Registration's Done closes once h has processed the initial objects.
func (s *SharedInformer[T]) AddHandler(h Handler[T], opts HandlerOptions) (*Registration, error) {
	if h == nil {
		return nil, errors.New("informer: AddHandler: handler is nil")
	}
	if opts.ResyncPeriod < 0 {
		return nil, errors.New("informer: HandlerOptions.ResyncPeriod: must not be negative")
	}
	s.hmu.Lock()
	s.nhandlers++
	if opts.Name == "" {
		opts.Name = fmt.Sprintf("handler-%d", s.nhandlers)
	}
	for _, l := range s.listeners {
		if l.name == opts.Name {
			s.hmu.Unlock()
			return nil, fmt.Errorf("informer: HandlerOptions.Name: %q already registered on %s", opts.Name, s.opts.Name)
		}
	}
	l := newListener(opts.Name, h, s.log, opts.ResyncPeriod, s.opts.Clock.Now())
	for _, obj := range s.indexer.List() {
		l.add(notification[T]{kind: notifyAdd, obj: obj, flag: true})
	}
	if s.synced {
		l.add(notification[T]{kind: notifySynced})
	}
	s.listeners = append(s.listeners, l)
	s.hmu.Unlock()
	l.reg.remove = func() { s.removeListener(l) }

	s.mu.Lock()
	if s.started && !s.stopping {
		s.wg.Go(func() { l.run(s.done) })
	}
	s.mu.Unlock()
	return l.reg, nil
}

// RemoveHandler unregisters the handler of reg: it gets no notification
// after RemoveHandler returns, except at most the one in progress.
func (s *SharedInformer[T]) RemoveHandler(reg *Registration) error {
	if reg == nil || reg.remove == nil {
		return errors.New("informer: RemoveHandler: unknown registration")
	}
	reg.remove()
	return nil
}

func (s *SharedInformer[T]) removeListener(l *listener[T]) {
	s.hmu.Lock()
	for i, x := range s.listeners {
		if x == l {
			s.listeners = append(s.listeners[:i], s.listeners[i+1:]...)
			break
		}
	}
	s.hmu.Unlock()
	l.close()
}

// Run starts the informer and blocks until ctx ends (returning nil) or the
// informer fails (for example, the resource is not served: an error wrapping
// [ErrNotServed]). Every goroutine it starts has ended when it returns.
func (s *SharedInformer[T]) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return ErrAlreadyStarted
	}
	s.started = true
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.hmu.RLock()
	for _, l := range s.listeners {
		s.wg.Go(func() { l.run(s.done) })
	}
	s.hmu.RUnlock()
	s.wg.Go(func() {
		if err := s.reflector.Run(ctx); err != nil {
			s.mu.Lock()
			s.runErr = err
			s.mu.Unlock()
			cancel()
		}
	})
	s.mu.Unlock()

	for ctx.Err() == nil {
		if err := s.fifo.Pop(ctx, s.process); err != nil && ctx.Err() == nil {
			s.log.Error(err, "Processing deltas failed")
		}
	}

	s.mu.Lock()
	s.stopping = true
	close(s.done)
	err := s.runErr
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// process applies the deltas of one key to the cache and notifies the
// handlers. It runs under the FIFO's lock.
func (s *SharedInformer[T]) process(key string, deltas []Delta[T], isInInitialList bool) error {
	s.hmu.RLock()
	// Without handlers, a compact cache need not decode previous objects.
	needOld := len(s.listeners) > 0
	for _, d := range deltas {
		switch {
		case d.Type == Deleted:
			s.indexer.remove(key)
			s.distribute(notification[T]{kind: notifyDelete, obj: d.Object, flag: d.FinalStateUnknown}, false)
		case d.Type == Sync && s.indexer.has(key):
			// The object came from the cache, which has not changed it
			// since (the key was queued with no other delta): nothing to
			// store.
			s.distribute(notification[T]{kind: notifyUpdate, old: d.Object, obj: d.Object}, true)
		default:
			old, existed := s.indexer.set(key, d.Object, needOld)
			switch {
			case !needOld: // no handler to tell
			case existed:
				isSync := old.GetResourceVersion() == d.Object.GetResourceVersion()
				s.distribute(notification[T]{kind: notifyUpdate, old: old, obj: d.Object}, isSync)
			default:
				s.distribute(notification[T]{kind: notifyAdd, obj: d.Object, flag: isInInitialList}, false)
			}
		}
		if !d.FinalStateUnknown {
			s.observeRV(d.Object.GetResourceVersion())
		}
	}
	s.hmu.RUnlock()
	if !s.HasSynced() && s.fifo.HasSynced() {
		// Every object of the first list is now cached and distributed.
		s.markSynced()
	}
	return nil
}

// markSynced closes Done and queues the sync marker for every handler
// registered so far (a handler registered later gets its marker from
// AddHandler). Idempotent.
func (s *SharedInformer[T]) markSynced() {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	if s.synced {
		return
	}
	s.synced = true
	for _, l := range s.listeners {
		l.add(notification[T]{kind: notifySynced})
	}
	close(s.syncedCh)
}

// distribute runs with hmu held for reading.
func (s *SharedInformer[T]) distribute(n notification[T], isSync bool) {
	for _, l := range s.listeners {
		if isSync && !l.resyncing {
			continue
		}
		l.add(n)
	}
}

// approxSize estimates an object's encoded size: the protobuf size for
// built-in types, a walk of the content for unstructured objects.
func approxSize(obj any) int {
	switch o := obj.(type) {
	case interface{ Size() int }:
		return o.Size()
	case *unstructured.Unstructured:
		return approxValueSize(o.Object)
	}
	return 0
}

func approxValueSize(v any) int {
	switch x := v.(type) {
	case map[string]any:
		n := 2
		for k, e := range x {
			n += len(k) + 4 + approxValueSize(e)
		}
		return n
	case []any:
		n := 2
		for _, e := range x {
			n += 1 + approxValueSize(e)
		}
		return n
	case string:
		return len(x) + 2
	default:
		return 8
	}
}
