// Package lazymapper is a RESTMapper that discovers the API one group
// version at a time, when a kind of it is first asked for.
//
// client-go's DeferredDiscoveryRESTMapper reads the whole discovery
// document on first use: every group and version the server offers,
// decoded and indexed, hundreds of kilobytes for a cluster with a few
// CRDs, to answer "which resource is a ConfigMap". A controller asks about
// a handful of kinds, always with the version its scheme gives; this
// mapper fetches exactly those group versions (one small request each:
// /api/v1, /apis/apps/v1) and keeps them. Only questions that cannot name
// a group (a bare resource such as "pods" in KindFor, or
// ResourceSingularizer) fall back to reading everything.
//
// A kind missing from a group version loaded earlier (a CRD version
// installed since, say) makes the mapper fetch that group version again,
// once per question, so new kinds are found without a Reset.
package lazymapper

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// Mapper is a lazily discovering meta.ResettableRESTMapper, safe for
// concurrent use.
type Mapper struct {
	dc discovery.DiscoveryInterface

	load sync.Mutex // serialises discovery requests; held before mu

	mu     sync.RWMutex
	groups map[string]*group
	all    meta.RESTMapper // over every group (full discovery); nil until needed
}

// group is what is known of one API group.
type group struct {
	doc      *metav1.APIGroup                // versions and preferred version; nil until read
	versions map[string][]metav1.APIResource // version → resources; nil slice: not served
	order    []string                        // versions in the order they were loaded
	mapper   meta.RESTMapper                 // over the served versions loaded so far
}

var _ meta.ResettableRESTMapper = (*Mapper)(nil)

// New returns a Mapper that discovers through cfg.
func New(cfg *rest.Config) (*Mapper, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("rest mapper: %w", err)
	}
	return NewForDiscovery(dc), nil
}

// NewForDiscovery returns a Mapper that discovers through dc. Looking up a
// group's preferred version uses dc.RESTClient(), so dc must have one for
// RESTMapping calls that name no version.
func NewForDiscovery(dc discovery.DiscoveryInterface) *Mapper {
	return &Mapper{dc: dc, groups: map[string]*group{}}
}

// Reset forgets everything discovered.
func (m *Mapper) Reset() {
	m.load.Lock()
	defer m.load.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.groups = map[string]*group{}
	m.all = nil
}

// RESTMapping returns the mapping of gk in the first of versions the
// server serves it in, or in its group's preferred version when versions
// is empty.
func (m *Mapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	var out *meta.RESTMapping
	err := m.kindQuery(gk, versions, func(rm meta.RESTMapper) (err error) {
		out, err = rm.RESTMapping(gk, versions...)
		return err
	})
	return out, err
}

// RESTMappings returns every mapping of gk (in versions, when given).
func (m *Mapper) RESTMappings(gk schema.GroupKind, versions ...string) ([]*meta.RESTMapping, error) {
	var out []*meta.RESTMapping
	err := m.kindQuery(gk, versions, func(rm meta.RESTMapper) (err error) {
		out, err = rm.RESTMappings(gk, versions...)
		return err
	})
	return out, err
}

// KindFor returns the single kind resource names.
func (m *Mapper) KindFor(resource schema.GroupVersionResource) (schema.GroupVersionKind, error) {
	var out schema.GroupVersionKind
	err := m.resourceQuery(resource, func(rm meta.RESTMapper) (err error) {
		out, err = rm.KindFor(resource)
		return err
	})
	return out, err
}

// KindsFor returns the kinds resource may name, in priority order.
func (m *Mapper) KindsFor(resource schema.GroupVersionResource) ([]schema.GroupVersionKind, error) {
	var out []schema.GroupVersionKind
	err := m.resourceQuery(resource, func(rm meta.RESTMapper) (err error) {
		out, err = rm.KindsFor(resource)
		return err
	})
	return out, err
}

// ResourceFor returns the single resource input names.
func (m *Mapper) ResourceFor(input schema.GroupVersionResource) (schema.GroupVersionResource, error) {
	var out schema.GroupVersionResource
	err := m.resourceQuery(input, func(rm meta.RESTMapper) (err error) {
		out, err = rm.ResourceFor(input)
		return err
	})
	return out, err
}

// ResourcesFor returns the resources input may name, in priority order.
func (m *Mapper) ResourcesFor(input schema.GroupVersionResource) ([]schema.GroupVersionResource, error) {
	var out []schema.GroupVersionResource
	err := m.resourceQuery(input, func(rm meta.RESTMapper) (err error) {
		out, err = rm.ResourcesFor(input)
		return err
	})
	return out, err
}

