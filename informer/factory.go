package informer

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"

	"github.com/capstan-io/capstan/internal/lazymapper"
	"github.com/capstan-io/capstan/internal/restclient"
)

// Scope chooses which objects of a kind an informer sees. The zero value
// is every object in every namespace.
type Scope struct {
	// Namespace limits a namespaced kind to one namespace; "" means all.
	Namespace string
	// LabelSelector and FieldSelector, if not nil, filter on the server.
	LabelSelector labels.Selector
	FieldSelector fields.Selector
}

func (s Scope) key() string {
	l, f := "", ""
	if s.LabelSelector != nil {
		l = s.LabelSelector.String()
	}
	if s.FieldSelector != nil {
		f = s.FieldSelector.String()
	}
	return s.Namespace + "\x00" + l + "\x00" + f
}

func (s Scope) listWatchOptions() ListWatchOptions {
	return ListWatchOptions{LabelSelector: s.LabelSelector, FieldSelector: s.FieldSelector}
}

// FactoryOptions configures [NewFactory].
type FactoryOptions struct {
	// Config reaches the API server. Required.
	Config *rest.Config
	// Scheme maps Go types to API kinds for typed informers; default
	// client-go's scheme of built-in types (read, never modified). Register
	// CRD types in a scheme of your own and pass it here.
	Scheme *runtime.Scheme
	// Mapper maps kinds to resources; default a discovery-based mapper
	// that fetches one group version at a time, on first use of a kind of
	// it, and again when it meets an unknown kind.
	Mapper meta.RESTMapper
	// Logger, Clock, Registerer, KeepManagedFields, ResyncCheckPeriod and
	// Reflector apply to every informer the factory creates (see [Options]).
	Logger            logr.Logger
	Clock             clock.WithTicker
	Registerer        prometheus.Registerer
	KeepManagedFields bool
	ResyncCheckPeriod time.Duration
	Reflector         ReflectorOptions
	// CompactKinds lists the kinds whose informers (typed, unstructured
	// and metadata-only alike) keep their objects encoded and decode them
	// on read: about half the memory, for a decode on each read that is
	// not of a recently used object (see [Options.Compact]). Choose large,
	// numerous kinds that are read less often than they change, such as
	// ConfigMaps, Secrets or Pods in a big cluster.
	CompactKinds []schema.GroupKind
	// CompactHotObjects is [Options.CompactHotObjects] for the compact
	// informers.
	CompactHotObjects int
}

// runnable is what the factory needs from an informer of any type.
type runnable interface {
	Name() string
	Run(ctx context.Context) error
	WaitForSync(ctx context.Context) error
}

type factoryKey struct {
	goType reflect.Type
	gvk    schema.GroupVersionKind
	scope  string
}

// Factory creates informers on demand and shares them: every request for
// the same Go type, kind and [Scope] gets the same informer, so each object
// is cached once per process however many controllers read it.
//
// Informers are created by [For], [ForUnstructured] and [ForMetadata]. Run
// starts those created before it and, until its context ends, those created
// after.
type Factory struct {
	opts FactoryOptions
	log  logr.Logger
	// serializer decodes typed objects: the scheme's codecs without
	// conversion, with direct protobuf decoding. noManagedFields does the
	// same, without decoding managedFields, for informers that drop them.
	serializer, noManagedFields runtime.NegotiatedSerializer
	dynamic                     dynamic.Interface
	metadata                    metadata.Interface
	mu                          sync.Mutex
	informers                   map[factoryKey]runnable
	order                       []runnable
	pending                     []runnable
	running                     bool
	wake                        chan struct{}
}

// NewFactory returns a Factory. It does not contact the API server.
func NewFactory(opts FactoryOptions) (*Factory, error) {
	if opts.Config == nil {
		return nil, errors.New("informer: FactoryOptions.Config: required")
	}
	if opts.Scheme == nil {
		opts.Scheme = clientgoscheme.Scheme
	}
	if opts.Logger.GetSink() == nil {
		opts.Logger = logr.Discard()
	}
	if opts.Mapper == nil {
		m, err := lazymapper.New(opts.Config)
		if err != nil {
			return nil, fmt.Errorf("informer: FactoryOptions.Config: %w", err)
		}
		opts.Mapper = m
	}
	dyn, err := dynamic.NewForConfig(opts.Config)
	if err != nil {
		return nil, fmt.Errorf("informer: FactoryOptions.Config: %w", err)
	}
	md, err := metadata.NewForConfig(opts.Config)
	if err != nil {
		return nil, fmt.Errorf("informer: FactoryOptions.Config: %w", err)
	}
	codecs := serializer.NewCodecFactory(opts.Scheme).WithoutConversion()
	return &Factory{
		opts:            opts,
		log:             opts.Logger,
		serializer:      withDirectProtobuf(codecs, opts.Scheme, false),
		noManagedFields: withDirectProtobuf(codecs, opts.Scheme, true),
		dynamic:         dyn,
		metadata:        md,
		informers:       map[factoryKey]runnable{},
		wake:            make(chan struct{}, 1),
	}, nil
}

