package informer

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
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
//
// A compact Indexer ([IndexerOptions.Compact]) keeps each object encoded
// and decodes it on read; see [IndexerOptions.Compact] for what that costs
// and what it changes.
type Indexer[T Object] struct {
	mu sync.RWMutex
	// Exactly one of p and c holds the objects: p by default, c when
	// compact. Both keep objects by namespace, which makes the namespace
	// index: it has no entry in indices or order. Guarded by mu.
	p *plainStore[T]
	c *compactStore[T]
	// indexers (every index, NamespaceIndex included) and indices (the
	// others: indices[name][value] is the set of keys whose object has
	// value under index name) are guarded by mu.
	indexers map[string]IndexFunc[T]
	indices  map[string]map[string]map[string]struct{}
	// order lists the indexes other than the namespace index for the
	// write path, which iterates a slice rather than a map (map iteration
	// costs a random seed each time).
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
	// Compact keeps each object encoded in one string (protobuf for types
	// that have it, such as every built-in type and
	// PartialObjectMetadata; CBOR for unstructured objects; JSON for other
	// types) and decodes it on read, which about halves the memory of a
	// cache of protobuf types. A small cache of decoded objects (see
	// CompactHotObjects) serves repeated reads and holds each object last
	// stored, so a read following an event costs no decoding.
	//
	// What it costs: a read that misses the hot cache decodes (1-2 µs for a
	// 1 KiB ConfigMap), List and ByIndex decode every object they return
	// (label selectors are matched on the encoding for protobuf types, so
	// objects that do not match are not decoded), each write encodes, and
	// an index function other than the namespace index makes a write decode
	// the previous object.
	//
	// What it changes: objects come back as their encoding decodes them.
	// An empty (non-nil) map or slice comes back nil with protobuf and JSON
	// (Kubernetes' semantic equality treats the two alike), and JSON
	// decodes numbers in interface{} fields as int64 or float64, as any
	// JSON client does. Two reads of an object that is not hot return two
	// copies; both are read-only as always. The namespace index is derived
	// from the key, which is the object's namespace for keys from [KeyOf]
	// (as every informer uses).
	//
	// Compact needs T to be a pointer to a struct. An object that cannot be
	// encoded (such as unstructured content with NaN) is kept decoded.
	Compact bool
	// CompactHotObjects is how many decoded objects a compact Indexer
	// keeps: 0 means [DefaultCompactHotObjects], a negative number none.
	CompactHotObjects int
}

// NewIndexer returns an empty Indexer with the namespace index and the
// index functions in opts.
func NewIndexer[T Object](opts IndexerOptions[T]) (*Indexer[T], error) {
	return newIndexer(opts, nil)
}

// newIndexer is NewIndexer with a function to report objects a compact
// Indexer fails to encode or decode.
func newIndexer[T Object](opts IndexerOptions[T], onError func(key string, err error)) (*Indexer[T], error) {
	x := &Indexer[T]{
		indexers: map[string]IndexFunc[T]{NamespaceIndex: namespaceIndexFunc[T]},
		indices:  map[string]map[string]map[string]struct{}{},
	}
	if opts.Compact {
		hot := opts.CompactHotObjects
		if hot == 0 {
			hot = DefaultCompactHotObjects
		}
		var err error
		if x.c, err = newCompactStore[T](hot, onError); err != nil {
			return nil, fmt.Errorf("informer: IndexerOptions.Compact: %w", err)
		}
	} else {
		x.p = newPlainStore[T]()
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
		if x.c != nil {
			x.c.each(func(e string) bool {
				obj, err := x.c.object(e)
				key, _ := entryKey(e)
				if err != nil {
					x.c.onError(key, err)
					return true
				}
				for _, v := range fn(obj) {
					addToIndex(idx, v, key)
				}
				return true
			})
			continue
		}
		x.p.eachKeyed(func(key string, obj T) {
			for _, v := range fn(obj) {
				addToIndex(idx, v, key)
			}
		})
	}
	return nil
}

// Get returns the object stored under key.
func (x *Indexer[T]) Get(key string) (T, bool) {
	x.mu.RLock()
	if x.c != nil {
		obj, ok := x.c.get(key)
		x.mu.RUnlock()
		return obj, ok
	}
	obj, ok := x.p.get(key)
	x.mu.RUnlock()
	return obj, ok
}

