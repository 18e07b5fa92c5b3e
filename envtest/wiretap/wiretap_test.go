package wiretap_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/capstan-io/capstan/envtest"
	"github.com/capstan-io/capstan/envtest/wiretap"
	"github.com/capstan-io/capstan/internal/testmain"
)

var env = envtest.NewShared(envtest.Options{})

func TestMain(m *testing.M) { testmain.Run(m, env) }

func TestClassify(t *testing.T) {
	tests := []struct {
		name, method, path, query string
		verb, resource            string
	}{
		{"create pod", "POST", "/api/v1/namespaces/ns/pods", "", "create", "pods"},
		{"get pod", "GET", "/api/v1/namespaces/ns/pods/p", "", "get", "pods"},
		{"list pods", "GET", "/api/v1/namespaces/ns/pods", "limit=500", "list", "pods"},
		{"list pods all namespaces", "GET", "/api/v1/pods", "", "list", "pods"},
		{"watch pods", "GET", "/api/v1/namespaces/ns/pods", "watch=true", "watch", "pods"},
		{"watch pods 1", "GET", "/api/v1/pods", "watch=1", "watch", "pods"},
		{"update status", "PUT", "/apis/apps/v1/namespaces/ns/replicasets/rs/status", "", "update", "replicasets/status"},
		{"patch deployment", "PATCH", "/apis/apps/v1/namespaces/ns/deployments/d", "", "patch", "deployments"},
		{"scale", "PUT", "/apis/apps/v1/namespaces/ns/deployments/d/scale", "", "update", "deployments/scale"},
		{"delete pod", "DELETE", "/api/v1/namespaces/ns/pods/p", "", "delete", "pods"},
		{"delete collection", "DELETE", "/api/v1/namespaces/ns/pods", "", "deletecollection", "pods"},
		{"create namespace", "POST", "/api/v1/namespaces", "", "create", "namespaces"},
		{"get namespace", "GET", "/api/v1/namespaces/ns", "", "get", "namespaces"},
		{"namespace status", "PUT", "/api/v1/namespaces/ns/status", "", "update", "namespaces/status"},
		{"cluster-scoped node", "GET", "/api/v1/nodes/n1", "", "get", "nodes"},
		{"discovery", "GET", "/apis", "", "list", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &http.Request{Method: tt.method, URL: &url.URL{Path: tt.path, RawQuery: tt.query}}
			verb, resource := wiretap.Classify(req)
			if verb != tt.verb || resource != tt.resource {
				t.Errorf("Classify(%s %s?%s) = %q, %q; want %q, %q", tt.method, tt.path, tt.query, verb, resource, tt.verb, tt.resource)
			}
		})
	}
}

// TestDelayedWatchAndCounts: a watch through a tapped config with a 1s delay
// sees a ConfigMap's creation no sooner than 1s after it was made, while an
// untapped watch sees it at once; the create is counted once.
func TestDelayedWatchAndCounts(t *testing.T) {
	e := env.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := kubernetes.NewForConfig(e.Config())
	if err != nil {
		t.Fatal(err)
	}
	tap := wiretap.New()
	tapped, err := kubernetes.NewForConfig(tap.Wrap(e.Config()))
	if err != nil {
		t.Fatal(err)
	}
	const delay = time.Second
	tap.SetWatchDelay("configmaps", delay)
	const ns = "default"

	slow, err := tapped.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=wiretap"})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Stop()
	fast, err := admin.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=wiretap"})
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Stop()

	start := time.Now()
	if _, err := tapped.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "wiretap"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer admin.CoreV1().ConfigMaps(ns).Delete(context.Background(), "wiretap", metav1.DeleteOptions{})

	fastAt := waitAdded(t, ctx, fast)
	slowAt := waitAdded(t, ctx, slow)
	if fastAt.Sub(start) >= delay {
		t.Errorf("untapped watch saw the create after %v, want well under %v", fastAt.Sub(start), delay)
	}
	if slowAt.Sub(start) < delay {
		t.Errorf("delayed watch saw the create after %v, want at least %v", slowAt.Sub(start), delay)
	}
	if got := tap.Count("create", "configmaps"); got != 1 {
		t.Errorf("Count(create, configmaps) = %d, want 1", got)
	}
	if got := tap.Count("watch", "configmaps"); got != 1 {
		t.Errorf("Count(watch, configmaps) = %d, want 1", got)
	}
	if got := tap.Writes(); got != 1 {
		t.Errorf("Writes() = %d, want 1", got)
	}
	tap.Reset()
	if got := tap.Count("create", "configmaps"); got != 0 {
		t.Errorf("after Reset, Count(create, configmaps) = %d, want 0", got)
	}
}

func waitAdded(t *testing.T, ctx context.Context, w watch.Interface) time.Time {
	t.Helper()
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("watch closed before the ADDED event")
			}
			if ev.Type == watch.Added {
				return time.Now()
			}
		case <-ctx.Done():
			t.Fatal("no ADDED event before the deadline")
		}
	}
}
