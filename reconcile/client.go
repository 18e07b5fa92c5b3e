package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/capstan-io/capstan/informer"
	"github.com/capstan-io/capstan/internal/lazymapper"
	"github.com/capstan-io/capstan/internal/restclient"
)

// ClientSource is what a Client is built from. A Manager is one; for tests
// and scripts, NewClientSource makes one from its parts.
type ClientSource interface {
	// Config is the configuration writes and live reads go through. A
	// Manager hands out a fenced one, so a leader-only controller's writes
	// stop when leadership is lost.
	Config() *rest.Config
	// Scheme maps Go types to kinds and encodes and decodes them.
	Scheme() *runtime.Scheme
	// RESTMapper maps kinds to resources and tells their scope.
	RESTMapper() meta.RESTMapper
	// Informers provides the shared caches reads come from; nil makes a
	// client that can only write and read live.
	Informers() *informer.Factory
}

// StaticClientSource is a ClientSource made of fixed parts.
type StaticClientSource struct {
	cfg     *rest.Config
	scheme  *runtime.Scheme
	mapper  meta.RESTMapper
	factory *informer.Factory
}

var _ ClientSource = (*StaticClientSource)(nil)

// NewClientSource returns a ClientSource for clients used without a
// Manager. cfg is required. A nil scheme is client-go's scheme of built-in
// types; a nil mapper is a discovery-based one that refreshes when it meets
// an unknown kind; a nil factory makes clients without a cache (Get and
// List fail, Live works). The factory should be built with the same scheme
// and mapper, and must be running (Factory.Run) for cached reads to return.
// It makes no API call.
func NewClientSource(cfg *rest.Config, scheme *runtime.Scheme, mapper meta.RESTMapper, factory *informer.Factory) (*StaticClientSource, error) {
	if cfg == nil {
		return nil, errors.New("reconcile: NewClientSource: config is nil")
	}
	if scheme == nil {
		scheme = clientgoscheme.Scheme
	}
	if mapper == nil {
		m, err := lazymapper.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("reconcile: NewClientSource: %w", err)
		}
		mapper = m
	}
	return &StaticClientSource{cfg: cfg, scheme: scheme, mapper: mapper, factory: factory}, nil
}

// Config returns the configuration.
func (s *StaticClientSource) Config() *rest.Config { return s.cfg }

// Scheme returns the scheme.
func (s *StaticClientSource) Scheme() *runtime.Scheme { return s.scheme }

// RESTMapper returns the REST mapper.
func (s *StaticClientSource) RESTMapper() meta.RESTMapper { return s.mapper }

// Informers returns the informer factory, possibly nil.
func (s *StaticClientSource) Informers() *informer.Factory { return s.factory }

// RateLimited returns a ClientSource like src whose Config carries one
// client-side rate limiter of qps requests per second with burst, shared by
// every client built from it. client-go gives each REST client built from a
// config with QPS its own token bucket, so clients made separately from one
// config do not share a budget; kube-controller-manager gives each of its
// controllers one clientset and so one budget, and RateLimited is how a
// capstan controller gets the same. qps <= 0 returns src unchanged.
func RateLimited(src ClientSource, qps float32, burst int) ClientSource {
	if qps <= 0 {
		return src
	}
	return &rateLimitedSource{ClientSource: src, limiter: flowcontrol.NewTokenBucketRateLimiter(qps, max(burst, 1))}
}

type rateLimitedSource struct {
	ClientSource
	limiter flowcontrol.RateLimiter
}

func (s *rateLimitedSource) Config() *rest.Config {
	cfg := rest.CopyConfig(s.ClientSource.Config())
	cfg.RateLimiter = s.limiter
	return cfg
}

// ListOptions select the objects List returns from the cache. The zero
// value lists every object.
type ListOptions struct {
	// Namespace limits the list to one namespace; "" means all.
	Namespace string
	// LabelSelector, if not nil, keeps the objects whose labels match.
	LabelSelector labels.Selector
	// Index, if set, lists the objects whose index function returned Value,
	// through the cache's index of that name (for example
	// informer.NamespaceIndex). Namespace and LabelSelector still apply.
	Index, Value string
}

