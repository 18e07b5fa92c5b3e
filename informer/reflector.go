package informer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/clock"
)

// ErrNotServed is returned by [Reflector.Run] when the API server does not
// serve the resource (a list or watch answered 404 Not Found), for example a
// CRD that is not installed. Retrying would spin without end, so the
// Reflector stops.
var ErrNotServed = errors.New("informer: resource not served by the API server")

// ReflectorStore receives what a [Reflector] observes. [DeltaFIFO]
// implements it.
type ReflectorStore[T Object] interface {
	Add(obj T) error
	Update(obj T) error
	Delete(obj T) error
	// Replace delivers a complete list and its resourceVersion.
	Replace(list []T, resourceVersion string) error
	// Resync is called every ResyncPeriod.
	Resync() error
}

var _ ReflectorStore[Object] = (*DeltaFIFO[Object])(nil)

// WatchListMode chooses how a Reflector gets its initial state.
type WatchListMode uint8

const (
	// WatchListAuto streams the initial state through a watch with
	// sendInitialEvents (cheaper for the API server and the client) and
	// falls back to paginated lists if the server refuses.
	WatchListAuto WatchListMode = iota
	// WatchListOff always lists.
	WatchListOff
)

// ReflectorOptions configures [NewReflector]. The zero value is valid.
type ReflectorOptions struct {
	// Name identifies the reflector in logs; default "reflector".
	Name string
	// Logger receives the reflector's logs; default logr.Discard().
	Logger logr.Logger
	// Clock drives backoff, watch timeouts and resync; default the real clock.
	Clock clock.WithTicker
	// ResyncPeriod, if positive, makes the store Resync at that interval.
	ResyncPeriod time.Duration
	// PageSize is the Limit of each list page; default 500. The API server
	// ignores it when it serves a list from its watch cache.
	PageSize int64
	// WatchList chooses streaming lists or lists; default WatchListAuto.
	WatchList WatchListMode
	// InitialBackoff and MaxBackoff bound the jittered exponential backoff
	// after errors; defaults 800ms and 30s (client-go's).
	InitialBackoff, MaxBackoff time.Duration
	// MinWatchTimeout: each watch asks the server to end it after a random
	// time in [MinWatchTimeout, 2*MinWatchTimeout], spreading reconnects;
	// default 5m.
	MinWatchTimeout time.Duration
}

func (o *ReflectorOptions) defaults() error {
	if o.Name == "" {
		o.Name = "reflector"
	}
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.PageSize == 0 {
		o.PageSize = 500
	}
	if o.InitialBackoff == 0 {
		o.InitialBackoff = defaultInitialBackoff
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = defaultMaxBackoff
	}
	if o.MinWatchTimeout == 0 {
		o.MinWatchTimeout = 5 * time.Minute
	}
	switch {
	case o.ResyncPeriod < 0:
		return errors.New("informer: ReflectorOptions.ResyncPeriod: must not be negative")
	case o.PageSize < 0:
		return errors.New("informer: ReflectorOptions.PageSize: must not be negative")
	case o.InitialBackoff < 0 || o.MaxBackoff < o.InitialBackoff:
		return errors.New("informer: ReflectorOptions.InitialBackoff/MaxBackoff: need 0 <= InitialBackoff <= MaxBackoff")
	case o.MinWatchTimeout < time.Second:
		return errors.New("informer: ReflectorOptions.MinWatchTimeout: must be at least 1s")
	case o.WatchList > WatchListOff:
		return fmt.Errorf("informer: ReflectorOptions.WatchList: unknown mode %d", o.WatchList)
	}
	return nil
}

// Reflector keeps a [ReflectorStore] in step with the API server: it lists
// (or streams the initial state), then watches from the list's
// resourceVersion, delivering every change to the store in the server's
// order.
//
// Guarantees:
//   - A closed watch is resumed from the last resourceVersion seen, so no
//     change is missed or delivered twice.
//   - When the server no longer has that resourceVersion (410 Gone), the
//     Reflector relists; the store's Replace reports what vanished meanwhile.
//   - Errors are retried after a jittered exponential backoff (800ms doubling
//     to 30s by default), except [ErrNotServed], which ends Run.
//
// One goroutine, the caller of Run, does all the work.
type Reflector[T Object] struct {
	lw    ListerWatcher[T]
	store ReflectorStore[T]
	opts  ReflectorOptions
	log   logr.Logger

	mu sync.Mutex
	// lastRV is the resourceVersion of the last list or event delivered to
	// the store. rvUnavailable: the server said lastRV is too old or too
	// new; the next list must be a consistent one (ResourceVersion "").
	// noWatchList: the server refused a streaming list. Guarded by mu.
	lastRV        string
	rvUnavailable bool
	noWatchList   bool
}

