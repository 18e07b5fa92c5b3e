// Package informertest provides an in-memory API server for one kind of
// object, [Source], that implements informer.ListerWatcher. Use it to test
// code built on informers without a cluster, and to drive the failure modes
// informers must survive: expired resourceVersions (410 Gone), dropped
// watches, list and watch errors, bookmarks, streaming lists.
package informertest

import (
	"cmp"
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/capstan-io/capstan/informer"
)

// Options configures [NewSource]. The zero value is valid.
type Options struct {
	// WatchList makes the Source serve streaming lists (watches with
	// sendInitialEvents=true). Without it, such a watch fails with 422
	// Invalid, as on an API server that does not offer streaming lists.
	WatchList bool
	// Resource names the resource in errors; default "configmaps".
	Resource string
}

type event[T informer.Object] struct {
	typ watch.EventType
	obj T
	rv  int64
}

// Source is an in-memory API server for objects of type T. It keeps the
// objects, a resourceVersion counter and the history of changes (until
// Compact), and serves List and Watch with the semantics of kube-apiserver
// that informers depend on. All methods are safe for concurrent use.
type Source[T informer.Object] struct {
	opts Options

	mu          sync.Mutex
	rv          int64
	objects     map[string]T
	history     []event[T]
	compactedRV int64
	watches     map[*fakeWatch]bool
	listErr     error
	watchErr    error
	lists       int
	watchCalls  int
	snapshots   map[string][]T
	nextSnap    int
}

var _ informer.ListerWatcher[informer.Object] = (*Source[informer.Object])(nil)

// NewSource returns an empty Source.
func NewSource[T informer.Object](opts Options) *Source[T] {
	if opts.Resource == "" {
		opts.Resource = "configmaps"
	}
	return &Source[T]{opts: opts, objects: map[string]T{}, watches: map[*fakeWatch]bool{}, snapshots: map[string][]T{}}
}

func (s *Source[T]) gr() schema.GroupResource { return schema.GroupResource{Resource: s.opts.Resource} }

func clone[T informer.Object](obj T) T { return obj.DeepCopyObject().(T) }

// Create stores a copy of obj with a new resourceVersion and returns it.
func (s *Source[T]) Create(obj T) (T, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := informer.KeyOf(obj)
	if _, ok := s.objects[key]; ok {
		return *new(T), apierrors.NewAlreadyExists(s.gr(), key)
	}
	return s.writeLocked(watch.Added, key, obj), nil
}

// Update replaces the stored object with a copy of obj with a new
// resourceVersion and returns it.
func (s *Source[T]) Update(obj T) (T, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := informer.KeyOf(obj)
	if _, ok := s.objects[key]; !ok {
		return *new(T), apierrors.NewNotFound(s.gr(), key)
	}
	return s.writeLocked(watch.Modified, key, obj), nil
}

// Delete removes an object; watchers see it with a new resourceVersion.
func (s *Source[T]) Delete(namespace, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := informer.Key(namespace, name)
	old, ok := s.objects[key]
	if !ok {
		return apierrors.NewNotFound(s.gr(), key)
	}
	s.writeLocked(watch.Deleted, key, old)
	return nil
}

func (s *Source[T]) writeLocked(typ watch.EventType, key string, obj T) T {
	s.rv++
	stored := clone(obj)
	stored.SetResourceVersion(strconv.FormatInt(s.rv, 10))
	if typ == watch.Deleted {
		delete(s.objects, key)
	} else {
		s.objects[key] = stored
	}
	ev := event[T]{typ: typ, obj: stored, rv: s.rv}
	s.history = append(s.history, ev)
	for w := range s.watches {
		w.send(watch.Event{Type: typ, Object: clone(stored)})
	}
	return clone(stored)
}

// Get returns a copy of a stored object.
func (s *Source[T]) Get(namespace, name string) (T, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[informer.Key(namespace, name)]
	if !ok {
		return o, false
	}
	return clone(o), true
}

// ResourceVersion returns the current resourceVersion.
func (s *Source[T]) ResourceVersion() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strconv.FormatInt(s.rv, 10)
}