// Client reads objects of type T from the shared informer cache and writes
// them to the API server. T is a pointer to an API type registered in the
// source's scheme, for example *corev1.ConfigMap or a CRD type.
//
// Guarantees:
//   - Get and List never call the API server: they read the shared
//     informer of T (every namespace), created on the first read and then
//     shared with every controller and client of the same factory. They
//     wait for its first sync, bounded by ctx.
//   - Writes and Live go to the API server through the source's Config,
//     encoded as protobuf for built-in types and JSON for other types, and
//     return freshly decoded objects the caller owns.
//   - Errors keep their API classification: apierrors.IsNotFound,
//     IsConflict and errors.As to *apierrors.StatusError work on them; the
//     message names the kind and namespace/name.
//   - A namespaced kind needs a namespace; for a cluster-scoped kind the
//     namespace is ignored.
//
// Caveats:
//   - Objects from Get and List are shared with the cache and every other
//     reader: they must not be modified. DeepCopy first.
//   - The cache lags the server: Get right after a write may not see it.
//   - Reads need the factory to run (a Manager runs it once started; without
//     a Manager call Factory.Run), else they wait until ctx ends.
//   - Write methods encode obj, briefly setting its TypeMeta: pass an object
//     the caller owns, never one from the cache.
type Client[T informer.Object] struct {
	scheme  *runtime.Scheme
	mapper  meta.RESTMapper
	factory *informer.Factory
	gvk     schema.GroupVersionKind
	proto   T // an empty T; fresh objects are copies of it, not reflect.New
	rest    *rest.RESTClient

	// newInformer, if set, creates the informer instead of informer.For
	// (MetadataClient's metadata-only informer).
	newInformer func() (*informer.SharedInformer[T], error)
	// existing, if set, finds the informer newInformer would create
	// without creating it; default informer.Existing.
	existing func() (*informer.SharedInformer[T], bool)

	mu      sync.Mutex
	mapping *meta.RESTMapping           // resolved on first use; guarded by mu
	inf     *informer.SharedInformer[T] // created on first read; guarded by mu
}

// ClientFor returns a Client for T built from src. It makes no API call:
// the kind's resource is resolved on first use and the informer is created
// on the first read.
func ClientFor[T informer.Object](src ClientSource) (*Client[T], error) {
	if src == nil {
		return nil, errors.New("reconcile: ClientFor: source is nil")
	}
	goType := reflect.TypeFor[T]()
	if goType.Kind() != reflect.Pointer || goType.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("reconcile: ClientFor[%v]: T must be a pointer to a struct", goType)
	}
	cfg, scheme, mapper := src.Config(), src.Scheme(), src.RESTMapper()
	switch {
	case cfg == nil:
		return nil, fmt.Errorf("reconcile: ClientFor[%v]: source's Config is nil", goType)
	case scheme == nil:
		return nil, fmt.Errorf("reconcile: ClientFor[%v]: source's Scheme is nil", goType)
	case mapper == nil:
		return nil, fmt.Errorf("reconcile: ClientFor[%v]: source's RESTMapper is nil", goType)
	}
	proto := reflect.New(goType.Elem()).Interface().(T)
	gvks, _, err := scheme.ObjectKinds(proto)
	if err != nil {
		return nil, fmt.Errorf("reconcile: ClientFor[%v]: %w", goType, err)
	}
	gvk := gvks[0]
	rc, err := restclient.For(cfg, gvk.GroupVersion(), serializer.NewCodecFactory(scheme).WithoutConversion(), restclient.IsProtobuf(proto))
	if err != nil {
		return nil, fmt.Errorf("reconcile: ClientFor[%v]: %w", goType, err)
	}
	return &Client[T]{
		scheme:  scheme,
		mapper:  mapper,
		factory: src.Informers(),
		gvk:     gvk,
		proto:   proto,
		rest:    rc,
	}, nil
}

// GroupVersionKind is the kind of T.
func (c *Client[T]) GroupVersionKind() schema.GroupVersionKind { return c.gvk }

// newObject returns an empty T to decode into.
func (c *Client[T]) newObject() T { return c.proto.DeepCopyObject().(T) }

// resolve returns the REST mapping of T, looking it up on first use. A
// failed look-up is retried on the next call; a kind the mapper does not
// know is looked up afresh (lazymapper.Lookup: a CRD installed meanwhile).
func (c *Client[T]) resolve() (*meta.RESTMapping, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mapping != nil {
		return c.mapping, nil
	}
	m, err := lazymapper.Lookup(c.mapper, c.gvk)
	if err != nil {
		return nil, fmt.Errorf("resolving the resource of %s: %w", c.gvk, err)
	}
	c.mapping = m
	return m, nil
}

// target is where one request goes.
type target struct {
	m          *meta.RESTMapping
	namespace  string // "" for cluster-scoped kinds
	namespaced bool
}

