package envtest_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/capstan-io/capstan/envtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// client-go's HTTP/2 transports keep idle connections' read loops
		// until the server closes them; they end when the API server stops.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("golang.org/x/net/http2.(*ClientConn).readLoop"),
		goleak.IgnoreAnyFunction("k8s.io/klog/v2.(*flushDaemon).run"),
	)
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func clientset(t *testing.T, cfg *rest.Config) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("clientset: %v", err)
	}
	return cs
}

// TestStartUseStop covers the whole life of an environment: it serves the
// core API (create, get, list, watch), reports the version it was built as,
// and after Stop no process and no temp dir remains.
func TestStartUseStop(t *testing.T) {
	ctx := ctxFor(t)
	env, err := envtest.Start(ctx, envtest.Options{})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = env.Stop()
		}
	})
	cs := clientset(t, env.Config())

	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("ServerVersion: %v", err)
	}
	if v.GitVersion != envtest.KubernetesVersion {
		t.Errorf("server version: got %q, want %q", v.GitVersion, envtest.KubernetesVersion)
	}

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "envtest-basic"}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{}); err != nil {
		t.Fatalf("get namespace: %v", err)
	}

	w, err := cs.CoreV1().ConfigMaps(ns.Name).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("watch configmaps: %v", err)
	}
	defer w.Stop()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}, Data: map[string]string{"k": "v"}}
	if _, err := cs.CoreV1().ConfigMaps(ns.Name).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create configmap: %v", err)
	}
	select {
	case ev := <-w.ResultChan():
		got, ok := ev.Object.(*corev1.ConfigMap)
		if ev.Type != watch.Added || !ok || got.Name != "cm" || got.Data["k"] != "v" {
			t.Errorf("watch event: got %s %#v, want ADDED of cm with k=v", ev.Type, ev.Object)
		}
	case <-ctx.Done():
		t.Fatal("no watch event for the created configmap")
	}
	list, err := cs.CoreV1().ConfigMaps(ns.Name).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list configmaps: %v", err)
	}
	// The root CA publisher is not running (no controller manager), so the
	// namespace holds exactly what we created.
	if len(list.Items) != 1 || list.Items[0].Name != "cm" {
		t.Errorf("list configmaps: got %d items, want just cm", len(list.Items))
	}

	pids, dir := env.PIDs(), env.Dir()
	if len(pids) != 2 {
		t.Fatalf("PIDs: got %v, want etcd and kube-apiserver", pids)
	}
	if _, err := os.Stat(filepath.Join(dir, "admin.kubeconfig")); err != nil {
		t.Errorf("admin kubeconfig: %v", err)
	}
	if err := env.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	stopped = true
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after Stop (kill -0: %v)", pid, err)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temp dir %s still exists after Stop (stat: %v)", dir, err)
	}
	if err := env.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestUserConfigRBAC shows a non-admin identity is forbidden until an RBAC
// binding grants it rights.
func TestUserConfigRBAC(t *testing.T) {
	ctx := ctxFor(t)
	env := envtest.StartForTest(t, envtest.Options{})
	admin := clientset(t, env.Config())
	ucfg, err := env.UserConfig("alice", "team-a")
	if err != nil {
		t.Fatalf("UserConfig: %v", err)
	}
	alice := clientset(t, ucfg)

	_, err = alice.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("list as alice before binding: got %v, want Forbidden", err)
	}

	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "cm-reader", Namespace: "default"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"list"}}},
	}
	if _, err := admin.RbacV1().Roles("default").Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create role: %v", err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "team-a-reads", Namespace: "default"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "cm-reader"},
		// Bound to the group, so the test also proves groups reach the server.
		Subjects: []rbacv1.Subject{{Kind: "Group", APIGroup: "rbac.authorization.k8s.io", Name: "team-a"}},
	}
	if _, err := admin.RbacV1().RoleBindings("default").Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create rolebinding: %v", err)
	}
	// RBAC objects reach the authorizer through its informers: allow them a
	// moment, polling rather than sleeping.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = alice.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("list as alice after binding: %v", err)
	}
	// The grant is exactly what was bound: writes stay forbidden.
	_, err = alice.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("create as alice: got %v, want Forbidden", err)
	}
	if _, err := env.UserConfig(""); err == nil {
		t.Error("UserConfig with an empty name: got no error")
	}
}

const widgetCRD = `# a CRD as a user keeps it in config/crd
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.capstan.io
spec:
  group: example.capstan.io
  names: {kind: Widget, listKind: WidgetList, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 1}
`

