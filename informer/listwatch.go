package informer

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
)

// Page is one page of a list.
type Page[T Object] struct {
	Items []T
	// ResourceVersion is the list's resourceVersion.
	ResourceVersion string
	// Continue, if not empty, fetches the next page.
	Continue string
}

// ListerWatcher lists and watches one kind of object in one scope. It is
// what a [Reflector] consumes. The objects a Watch delivers must be T (Error
// events carry a *metav1.Status).
//
// Implementations must honour every field of opts they are given:
// ResourceVersion, ResourceVersionMatch, Limit, Continue, TimeoutSeconds,
// AllowWatchBookmarks and SendInitialEvents. Label and field selectors
// belong to the ListerWatcher (see [ListWatchOptions]); a Reflector never
// sets them.
type ListerWatcher[T Object] interface {
	List(ctx context.Context, opts metav1.ListOptions) (*Page[T], error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// ListWatchOptions narrows what a ListerWatcher built here sees. The zero
// value selects everything.
type ListWatchOptions struct {
	// LabelSelector, if not nil, selects objects by label.
	LabelSelector labels.Selector
	// FieldSelector, if not nil, selects objects by field (which fields a
	// resource supports depends on the resource).
	FieldSelector fields.Selector
}

func (o ListWatchOptions) apply(opts metav1.ListOptions) metav1.ListOptions {
	if o.LabelSelector != nil && !o.LabelSelector.Empty() {
		opts.LabelSelector = o.LabelSelector.String()
	}
	if o.FieldSelector != nil && !o.FieldSelector.Empty() {
		opts.FieldSelector = o.FieldSelector.String()
	}
	return opts
}

// ListWatch is a [ListerWatcher] made of two functions. Build it with
// [NewListWatch], [NewDynamicListWatch] or [NewMetadataListWatch].
type ListWatch[T Object] struct {
	name  string
	list  func(context.Context, metav1.ListOptions) (*Page[T], error)
	watch func(context.Context, metav1.ListOptions) (watch.Interface, error)
	opts  ListWatchOptions
}

var _ ListerWatcher[Object] = (*ListWatch[Object])(nil)

// List lists one page.
func (lw *ListWatch[T]) List(ctx context.Context, opts metav1.ListOptions) (*Page[T], error) {
	return lw.list(ctx, lw.opts.apply(opts))
}

// Name describes what is listed, for example "widgets.v1.example.com" or
// "configmaps.v1./team-a"; "" for a ListWatch from [NewListWatch].
// Informers use it as their default name.
func (lw *ListWatch[T]) Name() string { return lw.name }

// Watch starts a watch.
func (lw *ListWatch[T]) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	return lw.watch(ctx, lw.opts.apply(opts))
}

// NewListWatch builds a ListerWatcher from the List and Watch methods of a
// typed client, whose namespace (or none, for all namespaces) is already
// chosen:
//
//	cms := clientset.CoreV1().ConfigMaps("team-a")
//	lw := informer.NewListWatch[*corev1.ConfigMap](cms.List, cms.Watch, informer.ListWatchOptions{})
//
// L is the list type (*corev1.ConfigMapList); each item is copied out of
// the list into its own allocation, so a cached object never keeps a whole
// list page alive.
func NewListWatch[T Object, L runtime.Object](
	list func(context.Context, metav1.ListOptions) (L, error),
	watch func(context.Context, metav1.ListOptions) (watch.Interface, error),
	opts ListWatchOptions,
) *ListWatch[T] {
	return &ListWatch[T]{
		list: func(ctx context.Context, o metav1.ListOptions) (*Page[T], error) {
			l, err := list(ctx, o)
			if err != nil {
				return nil, err
			}
			return pageOf[T](l)
		},
		watch: watch,
		opts:  opts,
	}
}

func pageOf[T Object](l runtime.Object) (*Page[T], error) {
	lm, err := meta.ListAccessor(l)
	if err != nil {
		return nil, fmt.Errorf("informer: list result %T: %w", l, err)
	}
	items, err := meta.ExtractListWithAlloc(l)
	if err != nil {
		return nil, fmt.Errorf("informer: list result %T: %w", l, err)
	}
	p := &Page[T]{Items: make([]T, len(items)), ResourceVersion: lm.GetResourceVersion(), Continue: lm.GetContinue()}
	for i, it := range items {
		t, ok := it.(T)
		if !ok {
			return nil, fmt.Errorf("informer: list item %d is %T, want %T", i, it, *new(T))
		}
		p.Items[i] = t
	}
	return p, nil
}

// NewDynamicListWatch builds a ListerWatcher of unstructured objects of
// resource gvr in namespace ("" for all namespaces or a cluster-scoped
// resource) from the dynamic client.
func NewDynamicListWatch(c dynamic.Interface, gvr schema.GroupVersionResource, namespace string, opts ListWatchOptions) *ListWatch[*unstructured.Unstructured] {
	var ri dynamic.ResourceInterface = c.Resource(gvr)
	if namespace != "" {
		ri = c.Resource(gvr).Namespace(namespace)
	}
	return &ListWatch[*unstructured.Unstructured]{
		name: lwName(gvr, namespace),
		list: func(ctx context.Context, o metav1.ListOptions) (*Page[*unstructured.Unstructured], error) {
			l, err := ri.List(ctx, o)
			if err != nil {
				return nil, err
			}
			p := &Page[*unstructured.Unstructured]{Items: make([]*unstructured.Unstructured, len(l.Items)), ResourceVersion: l.GetResourceVersion(), Continue: l.GetContinue()}
			for i := range l.Items {
				// The item's content map is shared, not copied; the list
				// value itself is dropped.
				p.Items[i] = &unstructured.Unstructured{Object: l.Items[i].Object}
			}
			return p, nil
		},
		watch: ri.Watch,
		opts:  opts,
	}
}

// NewMetadataListWatch builds a ListerWatcher of object metadata only
// (PartialObjectMetadata) of resource gvr in namespace ("" for all
// namespaces or a cluster-scoped resource) from the metadata client. Caching
// metadata only is the cheapest way to watch large objects such as Secrets
// when only their names, labels or owners matter.
func NewMetadataListWatch(c metadata.Interface, gvr schema.GroupVersionResource, namespace string, opts ListWatchOptions) *ListWatch[*metav1.PartialObjectMetadata] {
	var ri metadata.ResourceInterface = c.Resource(gvr)
	if namespace != "" {
		ri = c.Resource(gvr).Namespace(namespace)
	}
	return &ListWatch[*metav1.PartialObjectMetadata]{
		name: lwName(gvr, namespace) + "(metadata)",
		list: func(ctx context.Context, o metav1.ListOptions) (*Page[*metav1.PartialObjectMetadata], error) {
			l, err := ri.List(ctx, o)
			if err != nil {
				return nil, err
			}
			p := &Page[*metav1.PartialObjectMetadata]{Items: make([]*metav1.PartialObjectMetadata, len(l.Items)), ResourceVersion: l.ResourceVersion, Continue: l.Continue}
			for i := range l.Items {
				it := l.Items[i]
				p.Items[i] = &it
			}
			return p, nil
		},
		watch: ri.Watch,
		opts:  opts,
	}
}

func lwName(gvr schema.GroupVersionResource, namespace string) string {
	name := gvr.Resource + "." + gvr.Version
	if gvr.Group != "" {
		name += "." + gvr.Group
	}
	if namespace != "" {
		name += "/" + namespace
	}
	return name
}