// targetFor resolves T and checks the namespace for op on name.
func (c *Client[T]) targetFor(op, namespace, name string) (target, error) {
	m, err := c.resolve()
	if err != nil {
		return target{}, c.wrap(op, namespace, name, err)
	}
	t := target{m: m, namespaced: m.Scope.Name() == meta.RESTScopeNameNamespace}
	if t.namespaced {
		if namespace == "" {
			return target{}, fmt.Errorf("reconcile: %s %s: namespace is required for a namespaced kind", op, objectRef(c.gvk.Kind, namespace, name))
		}
		t.namespace = namespace
	}
	return t, nil
}

// objectRef names an object in errors: `ConfigMap "ns/name"`.
func objectRef(kind, namespace, name string) string {
	return fmt.Sprintf("%s %q", kind, informer.Key(namespace, name))
}

// wrap adds the operation and the object to err, keeping it for
// errors.Is/As (and so for apierrors.IsNotFound and friends).
func (c *Client[T]) wrap(op, namespace, name string, err error) error {
	return fmt.Errorf("reconcile: %s %s: %w", op, objectRef(c.gvk.Kind, namespace, name), err)
}

// informer returns T's shared informer, creating it on first use.
func (c *Client[T]) informer() (*informer.SharedInformer[T], error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inf != nil {
		return c.inf, nil
	}
	if c.factory == nil {
		return nil, errors.New("no informer factory: this client cannot read from a cache (use Live, or give the source a factory)")
	}
	newInformer := c.newInformer
	if newInformer == nil {
		newInformer = func() (*informer.SharedInformer[T], error) { return informer.For[T](c.factory, informer.Scope{}) }
	}
	inf, err := newInformer()
	if err != nil {
		return nil, err
	}
	c.inf = inf
	return inf, nil
}

// synced returns T's informer once its cache has synced.
func (c *Client[T]) synced(ctx context.Context) (*informer.SharedInformer[T], error) {
	inf, err := c.informer()
	if err != nil {
		return nil, err
	}
	if err := inf.WaitForSync(ctx); err != nil {
		return nil, fmt.Errorf("waiting for the cache of %s: %w", c.gvk.Kind, err)
	}
	return inf, nil
}

// Get returns the object namespace/name from the cache, or an error for
// which apierrors.IsNotFound is true if the cache does not hold it. The
// object is shared with the cache: do not modify it.
func (c *Client[T]) Get(ctx context.Context, namespace, name string) (T, error) {
	var zero T
	t, err := c.targetFor("get", namespace, name)
	if err != nil {
		return zero, err
	}
	inf, err := c.synced(ctx)
	if err != nil {
		return zero, c.wrap("get", t.namespace, name, err)
	}
	obj, ok := inf.Lister().Get(t.namespace, name)
	if !ok {
		return zero, c.wrap("get", t.namespace, name, apierrors.NewNotFound(t.m.Resource.GroupResource(), name))
	}
	return obj, nil
}

// List returns the cached objects opts selects, in no particular order.
// They are shared with the cache: do not modify them.
// For a cluster-scoped kind opts.Namespace is ignored.
func (c *Client[T]) List(ctx context.Context, opts ListOptions) ([]T, error) {
	m, err := c.resolve()
	if err != nil {
		return nil, fmt.Errorf("reconcile: list %s: %w", c.gvk.Kind, err)
	}
	if m.Scope.Name() != meta.RESTScopeNameNamespace {
		opts.Namespace = ""
	}
	inf, err := c.synced(ctx)
	if err != nil {
		return nil, fmt.Errorf("reconcile: list %s: %w", c.gvk.Kind, err)
	}
	sel := opts.LabelSelector
	if sel != nil && sel.Empty() {
		sel = nil
	}
	if opts.Index == "" {
		if opts.Namespace != "" {
			return inf.Lister().ListNamespace(opts.Namespace, sel), nil
		}
		return inf.Lister().List(sel), nil
	}
	objs, err := inf.Lister().ByIndex(opts.Index, opts.Value)
	if err != nil {
		return nil, fmt.Errorf("reconcile: list %s by index %q: %w", c.gvk.Kind, opts.Index, err)
	}
	out := objs[:0:0]
	for _, obj := range objs {
		if opts.Namespace != "" && obj.GetNamespace() != opts.Namespace {
			continue
		}
		if sel != nil && !sel.Matches(labels.Set(obj.GetLabels())) {
			continue
		}
		out = append(out, obj)
	}
	return out, nil
}