// ResourceSingularizer returns the singular name of a plural resource. It
// names no group, so it reads the whole discovery document once.
func (m *Mapper) ResourceSingularizer(resource string) (string, error) {
	rm, err := m.everything()
	if err != nil {
		return "", err
	}
	return rm.ResourceSingularizer(resource)
}

// String names the mapper in errors.
func (m *Mapper) String() string { return "lazymapper.Mapper" }

// kindQuery answers q over gk's group.
func (m *Mapper) kindQuery(gk schema.GroupKind, versions []string, q func(meta.RESTMapper) error) error {
	return m.groupQuery(gk.Group, versions, q)
}

// resourceQuery answers q for a partial resource: within its group when
// it names one, else over everything.
func (m *Mapper) resourceQuery(r schema.GroupVersionResource, q func(meta.RESTMapper) error) error {
	if r.Group == "" && r.Resource != "" {
		// "pods" may be core or any group's: only full discovery can tell.
		rm, err := m.everything()
		if err != nil {
			return err
		}
		return q(rm)
	}
	var versions []string
	if r.Version != "" {
		versions = []string{r.Version}
	}
	return m.groupQuery(r.Group, versions, q)
}

// groupQuery answers q over the group, loading the versions it needs; a
// miss in versions loaded earlier loads them again once.
func (m *Mapper) groupQuery(name string, versions []string, q func(meta.RESTMapper) error) error {
	fresh, err := m.ensure(name, versions, false)
	if err != nil {
		return err
	}
	err = m.ask(name, q)
	if err == nil || fresh || !meta.IsNoMatchError(err) {
		return err
	}
	if _, err := m.ensure(name, versions, true); err != nil {
		return err
	}
	return m.ask(name, q)
}

// ask runs q over the group's mapper, or reports no match when the group
// has no served version loaded.
func (m *Mapper) ask(name string, q func(meta.RESTMapper) error) error {
	m.mu.RLock()
	g := m.groups[name]
	var rm meta.RESTMapper
	if g != nil {
		rm = g.mapper
	}
	m.mu.RUnlock()
	if rm == nil {
		rm = meta.MultiRESTMapper{} // no match for anything
	}
	return q(rm)
}

// ensure makes sure the group's versions (its every served version when
// versions is empty) are loaded; with reload it fetches them again. It
// reports whether it fetched anything.
func (m *Mapper) ensure(name string, versions []string, reload bool) (bool, error) {
	if !reload && m.loaded(name, versions) {
		return false, nil
	}
	m.load.Lock()
	defer m.load.Unlock()
	if !reload && m.loaded(name, versions) {
		return false, nil
	}
	ctx := context.Background()

	m.mu.RLock()
	old := m.groups[name]
	m.mu.RUnlock()
	g := &group{versions: map[string][]metav1.APIResource{}}
	if old != nil {
		g.doc = old.doc
		g.order = slices.Clone(old.order)
		for v, rs := range old.versions {
			g.versions[v] = rs
		}
	}
	want := versions
	if len(want) == 0 {
		if g.doc == nil || reload {
			doc, err := m.groupDoc(ctx, name)
			if err != nil {
				return false, err
			}
			g.doc = doc
		}
		for _, v := range g.doc.Versions {
			want = append(want, v.Version)
		}
	}
	for _, v := range want {
		if _, ok := g.versions[v]; ok && !reload {
			continue
		}
		rs, err := m.resources(ctx, schema.GroupVersion{Group: name, Version: v})
		if err != nil {
			return false, err
		}
		if _, seen := g.versions[v]; !seen {
			g.order = append(g.order, v)
		}
		g.versions[v] = rs
	}
	g.mapper = g.build(name)

	m.mu.Lock()
	m.groups[name] = g
	m.mu.Unlock()
	return true, nil
}

// loaded reports whether the group's versions (every one of its versions
// when versions is empty) are known.
func (m *Mapper) loaded(name string, versions []string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	g := m.groups[name]
	return g != nil && g.has(versions)
}

// has reports whether the versions (every version of the group document
// when versions is empty) are loaded.
func (g *group) has(versions []string) bool {
	if len(versions) == 0 {
		if g.doc == nil {
			return false
		}
		for _, v := range g.doc.Versions {
			if _, ok := g.versions[v.Version]; !ok {
				return false
			}
		}
		return true
	}
	for _, v := range versions {
		if _, ok := g.versions[v]; !ok {
			return false
		}
	}
	return true
}

