package reconcile_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/utils/ptr"

	"github.com/capstan-io/capstan/informer"
	"github.com/capstan-io/capstan/reconcile"
)

// writeCounter counts the requests other than GET (get, list, watch) that
// go through a config, the API writes, and records their content types.
type writeCounter struct {
	n            atomic.Int64
	mu           sync.Mutex
	contentTypes map[string]bool // of writes
}

func (w *writeCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method != http.MethodGet {
			w.n.Add(1)
			w.mu.Lock()
			if w.contentTypes == nil {
				w.contentTypes = map[string]bool{}
			}
			w.contentTypes[r.Method+" "+r.Header.Get("Content-Type")] = true
			w.mu.Unlock()
		}
		return rt.RoundTrip(r)
	})
}

// sawContentType reports whether a write with method and content type went
// through, and forgets what was seen.
func (w *writeCounter) sawContentType(method, contentType string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	ok := w.contentTypes[method+" "+contentType]
	w.contentTypes = nil
	return ok
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// clientEnv is a running informer factory on the shared envtest, a client
// source on it, and a namespace of the test's own.
type clientEnv struct {
	src     *reconcile.StaticClientSource
	factory *informer.Factory
	writes  *writeCounter
	ns      string
}

func newClientEnv(t *testing.T) *clientEnv {
	t.Helper()
	return newClientEnvWithScheme(t, nil)
}

// newClientEnvWithScheme is newClientEnv with the given scheme (nil for
// client-go's).
func newClientEnvWithScheme(t *testing.T, scheme *runtime.Scheme) *clientEnv {
	t.Helper()
	cfg := sharedEnv(t).Config()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	factory, err := informer.NewFactory(informer.FactoryOptions{Config: cfg, Scheme: scheme, Mapper: mapper})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := factory.Run(ctx); err != nil {
			t.Errorf("factory.Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })

	wc := &writeCounter{}
	wcfg := rest.CopyConfig(cfg)
	wcfg.Wrap(wc.wrap)
	src, err := reconcile.NewClientSource(wcfg, scheme, mapper, factory)
	if err != nil {
		t.Fatal(err)
	}
	e := &clientEnv{src: src, factory: factory, writes: wc}
	nsrc, err := reconcile.NewClientSource(cfg, nil, mapper, nil)
	if err != nil {
		t.Fatal(err)
	}
	nsc := mustClient[*corev1.Namespace](t, nsrc)
	ns, err := nsc.Create(testCtx(t), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "client-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.ns = ns.Name
	return e
}

func mustClient[T informer.Object](t *testing.T, src reconcile.ClientSource) *reconcile.Client[T] {
	t.Helper()
	c, err := reconcile.ClientFor[T](src)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testCtx is a context bounded well within the test timeout.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitCached waits until T's shared cache has applied resourceVersion rv:
// the read-your-writes wait, done by hand until the client does it.
func waitCached[T informer.Object](t *testing.T, e *clientEnv, rv string) {
	t.Helper()
	inf, err := informer.For[T](e.factory, informer.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	if err := inf.WaitForResourceVersion(testCtx(t), rv); err != nil {
		t.Fatalf("waiting for resourceVersion %s in the cache: %v", rv, err)
	}
}

// wantNotFound checks err is a NotFound StatusError for gr that names the
// object.
func wantNotFound(t *testing.T, err error, gr schema.GroupResource, ref string) {
	t.Helper()
	if !apierrors.IsNotFound(err) {
		t.Fatalf("got error %v, want NotFound", err)
	}
	var se *apierrors.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("got error %T, want one wrapping *apierrors.StatusError", err)
	}
	if d := se.Status().Details; d == nil || d.Group != gr.Group || d.Kind != gr.Resource {
		t.Errorf("got status details %+v, want group %q resource %q", se.Status().Details, gr.Group, gr.Resource)
	}
	if !strings.Contains(err.Error(), ref) {
		t.Errorf("got error %q, want it to name %s", err, ref)
	}
}

func TestClientConfigMaps(t *testing.T) {
	e := newClientEnv(t)
	ctx := testCtx(t)
	c := mustClient[*corev1.ConfigMap](t, e.src)
	cmGR := schema.GroupResource{Resource: "configmaps"}

	t.Run("get of a missing object is NotFound", func(t *testing.T) {
		_, err := c.Get(ctx, e.ns, "missing")
		wantNotFound(t, err, cmGR, `ConfigMap "`+e.ns+`/missing"`)
		_, err = c.Live(ctx, e.ns, "missing")
		wantNotFound(t, err, cmGR, `ConfigMap "`+e.ns+`/missing"`)
	})

	created, err := c.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "a", Labels: map[string]string{"app": "x"}},
		Data:       map[string]string{"k": "v1"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.UID == "" || created.ResourceVersion == "" || created.Data["k"] != "v1" {
		t.Fatalf("got created %+v, want a stored object with data k=v1", created)
	}
	if !e.writes.sawContentType(http.MethodPost, runtime.ContentTypeProtobuf) {
		t.Errorf("got create content types other than protobuf, want protobuf for a built-in type")
	}
	if _, err := c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "b"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "a"}}, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		t.Errorf("create again: got %v, want AlreadyExists", err)
	}
	last, err := c.Live(ctx, e.ns, "b")
	if err != nil {
		t.Fatal(err)
	}
	waitCached[*corev1.ConfigMap](t, e, last.ResourceVersion)

	t.Run("get and list from the cache", func(t *testing.T) {
		got, err := c.Get(ctx, e.ns, "a")
		if err != nil {
			t.Fatal(err)
		}
		if got.UID != created.UID || got.Data["k"] != "v1" {
			t.Errorf("got %s uid %s data %v, want uid %s data k=v1", got.Name, got.UID, got.Data, created.UID)
		}
		if got.ManagedFields != nil {
			t.Errorf("got managedFields in the cache, want them stripped")
		}
		for _, tc := range []struct {
			name string
			opts reconcile.ListOptions
			want []string
		}{
			{"namespace", reconcile.ListOptions{Namespace: e.ns}, []string{"a", "b"}},
			{"label selector", reconcile.ListOptions{Namespace: e.ns, LabelSelector: labels.SelectorFromSet(labels.Set{"app": "x"})}, []string{"a"}},
			{"namespace index", reconcile.ListOptions{Index: informer.NamespaceIndex, Value: e.ns}, []string{"a", "b"}},
			{"namespace index and selector", reconcile.ListOptions{Index: informer.NamespaceIndex, Value: e.ns, LabelSelector: labels.SelectorFromSet(labels.Set{"app": "x"})}, []string{"a"}},
			{"other namespace", reconcile.ListOptions{Namespace: e.ns + "-none"}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				objs, err := c.List(ctx, tc.opts)
				if err != nil {
					t.Fatal(err)
				}
				if got := names(objs); !slices.Equal(got, tc.want) {
					t.Errorf("got %v, want %v", got, tc.want)
				}
			})
		}
		if _, err := c.List(ctx, reconcile.ListOptions{Index: "nope", Value: "x"}); !errors.Is(err, informer.ErrNoIndex) {
			t.Errorf("list by a missing index: got %v, want informer.ErrNoIndex", err)
		}
		all, err := c.List(ctx, reconcile.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n := countIn(all, e.ns); n != 2 {
			t.Errorf("list of every namespace: got %d objects of the test namespace, want 2", n)
		}
	})

	t.Run("update, conflict", func(t *testing.T) {
		cur := created.DeepCopy()
		cur.Data["k"] = "v2"
		updated, err := c.Update(ctx, cur, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if updated.Data["k"] != "v2" || updated.ResourceVersion == created.ResourceVersion {
			t.Errorf("got data %v rv %s, want k=v2 and a new rv", updated.Data, updated.ResourceVersion)
		}
		if updated == cur {
			t.Error("got the object passed in, want a fresh one")
		}
		stale := created.DeepCopy()
		stale.Data["k"] = "v3"
		_, err = c.Update(ctx, stale, metav1.UpdateOptions{})
		if !apierrors.IsConflict(err) {
			t.Fatalf("update with a stale resourceVersion: got %v, want Conflict", err)
		}
		if !strings.Contains(err.Error(), `update ConfigMap "`+e.ns+`/a"`) {
			t.Errorf("got error %q, want it to name the operation and object", err)
		}
	})

	t.Run("patch", func(t *testing.T) {
		got, err := c.Patch(ctx, e.ns, "a", types.MergePatchType, []byte(`{"data":{"p":"1"}}`), metav1.PatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Data["p"] != "1" || got.Data["k"] != "v2" {
			t.Errorf("got data %v, want p=1 beside k=v2", got.Data)
		}
		_, err = c.Patch(ctx, e.ns, "missing", types.MergePatchType, []byte(`{}`), metav1.PatchOptions{})
		wantNotFound(t, err, cmGR, "missing")
	})

	t.Run("server-side apply", func(t *testing.T) {
		ac := corev1ac.ConfigMap("applied", e.ns).WithData(map[string]string{"owner": "alice"})
		got, err := c.Apply(ctx, ac, metav1.ApplyOptions{FieldManager: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		if got.Data["owner"] != "alice" || got.UID == "" {
			t.Errorf("got %+v, want a created object with owner=alice", got)
		}
		bob := corev1ac.ConfigMap("applied", e.ns).WithData(map[string]string{"owner": "bob"})
		_, err = c.Apply(ctx, bob, metav1.ApplyOptions{FieldManager: "bob"})
		if !apierrors.IsConflict(err) {
			t.Fatalf("apply of a field another manager owns: got %v, want Conflict", err)
		}
		got, err = c.Apply(ctx, bob, metav1.ApplyOptions{FieldManager: "bob", Force: true})
		if err != nil {
			t.Fatal(err)
		}
		if got.Data["owner"] != "bob" {
			t.Errorf("forced apply: got data %v, want owner=bob", got.Data)
		}
		u := reconcile.UnstructuredApplyConfiguration(unstructuredConfigMap(e.ns, "applied", map[string]any{"extra": "1"}))
		got, err = c.Apply(ctx, u, metav1.ApplyOptions{FieldManager: "carol"})
		if err != nil {
			t.Fatal(err)
		}
		if got.Data["extra"] != "1" || got.Data["owner"] != "bob" {
			t.Errorf("unstructured apply: got data %v, want extra=1 beside owner=bob", got.Data)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if err := c.Delete(ctx, e.ns, "a", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err := c.Live(ctx, e.ns, "a")
		wantNotFound(t, err, cmGR, "a")
		err = c.Delete(ctx, e.ns, "a", metav1.DeleteOptions{})
		wantNotFound(t, err, cmGR, `delete ConfigMap "`+e.ns+`/a"`)
		b, err := c.Live(ctx, e.ns, "b")
		if err != nil {
			t.Fatal(err)
		}
		err = c.Delete(ctx, e.ns, "b", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr.To(types.UID("not-" + string(b.UID)))}})
		if !apierrors.IsConflict(err) {
			t.Errorf("delete with a wrong UID precondition: got %v, want Conflict", err)
		}
	})
}

func TestClientDeploymentStatusAndScale(t *testing.T) {
	e := newClientEnv(t)
	ctx := testCtx(t)
	c := mustClient[*appsv1.Deployment](t, e.src)
	labels := map[string]string{"app": "web"}
	d, err := c.Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// Status goes through the status subresource only.
	withStatus := d.DeepCopy()
	withStatus.Status.Replicas, withStatus.Status.ObservedGeneration = 2, d.Generation
	got, err := c.Update(ctx, withStatus, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Replicas != 0 {
		t.Errorf("Update: got status.replicas %d, want 0 (status ignored)", got.Status.Replicas)
	}
	withStatus.ResourceVersion = got.ResourceVersion
	got, err = c.UpdateStatus(ctx, withStatus, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Replicas != 2 || got.Status.ObservedGeneration != d.Generation {
		t.Errorf("UpdateStatus: got status %+v, want replicas 2 observedGeneration %d", got.Status, d.Generation)
	}
	got, err = c.Patch(ctx, e.ns, "web", types.MergePatchType, []byte(`{"status":{"readyReplicas":1}}`), metav1.PatchOptions{}, "status")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.ReadyReplicas != 1 || got.Status.Replicas != 2 {
		t.Errorf("status patch: got status %+v, want readyReplicas 1 beside replicas 2", got.Status)
	}

	scale, err := c.GetScale(ctx, e.ns, "web")
	if err != nil {
		t.Fatal(err)
	}
	if scale.Spec.Replicas != 2 || scale.Name != "web" {
		t.Fatalf("GetScale: got %+v, want web with spec.replicas 2", scale)
	}
	scale.Spec.Replicas = 5
	scale, err = c.UpdateScale(ctx, e.ns, "web", scale, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if scale.Spec.Replicas != 5 {
		t.Errorf("UpdateScale: got spec.replicas %d, want 5", scale.Spec.Replicas)
	}
	live, err := c.Live(ctx, e.ns, "web")
	if err != nil {
		t.Fatal(err)
	}
	if *live.Spec.Replicas != 5 {
		t.Errorf("after UpdateScale: got deployment spec.replicas %d, want 5", *live.Spec.Replicas)
	}
	waitCached[*appsv1.Deployment](t, e, live.ResourceVersion)
	cached, err := c.Get(ctx, e.ns, "web")
	if err != nil {
		t.Fatal(err)
	}
	if *cached.Spec.Replicas != 5 || cached.Status.ReadyReplicas != 1 {
		t.Errorf("cached: got replicas %d readyReplicas %d, want 5 and 1", *cached.Spec.Replicas, cached.Status.ReadyReplicas)
	}

	_, err = c.GetScale(ctx, e.ns, "missing")
	wantNotFound(t, err, schema.GroupResource{Group: "apps", Resource: "deployments"}, "missing")
	cms := mustClient[*corev1.ConfigMap](t, e.src)
	if _, err := cms.GetScale(ctx, e.ns, "any"); !apierrors.IsNotFound(err) {
		t.Errorf("scale of a kind without a scale subresource: got %v, want NotFound", err)
	}
}

func TestClientClusterScoped(t *testing.T) {
	e := newClientEnv(t)
	ctx := testCtx(t)
	c := mustClient[*corev1.Namespace](t, e.src)
	created, err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "cluster-scoped-", Labels: map[string]string{"test": e.ns}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(created.Name, "cluster-scoped-") {
		t.Fatalf("got name %q, want a generated one", created.Name)
	}
	waitCached[*corev1.Namespace](t, e, created.ResourceVersion)
	for _, ns := range []string{"", "ignored"} {
		got, err := c.Get(ctx, ns, created.Name)
		if err != nil {
			t.Fatalf("get with namespace %q: %v", ns, err)
		}
		if got.UID != created.UID {
			t.Errorf("get with namespace %q: got uid %s, want %s", ns, got.UID, created.UID)
		}
	}
	list, err := c.List(ctx, reconcile.ListOptions{LabelSelector: labels.SelectorFromSet(labels.Set{"test": e.ns})})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(list); !slices.Equal(got, []string{created.Name}) {
		t.Errorf("list: got %v, want [%s]", got, created.Name)
	}
	list, err = c.List(ctx, reconcile.ListOptions{Namespace: "ignored", LabelSelector: labels.SelectorFromSet(labels.Set{"test": e.ns})})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(list); !slices.Equal(got, []string{created.Name}) {
		t.Errorf("list with a namespace: got %v, want [%s] (namespace ignored)", got, created.Name)
	}
	_, err = c.Get(ctx, "", "no-such-namespace")
	wantNotFound(t, err, schema.GroupResource{Resource: "namespaces"}, `Namespace "no-such-namespace"`)

	got, err := c.Patch(ctx, "", created.Name, types.MergePatchType, []byte(`{"metadata":{"annotations":{"a":"b"}}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Annotations["a"] != "b" {
		t.Errorf("got annotations %v, want a=b", got.Annotations)
	}
	if err := c.Delete(ctx, "", created.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Without a namespace controller a deleted namespace stays Terminating.
	live, err := c.Live(ctx, "", created.Name)
	if err != nil {
		t.Fatal(err)
	}
	if live.DeletionTimestamp == nil {
		t.Errorf("after delete: got no deletionTimestamp, want one")
	}
}

func TestCreateOrUpdate(t *testing.T) {
	e := newClientEnv(t)
	ctx := testCtx(t)
	c := mustClient[*corev1.ConfigMap](t, e.src)
	// Start the informer and let it sync before counting writes.
	if _, err := c.List(ctx, reconcile.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	value := "v1"
	mutate := func(cm *corev1.ConfigMap) error {
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data["k"] = value
		return nil
	}
	steps := []struct {
		name       string
		value      string
		want       reconcile.OperationResult
		wantWrites int64
	}{
		{"absent is created", "v1", reconcile.Created, 1},
		{"same desired state is unchanged", "v1", reconcile.Unchanged, 0},
		{"new desired state is updated", "v2", reconcile.Updated, 1},
		{"steady again", "v2", reconcile.Unchanged, 0},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			value = s.value
			before := e.writes.n.Load()
			got, res, err := reconcile.CreateOrUpdate(ctx, c, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "cou"}}, mutate)
			if err != nil {
				t.Fatal(err)
			}
			if res != s.want {
				t.Errorf("got %s, want %s", res, s.want)
			}
			if n := e.writes.n.Load() - before; n != s.wantWrites {
				t.Errorf("got %d API writes, want %d", n, s.wantWrites)
			}
			if got.Data["k"] != s.value {
				t.Errorf("got data %v, want k=%s", got.Data, s.value)
			}
			waitCached[*corev1.ConfigMap](t, e, got.ResourceVersion)
		})
	}

	t.Run("mutate must keep the name", func(t *testing.T) {
		before := e.writes.n.Load()
		_, _, err := reconcile.CreateOrUpdate(ctx, c, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "cou"}}, func(cm *corev1.ConfigMap) error {
			cm.Name = "other"
			return nil
		})
		if err == nil || !strings.Contains(err.Error(), "changed the object's namespace/name") {
			t.Errorf("got %v, want an error about the changed name", err)
		}
		if n := e.writes.n.Load() - before; n != 0 {
			t.Errorf("got %d API writes, want 0", n)
		}
	})
	t.Run("mutate error is returned", func(t *testing.T) {
		boom := errors.New("boom")
		_, _, err := reconcile.CreateOrUpdate(ctx, c, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "new"}}, func(*corev1.ConfigMap) error { return boom })
		if !errors.Is(err, boom) {
			t.Errorf("got %v, want it to wrap boom", err)
		}
	})
}

func TestOwnerReferenceAcceptedByServer(t *testing.T) {
	e := newClientEnv(t)
	ctx := testCtx(t)
	deps := mustClient[*appsv1.Deployment](t, e.src)
	cms := mustClient[*corev1.ConfigMap](t, e.src)
	owner, err := deps.Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "owner"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	child := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "child"}}
	if err := reconcile.SetControllerReference(owner, child, e.src.Scheme()); err != nil {
		t.Fatal(err)
	}
	got, err := cms.Create(ctx, child, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	refs := got.OwnerReferences
	if len(refs) != 1 || refs[0].APIVersion != "apps/v1" || refs[0].Kind != "Deployment" || refs[0].UID != owner.UID || !*refs[0].Controller {
		t.Errorf("got owner references %+v, want one controller reference to apps/v1 Deployment owner (uid %s)", refs, owner.UID)
	}
}

func names[T informer.Object](objs []T) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetName())
	}
	slices.Sort(out)
	return out
}

func countIn[T informer.Object](objs []T, ns string) int {
	n := 0
	for _, o := range objs {
		if o.GetNamespace() == ns {
			n++
		}
	}
	return n
}

func unstructuredConfigMap(ns, name string, data map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata":   map[string]any{"namespace": ns, "name": name},
		"data":       data,
	}}
}

// widget is a custom resource type: JSON only, no protobuf.
type widget struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              widgetSpec   `json:"spec,omitempty"`
	Status            widgetStatus `json:"status,omitempty"`
}

type widgetSpec struct {
	Replicas int32  `json:"replicas"`
	Color    string `json:"color,omitempty"`
}

type widgetStatus struct {
	Replicas int32  `json:"replicas"`
	Selector string `json:"selector,omitempty"`
}

func (w *widget) DeepCopyObject() runtime.Object {
	c := *w
	w.ObjectMeta.DeepCopyInto(&c.ObjectMeta)
	return &c
}

type widgetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []widget `json:"items"`
}

func (l *widgetList) DeepCopyObject() runtime.Object {
	c := &widgetList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&c.ListMeta)
	for i := range l.Items {
		c.Items = append(c.Items, *l.Items[i].DeepCopyObject().(*widget))
	}
	return c
}

func addWidgetTypes(scheme *runtime.Scheme, gv schema.GroupVersion) {
	scheme.AddKnownTypeWithName(gv.WithKind("Widget"), &widget{})
	scheme.AddKnownTypeWithName(gv.WithKind("WidgetList"), &widgetList{})
	metav1.AddToGroupVersion(scheme, gv)
}

var widgetGV = schema.GroupVersion{Group: "client.capstan.io", Version: "v1"}

func widgetCRD() *apiextensionsv1.CustomResourceDefinition {
	intOrString := func(typ string) apiextensionsv1.JSONSchemaProps { return apiextensionsv1.JSONSchemaProps{Type: typ} }
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets." + widgetGV.Group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: widgetGV.Group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: widgetGV.Version, Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"replicas": intOrString("integer"), "color": intOrString("string"),
						}},
						"status": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"replicas": intOrString("integer"), "selector": intOrString("string"),
						}},
					},
				}},
				Subresources: &apiextensionsv1.CustomResourceSubresources{
					Status: &apiextensionsv1.CustomResourceSubresourceStatus{},
					Scale: &apiextensionsv1.CustomResourceSubresourceScale{
						SpecReplicasPath: ".spec.replicas", StatusReplicasPath: ".status.replicas", LabelSelectorPath: ptr.To(".status.selector"),
					},
				},
			}},
		},
	}
}

// TestClientCustomResource uses a client on a scheme holding nothing but a
// CRD type (no built-in types, not even autoscaling/v1 Scale).
func TestClientCustomResource(t *testing.T) {
	ctx := testCtx(t)
	if err := sharedEnv(t).InstallCRDs(ctx, widgetCRD()); err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	addWidgetTypes(scheme, widgetGV)
	e := newClientEnvWithScheme(t, scheme)
	c := mustClient[*widget](t, e.src)
	wGR := schema.GroupResource{Group: widgetGV.Group, Resource: "widgets"}

	_, err := c.Get(ctx, e.ns, "missing")
	wantNotFound(t, err, wGR, `Widget "`+e.ns+`/missing"`)

	w, err := c.Create(ctx, &widget{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "w"}, Spec: widgetSpec{Replicas: 1, Color: "red"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if w.Spec.Color != "red" || w.UID == "" {
		t.Fatalf("got %+v, want a stored red widget", w)
	}
	if !e.writes.sawContentType(http.MethodPost, runtime.ContentTypeJSON) {
		t.Errorf("got create content types other than JSON, want JSON for a custom resource")
	}
	w.Status = widgetStatus{Replicas: 1, Selector: "app=w"}
	w, err = c.UpdateStatus(ctx, w, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if w.Status.Replicas != 1 || w.Status.Selector != "app=w" {
		t.Errorf("UpdateStatus: got status %+v, want replicas 1 selector app=w", w.Status)
	}
	waitCached[*widget](t, e, w.ResourceVersion)
	cached, err := c.Get(ctx, e.ns, "w")
	if err != nil {
		t.Fatal(err)
	}
	if cached.Status.Selector != "app=w" || cached.Spec.Color != "red" {
		t.Errorf("cached: got %+v, want the updated widget", cached)
	}

	scale, err := c.GetScale(ctx, e.ns, "w")
	if err != nil {
		t.Fatal(err)
	}
	if scale.Spec.Replicas != 1 || scale.Status.Replicas != 1 || scale.Status.Selector != "app=w" {
		t.Errorf("GetScale: got %+v, want spec and status replicas 1, selector app=w", scale)
	}
	scale.Spec.Replicas = 4
	if _, err := c.UpdateScale(ctx, e.ns, "w", scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	live, err := c.Live(ctx, e.ns, "w")
	if err != nil {
		t.Fatal(err)
	}
	if live.Spec.Replicas != 4 {
		t.Errorf("after UpdateScale: got spec.replicas %d, want 4", live.Spec.Replicas)
	}

	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": widgetGV.String(), "kind": "Widget",
		"metadata": map[string]any{"namespace": e.ns, "name": "applied"},
		"spec":     map[string]any{"color": "blue"},
	}}
	applied, err := c.Apply(ctx, reconcile.UnstructuredApplyConfiguration(u), metav1.ApplyOptions{FieldManager: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if applied.Spec.Color != "blue" {
		t.Errorf("apply: got %+v, want a blue widget", applied.Spec)
	}
	if err := c.Delete(ctx, e.ns, "w", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Live(ctx, e.ns, "w")
	wantNotFound(t, err, wGR, "w")
}