// has reports whether key is stored, without decoding a compact object.
func (x *Indexer[T]) has(key string) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.c != nil {
		_, ok := x.c.lookup(key, x.c.hash(key))
		return ok
	}
	_, ok := x.p.get(key)
	return ok
}

// List returns every object, in no particular order.
func (x *Indexer[T]) List() []T {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.c != nil {
		out := make([]T, 0, x.c.n)
		x.c.each(func(e string) bool {
			out = x.appendCompactLocked(out, e)
			return true
		})
		return out
	}
	out := make([]T, 0, x.p.n)
	x.p.each(func(obj T) bool {
		out = append(out, obj)
		return true
	})
	return out
}

// appendCompactLocked appends the object of entry e, unless it fails to
// decode (which is reported).
func (x *Indexer[T]) appendCompactLocked(out []T, e string) []T {
	obj, err := x.c.object(e)
	if err != nil {
		k, _ := entryKey(e)
		x.c.onError(k, err)
		return out
	}
	return append(out, obj)
}

// ListKeys returns every key, in no particular order.
func (x *Indexer[T]) ListKeys() []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.c != nil {
		out := make([]string, 0, x.c.n)
		x.c.each(func(e string) bool {
			k, _ := entryKey(e)
			// A copy: the key is part of the entry, which it would keep.
			out = append(out, strings.Clone(k))
			return true
		})
		return out
	}
	out := make([]string, 0, x.p.n)
	x.p.eachKeyed(func(key string, _ T) { out = append(out, key) })
	return out
}

// Len returns the number of objects.
func (x *Indexer[T]) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.c != nil {
		return x.c.n
	}
	return x.p.n
}

// ByIndex returns the objects whose index function returned value.
func (x *Indexer[T]) ByIndex(index, value string) ([]T, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if index == NamespaceIndex {
		if x.c != nil {
			return x.listCompactLocked(value, false, nil), nil
		}
		out := make([]T, 0, x.p.countInNamespace(value))
		x.p.eachInNamespace(value, func(obj T) { out = append(out, obj) })
		return out, nil
	}
	idx, ok := x.indices[index]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoIndex, index)
	}
	keys := idx[value]
	out := make([]T, 0, len(keys))
	for k := range keys {
		if x.c != nil {
			if e, ok := x.c.lookup(k, x.c.hash(k)); ok {
				out = x.appendCompactLocked(out, e)
			}
			continue
		}
		obj, _ := x.p.get(k)
		out = append(out, obj)
	}
	return out, nil
}

// IndexKeys returns the keys of the objects whose index function returned
// value.
func (x *Indexer[T]) IndexKeys(index, value string) ([]string, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.c != nil {
		var out []string
		if index == NamespaceIndex {
			if t := x.c.tables[value]; t != nil {
				out = make([]string, 0, t.used)
				t.each(func(e string) bool {
					k, _ := entryKey(e)
					out = append(out, strings.Clone(k))
					return true
				})
			}
			return out, nil
		}
		idx, ok := x.indices[index]
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrNoIndex, index)
		}
		for k := range idx[value] {
			out = append(out, strings.Clone(k))
		}
		return out, nil
	}
	if index == NamespaceIndex {
		return x.p.keysInNamespace(value), nil
	}
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
	if index == NamespaceIndex {
		if x.c != nil {
			return slices.Collect(maps.Keys(x.c.tables)), nil
		}
		return x.p.namespaces(), nil
	}
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
	return x.setLocked(key, obj, true)
}

// reserve prepares an empty default Indexer for objs, which are about to
// be stored (a first list), so that storing them does not grow its maps
// step by step.
func (x *Indexer[T]) reserve(objs []T) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.p != nil && x.p.n == 0 {
		x.p.reserve(objs)
	}
}

// set is Set, returning the previous object of a compact Indexer only if
// needOld.
func (x *Indexer[T]) set(key string, obj T, needOld bool) (old T, existed bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.setLocked(key, obj, needOld)
}

// remove is Delete without returning the object.
func (x *Indexer[T]) remove(key string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.deleteLocked(key, false)
}