// NewReflector returns a Reflector from lw into store.
func NewReflector[T Object](lw ListerWatcher[T], store ReflectorStore[T], opts ReflectorOptions) (*Reflector[T], error) {
	if lw == nil {
		return nil, errors.New("informer: NewReflector: ListerWatcher is nil")
	}
	if store == nil {
		return nil, errors.New("informer: NewReflector: store is nil")
	}
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	return &Reflector[T]{lw: lw, store: store, opts: opts, log: opts.Logger.WithValues("reflector", opts.Name), noWatchList: opts.WatchList == WatchListOff}, nil
}

// LastSyncResourceVersion returns the resourceVersion of the last list or
// event the Reflector delivered to its store ("" before the first list).
func (r *Reflector[T]) LastSyncResourceVersion() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastRV
}

func (r *Reflector[T]) setRV(rv string) {
	r.mu.Lock()
	r.lastRV = rv
	r.mu.Unlock()
}

// Run lists and watches until ctx ends (returning nil) or the resource is
// not served (returning an error wrapping ErrNotServed).
func (r *Reflector[T]) Run(ctx context.Context) error {
	b := &backoff{clock: r.opts.Clock, initial: r.opts.InitialBackoff, max: r.opts.MaxBackoff}
	for {
		started := r.opts.Clock.Now()
		err := r.listAndWatch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrNotServed) {
			r.log.Error(err, "Resource not served; stopping")
			return err
		}
		if err != nil {
			r.log.V(1).Info("List and watch failed; backing off", "err", err.Error())
		}
		if !r.sleep(ctx, b.next(started)) {
			return nil
		}
	}
}

func (r *Reflector[T]) sleep(ctx context.Context, d time.Duration) bool {
	t := r.opts.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

func (r *Reflector[T]) notServed(err error) error {
	return fmt.Errorf("%w: %s: %w", ErrNotServed, r.opts.Name, err)
}

func isExpired(err error) bool {
	return apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
}

func isTooLargeRV(err error) bool {
	if apierrors.HasStatusCause(err, metav1.CauseTypeResourceVersionTooLarge) {
		return true
	}
	var st apierrors.APIStatus
	if !apierrors.IsTimeout(err) || !errors.As(err, &st) {
		return false
	}
	s := st.Status()
	if strings.Contains(s.Message, "Too large resource version") {
		return true
	}
	if s.Details != nil {
		for _, c := range s.Details.Causes {
			if c.Message == "Too large resource version" {
				return true
			}
		}
	}
	return false
}

// isRetriable: errors after which retrying the watch (rather than relisting)
// is the right move: the server is down or asks us to slow down.
func isRetriable(err error) bool {
	return utilnet.IsConnectionRefused(err) || apierrors.IsTooManyRequests(err)
}

func (r *Reflector[T]) listAndWatch(ctx context.Context) error {
	var w watch.Interface
	r.mu.Lock()
	useWatchList := !r.noWatchList
	r.mu.Unlock()
	if useWatchList {
		var err error
		w, err = r.watchList(ctx)
		if err != nil {
			return err
		}
	}
	if w == nil {
		if err := r.list(ctx); err != nil {
			return err
		}
	}
	return r.watch(ctx, w)
}

func (r *Reflector[T]) relistRV() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.rvUnavailable:
		return ""
	case r.lastRV == "":
		// Any state will do for the first list: "0" lets the server answer
		// from its watch cache.
		return "0"
	}
	return r.lastRV
}