// build returns a mapper over the group's served versions, the preferred
// one first (when known), then the others in the server's order.
func (g *group) build(name string) meta.RESTMapper {
	agr := &restmapper.APIGroupResources{
		Group:              metav1.APIGroup{Name: name},
		VersionedResources: map[string][]metav1.APIResource{},
	}
	order := g.order
	if g.doc != nil {
		agr.Group.PreferredVersion = g.doc.PreferredVersion
		order = nil
		for _, v := range g.doc.Versions {
			order = append(order, v.Version)
		}
		for _, v := range g.order {
			if !slices.Contains(order, v) {
				order = append(order, v)
			}
		}
	}
	for _, v := range order {
		rs, ok := g.versions[v]
		if !ok || rs == nil {
			continue
		}
		gv := schema.GroupVersion{Group: name, Version: v}.String()
		agr.Group.Versions = append(agr.Group.Versions, metav1.GroupVersionForDiscovery{GroupVersion: gv, Version: v})
		agr.VersionedResources[v] = rs
	}
	if len(agr.Group.Versions) == 0 {
		return nil
	}
	if agr.Group.PreferredVersion.Version == "" || agr.VersionedResources[agr.Group.PreferredVersion.Version] == nil {
		agr.Group.PreferredVersion = agr.Group.Versions[0]
	}
	return restmapper.NewDiscoveryRESTMapper([]*restmapper.APIGroupResources{agr})
}

// groupDoc reads the group's versions and preferred version. The legacy
// core group ("") serves v1 only.
func (m *Mapper) groupDoc(ctx context.Context, name string) (*metav1.APIGroup, error) {
	if name == "" {
		v1 := metav1.GroupVersionForDiscovery{GroupVersion: "v1", Version: "v1"}
		return &metav1.APIGroup{Versions: []metav1.GroupVersionForDiscovery{v1}, PreferredVersion: v1}, nil
	}
	rc := m.dc.RESTClient()
	if rc == nil {
		return nil, fmt.Errorf("rest mapper: group %q: the discovery client has no REST client", name)
	}
	doc := &metav1.APIGroup{}
	err := rc.Get().AbsPath("/apis", name).Do(ctx).Into(doc)
	if apierrors.IsNotFound(err) {
		return &metav1.APIGroup{Name: name}, nil // not served: no versions
	}
	if err != nil {
		return nil, fmt.Errorf("rest mapper: discovering group %q: %w", name, err)
	}
	return doc, nil
}

// resources reads the resources of gv, leaving out subresources; a group
// version the server does not serve has none (nil).
func (m *Mapper) resources(ctx context.Context, gv schema.GroupVersion) ([]metav1.APIResource, error) {
	list, err := m.serverResources(ctx, gv.String())
	if apierrors.IsNotFound(err) { // not served (IsNotFound matches any 404)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rest mapper: discovering %s: %w", gv, err)
	}
	rs := make([]metav1.APIResource, 0, len(list.APIResources))
	for _, r := range list.APIResources {
		if !strings.Contains(r.Name, "/") {
			rs = append(rs, r)
		}
	}
	return rs, nil
}

func (m *Mapper) serverResources(ctx context.Context, gv string) (*metav1.APIResourceList, error) {
	if dc, ok := m.dc.(discovery.DiscoveryInterfaceWithContext); ok {
		return dc.ServerResourcesForGroupVersionWithContext(ctx, gv)
	}
	return m.dc.ServerResourcesForGroupVersion(gv)
}

// everything returns a mapper over every group, as client-go's discovery
// mapper builds it (groups in the server's priority order), reading the
// whole discovery document the first time.
func (m *Mapper) everything() (meta.RESTMapper, error) {
	m.load.Lock()
	defer m.load.Unlock()
	m.mu.RLock()
	all := m.all
	m.mu.RUnlock()
	if all != nil {
		return all, nil
	}
	groups, err := restmapper.GetAPIGroupResources(m.dc)
	if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
		return nil, fmt.Errorf("rest mapper: discovering every group: %w", err)
	}
	all = restmapper.NewDiscoveryRESTMapper(groups)
	m.mu.Lock()
	m.all = all
	m.mu.Unlock()
	return all, nil
}

// Lookup returns the mapping of gvk from any RESTMapper. A mapper that
// does not refresh itself (client-go's deferred discovery mapper, say)
// is Reset and asked again when it knows no such kind, so that a CRD
// installed since it was filled is found. A Mapper already fetches the
// group again on a miss, so it is not Reset: that would forget every
// other group it has discovered.
func Lookup(m meta.RESTMapper, gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	mapping, err := m.RESTMapping(gvk.GroupKind(), gvk.Version)
	if _, self := m.(*Mapper); err == nil || self || !meta.IsNoMatchError(err) {
		return mapping, err
	}
	r, ok := m.(meta.ResettableRESTMapper)
	if !ok {
		return nil, err
	}
	r.Reset()
	return m.RESTMapping(gvk.GroupKind(), gvk.Version)
}