// setLocked stores obj under key. A compact Indexer returns the previous
// object only if needOld (it has to be decoded); existed is always right.
func (x *Indexer[T]) setLocked(key string, obj T, needOld bool) (old T, existed bool) {
	if x.c != nil {
		return x.setCompactLocked(key, obj, needOld)
	}
	old, existed = x.p.set(key, obj)
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

func (x *Indexer[T]) setCompactLocked(key string, obj T, needOld bool) (old T, existed bool) {
	c := x.c
	h := c.hash(key)
	old, oldOK := x.compactOldLocked(key, h, needOld)
	stored, existed, plain := c.set(key, h, obj)
	for _, ni := range x.order {
		newVals := ni.fn(obj)
		if existed {
			if !oldOK {
				purgeFromIndex(ni.idx, key)
			} else {
				for _, v := range ni.fn(old) {
					if !slices.Contains(newVals, v) {
						removeFromIndex(ni.idx, v, key)
					}
				}
			}
		}
		for _, v := range newVals {
			// Also for a value the key had: the set then takes the new
			// entry's key, so the old entry is not kept alive.
			addToIndex(ni.idx, v, stored)
		}
	}
	if c.hot != nil {
		if plain {
			c.hot.remove(h, key) // a plain entry is its own hot object
		} else {
			c.hot.put(h, stored, obj)
		}
	}
	if existed && needOld && !oldOK {
		// The previous object could not be decoded (reported): the new one
		// stands in rather than nothing.
		old = obj
	}
	return old, existed
}

// compactOldLocked returns the object under key if the caller or an index
// function needs it, from the hot cache or decoded.
func (x *Indexer[T]) compactOldLocked(key string, h uint64, needOld bool) (T, bool) {
	var zero T
	if !needOld && len(x.order) == 0 {
		return zero, false
	}
	c := x.c
	if c.hot != nil {
		if obj, ok := c.hot.get(h, key); ok {
			return obj, true
		}
	}
	e, ok := c.lookup(key, h)
	if !ok {
		return zero, false
	}
	obj, err := c.decode(e)
	if err != nil {
		c.onError(key, err)
		return zero, false
	}
	return obj, true
}

// Delete removes the object stored under key and returns it.
func (x *Indexer[T]) Delete(key string) (old T, existed bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.deleteLocked(key, true)
}

// deleteLocked removes the object under key. A compact Indexer returns it
// only if needOld; existed is always right.
func (x *Indexer[T]) deleteLocked(key string, needOld bool) (old T, existed bool) {
	if x.c != nil {
		h := x.c.hash(key)
		old, oldOK := x.compactOldLocked(key, h, needOld)
		if _, existed = x.c.remove(key, h); !existed {
			return old, false
		}
		for _, ni := range x.order {
			if !oldOK {
				purgeFromIndex(ni.idx, key)
				continue
			}
			for _, v := range ni.fn(old) {
				removeFromIndex(ni.idx, v, key)
			}
		}
		return old, true
	}
	old, existed = x.p.remove(key)
	if !existed {
		return old, false
	}
	for _, ni := range x.order {
		for _, v := range ni.fn(old) {
			removeFromIndex(ni.idx, v, key)
		}
	}
	return old, true
}

// Replace makes objs, keyed by [KeyOf], the whole content of the store.
func (x *Indexer[T]) Replace(objs []T) {
	if x.c != nil {
		x.mu.Lock()
		defer x.mu.Unlock()
		x.c.reset()
		for _, ni := range x.order {
			clear(ni.idx)
		}
		for _, obj := range objs {
			x.setCompactLocked(KeyOf(obj), obj, false)
		}
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.p = newPlainStore[T]()
	for _, obj := range objs {
		x.p.set(KeyOf(obj), obj)
	}
	for _, ni := range x.order {
		clear(ni.idx)
	}
	if len(x.order) > 0 {
		x.p.eachKeyed(func(key string, obj T) {
			for _, ni := range x.order {
				for _, v := range ni.fn(obj) {
					addToIndex(ni.idx, v, key)
				}
			}
		})
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

// purgeFromIndex removes key from every value of idx: the fallback when
// the values an object had are unknown.
func purgeFromIndex(idx map[string]map[string]struct{}, key string) {
	for v, set := range idx {
		delete(set, key)
		if len(set) == 0 {
			delete(idx, v)
		}
	}
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