// Live reads namespace/name from the API server, bypassing the cache: for
// the rare decision that cannot be made on a lagging cache. The object is
// the caller's.
func (c *Client[T]) Live(ctx context.Context, namespace, name string) (T, error) {
	var zero T
	t, err := c.targetFor("get", namespace, name)
	if err != nil {
		return zero, err
	}
	out := c.newObject()
	err = c.rest.Get().NamespaceIfScoped(t.namespace, t.namespaced).Resource(t.m.Resource.Resource).Name(name).
		Do(ctx).Into(out)
	if err != nil {
		return zero, c.wrap("get", t.namespace, name, err)
	}
	return out, nil
}

// Create creates obj and returns the object the server stored.
func (c *Client[T]) Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error) {
	var zero T
	ns, name := obj.GetNamespace(), obj.GetName()
	if name == "" && obj.GetGenerateName() != "" {
		name = obj.GetGenerateName() + "*"
	}
	t, err := c.targetFor("create", ns, name)
	if err != nil {
		return zero, err
	}
	out := c.newObject()
	err = c.rest.Post().NamespaceIfScoped(t.namespace, t.namespaced).Resource(t.m.Resource.Resource).
		VersionedParams(&opts, metav1.ParameterCodec).Body(obj).Do(ctx).Into(out)
	if err != nil {
		return zero, c.wrap("create", t.namespace, name, err)
	}
	c.wrote(ctx, out.GetNamespace(), out.GetName(), out.GetResourceVersion())
	return out, nil
}

// Update replaces the object with obj (spec and metadata; the status is
// ignored by kinds with a status subresource). obj's resourceVersion makes
// it conditional: a stale one fails with a Conflict.
func (c *Client[T]) Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error) {
	return c.put(ctx, "update", obj, opts)
}

// UpdateStatus replaces the status of the object with obj's, through the
// status subresource.
func (c *Client[T]) UpdateStatus(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error) {
	return c.put(ctx, "update status of", obj, opts, "status")
}

func (c *Client[T]) put(ctx context.Context, op string, obj T, opts metav1.UpdateOptions, subresource ...string) (T, error) {
	var zero T
	ns, name := obj.GetNamespace(), obj.GetName()
	if name == "" {
		return zero, fmt.Errorf("reconcile: %s %s: name is required", op, c.gvk.Kind)
	}
	t, err := c.targetFor(op, ns, name)
	if err != nil {
		return zero, err
	}
	out := c.newObject()
	err = c.rest.Put().NamespaceIfScoped(t.namespace, t.namespaced).Resource(t.m.Resource.Resource).Name(name).
		SubResource(subresource...).VersionedParams(&opts, metav1.ParameterCodec).Body(obj).Do(ctx).Into(out)
	if err != nil {
		return zero, c.wrap(op, t.namespace, name, err)
	}
	c.wrote(ctx, out.GetNamespace(), out.GetName(), out.GetResourceVersion())
	return out, nil
}

// Patch applies a patch of type pt (JSON patch, merge patch or strategic
// merge patch; use Apply for server-side apply) to namespace/name, or to
// its subresource (e.g. "status").
func (c *Client[T]) Patch(ctx context.Context, namespace, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error) {
	var zero T
	if name == "" {
		return zero, fmt.Errorf("reconcile: patch %s: name is required", c.gvk.Kind)
	}
	t, err := c.targetFor("patch", namespace, name)
	if err != nil {
		return zero, err
	}
	out := c.newObject()
	err = c.rest.Patch(pt).NamespaceIfScoped(t.namespace, t.namespaced).Resource(t.m.Resource.Resource).Name(name).
		SubResource(subresources...).VersionedParams(&opts, metav1.ParameterCodec).Body(data).Do(ctx).Into(out)
	if err != nil {
		return zero, c.wrap("patch", t.namespace, name, err)
	}
	c.wrote(ctx, out.GetNamespace(), out.GetName(), out.GetResourceVersion())
	return out, nil
}

// applyConfiguration is what Apply needs of an apply configuration; the
// ones generated by applyconfiguration-gen (client-go's included) have it.
type applyConfiguration interface {
	runtime.ApplyConfiguration
	GetName() *string
	GetNamespace() *string
	GetKind() *string
	GetAPIVersion() *string
}

