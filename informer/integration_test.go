package informer_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/capstan-io/capstan/envtest"
	"github.com/capstan-io/capstan/informer"
)

// Integration tests: a real kube-apiserver and etcd from envtest. Waits are
// on events (WaitForSync, WaitForResourceVersion, handler channels), each
// bounded by a context deadline.

func namespace(t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	ns, err := cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "inf-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func deadline(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// runInformer starts inf and stops it (checking Run returned) at cleanup.
func runInformer[T informer.Object](t *testing.T, inf *informer.SharedInformer[T]) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- inf.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Run did not return 30s after its context ended")
		}
	})
	if err := inf.WaitForSync(deadline(t, time.Minute)); err != nil {
		t.Fatalf("WaitForSync: %v", err)
	}
}

func cmInformer(t *testing.T, cfg *rest.Config, ns string, opts informer.Options[*corev1.ConfigMap]) *informer.SharedInformer[*corev1.ConfigMap] {
	t.Helper()
	cs := kubernetes.NewForConfigOrDie(cfg)
	cms := cs.CoreV1().ConfigMaps(ns)
	inf, err := informer.New(informer.NewListWatch[*corev1.ConfigMap](cms.List, cms.Watch, informer.ListWatchOptions{}), opts)
	if err != nil {
		t.Fatal(err)
	}
	return inf
}

// diffWithServer compares the cache with a fresh list (names and
// resourceVersions).
func diffWithServer(t *testing.T, cs kubernetes.Interface, ns string, inf *informer.SharedInformer[*corev1.ConfigMap]) {
	t.Helper()
	list, err := cs.CoreV1().ConfigMaps(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var want, got []string
	for _, o := range list.Items {
		want = append(want, o.Name+"@"+o.ResourceVersion)
	}
	for _, o := range inf.Lister().ListNamespace(ns, nil) {
		got = append(got, o.Name+"@"+o.ResourceVersion)
	}
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("cache differs from a fresh list:\n got %v\nwant %v", got, want)
	}
}

type recorded struct {
	kind     string
	old, obj *corev1.ConfigMap
	unknown  bool
}

func recordingHandler(ch chan<- recorded) informer.HandlerFuncs[*corev1.ConfigMap] {
	return informer.HandlerFuncs[*corev1.ConfigMap]{
		AddFunc:    func(o *corev1.ConfigMap, _ bool) { ch <- recorded{kind: "add", obj: o} },
		UpdateFunc: func(old, o *corev1.ConfigMap) { ch <- recorded{kind: "update", old: old, obj: o} },
		DeleteFunc: func(o *corev1.ConfigMap, unknown bool) { ch <- recorded{kind: "delete", obj: o, unknown: unknown} },
	}
}

func next(t *testing.T, ch <-chan recorded) recorded {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30s")
		return recorded{}
	}
}