func informerOptions[T Object](f *Factory, gk schema.GroupKind, name string) Options[T] {
	return Options[T]{
		Name:              name,
		Logger:            f.opts.Logger,
		Clock:             f.opts.Clock,
		Registerer:        f.opts.Registerer,
		KeepManagedFields: f.opts.KeepManagedFields,
		ResyncCheckPeriod: f.opts.ResyncCheckPeriod,
		Reflector:         f.opts.Reflector,
		Compact:           slices.Contains(f.opts.CompactKinds, gk),
		CompactHotObjects: f.opts.CompactHotObjects,
	}
}

// get returns the informer for key, creating it with mk if needed.
func getOrCreate[T Object](f *Factory, key factoryKey, mk func() (*SharedInformer[T], error)) (*SharedInformer[T], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.informers[key]; ok {
		return r.(*SharedInformer[T]), nil
	}
	inf, err := mk()
	if err != nil {
		return nil, err
	}
	f.informers[key] = inf
	f.order = append(f.order, inf)
	f.pending = append(f.pending, inf)
	if f.running {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
	return inf, nil
}

func (f *Factory) mapping(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	m, err := lazymapper.Lookup(f.opts.Mapper, gvk)
	if err != nil {
		return nil, fmt.Errorf("informer: kind %s: %w", gvk, err)
	}
	return m, nil
}

func scopedNamespace(m *meta.RESTMapping, ns string) string {
	if m.Scope.Name() == meta.RESTScopeNameRoot {
		return ""
	}
	return ns
}

// For returns the shared informer of Go type T (registered in the
// factory's scheme) in scope, creating it if needed.
//
//	pods, err := informer.For[*corev1.Pod](f, informer.Scope{Namespace: "web"})
//
// Built-in types are fetched as protobuf, other types as JSON.
func For[T Object](f *Factory, scope Scope) (*SharedInformer[T], error) {
	goType := reflect.TypeFor[T]()
	if goType.Kind() != reflect.Pointer {
		return nil, fmt.Errorf("informer: For[%v]: T must be a pointer type", goType)
	}
	proto := reflect.New(goType.Elem()).Interface().(T)
	gvks, _, err := f.opts.Scheme.ObjectKinds(proto)
	if err != nil {
		return nil, fmt.Errorf("informer: For[%v]: %w", goType, err)
	}
	gvk := gvks[0]
	key := factoryKey{goType: goType, gvk: gvk, scope: scope.key()}
	return getOrCreate(f, key, func() (*SharedInformer[T], error) {
		m, err := f.mapping(gvk)
		if err != nil {
			return nil, err
		}
		// Without KeepManagedFields, the informer drops managedFields: for
		// types whose encoding allows it, they are not even decoded.
		noManagedFields := !f.opts.KeepManagedFields && canStripManagedFields(reflect.New(goType.Elem()).Interface().(T))
		lw, err := f.typedListWatch(gvk, m, scope, restclient.IsProtobuf(proto), noManagedFields)
		if err != nil {
			return nil, err
		}
		return New[T](NewListWatch[T](lw.list, lw.watch, scope.listWatchOptions()), informerOptions[T](f, gvk.GroupKind(), informerName(m, scope)))
	})
}

// Existing returns the shared informer of Go type T in scope if one was
// created (by [For] or anyone sharing the factory), without creating one:
// code that only wants to use a cache when someone else pays for it, such
// as a client recording its writes for read-your-writes, asks here.
func Existing[T Object](f *Factory, scope Scope) (*SharedInformer[T], bool) {
	goType := reflect.TypeFor[T]()
	if goType.Kind() != reflect.Pointer {
		return nil, false
	}
	proto := reflect.New(goType.Elem()).Interface().(T)
	gvks, _, err := f.opts.Scheme.ObjectKinds(proto)
	if err != nil {
		return nil, false
	}
	return lookup[T](f, factoryKey{goType: goType, gvk: gvks[0], scope: scope.key()})
}

// ExistingMetadata is [Existing] for the metadata-only informer of kind gvk
// that [ForMetadata] creates.
func ExistingMetadata(f *Factory, gvk schema.GroupVersionKind, scope Scope) (*SharedInformer[*metav1.PartialObjectMetadata], bool) {
	return lookup[*metav1.PartialObjectMetadata](f, factoryKey{goType: reflect.TypeFor[*metav1.PartialObjectMetadata](), gvk: gvk, scope: scope.key()})
}

func lookup[T Object](f *Factory, key factoryKey) (*SharedInformer[T], bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inf, ok := f.informers[key].(*SharedInformer[T])
	return inf, ok
}

func informerName(m *meta.RESTMapping, scope Scope) string {
	name := m.Resource.Resource
	if m.Resource.Group != "" {
		name += "." + m.Resource.Group
	}
	if scope.Namespace != "" {
		name += "/" + scope.Namespace
	}
	return name
}

type typedLW struct {
	list  func(context.Context, metav1.ListOptions) (runtime.Object, error)
	watch func(context.Context, metav1.ListOptions) (watch.Interface, error)
}

func (f *Factory) typedListWatch(gvk schema.GroupVersionKind, m *meta.RESTMapping, scope Scope, protobuf, noManagedFields bool) (*typedLW, error) {
	codec := f.serializer
	if noManagedFields {
		codec = f.noManagedFields
	}
	rc, err := restclient.For(f.opts.Config, gvk.GroupVersion(), codec, protobuf)
	if err != nil {
		return nil, fmt.Errorf("informer: kind %s: %w", gvk, err)
	}
	listGVK := gvk.GroupVersion().WithKind(gvk.Kind + "List")
	if !f.opts.Scheme.Recognizes(listGVK) {
		return nil, fmt.Errorf("informer: kind %s: list kind %s is not registered in the scheme", gvk, listGVK.Kind)
	}
	ns := scopedNamespace(m, scope.Namespace)
	namespaced := m.Scope.Name() == meta.RESTScopeNameNamespace
	resource := m.Resource.Resource
	return &typedLW{
		list: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			out, err := f.opts.Scheme.New(listGVK)
			if err != nil {
				return nil, err
			}
			err = rc.Get().NamespaceIfScoped(ns, namespaced && ns != "").Resource(resource).
				VersionedParams(&opts, metav1.ParameterCodec).Do(ctx).Into(out)
			return out, err
		},
		watch: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.Watch = true
			return rc.Get().NamespaceIfScoped(ns, namespaced && ns != "").Resource(resource).
				VersionedParams(&opts, metav1.ParameterCodec).Watch(ctx)
		},
	}, nil
}

