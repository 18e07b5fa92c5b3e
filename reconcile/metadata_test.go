package reconcile_test

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/capstan-io/capstan/reconcile"
)

// TestMetadataClient reads Secrets' metadata from a metadata-only cache
// (never their data), patches and deletes them.
func TestMetadataClient(t *testing.T) {
	e := newClientEnv(t)
	ctx := testCtx(t)
	secrets := mustClient[*corev1.Secret](t, e.src)
	for _, name := range []string{"a", "b"} {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns, Labels: map[string]string{"app": name}}, StringData: map[string]string{"k": "secret"}}
		if _, err := secrets.Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mc, err := reconcile.MetadataClientFor(e.src, corev1.SchemeGroupVersion.WithKind("Secret"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := mc.Get(ctx, e.ns, "a")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Name != "a" || got.Labels["app"] != "a" {
		t.Errorf("Get: got %+v", got.ObjectMeta)
	}
	list, err := mc.List(ctx, reconcile.ListOptions{Namespace: e.ns, LabelSelector: labels.SelectorFromSet(labels.Set{"app": "b"})})
	if err != nil || len(list) != 1 || list[0].Name != "b" {
		t.Fatalf("List by label: got %v, %v", names(list), err)
	}

	patched, err := mc.Patch(ctx, e.ns, "a", types.MergePatchType, []byte(`{"metadata":{"annotations":{"seen":"yes"}}}`), metav1.PatchOptions{})
	if err != nil || patched.Annotations["seen"] != "yes" {
		t.Fatalf("Patch: got %v, %v", patched, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err = mc.Get(ctx, e.ns, "a")
		if err == nil && got.Annotations["seen"] == "yes" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("patched annotation never reached the metadata cache: %v, %v", got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := mc.Delete(ctx, e.ns, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := secrets.Live(ctx, e.ns, "b"); !apierrors.IsNotFound(err) {
		t.Errorf("Live after Delete: got %v, want NotFound", err)
	}
	if _, err := mc.Get(ctx, e.ns, "missing"); !apierrors.IsNotFound(err) {
		t.Errorf("Get of a missing object: got %v, want NotFound", err)
	}
	if _, err := reconcile.MetadataClientFor(e.src, corev1.SchemeGroupVersion.WithKind("")); err == nil {
		t.Error("MetadataClientFor without a kind: got no error")
	}
}