// TestInstallCRDFromYAML installs a CRD from a YAML file and uses it at
// once: InstallCRDFiles returns only when the resource is served.
func TestInstallCRDFromYAML(t *testing.T) {
	ctx := ctxFor(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "widgets.yaml"), []byte(widgetCRD), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("not a CRD"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := envtest.StartForTest(t, envtest.Options{CRDPaths: []string{dir}})
	dyn, err := dynamic.NewForConfig(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	widgets := dyn.Resource(schema.GroupVersionResource{Group: "example.capstan.io", Version: "v1", Resource: "widgets"}).Namespace("default")
	w := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.capstan.io/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "w1"},
		"spec":     map[string]any{"size": int64(3)},
	}}
	if _, err := widgets.Create(ctx, w, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create widget: %v", err)
	}
	bad := w.DeepCopy()
	bad.SetName("w2")
	bad.Object["spec"] = map[string]any{"size": int64(0)}
	if _, err := widgets.Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("create widget with size 0: got %v, want Invalid (schema minimum)", err)
	}

	// Installing again is an update, not an error.
	if err := env.InstallCRDFiles(ctx, filepath.Join(dir, "widgets.yaml")); err != nil {
		t.Errorf("reinstall: %v", err)
	}
	// A file that is not a CRD is refused with its name.
	notCRD := filepath.Join(dir, "cm.yaml")
	if err := os.WriteFile(notCRD, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := env.InstallCRDFiles(ctx, notCRD); err == nil || !strings.Contains(err.Error(), "cm.yaml") {
		t.Errorf("install of a ConfigMap file: got %v, want an error naming cm.yaml", err)
	}
}

// TestTwoEnvironmentsAtOnce starts two environments side by side in one test
// binary: they must not share ports, dirs or data.
func TestTwoEnvironmentsAtOnce(t *testing.T) {
	ctx := ctxFor(t)
	envs := make([]*envtest.Environment, 2)
	errs := make(chan error, 2)
	for i := range envs {
		go func() {
			var err error
			envs[i], err = envtest.Start(ctx, envtest.Options{})
			errs <- err
		}()
	}
	for range envs {
		if err := <-errs; err != nil {
			t.Fatalf("Start: %v", err)
		}
	}
	for _, e := range envs {
		t.Cleanup(func() { _ = e.Stop() })
	}
	if envs[0].Config().Host == envs[1].Config().Host || envs[0].Dir() == envs[1].Dir() {
		t.Fatalf("environments share a host or dir: %s %s", envs[0].Config().Host, envs[0].Dir())
	}
	a, b := clientset(t, envs[0].Config()), clientset(t, envs[1].Config())
	if _, err := a.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "only-in-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CoreV1().Namespaces().Get(ctx, "only-in-a", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace created in a, seen from b: got %v, want NotFound", err)
	}
}

// TestRestartKeepsData restarts the API server on the same etcd: clients go
// on with the same config and the data is still there.
func TestRestartKeepsData(t *testing.T) {
	ctx := ctxFor(t)
	env := envtest.StartForTest(t, envtest.Options{})
	cs := clientset(t, env.Config())
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "survivor"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := env.StopAPIServer(); err != nil {
		t.Fatalf("StopAPIServer: %v", err)
	}
	if _, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "survivor", metav1.GetOptions{}); err == nil {
		t.Fatal("get with the API server stopped: got no error")
	}
	if err := env.StartAPIServer(ctx); err != nil {
		t.Fatalf("StartAPIServer: %v", err)
	}
	if _, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "survivor", metav1.GetOptions{}); err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	if err := env.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if _, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "survivor", metav1.GetOptions{}); err != nil {
		t.Fatalf("get after Restart: %v", err)
	}
}

// TestBuiltinControllers runs kube-controller-manager's garbage collector and
// namespace controller: dependents of a deleted owner go, and a deleted
// namespace finishes deleting.
func TestBuiltinControllers(t *testing.T) {
	ctx := ctxFor(t)
	env := envtest.StartForTest(t, envtest.Options{BuiltinControllers: true})
	cs := clientset(t, env.Config())

	owner, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dep := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Name:            "dependent",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID}},
	}}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "doomed"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps("doomed").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "inside"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	if err := cs.CoreV1().ConfigMaps("default").Delete(ctx, owner.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Namespaces().Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(ctx, t, "dependent configmap", func() error {
		_, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "dependent", metav1.GetOptions{})
		return err
	})
	waitGone(ctx, t, "namespace doomed", func() error {
		_, err := cs.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{})
		return err
	})
}

// waitGone polls get until it answers NotFound or ctx ends.
func waitGone(ctx context.Context, t *testing.T, what string, get func() error) {
	t.Helper()
	for {
		err := get()
		if apierrors.IsNotFound(err) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s still exists (last get: %v)", what, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestFailedStartCleansUp: a start that cannot succeed (an invalid API
// server flag) returns an error with the component's log tail, and leaves no
// temp dir behind.
func TestFailedStartCleansUp(t *testing.T) {
	ctx := ctxFor(t)
	// A private TMPDIR, so that environments of other test binaries running
	// at the same time cannot be mistaken for ours.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	_, err := envtest.Start(ctx, envtest.Options{APIServerFlags: map[string]string{"no-such-flag": "1"}})
	if err == nil {
		t.Fatal("Start with an unknown flag: got no error")
	}
	if !strings.Contains(err.Error(), "kube-apiserver") || !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("error does not carry the API server's complaint: %v", err)
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range left {
		t.Errorf("%s left in TMPDIR after a failed Start", d.Name())
	}
}