// ForUnstructured returns the shared informer of kind gvk as unstructured
// objects in scope, creating it if needed. It needs no Go type, so it
// serves any CRD.
func ForUnstructured(f *Factory, gvk schema.GroupVersionKind, scope Scope) (*SharedInformer[*unstructured.Unstructured], error) {
	key := factoryKey{goType: reflect.TypeFor[*unstructured.Unstructured](), gvk: gvk, scope: scope.key()}
	return getOrCreate(f, key, func() (*SharedInformer[*unstructured.Unstructured], error) {
		m, err := f.mapping(gvk)
		if err != nil {
			return nil, err
		}
		lw := NewDynamicListWatch(f.dynamic, m.Resource, scopedNamespace(m, scope.Namespace), scope.listWatchOptions())
		return New[*unstructured.Unstructured](lw, informerOptions[*unstructured.Unstructured](f, gvk.GroupKind(), informerName(m, scope)+"(unstructured)"))
	})
}

// ForMetadata returns the shared informer of the metadata only
// (PartialObjectMetadata) of kind gvk in scope, creating it if needed.
func ForMetadata(f *Factory, gvk schema.GroupVersionKind, scope Scope) (*SharedInformer[*metav1.PartialObjectMetadata], error) {
	key := factoryKey{goType: reflect.TypeFor[*metav1.PartialObjectMetadata](), gvk: gvk, scope: scope.key()}
	return getOrCreate(f, key, func() (*SharedInformer[*metav1.PartialObjectMetadata], error) {
		m, err := f.mapping(gvk)
		if err != nil {
			return nil, err
		}
		lw := NewMetadataListWatch(f.metadata, m.Resource, scopedNamespace(m, scope.Namespace), scope.listWatchOptions())
		return New[*metav1.PartialObjectMetadata](lw, informerOptions[*metav1.PartialObjectMetadata](f, gvk.GroupKind(), informerName(m, scope)+"(metadata)"))
	})
}

// Run runs every informer of the factory, including those created while it
// runs, until ctx ends; then it waits for them to stop. An informer that
// fails (for example, its resource is not served) is logged and its
// WaitForSync reports the error; the others keep running.
func (f *Factory) Run(ctx context.Context) error {
	f.mu.Lock()
	if f.running {
		f.mu.Unlock()
		return ErrAlreadyStarted
	}
	f.running = true
	f.mu.Unlock()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		f.mu.Lock()
		pending := f.pending
		f.pending = nil
		f.mu.Unlock()
		for _, r := range pending {
			wg.Go(func() {
				if err := r.Run(ctx); err != nil {
					f.log.Error(err, "Informer stopped", "informer", r.Name())
				}
			})
		}
		select {
		case <-ctx.Done():
			return nil
		case <-f.wake:
		}
	}
}

// WaitForCacheSync waits until every informer created so far has synced. It
// returns an error naming each informer that stopped without syncing, or
// ctx's error.
func (f *Factory) WaitForCacheSync(ctx context.Context) error {
	f.mu.Lock()
	all := append([]runnable(nil), f.order...)
	f.mu.Unlock()
	var errs []error
	for _, r := range all {
		if err := r.WaitForSync(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
