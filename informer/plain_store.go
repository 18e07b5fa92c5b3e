package informer

import (
	"strings"
)

// plainStore holds the objects of a default (not compact) [Indexer]. An
// object stored under its own key (see canonicalKey), which is how every
// informer stores them, lives in byNS[namespace][name], keyed by the
// object's own namespace and name strings: it costs no key string, and the
// namespace index is the outer map. Objects stored under any other key
// (only possible through [Indexer.Set]) live in other, with otherNS as
// their namespace index. A key is in at most one of the two. All methods
// require the Indexer's lock (write lock for those that change the store).
type plainStore[T Object] struct {
	byNS    map[string]map[string]T
	other   map[string]T
	otherNS map[string]map[string]struct{}
	n       int
}

func newPlainStore[T Object]() *plainStore[T] {
	return &plainStore[T]{byNS: map[string]map[string]T{}}
}

// canonicalKey reports whether key is the key of an object with namespace
// ns and name, and the pair can be told back from the key (no "/" in the
// namespace, nor in the name of a cluster-scoped object).
func canonicalKey(key, ns, name string) bool {
	if ns == "" {
		return key == name && strings.IndexByte(name, '/') < 0
	}
	return len(key) == len(ns)+1+len(name) && key[len(ns)] == '/' &&
		key[:len(ns)] == ns && key[len(ns)+1:] == name && strings.IndexByte(ns, '/') < 0
}

// splitKey splits key at its first "/"; a key without one is a
// cluster-scoped name.
func splitKey(key string) (ns, name string) {
	if i := strings.IndexByte(key, '/'); i >= 0 {
		return key[:i], key[i+1:]
	}
	return "", key
}

func (s *plainStore[T]) get(key string) (T, bool) {
	ns, name := splitKey(key)
	if m := s.byNS[ns]; m != nil {
		if obj, ok := m[name]; ok {
			return obj, true
		}
	}
	if s.other != nil {
		obj, ok := s.other[key]
		return obj, ok
	}
	var zero T
	return zero, false
}

// set stores obj under key and returns the previous object.
func (s *plainStore[T]) set(key string, obj T) (old T, existed bool) {
	ns, name := obj.GetNamespace(), obj.GetName()
	if canonicalKey(key, ns, name) {
		if s.other != nil {
			if o, ok := s.other[key]; ok {
				s.removeOther(key, o)
				old, existed = o, true
			}
		}
		m := s.byNS[ns]
		if m == nil {
			m = map[string]T{}
			s.byNS[strings.Clone(ns)] = m
		}
		if !existed {
			old, existed = m[name]
		}
		// Assigning also makes the map's key the new object's name, so
		// the old object is not kept alive through it.
		m[name] = obj
		if !existed {
			s.n++
		}
		return old, existed
	}
	kns, kname := splitKey(key)
	if m := s.byNS[kns]; m != nil {
		if o, ok := m[kname]; ok {
			s.removeByNS(kns, kname)
			old, existed = o, true
		}
	}
	if s.other == nil {
		s.other = map[string]T{}
		s.otherNS = map[string]map[string]struct{}{}
	}
	if o, ok := s.other[key]; ok {
		old, existed = o, true
		if o.GetNamespace() != ns {
			removeFromIndex(s.otherNS, o.GetNamespace(), key)
		}
	}
	s.other[key] = obj
	addToIndex(s.otherNS, ns, key)
	if !existed {
		s.n++
	}
	return old, existed
}

// removeByNS and removeOther remove an entry; the count is the caller's.
func (s *plainStore[T]) removeByNS(ns, name string) {
	m := s.byNS[ns]
	delete(m, name)
	if len(m) == 0 {
		delete(s.byNS, ns) // an empty namespace keeps no map
	}
}

func (s *plainStore[T]) removeOther(key string, obj T) {
	delete(s.other, key)
	removeFromIndex(s.otherNS, obj.GetNamespace(), key)
	if len(s.other) == 0 {
		s.other, s.otherNS = nil, nil
	}
}

// remove deletes the object under key and returns it.
func (s *plainStore[T]) remove(key string) (T, bool) {
	ns, name := splitKey(key)
	if m := s.byNS[ns]; m != nil {
		if obj, ok := m[name]; ok {
			s.removeByNS(ns, name)
			s.n--
			return obj, true
		}
	}
	if s.other != nil {
		if obj, ok := s.other[key]; ok {
			s.removeOther(key, obj)
			s.n--
			return obj, true
		}
	}
	var zero T
	return zero, false
}

// each calls fn for every object until fn returns false.
func (s *plainStore[T]) each(fn func(obj T) bool) {
	for _, m := range s.byNS {
		for _, obj := range m {
			if !fn(obj) {
				return
			}
		}
	}
	for _, obj := range s.other {
		if !fn(obj) {
			return
		}
	}
}

// eachKeyed calls fn for every key and object; it builds the keys of
// objects stored under their own key.
func (s *plainStore[T]) eachKeyed(fn func(key string, obj T)) {
	for ns, m := range s.byNS {
		for name, obj := range m {
			fn(Key(ns, name), obj)
		}
	}
	for key, obj := range s.other {
		fn(key, obj)
	}
}

// eachInNamespace calls fn for every object in namespace ns.
func (s *plainStore[T]) eachInNamespace(ns string, fn func(obj T)) {
	for _, obj := range s.byNS[ns] {
		fn(obj)
	}
	for key := range s.otherNS[ns] {
		fn(s.other[key])
	}
}

// countInNamespace returns the number of objects in namespace ns.
func (s *plainStore[T]) countInNamespace(ns string) int {
	return len(s.byNS[ns]) + len(s.otherNS[ns])
}

// keysInNamespace returns the keys of the objects in namespace ns.
func (s *plainStore[T]) keysInNamespace(ns string) []string {
	out := make([]string, 0, s.countInNamespace(ns))
	for name := range s.byNS[ns] {
		out = append(out, Key(ns, name))
	}
	for key := range s.otherNS[ns] {
		out = append(out, key)
	}
	return out
}

// reserve sizes the maps of the namespaces of objs that have none yet, so
// storing objs grows no map step by step. Until objects arrive, such a map
// is empty.
func (s *plainStore[T]) reserve(objs []T) {
	if s.n == 0 {
		clear(s.byNS) // maps reserved before, still empty
	}
	counts := map[string]int{}
	for _, obj := range objs {
		counts[obj.GetNamespace()]++
	}
	for ns, n := range counts {
		if s.byNS[ns] == nil && strings.IndexByte(ns, '/') < 0 {
			s.byNS[strings.Clone(ns)] = make(map[string]T, n)
		}
	}
}

// namespaces returns the namespaces that have objects.
func (s *plainStore[T]) namespaces() []string {
	out := make([]string, 0, len(s.byNS)+len(s.otherNS))
	for ns, m := range s.byNS {
		if len(m) > 0 {
			out = append(out, ns)
		}
	}
	for ns := range s.otherNS {
		if len(s.byNS[ns]) == 0 {
			out = append(out, ns)
		}
	}
	return out
}
