package reconcile_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/capstan-io/capstan/informer"
	"github.com/capstan-io/capstan/reconcile"
)

// offlineSource is a ClientSource whose config points nowhere: these tests
// check what fails before any request is sent.
func offlineSource(t *testing.T) *reconcile.StaticClientSource {
	t.Helper()
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(corev1.SchemeGroupVersion.WithKind("ConfigMap"), meta.RESTScopeNamespace)
	mapper.Add(corev1.SchemeGroupVersion.WithKind("Namespace"), meta.RESTScopeRoot)
	src, err := reconcile.NewClientSource(&rest.Config{Host: "http://127.0.0.1:1"}, nil, mapper, nil)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// partSource lets a test leave parts out.
type partSource struct {
	cfg    *rest.Config
	scheme *runtime.Scheme
	mapper meta.RESTMapper
}

func (p partSource) Config() *rest.Config         { return p.cfg }
func (p partSource) Scheme() *runtime.Scheme      { return p.scheme }
func (p partSource) RESTMapper() meta.RESTMapper  { return p.mapper }
func (p partSource) Informers() *informer.Factory { return nil }

func TestClientForMisuse(t *testing.T) {
	cfg := &rest.Config{Host: "http://127.0.0.1:1"}
	mapper := meta.NewDefaultRESTMapper(nil)
	for _, tc := range []struct {
		name    string
		build   func() error
		wantErr string
	}{
		{"nil source", func() error { _, err := reconcile.ClientFor[*corev1.ConfigMap](nil); return err }, "source is nil"},
		{"nil config", func() error {
			_, err := reconcile.ClientFor[*corev1.ConfigMap](partSource{scheme: clientgoscheme.Scheme, mapper: mapper})
			return err
		}, "Config is nil"},
		{"nil scheme", func() error {
			_, err := reconcile.ClientFor[*corev1.ConfigMap](partSource{cfg: cfg, mapper: mapper})
			return err
		}, "Scheme is nil"},
		{"nil mapper", func() error {
			_, err := reconcile.ClientFor[*corev1.ConfigMap](partSource{cfg: cfg, scheme: clientgoscheme.Scheme})
			return err
		}, "RESTMapper is nil"},
		{"type not in the scheme", func() error {
			_, err := reconcile.ClientFor[*unregistered](partSource{cfg: cfg, scheme: clientgoscheme.Scheme, mapper: mapper})
			return err
		}, "ClientFor[*reconcile_test.unregistered]"},
		{"NewClientSource without config", func() error {
			_, err := reconcile.NewClientSource(nil, nil, nil, nil)
			return err
		}, "config is nil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.build()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestClientRefusesBadInput(t *testing.T) {
	src := offlineSource(t)
	cms, err := reconcile.ClientFor[*corev1.ConfigMap](src)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cms.GroupVersionKind(), corev1.SchemeGroupVersion.WithKind("ConfigMap"); got != want {
		t.Errorf("got kind %v, want %v", got, want)
	}
	nss, err := reconcile.ClientFor[*corev1.Namespace](src)
	if err != nil {
		t.Fatal(err)
	}
	secrets, err := reconcile.ClientFor[*corev1.Secret](src)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fm := metav1.ApplyOptions{FieldManager: "me"}
	for _, tc := range []struct {
		name    string
		call    func() error
		wantErr string
	}{
		{"get without namespace", func() error { _, err := cms.Get(ctx, "", "a"); return err },
			`get ConfigMap "a": namespace is required for a namespaced kind`},
		{"live without namespace", func() error { _, err := cms.Live(ctx, "", "a"); return err }, "namespace is required"},
		{"create without namespace", func() error { _, err := cms.Create(ctx, cm("", "a"), metav1.CreateOptions{}); return err }, "namespace is required"},
		{"update without name", func() error { _, err := cms.Update(ctx, cm("ns", ""), metav1.UpdateOptions{}); return err }, "update ConfigMap: name is required"},
		{"patch without name", func() error {
			_, err := cms.Patch(ctx, "ns", "", "application/merge-patch+json", nil, metav1.PatchOptions{})
			return err
		}, "name is required"},
		{"delete without name", func() error { return cms.Delete(ctx, "ns", "", metav1.DeleteOptions{}) }, "name is required"},
		{"get without a factory", func() error { _, err := cms.Get(ctx, "ns", "a"); return err }, "no informer factory"},
		{"list without a factory", func() error { _, err := nss.List(ctx, reconcile.ListOptions{}); return err }, "no informer factory"},
		{"kind the mapper does not know", func() error { _, err := secrets.Live(ctx, "ns", "a"); return err }, `reconcile: get Secret "ns/a": resolving the resource of /v1, Kind=Secret`},
		{"apply of nil", func() error { _, err := cms.Apply(ctx, nil, fm); return err }, "<nil> is not a generated apply configuration"},
		{"apply without field manager", func() error {
			_, err := cms.Apply(ctx, corev1ac.ConfigMap("a", "ns"), metav1.ApplyOptions{})
			return err
		}, `apply ConfigMap "ns/a": ApplyOptions.FieldManager is required`},
		{"apply without name", func() error { _, err := cms.Apply(ctx, corev1ac.ConfigMap("", "ns"), fm); return err }, "has no name"},
		{"apply of another kind", func() error { _, err := cms.Apply(ctx, corev1ac.Secret("a", "ns"), fm); return err },
			`apiVersion "v1" kind "Secret", want "v1" "ConfigMap"`},
		{"apply without kind", func() error { _, err := cms.Apply(ctx, &corev1ac.ConfigMapApplyConfiguration{}, fm); return err }, "has no name"},
		{"apply without namespace", func() error { _, err := cms.Apply(ctx, corev1ac.ConfigMap("a", ""), fm); return err }, "namespace is required"},
		{"update scale of nil", func() error { _, err := cms.UpdateScale(ctx, "ns", "a", nil, metav1.UpdateOptions{}); return err }, "scale is nil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got error %v, want one containing %q", err, tc.wantErr)
			}
			var se interface{ Status() metav1.Status }
			if errors.As(err, &se) {
				t.Errorf("got an API status error %v, want a local one (no request sent)", err)
			}
		})
	}
}