func (r *Reflector[T]) list(ctx context.Context) error {
	rv := r.relistRV()
	for attempt := 0; ; attempt++ {
		opts := metav1.ListOptions{ResourceVersion: rv, Limit: r.opts.PageSize}
		if rv != "" && rv != "0" {
			// Paging a list at a given resourceVersion would read from etcd
			// at exactly that version; unpaged, the watch cache serves it.
			opts.Limit = 0
		}
		var items []T
		var listRV string
		var err error
		for {
			var page *Page[T]
			page, err = r.lw.List(ctx, opts)
			if err != nil {
				break
			}
			items = append(items, page.Items...)
			listRV = page.ResourceVersion
			if page.Continue == "" {
				break
			}
			opts.Continue, opts.ResourceVersion = page.Continue, ""
		}
		switch {
		case err == nil:
		case apierrors.IsNotFound(err):
			return r.notServed(err)
		case (isExpired(err) || isTooLargeRV(err)) && attempt == 0:
			r.mu.Lock()
			r.rvUnavailable = true
			r.mu.Unlock()
			rv = ""
			continue
		default:
			return fmt.Errorf("list: %w", err)
		}
		if err := r.store.Replace(items, listRV); err != nil {
			return fmt.Errorf("replace: %w", err)
		}
		r.mu.Lock()
		r.lastRV, r.rvUnavailable = listRV, false
		r.mu.Unlock()
		r.log.V(1).Info("Listed", "count", len(items), "resourceVersion", listRV)
		return nil
	}
}

func (r *Reflector[T]) watchTimeout() *int64 {
	minS := int64(r.opts.MinWatchTimeout / time.Second)
	s := minS + rand.Int64N(minS+1)
	return &s
}

// watchList streams the initial state. It returns the watch to continue
// with, or (nil, nil) to fall back to a list.
func (r *Reflector[T]) watchList(ctx context.Context) (watch.Interface, error) {
	send := true
	for attempt := 0; ; attempt++ {
		r.mu.Lock()
		rv := r.lastRV
		if r.rvUnavailable {
			rv = ""
		}
		r.mu.Unlock()
		w, err := r.lw.Watch(ctx, metav1.ListOptions{
			ResourceVersion:      rv,
			ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan,
			SendInitialEvents:    &send,
			AllowWatchBookmarks:  true,
			TimeoutSeconds:       r.watchTimeout(),
		})
		if err == nil {
			var list []T
			var listRV string
			list, listRV, err = r.collectInitial(ctx, w)
			if err == nil {
				if err := r.store.Replace(list, listRV); err != nil {
					w.Stop()
					return nil, fmt.Errorf("replace: %w", err)
				}
				r.mu.Lock()
				r.lastRV, r.rvUnavailable = listRV, false
				r.mu.Unlock()
				r.log.V(1).Info("Streamed initial list", "count", len(list), "resourceVersion", listRV)
				return w, nil
			}
			w.Stop()
		}
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case apierrors.IsNotFound(err):
			return nil, r.notServed(err)
		case (isExpired(err) || isTooLargeRV(err)) && attempt == 0:
			r.mu.Lock()
			r.rvUnavailable = true
			r.mu.Unlock()
			continue
		case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsMethodNotSupported(err):
			r.log.V(1).Info("Server refused a streaming list; falling back to lists", "err", err.Error())
			r.mu.Lock()
			r.noWatchList = true
			r.mu.Unlock()
			return nil, nil
		default:
			return nil, fmt.Errorf("streaming list: %w", err)
		}
	}
}

// errWatchEnded: the stream of initial events ended before its bookmark.
var errWatchEnded = errors.New("watch ended before the end of the initial events")

// collectInitial reads a streaming list up to the bookmark that ends it.
// The API server sends only Added events before that bookmark; should
// anything else arrive, the items are re-keyed so the last event per
// object wins.
func (r *Reflector[T]) collectInitial(ctx context.Context, w watch.Interface) ([]T, string, error) {
	var items []T
	var byKey map[string]int // built only if a non-Added event arrives
	var deleted map[int]bool // indexes in items of objects deleted since
	for {
		select {
		case <-ctx.Done():
			return nil, "", ctx.Err()
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil, "", errWatchEnded
			}
			if ev.Type == watch.Error {
				return nil, "", apierrors.FromObject(ev.Object)
			}
			obj, ok := ev.Object.(T)
			if !ok {
				r.log.Error(nil, "Unexpected object type in watch", "type", fmt.Sprintf("%T", ev.Object))
				continue
			}
			switch ev.Type {
			case watch.Added:
				if byKey == nil {
					items = append(items, obj)
					continue
				}
				fallthrough
			case watch.Modified, watch.Deleted:
				if byKey == nil {
					byKey = make(map[string]int, len(items))
					for i, o := range items {
						byKey[KeyOf(o)] = i
					}
				}
				key := KeyOf(obj)
				i, seen := byKey[key]
				switch {
				case ev.Type == watch.Deleted && seen:
					if deleted == nil {
						deleted = map[int]bool{}
					}
					deleted[i] = true
					delete(byKey, key)
				case ev.Type == watch.Deleted:
				case seen:
					items[i] = obj
				default:
					byKey[key] = len(items)
					items = append(items, obj)
				}
			case watch.Bookmark:
				if obj.GetAnnotations()[metav1.InitialEventsAnnotationKey] == "true" {
					if len(deleted) > 0 {
						kept := items[:0]
						for i, o := range items {
							if !deleted[i] {
								kept = append(kept, o)
							}
						}
						items = kept
					}
					return items, obj.GetResourceVersion(), nil
				}
			}
		}
	}
}