// BumpResourceVersion advances the resourceVersion without changing any
// object, as writes to other resources do on a real server; a following
// Bookmark carries the new resourceVersion.
func (s *Source[T]) BumpResourceVersion() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rv++
}

// Compact forgets the history: a watch from any resourceVersion before now
// fails with 410 Gone ("too old resource version"), as after an etcd
// compaction.
func (s *Source[T]) Compact() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.history = nil
	s.compactedRV = s.rv
}

// DropWatches ends every open watch, as an API server restart does.
func (s *Source[T]) DropWatches() {
	s.mu.Lock()
	ws := make([]*fakeWatch, 0, len(s.watches))
	for w := range s.watches {
		ws = append(ws, w)
		delete(s.watches, w)
	}
	s.mu.Unlock()
	for _, w := range ws {
		w.Stop()
	}
}

// Bookmark sends a bookmark with the current resourceVersion to every open
// watch that allows bookmarks.
func (s *Source[T]) Bookmark() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range s.watches {
		if w.bookmarks {
			w.send(watch.Event{Type: watch.Bookmark, Object: s.bookmarkLocked(false)})
		}
	}
}

// SetListError makes every List fail with err until called with nil.
func (s *Source[T]) SetListError(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listErr = err
}

// SetWatchError makes every Watch fail with err until called with nil.
func (s *Source[T]) SetWatchError(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watchErr = err
}

// Calls returns how many List and Watch calls the Source has served or
// failed.
func (s *Source[T]) Calls() (lists, watches int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lists, s.watchCalls
}

// OpenWatches returns the number of watches not yet stopped.
func (s *Source[T]) OpenWatches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.watches)
}

func (s *Source[T]) bookmarkLocked(initialEnd bool) T {
	obj := reflect.New(reflect.TypeFor[T]().Elem()).Interface().(T)
	obj.SetResourceVersion(strconv.FormatInt(s.rv, 10))
	if initialEnd {
		obj.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
	}
	return obj
}

func (s *Source[T]) sortedLocked() []T {
	out := make([]T, 0, len(s.objects))
	for _, o := range s.objects {
		out = append(out, clone(o))
	}
	slices.SortFunc(out, func(a, b T) int { return cmp.Compare(informer.KeyOf(a), informer.KeyOf(b)) })
	return out
}

// List serves a list. ResourceVersion "0" returns everything at once (as
// the watch cache does); otherwise Limit and Continue paginate a consistent
// snapshot.
func (s *Source[T]) List(ctx context.Context, opts metav1.ListOptions) (*informer.Page[T], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lists++
	if s.listErr != nil {
		return nil, s.listErr
	}
	if err := s.checkRVLocked(opts.ResourceVersion); err != nil {
		return nil, err
	}
	var items []T
	rv := strconv.FormatInt(s.rv, 10)
	if opts.Continue != "" {
		snap, ok := s.snapshots[opts.Continue]
		if !ok {
			return nil, apierrors.NewResourceExpired("continue token expired")
		}
		delete(s.snapshots, opts.Continue)
		items = snap[1:]
		rv = snap[0].GetResourceVersion()
	} else {
		items = s.sortedLocked()
	}
	page := &informer.Page[T]{ResourceVersion: rv}
	if opts.Limit > 0 && opts.ResourceVersion != "0" && int64(len(items)) > opts.Limit {
		rest := items[opts.Limit:]
		items = items[:opts.Limit]
		s.nextSnap++
		tok := "c" + strconv.Itoa(s.nextSnap)
		marker := reflect.New(reflect.TypeFor[T]().Elem()).Interface().(T)
		marker.SetResourceVersion(rv)
		s.snapshots[tok] = append([]T{marker}, rest...)
		page.Continue = tok
	}
	page.Items = items
	return page, nil
}

func (s *Source[T]) checkRVLocked(rv string) error {
	if rv == "" || rv == "0" {
		return nil
	}
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("invalid resourceVersion %q", rv))
	}
	if n > s.rv {
		return apierrors.NewTimeoutError("Too large resource version", 1)
	}
	return nil
}