func TestClientGroupVersionKindOfCRDType(t *testing.T) {
	scheme := runtime.NewScheme()
	gv := schema.GroupVersion{Group: "example.capstan.io", Version: "v1"}
	addWidgetTypes(scheme, gv)
	src, err := reconcile.NewClientSource(&rest.Config{Host: "http://127.0.0.1:1"}, scheme, meta.NewDefaultRESTMapper(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := reconcile.ClientFor[*widget](src)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.GroupVersionKind(), gv.WithKind("Widget"); got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestRateLimitedSharesOneLimiter: every config RateLimited hands out
// carries the same limiter, so all clients built from it share one budget;
// qps <= 0 leaves the source as it is.
func TestRateLimitedSharesOneLimiter(t *testing.T) {
	src, err := reconcile.NewClientSource(&rest.Config{Host: "https://127.0.0.1:1"}, nil, meta.NewDefaultRESTMapper(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	limited := reconcile.RateLimited(src, 5, 10)
	a, b := limited.Config(), limited.Config()
	if a.RateLimiter == nil || a.RateLimiter != b.RateLimiter {
		t.Fatalf("RateLimiter of two configs: got %v and %v, want one shared limiter", a.RateLimiter, b.RateLimiter)
	}
	if got := a.RateLimiter.QPS(); got != 5 {
		t.Errorf("limiter QPS: got %v, want 5", got)
	}
	if src.Config().RateLimiter != nil {
		t.Error("RateLimited changed the source's own config")
	}
	if got := reconcile.RateLimited(src, 0, 10); got != reconcile.ClientSource(src) {
		t.Errorf("RateLimited(src, 0, 10): got %T, want src itself", got)
	}
}
