package informer

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// NamespaceIndex is the name of the index every [Indexer] has: it maps a
// namespace to the keys of the objects in it ("" for cluster-scoped objects).
const NamespaceIndex = "namespace"

// ErrNoIndex is returned when a query names an index the Indexer does not
// have.
var ErrNoIndex = errors.New("informer: no such index")

// IndexFunc computes the index values of an object. It must be a pure,
// cheap function of obj: it is called under the store's write lock, once for
// the old and once for the new object on each change. Returning no value
// leaves the object out of the index.
type IndexFunc[T Object] func(obj T) []string

// Indexers names index functions. The name [NamespaceIndex] is reserved.
type Indexers[T Object] map[string]IndexFunc[T]

// Reader is the read side of a cache. Every method is safe for concurrent use.
//
// Objects returned are shared with the cache and with every other reader:
// they must not be modified. Deep-copy an object before changing it.
type Reader[T Object] interface {
	// Get returns the object stored under key ("namespace/name" or "name").
	Get(key string) (T, bool)
	// List returns every object, in no particular order.
	List() []T
	// ListKeys returns every key, in no particular order.
	ListKeys() []string
	// ByIndex returns the objects whose index function returned value.
	ByIndex(index, value string) ([]T, error)
	// Len returns the number of objects.
	Len() int
}

// Indexer is a thread-safe, indexed map from key to object: the cache behind
// every informer. Each object is held once; indexes hold only keys.
//
// Readers use the [Reader] methods. The write methods (Set, Delete, Replace)
// belong to the component that owns the cache, normally a [SharedInformer].
// Index functions run under the write lock, so reads never see an object
// without its index entries or the reverse.
type Indexer[T Object] struct {
	mu sync.RWMutex
	// items maps key to object. Guarded by mu.
	items map[string]T
	// indexers and indices are guarded by mu; indices[name][value] is the
	// set of keys whose object has value under index name.
	indexers map[string]IndexFunc[T]
	indices  map[string]map[string]map[string]struct{}
	// order lists the indexes for the write path, which iterates a slice
	// rather than a map (map iteration costs a random seed each time).
	order []namedIndex[T]
}

type namedIndex[T Object] struct {
	fn  IndexFunc[T]
	idx map[string]map[string]struct{}
}

var _ Reader[Object] = (*Indexer[Object])(nil)

// IndexerOptions configures [NewIndexer]. The zero value is valid.
type IndexerOptions[T Object] struct {
	// Indexers are index functions in addition to the built-in
	// [NamespaceIndex].
	Indexers Indexers[T]
}

// NewIndexer returns an empty Indexer with the namespace index and the
// index functions in opts.
func NewIndexer[T Object](opts IndexerOptions[T]) (*Indexer[T], error) {
	nsIdx := map[string]map[string]struct{}{}
	x := &Indexer[T]{
		items:    map[string]T{},
		indexers: map[string]IndexFunc[T]{NamespaceIndex: namespaceIndexFunc[T]},
		indices:  map[string]map[string]map[string]struct{}{NamespaceIndex: nsIdx},
		order:    []namedIndex[T]{{fn: namespaceIndexFunc[T], idx: nsIdx}},
	}
	if err := x.AddIndexers(opts.Indexers); err != nil {
		return nil, fmt.Errorf("informer: IndexerOptions.Indexers: %w", err)
	}
	return x, nil
}

func namespaceIndexFunc[T Object](obj T) []string {
	return []string{obj.GetNamespace()}
}

// AddIndexers adds index functions and indexes the objects already stored.
// It fails, adding nothing, if a name is already taken or a function is nil.
func (x *Indexer[T]) AddIndexers(indexers Indexers[T]) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(indexers)) {
		if _, ok := x.indexers[name]; ok {
			return fmt.Errorf("index %q already exists", name)
		}
		if indexers[name] == nil {
			return fmt.Errorf("index %q has a nil IndexFunc", name)
		}
	}
	for name, fn := range indexers {
		x.indexers[name] = fn
		idx := map[string]map[string]struct{}{}
		x.indices[name] = idx
		x.order = append(x.order, namedIndex[T]{fn: fn, idx: idx})
		for key, obj := range x.items {
			for _, v := range fn(obj) {
				addToIndex(idx, v, key)
			}
		}
	}
	return nil
}