// errVeryShortWatch: the server closed a watch at once without an event,
// which it does while it is shutting down or unhealthy.
var errVeryShortWatch = errors.New("watch closed immediately with no event")

// watch watches from the last resourceVersion, resuming closed watches,
// until ctx ends or an error calls for a relist. w, if not nil, is a watch
// already open at that resourceVersion.
func (r *Reflector[T]) watch(ctx context.Context, w watch.Interface) error {
	var resync <-chan time.Time
	if r.opts.ResyncPeriod > 0 {
		t := r.opts.Clock.NewTicker(r.opts.ResyncPeriod)
		defer t.Stop()
		resync = t.C()
	}
	b := &backoff{clock: r.opts.Clock, initial: r.opts.InitialBackoff, max: r.opts.MaxBackoff}
	for {
		start := r.opts.Clock.Now()
		if w == nil {
			var err error
			w, err = r.lw.Watch(ctx, metav1.ListOptions{
				ResourceVersion:     r.LastSyncResourceVersion(),
				AllowWatchBookmarks: true,
				TimeoutSeconds:      r.watchTimeout(),
			})
			switch {
			case err == nil:
			case ctx.Err() != nil:
				return nil
			case apierrors.IsNotFound(err):
				return r.notServed(err)
			case isRetriable(err):
				r.log.V(1).Info("Watch failed; backing off", "err", err.Error())
				if !r.sleep(ctx, b.next(start)) {
					return nil
				}
				continue
			default:
				return fmt.Errorf("watch: %w", err)
			}
		}
		err := r.handleWatch(ctx, w, resync, start)
		w.Stop()
		w = nil
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			continue // closed normally: resume from the last resourceVersion
		case isExpired(err):
			r.log.V(1).Info("Watch expired; relisting", "err", err.Error())
			return nil
		case apierrors.IsTooManyRequests(err):
			if !r.sleep(ctx, b.next(start)) {
				return nil
			}
			continue
		default:
			return fmt.Errorf("watch: %w", err)
		}
	}
}

func (r *Reflector[T]) handleWatch(ctx context.Context, w watch.Interface, resync <-chan time.Time, start time.Time) error {
	events := 0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-resync:
			if err := r.store.Resync(); err != nil {
				return fmt.Errorf("resync: %w", err)
			}
		case ev, ok := <-w.ResultChan():
			if !ok {
				if events == 0 && r.opts.Clock.Since(start) < time.Second {
					return errVeryShortWatch
				}
				return nil
			}
			events++
			if ev.Type == watch.Error {
				return apierrors.FromObject(ev.Object)
			}
			obj, ok := ev.Object.(T)
			if !ok {
				r.log.Error(nil, "Unexpected object type in watch", "type", fmt.Sprintf("%T", ev.Object))
				continue
			}
			var err error
			switch ev.Type {
			case watch.Added:
				err = r.store.Add(obj)
			case watch.Modified:
				err = r.store.Update(obj)
			case watch.Deleted:
				err = r.store.Delete(obj)
			case watch.Bookmark:
			default:
				r.log.Error(nil, "Unknown watch event type", "eventType", string(ev.Type))
				continue
			}
			if err != nil {
				r.log.Error(err, "Store rejected a watch event", "namespace", obj.GetNamespace(), "name", obj.GetName())
			}
			r.setRV(obj.GetResourceVersion())
		}
	}
}
