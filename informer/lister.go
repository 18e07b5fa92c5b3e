package informer

import (
	"k8s.io/apimachinery/pkg/labels"
)

// Lister reads a cache by namespace, name, label selector and index.
// Objects returned are shared with the cache and must not be modified.
type Lister[T Object] struct {
	x *Indexer[T]
}

// NewLister returns a Lister over x.
func NewLister[T Object](x *Indexer[T]) *Lister[T] {
	return &Lister[T]{x: x}
}

// Get returns the object with the given namespace and name (namespace ""
// for a cluster-scoped object).
func (l *Lister[T]) Get(namespace, name string) (T, bool) {
	return l.x.Get(Key(namespace, name))
}

// List returns the objects matching selector, in no particular order. A nil
// selector matches everything.
func (l *Lister[T]) List(selector labels.Selector) []T {
	everything := selector == nil || selector.Empty()
	l.x.mu.RLock()
	defer l.x.mu.RUnlock()
	if l.x.c != nil {
		return l.x.listCompactLocked("", true, selector)
	}
	out := make([]T, 0, l.x.p.n)
	l.x.p.each(func(obj T) bool {
		if everything || selector.Matches(labels.Set(obj.GetLabels())) {
			out = append(out, obj)
		}
		return true
	})
	return out
}

// ListNamespace returns the objects in namespace matching selector, in no
// particular order, using the namespace index. A nil selector matches
// everything.
func (l *Lister[T]) ListNamespace(namespace string, selector labels.Selector) []T {
	everything := selector == nil || selector.Empty()
	l.x.mu.RLock()
	defer l.x.mu.RUnlock()
	if l.x.c != nil {
		return l.x.listCompactLocked(namespace, false, selector)
	}
	out := make([]T, 0, l.x.p.countInNamespace(namespace))
	l.x.p.eachInNamespace(namespace, func(obj T) {
		if everything || selector.Matches(labels.Set(obj.GetLabels())) {
			out = append(out, obj)
		}
	})
	return out
}

// ByIndex returns the objects whose index function returned value.
func (l *Lister[T]) ByIndex(index, value string) ([]T, error) {
	return l.x.ByIndex(index, value)
}

// listCompactLocked lists a compact Indexer's objects in namespace (or in
// all namespaces) that match selector (nil: all). With protobuf, labels are
// read from the encoding, so only matching objects are decoded.
func (x *Indexer[T]) listCompactLocked(namespace string, all bool, selector labels.Selector) []T {
	c := x.c
	everything := selector == nil || selector.Empty()
	var out []T
	var raw kvLabels
	visit := func(e string) bool {
		if !everything {
			if c.codec.protoLabels && e[0]&flagPlain == 0 {
				if off := entryBody(e); off >= 0 {
					var ok bool
					if raw.kvs, ok = scanProtoLabels(e[off:], raw.kvs); ok {
						if !selector.Matches(&raw) {
							return true
						}
						out = x.appendCompactLocked(out, e)
						return true
					}
				}
			}
			obj, err := c.object(e)
			if err != nil {
				k, _ := entryKey(e)
				c.onError(k, err)
				return true
			}
			if selector.Matches(labels.Set(obj.GetLabels())) {
				out = append(out, obj)
			}
			return true
		}
		out = x.appendCompactLocked(out, e)
		return true
	}
	if all {
		if everything {
			out = make([]T, 0, c.n)
		}
		c.each(visit)
	} else if t := c.tables[namespace]; t != nil {
		if everything {
			out = make([]T, 0, t.used)
		}
		t.each(visit)
	}
	if out == nil {
		out = []T{}
	}
	return out
}
