package lazymapper_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/capstan-io/capstan/envtest"
	"github.com/capstan-io/capstan/internal/lazymapper"
	"github.com/capstan-io/capstan/internal/testmain"
)

var sharedEnv = envtest.NewShared(envtest.Options{})

func TestMain(m *testing.M) { testmain.Run(m, sharedEnv) }

// requests records the paths of the GET requests a config makes.
type requests struct {
	mu    sync.Mutex
	paths []string
}

func (r *requests) wrap(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(req *http.Request) (*http.Response, error) {
			r.mu.Lock()
			r.paths = append(r.paths, req.URL.Path)
			r.mu.Unlock()
			return rt.RoundTrip(req)
		})
	})
	return c
}

func (r *requests) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.paths
	r.paths = nil
	return p
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestFetchesOnlyWhatIsAsked: a kind with a version costs one request
// for its group version, a kind without one the group document and each
// of its versions; answers are kept.
func TestFetchesOnlyWhatIsAsked(t *testing.T) {
	var reqs requests
	m, err := lazymapper.New(reqs.wrap(sharedEnv.Get(t).Config()))
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		gk       schema.GroupKind
		versions []string
		resource string
		scope    meta.RESTScopeName
		paths    []string
	}{
		{schema.GroupKind{Kind: "ConfigMap"}, []string{"v1"}, "configmaps", meta.RESTScopeNameNamespace, []string{"/api/v1"}},
		{schema.GroupKind{Kind: "Namespace"}, []string{"v1"}, "namespaces", meta.RESTScopeNameRoot, nil},
		{schema.GroupKind{Kind: "Pod"}, nil, "pods", meta.RESTScopeNameNamespace, nil}, // core: v1 only, already loaded
		{schema.GroupKind{Group: "apps", Kind: "Deployment"}, nil, "deployments", meta.RESTScopeNameNamespace, []string{"/apis/apps", "/apis/apps/v1"}},
		{schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}, []string{"v1"}, "replicasets", meta.RESTScopeNameNamespace, nil},
		{schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}, []string{"v1"}, "clusterroles", meta.RESTScopeNameRoot, []string{"/apis/rbac.authorization.k8s.io/v1"}},
	}
	for _, s := range steps {
		mp, err := m.RESTMapping(s.gk, s.versions...)
		if err != nil {
			t.Fatalf("RESTMapping(%v, %v): %v", s.gk, s.versions, err)
		}
		if mp.Resource.Resource != s.resource || mp.Scope.Name() != s.scope {
			t.Errorf("RESTMapping(%v): resource %q scope %q, want %q %q", s.gk, mp.Resource.Resource, mp.Scope.Name(), s.resource, s.scope)
		}
		if got := reqs.take(); !slices.Equal(got, s.paths) {
			t.Errorf("RESTMapping(%v, %v) requested %q, want %q", s.gk, s.versions, got, s.paths)
		}
	}

	// Not served: a clear no-match error, not a transport error.
	_, err = m.RESTMapping(schema.GroupKind{Group: "nope.example.com", Kind: "Thing"}, "v1")
	if !meta.IsNoMatchError(err) {
		t.Errorf("unserved group version: got %v, want a no-match error", err)
	}
	_, err = m.RESTMapping(schema.GroupKind{Group: "nope.example.com", Kind: "Thing"})
	if !meta.IsNoMatchError(err) {
		t.Errorf("unserved group: got %v, want a no-match error", err)
	}
	_, err = m.RESTMapping(schema.GroupKind{Kind: "NoSuchKind"}, "v1")
	if !meta.IsNoMatchError(err) {
		t.Errorf("unknown core kind: got %v, want a no-match error", err)
	}
	reqs.take()

	// Reset forgets.
	m.Reset()
	if _, err := m.RESTMapping(schema.GroupKind{Kind: "ConfigMap"}, "v1"); err != nil {
		t.Fatal(err)
	}
	if got := reqs.take(); !slices.Equal(got, []string{"/api/v1"}) {
		t.Errorf("after Reset, requested %q, want [/api/v1]", got)
	}
}