// Apply makes the server-side apply of cfg as opts.FieldManager (required)
// and returns the object the server stored. cfg is a generated apply
// configuration of T's kind (k8s.io/client-go/applyconfigurations/... for
// built-in types), or UnstructuredApplyConfiguration(u) for one written as
// an unstructured object; it must carry apiVersion, kind and name (and
// namespace for a namespaced kind). opts.Force takes over fields owned by
// other managers.
//
// Apply with a typed T is deliberately not offered: a Go struct serialises
// its zero-valued fields, which would claim ownership of them.
func (c *Client[T]) Apply(ctx context.Context, cfg runtime.ApplyConfiguration, opts metav1.ApplyOptions) (T, error) {
	var zero T
	ac, ok := cfg.(applyConfiguration)
	if !ok || cfg == nil {
		return zero, fmt.Errorf("reconcile: apply %s: %T is not a generated apply configuration (it needs GetName, GetNamespace, GetKind and GetAPIVersion)", c.gvk.Kind, cfg)
	}
	name, ns := deref(ac.GetName()), deref(ac.GetNamespace())
	if name == "" {
		return zero, fmt.Errorf("reconcile: apply %s: the apply configuration has no name", c.gvk.Kind)
	}
	if opts.FieldManager == "" {
		return zero, fmt.Errorf("reconcile: apply %s: ApplyOptions.FieldManager is required", objectRef(c.gvk.Kind, ns, name))
	}
	if apiVersion, kind := deref(ac.GetAPIVersion()), deref(ac.GetKind()); apiVersion != c.gvk.GroupVersion().String() || kind != c.gvk.Kind {
		return zero, fmt.Errorf("reconcile: apply %s: the apply configuration is of apiVersion %q kind %q, want %q %q",
			objectRef(c.gvk.Kind, ns, name), apiVersion, kind, c.gvk.GroupVersion().String(), c.gvk.Kind)
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		return zero, c.wrap("apply", ns, name, err)
	}
	return c.patchApplied(ctx, ns, name, data, opts)
}

func (c *Client[T]) patchApplied(ctx context.Context, ns, name string, data []byte, opts metav1.ApplyOptions) (T, error) {
	var zero T
	t, err := c.targetFor("apply", ns, name)
	if err != nil {
		return zero, err
	}
	popts := opts.ToPatchOptions()
	out := c.newObject()
	err = c.rest.Patch(types.ApplyPatchType).NamespaceIfScoped(t.namespace, t.namespaced).Resource(t.m.Resource.Resource).Name(name).
		VersionedParams(&popts, metav1.ParameterCodec).Body(data).Do(ctx).Into(out)
	if err != nil {
		return zero, c.wrap("apply", t.namespace, name, err)
	}
	c.wrote(ctx, out.GetNamespace(), out.GetName(), out.GetResourceVersion())
	return out, nil
}

// UnstructuredApplyConfiguration makes u, an object written as unstructured
// content with apiVersion, kind and metadata.name (and namespace), an apply
// configuration for Apply. Only the fields u sets are applied.
func UnstructuredApplyConfiguration(u *unstructured.Unstructured) runtime.ApplyConfiguration {
	return unstructuredApply{u: u}
}

type unstructuredApply struct{ u *unstructured.Unstructured }

var _ applyConfiguration = unstructuredApply{}

func (a unstructuredApply) IsApplyConfiguration()        {}
func (a unstructuredApply) GetName() *string             { return ptrTo(a.u.GetName()) }
func (a unstructuredApply) GetNamespace() *string        { return ptrTo(a.u.GetNamespace()) }
func (a unstructuredApply) GetKind() *string             { return ptrTo(a.u.GetKind()) }
func (a unstructuredApply) GetAPIVersion() *string       { return ptrTo(a.u.GetAPIVersion()) }
func (a unstructuredApply) MarshalJSON() ([]byte, error) { return a.u.MarshalJSON() }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Delete deletes namespace/name. A NotFound error means it was already
// gone; use opts.Preconditions to delete only a given UID or
// resourceVersion.
func (c *Client[T]) Delete(ctx context.Context, namespace, name string, opts metav1.DeleteOptions) error {
	if name == "" {
		return fmt.Errorf("reconcile: delete %s: name is required", c.gvk.Kind)
	}
	t, err := c.targetFor("delete", namespace, name)
	if err != nil {
		return err
	}
	res := c.rest.Delete().NamespaceIfScoped(t.namespace, t.namespaced).Resource(t.m.Resource.Resource).Name(name).
		Body(&opts).Do(ctx)
	if err := res.Error(); err != nil {
		return c.wrap("delete", t.namespace, name, err)
	}
	// The server answers with the object while finalizers hold it, else
	// with a Status.
	rv := ""
	if obj, err := res.Get(); err == nil {
		if o, ok := obj.(T); ok {
			rv = o.GetResourceVersion()
		}
	}
	c.wrote(ctx, t.namespace, name, rv)
	return nil
}