func TestIntegrationEventsInOrderWithOldAndNew(t *testing.T) {
	e := env(t)
	cs := kubernetes.NewForConfigOrDie(e.Config())
	ns := namespace(t, cs)
	inf := cmInformer(t, e.Config(), ns, informer.Options[*corev1.ConfigMap]{})
	ch := make(chan recorded, 100)
	if _, err := inf.AddHandler(recordingHandler(ch), informer.HandlerOptions{}); err != nil {
		t.Fatal(err)
	}
	runInformer(t, inf)

	cms := cs.CoreV1().ConfigMaps(ns)
	created, err := cms.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Data: map[string]string{"v": "1"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	upd := created.DeepCopy()
	upd.Data["v"] = "2"
	updated, err := cms.Update(t.Context(), upd, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(t.Context(), "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	r := next(t, ch)
	if r.kind != "add" || r.obj.ResourceVersion != created.ResourceVersion || r.obj.Data["v"] != "1" {
		t.Errorf("got first event %s %s v=%s, want add %s v=1", r.kind, r.obj.ResourceVersion, r.obj.Data["v"], created.ResourceVersion)
	}
	if len(r.obj.ManagedFields) != 0 {
		t.Errorf("got %d managedFields entries in the cached object, want them stripped", len(r.obj.ManagedFields))
	}
	r = next(t, ch)
	if r.kind != "update" || r.old.ResourceVersion != created.ResourceVersion || r.obj.ResourceVersion != updated.ResourceVersion || r.old.Data["v"] != "1" || r.obj.Data["v"] != "2" {
		t.Errorf("got second event %s old=%v new=%v, want update from v=1@%s to v=2@%s", r.kind, r.old, r.obj, created.ResourceVersion, updated.ResourceVersion)
	}
	r = next(t, ch)
	if r.kind != "delete" || r.unknown || r.obj.Data["v"] != "2" {
		t.Errorf("got third event %s unknown=%v v=%s, want a known delete of v=2", r.kind, r.unknown, r.obj.Data["v"])
	}
}

func TestIntegrationSlowHandlerAndLateHandler(t *testing.T) {
	e := env(t)
	cs := kubernetes.NewForConfigOrDie(e.Config())
	ns := namespace(t, cs)
	cms := cs.CoreV1().ConfigMaps(ns)
	for i := range 20 {
		if _, err := cms.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("pre-", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	inf := cmInformer(t, e.Config(), ns, informer.Options[*corev1.ConfigMap]{})
	release := make(chan struct{})
	var slowSeen sync.WaitGroup
	slowSeen.Add(1)
	slowOnce := sync.Once{}
	_, _ = inf.AddHandler(informer.HandlerFuncs[*corev1.ConfigMap]{AddFunc: func(*corev1.ConfigMap, bool) {
		slowOnce.Do(slowSeen.Done)
		<-release
	}}, informer.HandlerOptions{Name: "slow"})
	fast := make(chan string, 100)
	_, _ = inf.AddHandler(informer.HandlerFuncs[*corev1.ConfigMap]{AddFunc: func(o *corev1.ConfigMap, _ bool) { fast <- o.Name }}, informer.HandlerOptions{Name: "fast"})
	defer close(release)
	runInformer(t, inf)
	slowSeen.Wait()
	for i := range 10 {
		if _, err := cms.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("new-", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for len(seen) < 30 {
		select {
		case n := <-fast:
			seen[n] = true
		case <-time.After(30 * time.Second):
			t.Fatalf("fast handler got %d of 30 objects while the slow one blocks", len(seen))
		}
	}

	// A late handler gets every existing object, then later changes.
	late := make(chan recorded, 100)
	reg, err := inf.AddHandler(recordingHandler(late), informer.HandlerOptions{Name: "late"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-reg.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("late handler did not sync")
	}
	lateSeen := map[string]bool{}
	for range 30 {
		r := next(t, late)
		if r.kind != "add" {
			t.Fatalf("got %s before the existing objects were all delivered", r.kind)
		}
		lateSeen[r.obj.Name] = true
	}
	if len(lateSeen) != 30 {
		t.Errorf("got %d distinct existing objects at the late handler, want 30", len(lateSeen))
	}
}

func TestIntegrationAPIServerRestart(t *testing.T) {
	e := env(t)
	cs := kubernetes.NewForConfigOrDie(e.Config())
	ns := namespace(t, cs)
	cms := cs.CoreV1().ConfigMaps(ns)
	for i := range 20 {
		if _, err := cms.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint(i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	inf := cmInformer(t, e.Config(), ns, informer.Options[*corev1.ConfigMap]{Reflector: informer.ReflectorOptions{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}})
	runInformer(t, inf)
	if err := e.Restart(deadline(t, time.Minute)); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	var last string
	for i := range 10 {
		cm, err := cms.Get(t.Context(), fmt.Sprint(i), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data = map[string]string{"after": "restart"}
		u, err := cms.Update(t.Context(), cm, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		last = u.ResourceVersion
		if err := cms.Delete(t.Context(), fmt.Sprint(i+10), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := cms.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "late"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	last = c.ResourceVersion
	if err := inf.WaitForResourceVersion(deadline(t, time.Minute), last); err != nil {
		t.Fatalf("cache never reached resourceVersion %s: %v", last, err)
	}
	diffWithServer(t, cs, ns, inf)
}

// tcpProxy forwards TCP to target and can cut every connection, so an
// informer loses the API server while the test's own client does not.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut(true)
		p.wg.Wait()
	})
	return p
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Go(func() { _, _ = io.Copy(u, c); _ = u.Close() })
		p.wg.Go(func() { _, _ = io.Copy(c, u); _ = c.Close() })
	}
}

// cut closes every connection; with down, it refuses new ones until
// restored.
func (p *tcpProxy) cut(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// compactEtcd compacts etcd at its current revision through etcd's JSON
// gateway (/v3/kv/...), as the API server's periodic compaction would.
func compactEtcd(t *testing.T, endpoint string) {
	t.Helper()
	post := func(path, body string, out any) {
		t.Helper()
		req, err := http.NewRequestWithContext(deadline(t, 30*time.Second), http.MethodPost, endpoint+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("etcd %s: %s: %s", path, resp.Status, b)
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("etcd %s: %v: %s", path, err, b)
			}
		}
	}
	var rng struct {
		Header struct {
			Revision string `json:"revision"`
		} `json:"header"`
	}
	post("/v3/kv/range", `{"key":"`+base64.StdEncoding.EncodeToString([]byte("/compact-probe"))+`"}`, &rng)
	post("/v3/kv/compaction", `{"revision":"`+rng.Header.Revision+`","physical":true}`, nil)
}

func TestIntegrationDeletedWhileWatchDownArriveAsFinalStateUnknown(t *testing.T) {
	// Without the watch cache, watches read etcd, so a compaction makes the
	// informer's resourceVersion too old (410 Gone) and forces a relist.
	// This also exercises the fallback from streaming lists, which need the
	// watch cache.
	e := envtest.StartForTest(t, envtest.Options{APIServerFlags: map[string]string{"watch-cache": "false"}})
	cs := kubernetes.NewForConfigOrDie(e.Config())
	ns := namespace(t, cs)
	cms := cs.CoreV1().ConfigMaps(ns)
	for _, n := range []string{"keep", "gone-1", "gone-2"} {
		if _, err := cms.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	host, err := url.Parse(e.Config().Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newProxy(t, host.Host)
	pcfg := e.Config()
	pcfg.Host = "https://" + proxy.ln.Addr().String()
	inf := cmInformer(t, pcfg, ns, informer.Options[*corev1.ConfigMap]{Reflector: informer.ReflectorOptions{InitialBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}})
	ch := make(chan recorded, 100)
	_, _ = inf.AddHandler(recordingHandler(ch), informer.HandlerOptions{})
	runInformer(t, inf)
	for range 3 {
		next(t, ch) // the initial adds
	}

	proxy.cut(true)
	for _, n := range []string{"gone-1", "gone-2"} {
		if err := cms.Delete(t.Context(), n, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 { // advance etcd past the informer's resourceVersion
		if _, err := cms.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("pad-", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	compactEtcd(t, e.EtcdEndpoint())
	proxy.cut(false)

	got := map[string]string{}
	for len(got) < 5 {
		r := next(t, ch)
		s := r.kind
		if r.unknown {
			s += "(final state unknown)"
		}
		got[r.obj.Name] = s
	}
	want := map[string]string{
		"gone-1": "delete(final state unknown)", "gone-2": "delete(final state unknown)",
		"pad-0": "add", "pad-1": "add", "pad-2": "add",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("got %s: %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	diffWithServer(t, cs, ns, inf)
}

func TestIntegrationFactory(t *testing.T) {
	e := env(t)
	cs := kubernetes.NewForConfigOrDie(e.Config())
	ns := namespace(t, cs)
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"app": "x"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f, err := informer.NewFactory(informer.FactoryOptions{Config: e.Config()})
	if err != nil {
		t.Fatal(err)
	}
	typed, err := informer.For[*corev1.ConfigMap](f, informer.Scope{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := informer.For[*corev1.ConfigMap](f, informer.Scope{Namespace: ns})
	if typed != again {
		t.Errorf("got two informers for the same type and scope, want one shared")
	}
	gvk := corev1.SchemeGroupVersion.WithKind("ConfigMap")
	unstr, err := informer.ForUnstructured(f, gvk, informer.Scope{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	meta, err := informer.ForMetadata(f, gvk, informer.Scope{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Factory.Run: %v", err)
		}
	}()
	if err := f.WaitForCacheSync(deadline(t, time.Minute)); err != nil {
		t.Fatalf("WaitForCacheSync: %v", err)
	}
	// An informer created after Run starts too.
	nodes, err := informer.For[*corev1.Namespace](f, informer.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.WaitForCacheSync(deadline(t, time.Minute)); err != nil {
		t.Fatalf("WaitForCacheSync after a late informer: %v", err)
	}
	if _, ok := nodes.Lister().Get("", ns); !ok {
		t.Errorf("got namespace %s missing from the late Namespace informer", ns)
	}
	if o, ok := typed.Lister().Get(ns, "a"); !ok || o.Labels["app"] != "x" {
		t.Errorf("got typed %v, want ConfigMap a", o)
	}
	if o, ok := unstr.Lister().Get(ns, "a"); !ok || o.GetLabels()["app"] != "x" {
		t.Errorf("got unstructured %v, want ConfigMap a", o)
	}
	if o, ok := meta.Lister().Get(ns, "a"); !ok || o.Labels["app"] != "x" {
		t.Errorf("got metadata %v, want ConfigMap a", o)
	}
}

func TestIntegrationResourceNotServed(t *testing.T) {
	e := env(t)
	dyn := dynamic.NewForConfigOrDie(e.Config())
	gvr := schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}
	inf, err := informer.New(informer.NewDynamicListWatch(dyn, gvr, "", informer.ListWatchOptions{}), informer.Options[*unstructured.Unstructured]{})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- inf.Run(t.Context()) }()
	select {
	case err := <-errc:
		if !errors.Is(err, informer.ErrNotServed) || !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), "widgets.v1.example.com") {
			t.Errorf("got %v, want ErrNotServed naming widgets.v1.example.com, wrapping the server's NotFound", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run kept going for a resource that is not served")
	}
}