// Get returns the object stored under key.
func (x *Indexer[T]) Get(key string) (T, bool) {
	x.mu.RLock()
	obj, ok := x.items[key]
	x.mu.RUnlock()
	return obj, ok
}

// List returns every object, in no particular order.
func (x *Indexer[T]) List() []T {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]T, 0, len(x.items))
	for _, obj := range x.items {
		out = append(out, obj)
	}
	return out
}

// ListKeys returns every key, in no particular order.
func (x *Indexer[T]) ListKeys() []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return slices.Collect(maps.Keys(x.items))
}

// Len returns the number of objects.
func (x *Indexer[T]) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.items)
}

// ByIndex returns the objects whose index function returned value.
func (x *Indexer[T]) ByIndex(index, value string) ([]T, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	idx, ok := x.indices[index]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoIndex, index)
	}
	keys := idx[value]
	out := make([]T, 0, len(keys))
	for k := range keys {
		out = append(out, x.items[k])
	}
	return out, nil
}

// IndexKeys returns the keys of the objects whose index function returned
// value.
func (x *Indexer[T]) IndexKeys(index, value string) ([]string, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	idx, ok := x.indices[index]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoIndex, index)
	}
	return slices.Collect(maps.Keys(idx[value])), nil
}

// IndexValues returns the values present in an index.
func (x *Indexer[T]) IndexValues(index string) ([]string, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	idx, ok := x.indices[index]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoIndex, index)
	}
	return slices.Collect(maps.Keys(idx)), nil
}

// Set stores obj under key, replacing any previous object, and returns the
// previous object if there was one.
func (x *Indexer[T]) Set(key string, obj T) (old T, existed bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.setLocked(key, obj)
}

func (x *Indexer[T]) setLocked(key string, obj T) (old T, existed bool) {
	old, existed = x.items[key]
	x.items[key] = obj
	for _, ni := range x.order {
		fn, idx := ni.fn, ni.idx
		var oldVals []string
		if existed {
			oldVals = fn(old)
		}
		newVals := fn(obj)
		if len(oldVals) == 1 && len(newVals) == 1 && oldVals[0] == newVals[0] {
			continue
		}
		for _, v := range oldVals {
			removeFromIndex(idx, v, key)
		}
		for _, v := range newVals {
			addToIndex(idx, v, key)
		}
	}
	return old, existed
}

// Delete removes the object stored under key and returns it.
func (x *Indexer[T]) Delete(key string) (old T, existed bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.deleteLocked(key)
}

func (x *Indexer[T]) deleteLocked(key string) (old T, existed bool) {
	old, existed = x.items[key]
	if !existed {
		return old, false
	}
	delete(x.items, key)
	for _, ni := range x.order {
		for _, v := range ni.fn(old) {
			removeFromIndex(ni.idx, v, key)
		}
	}
	return old, true
}

// Replace makes objs, keyed by [KeyOf], the whole content of the store.
func (x *Indexer[T]) Replace(objs []T) {
	items := make(map[string]T, len(objs))
	for _, obj := range objs {
		items[KeyOf(obj)] = obj
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.items = items
	x.order = x.order[:0]
	for name, fn := range x.indexers {
		idx := map[string]map[string]struct{}{}
		for key, obj := range items {
			for _, v := range fn(obj) {
				addToIndex(idx, v, key)
			}
		}
		x.indices[name] = idx
		x.order = append(x.order, namedIndex[T]{fn: fn, idx: idx})
	}
}

func addToIndex(idx map[string]map[string]struct{}, value, key string) {
	set := idx[value]
	if set == nil {
		set = map[string]struct{}{}
		idx[value] = set
	}
	set[key] = struct{}{}
}

func removeFromIndex(idx map[string]map[string]struct{}, value, key string) {
	set := idx[value]
	if set == nil {
		return
	}
	delete(set, key)
	if len(set) == 0 {
		delete(idx, value)
	}
}