// GetScale reads the scale subresource of namespace/name, for kinds that
// have one (Deployments, ReplicaSets, StatefulSets, CRDs with a scale
// subresource); others answer NotFound.
func (c *Client[T]) GetScale(ctx context.Context, namespace, name string) (*autoscalingv1.Scale, error) {
	t, err := c.targetFor("get scale of", namespace, name)
	if err != nil {
		return nil, err
	}
	out, err := decodeScale(c.scaleRequest(c.rest.Get(), t, name).Do(ctx))
	if err != nil {
		return nil, c.wrap("get scale of", t.namespace, name, err)
	}
	return out, nil
}

// UpdateScale writes the scale subresource of namespace/name (its
// spec.replicas; a set resourceVersion makes it conditional).
func (c *Client[T]) UpdateScale(ctx context.Context, namespace, name string, scale *autoscalingv1.Scale, opts metav1.UpdateOptions) (*autoscalingv1.Scale, error) {
	if scale == nil {
		return nil, fmt.Errorf("reconcile: update scale of %s: scale is nil", objectRef(c.gvk.Kind, namespace, name))
	}
	t, err := c.targetFor("update scale of", namespace, name)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(scaleWithKind(scale))
	if err != nil {
		return nil, c.wrap("update scale of", t.namespace, name, err)
	}
	out, err := decodeScale(c.scaleRequest(c.rest.Put(), t, name).VersionedParams(&opts, metav1.ParameterCodec).
		SetHeader("Content-Type", runtime.ContentTypeJSON).Body(body).Do(ctx))
	if err != nil {
		return nil, c.wrap("update scale of", t.namespace, name, err)
	}
	// The scale's resourceVersion is the object's.
	c.wrote(ctx, t.namespace, name, out.ResourceVersion)
	return out, nil
}

// scaleRequest addresses the scale subresource. Scale is autoscaling/v1
// whatever T's group, and T's scheme need not know it: it travels as JSON
// (which every scale endpoint, built-in or custom, speaks) and is decoded
// with encoding/json.
func (c *Client[T]) scaleRequest(r *rest.Request, t target, name string) *rest.Request {
	return r.NamespaceIfScoped(t.namespace, t.namespaced).Resource(t.m.Resource.Resource).Name(name).
		SubResource("scale").SetHeader("Accept", runtime.ContentTypeJSON)
}

// decodeScale decodes a scale answer; errors are already API errors.
func decodeScale(res rest.Result) (*autoscalingv1.Scale, error) {
	raw, err := res.Raw()
	if err != nil {
		return nil, err
	}
	out := &autoscalingv1.Scale{}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("decoding the scale: %w", err)
	}
	out.TypeMeta = metav1.TypeMeta{} // as every decoded object
	return out, nil
}

func scaleWithKind(s *autoscalingv1.Scale) *autoscalingv1.Scale {
	cp := s.DeepCopy()
	cp.APIVersion, cp.Kind = autoscalingv1.SchemeGroupVersion.String(), "Scale"
	return cp
}

// wrote is called after every successful write with the write's context,
// the object's namespace and name, and the resourceVersion the server
// answered ("" when a Delete's answer carried none).
//
// It records the write against the reconcile running in ctx (see
// RecordWrite): the next reconcile of that key waits until T's cache has
// observed resourceVersion, and the write's own watch event does not
// trigger one. It records whenever T's shared informer exists, whoever
// created it (this client's reads, a controller's For/Owns, a lister), so
// a controller that reads through listers and writes through a Client is
// covered; it never creates one: a write must not start an informer behind
// the user's back.
func (c *Client[T]) wrote(ctx context.Context, namespace, name, resourceVersion string) {
	if inf := c.existingInformer(); inf != nil {
		RecordWrite(ctx, inf, namespace, name, resourceVersion)
	}
}

// existingInformer returns T's shared informer if it exists, remembering it.
func (c *Client[T]) existingInformer() *informer.SharedInformer[T] {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inf != nil || c.factory == nil {
		return c.inf
	}
	var inf *informer.SharedInformer[T]
	var ok bool
	if c.existing != nil {
		inf, ok = c.existing()
	} else {
		inf, ok = informer.Existing[T](c.factory, informer.Scope{})
	}
	if ok {
		c.inf = inf
	}
	return c.inf
}
