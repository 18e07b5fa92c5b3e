package reconcile

import (
	"context"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"

	"github.com/capstan-io/capstan/informer"
)

// MetadataClient reads only the metadata of one kind of object
// (PartialObjectMetadata: names, labels, annotations, owner references,
// finalizers) from a metadata-only shared cache, and patches or deletes
// such objects. For controllers that watch many large objects (Secrets,
// Pods) but decide on metadata alone, it keeps a fraction of the memory of
// a full cache.
//
// Reads, errors and read-your-writes behave as Client's. Objects from Get
// and List are shared with the cache: do not modify them.
type MetadataClient struct {
	reads *Client[*metav1.PartialObjectMetadata]
	md    metadata.Interface
}

// MetadataClientFor returns a MetadataClient for objects of gvk. It makes no
// API call: the informer starts on the first read.
func MetadataClientFor(src ClientSource, gvk schema.GroupVersionKind) (*MetadataClient, error) {
	if src == nil {
		return nil, errors.New("reconcile: MetadataClientFor: source is nil")
	}
	if gvk.Kind == "" || gvk.Version == "" {
		return nil, fmt.Errorf("reconcile: MetadataClientFor: kind and version are required, got %q", gvk)
	}
	cfg, mapper, factory := src.Config(), src.RESTMapper(), src.Informers()
	switch {
	case cfg == nil:
		return nil, fmt.Errorf("reconcile: MetadataClientFor(%s): source's Config is nil", gvk.Kind)
	case mapper == nil:
		return nil, fmt.Errorf("reconcile: MetadataClientFor(%s): source's RESTMapper is nil", gvk.Kind)
	}
	md, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("reconcile: MetadataClientFor(%s): %w", gvk.Kind, err)
	}
	reads := &Client[*metav1.PartialObjectMetadata]{
		scheme:  src.Scheme(),
		mapper:  mapper,
		factory: factory,
		gvk:     gvk,
		proto:   &metav1.PartialObjectMetadata{},
	}
	reads.newInformer = func() (*informer.SharedInformer[*metav1.PartialObjectMetadata], error) {
		return informer.ForMetadata(factory, gvk, informer.Scope{})
	}
	reads.existing = func() (*informer.SharedInformer[*metav1.PartialObjectMetadata], bool) {
		return informer.ExistingMetadata(factory, gvk, informer.Scope{})
	}
	return &MetadataClient{reads: reads, md: md}, nil
}

// Get returns the metadata of namespace/name from the cache, or an error
// for which apierrors.IsNotFound is true.
func (c *MetadataClient) Get(ctx context.Context, namespace, name string) (*metav1.PartialObjectMetadata, error) {
	return c.reads.Get(ctx, namespace, name)
}

// List returns the cached metadata opts selects.
func (c *MetadataClient) List(ctx context.Context, opts ListOptions) ([]*metav1.PartialObjectMetadata, error) {
	return c.reads.List(ctx, opts)
}

// Patch patches namespace/name (typically its metadata: labels,
// annotations, finalizers) and returns the metadata the server answered.
func (c *MetadataClient) Patch(ctx context.Context, namespace, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions) (*metav1.PartialObjectMetadata, error) {
	t, err := c.reads.targetFor("patch", namespace, name)
	if err != nil {
		return nil, err
	}
	res := c.resource(t)
	out, err := res.Patch(ctx, name, pt, data, opts)
	if err != nil {
		return nil, c.reads.wrap("patch", t.namespace, name, err)
	}
	c.reads.wrote(ctx, t.namespace, name, out.ResourceVersion)
	return out, nil
}

// Delete deletes namespace/name.
func (c *MetadataClient) Delete(ctx context.Context, namespace, name string, opts metav1.DeleteOptions) error {
	t, err := c.reads.targetFor("delete", namespace, name)
	if err != nil {
		return err
	}
	if err := c.resource(t).Delete(ctx, name, opts); err != nil {
		return c.reads.wrap("delete", t.namespace, name, err)
	}
	return nil
}

func (c *MetadataClient) resource(t target) metadata.ResourceInterface {
	r := c.md.Resource(t.m.Resource)
	if t.namespaced {
		return r.Namespace(t.namespace)
	}
	return r
}