// TestAgreesWithClientGo: for every kind of client-go's scheme the server
// serves (and some it does not), with and without a version, and for the
// resource queries, the lazy mapper answers as client-go's discovery
// mapper does.
func TestAgreesWithClientGo(t *testing.T) {
	cfg := sharedEnv.Get(t).Config()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	got, err := lazymapper.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[schema.GroupKind]bool{}
	checked := 0
	for gvk := range clientgoscheme.Scheme.AllKnownTypes() {
		if gvk.Version == "__internal" || strings.HasSuffix(gvk.Kind, "List") || strings.HasSuffix(gvk.Kind, "Options") {
			continue
		}
		for _, versions := range [][]string{{gvk.Version}, nil} {
			if versions == nil {
				if seen[gvk.GroupKind()] {
					continue
				}
				seen[gvk.GroupKind()] = true
			}
			w, werr := want.RESTMapping(gvk.GroupKind(), versions...)
			g, gerr := got.RESTMapping(gvk.GroupKind(), versions...)
			if (werr == nil) != (gerr == nil) || meta.IsNoMatchError(werr) != meta.IsNoMatchError(gerr) {
				t.Errorf("RESTMapping(%v, %v): error %v, client-go's %v", gvk.GroupKind(), versions, gerr, werr)
				continue
			}
			if werr != nil {
				continue
			}
			checked++
			if g.Resource != w.Resource || g.GroupVersionKind != w.GroupVersionKind || g.Scope.Name() != w.Scope.Name() {
				t.Errorf("RESTMapping(%v, %v) = %v %v %s, client-go's %v %v %s", gvk.GroupKind(), versions,
					g.Resource, g.GroupVersionKind, g.Scope.Name(), w.Resource, w.GroupVersionKind, w.Scope.Name())
			}
			wm, _ := want.RESTMappings(gvk.GroupKind(), versions...)
			gm, _ := got.RESTMappings(gvk.GroupKind(), versions...)
			if len(wm) != len(gm) {
				t.Errorf("RESTMappings(%v, %v): %d mappings, client-go %d", gvk.GroupKind(), versions, len(gm), len(wm))
			}
			for _, gvr := range []schema.GroupVersionResource{w.Resource, {Group: w.Resource.Group, Resource: w.Resource.Resource}, {Resource: w.Resource.Resource}} {
				wk, werr := want.KindFor(gvr)
				gk, gerr := got.KindFor(gvr)
				if wk != gk || (werr == nil) != (gerr == nil) {
					t.Errorf("KindFor(%v) = %v, %v; client-go's %v, %v", gvr, gk, gerr, wk, werr)
				}
				wr, werr := want.ResourceFor(gvr)
				gr, gerr := got.ResourceFor(gvr)
				if wr != gr || (werr == nil) != (gerr == nil) {
					t.Errorf("ResourceFor(%v) = %v, %v; client-go's %v, %v", gvr, gr, gerr, wr, werr)
				}
			}
		}
	}
	if checked < 100 {
		t.Fatalf("only %d mappings compared; the scheme or server is not what the test expects", checked)
	}
	ws, werr := want.ResourceSingularizer("deployments")
	gs, gerr := got.ResourceSingularizer("deployments")
	if ws != gs || werr != nil || gerr != nil {
		t.Errorf("ResourceSingularizer(deployments) = %q, %v; client-go's %q, %v", gs, gerr, ws, werr)
	}
}

// TestFindsKindsInstalledLater: a CRD installed after its group was
// discovered is found without a Reset, at the cost of one request.
func TestFindsKindsInstalledLater(t *testing.T) {
	e := sharedEnv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	group := "later.capstan.test"
	if err := e.InstallCRDs(ctx, crd(group, "Alpha", "alphas")); err != nil {
		t.Fatal(err)
	}
	var reqs requests
	m, err := lazymapper.New(reqs.wrap(e.Config()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.RESTMapping(schema.GroupKind{Group: group, Kind: "Alpha"}, "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.RESTMapping(schema.GroupKind{Group: group, Kind: "Beta"}, "v1"); !meta.IsNoMatchError(err) {
		t.Fatalf("Beta before its CRD: got %v, want a no-match error", err)
	}
	if err := e.InstallCRDs(ctx, crd(group, "Beta", "betas")); err != nil {
		t.Fatal(err)
	}
	reqs.take()
	mp, err := m.RESTMapping(schema.GroupKind{Group: group, Kind: "Beta"}, "v1")
	if err != nil {
		t.Fatalf("Beta after its CRD: %v", err)
	}
	if mp.Resource.Resource != "betas" || mp.Scope.Name() != meta.RESTScopeNameNamespace {
		t.Errorf("Beta: %v %s", mp.Resource, mp.Scope.Name())
	}
	if got, want := reqs.take(), []string{"/apis/" + group + "/v1"}; !slices.Equal(got, want) {
		t.Errorf("requested %q, want %q", got, want)
	}
}

func crd(group, kind, plural string) *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: plural + "." + group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: plural, Kind: kind},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: ptrTo(true),
				}},
			}},
		},
	}
}

func ptrTo[T any](v T) *T { return &v }