// Watch serves a watch: from ResourceVersion X it replays the changes after
// X (or fails with 410 Gone if X was compacted away); from "" or "0" it
// first sends the current objects as Added. With SendInitialEvents it
// streams the current objects, then a bookmark marking their end.
func (s *Source[T]) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watchCalls++
	if s.watchErr != nil {
		return nil, s.watchErr
	}
	if opts.SendInitialEvents != nil && *opts.SendInitialEvents {
		if !s.opts.WatchList {
			return nil, apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: "ListOptions"}, "",
				field.ErrorList{field.Forbidden(field.NewPath("sendInitialEvents"), "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled")})
		}
		if opts.ResourceVersionMatch != metav1.ResourceVersionMatchNotOlderThan || !opts.AllowWatchBookmarks {
			return nil, apierrors.NewBadRequest("sendInitialEvents requires resourceVersionMatch=NotOlderThan and allowWatchBookmarks")
		}
		if err := s.checkRVLocked(opts.ResourceVersion); err != nil {
			return nil, err
		}
	}
	w := newFakeWatch(ctx, opts.AllowWatchBookmarks, func(w *fakeWatch) {
		s.mu.Lock()
		delete(s.watches, w)
		s.mu.Unlock()
	})
	s.watches[w] = true
	switch {
	case opts.SendInitialEvents != nil && *opts.SendInitialEvents:
		for _, o := range s.sortedLocked() {
			w.send(watch.Event{Type: watch.Added, Object: o})
		}
		w.send(watch.Event{Type: watch.Bookmark, Object: s.bookmarkLocked(true)})
	case opts.ResourceVersion == "" || opts.ResourceVersion == "0":
		for _, o := range s.sortedLocked() {
			w.send(watch.Event{Type: watch.Added, Object: o})
		}
	default:
		from, err := strconv.ParseInt(opts.ResourceVersion, 10, 64)
		switch {
		case err != nil:
			w.send(watch.Event{Type: watch.Error, Object: &apierrors.NewBadRequest("invalid resourceVersion").ErrStatus})
		case from < s.compactedRV:
			st := apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %d (%d)", from, s.compactedRV)).ErrStatus
			st.Code = 410
			w.send(watch.Event{Type: watch.Error, Object: &st})
		case from > s.rv:
			st := apierrors.NewTimeoutError("Too large resource version", 1).ErrStatus
			w.send(watch.Event{Type: watch.Error, Object: &st})
		default:
			for _, ev := range s.history {
				if ev.rv > from {
					w.send(watch.Event{Type: ev.typ, Object: clone(ev.obj)})
				}
			}
		}
	}
	return w, nil
}

// fakeWatch is a watch.Interface with an unbounded buffer, so a Source
// never blocks on a slow reader. One goroutine per watch moves events from
// the buffer to the result channel; it ends on Stop or when the watch's
// context ends, closing the result channel.
type fakeWatch struct {
	bookmarks bool
	ch        chan watch.Event
	stopOnce  sync.Once
	stop      chan struct{}
	onStop    func(*fakeWatch)

	mu     sync.Mutex
	buf    []watch.Event
	notify chan struct{}
}

func newFakeWatch(ctx context.Context, bookmarks bool, onStop func(*fakeWatch)) *fakeWatch {
	w := &fakeWatch{bookmarks: bookmarks, ch: make(chan watch.Event), stop: make(chan struct{}), notify: make(chan struct{}, 1), onStop: onStop}
	go w.pump(ctx)
	return w
}

func (w *fakeWatch) send(ev watch.Event) {
	w.mu.Lock()
	w.buf = append(w.buf, ev)
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

func (w *fakeWatch) pump(ctx context.Context) {
	defer close(w.ch)
	defer w.Stop()
	for {
		w.mu.Lock()
		var ev watch.Event
		has := len(w.buf) > 0
		if has {
			ev = w.buf[0]
			w.buf[0] = watch.Event{}
			w.buf = w.buf[1:]
		}
		w.mu.Unlock()
		if !has {
			select {
			case <-w.notify:
				continue
			case <-w.stop:
				return
			case <-ctx.Done():
				return
			}
		}
		select {
		case w.ch <- ev:
		case <-w.stop:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (w *fakeWatch) Stop() {
	w.stopOnce.Do(func() {
		close(w.stop)
		w.onStop(w)
	})
}

func (w *fakeWatch) ResultChan() <-chan watch.Event { return w.ch }
