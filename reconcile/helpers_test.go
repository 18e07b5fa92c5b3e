package reconcile_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"

	"github.com/capstan-io/capstan/informer"
	"github.com/capstan-io/capstan/reconcile"
)

func deployment(ns, name, uid string) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)}}
}

func controllerRef(apiVersion, kind, name, uid string) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID(uid), Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}
}

func TestSetControllerReference(t *testing.T) {
	scheme := clientgoscheme.Scheme
	for _, tc := range []struct {
		name     string
		owner    informer.Object
		obj      *corev1.ConfigMap
		want     []metav1.OwnerReference
		wantErr  string
		wantOwnd bool // error is an *AlreadyOwnedError
	}{
		{
			name:  "adds a controller reference",
			owner: deployment("ns", "web", "u1"),
			obj:   cm("ns", "child"),
			want:  []metav1.OwnerReference{controllerRef("apps/v1", "Deployment", "web", "u1")},
		},
		{
			name:  "keeps other owners",
			owner: deployment("ns", "web", "u1"),
			obj: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "child", OwnerReferences: []metav1.OwnerReference{
				{APIVersion: "v1", Kind: "Secret", Name: "s", UID: "u9"},
			}}},
			want: []metav1.OwnerReference{
				{APIVersion: "v1", Kind: "Secret", Name: "s", UID: "u9"},
				controllerRef("apps/v1", "Deployment", "web", "u1"),
			},
		},
		{
			name:  "updates its own reference (another version, a recreated owner)",
			owner: deployment("ns", "web", "u2"),
			obj: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "child", OwnerReferences: []metav1.OwnerReference{
				controllerRef("apps/v1beta1", "Deployment", "web", "u1"),
			}}},
			want: []metav1.OwnerReference{controllerRef("apps/v1", "Deployment", "web", "u2")},
		},
		{
			name:  "a plain reference to the owner becomes the controller one",
			owner: deployment("ns", "web", "u1"),
			obj: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "child", OwnerReferences: []metav1.OwnerReference{
				{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "u1"},
			}}},
			want: []metav1.OwnerReference{controllerRef("apps/v1", "Deployment", "web", "u1")},
		},
		{
			name:  "refuses a second controller",
			owner: deployment("ns", "web", "u1"),
			obj: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "child", OwnerReferences: []metav1.OwnerReference{
				controllerRef("apps/v1", "ReplicaSet", "other", "u7"),
			}}},
			want:     []metav1.OwnerReference{controllerRef("apps/v1", "ReplicaSet", "other", "u7")},
			wantErr:  `"ns/child" is already controlled by ReplicaSet "other"`,
			wantOwnd: true,
		},
		{
			name:    "refuses an owner not created yet",
			owner:   deployment("ns", "web", ""),
			obj:     cm("ns", "child"),
			wantErr: "no name or uid",
		},
		{
			name:    "refuses a namespaced owner of a cluster-scoped object",
			owner:   deployment("ns", "web", "u1"),
			obj:     cm("", "child"),
			wantErr: "cluster-scoped object cannot have a namespaced owner",
		},
		{
			name:    "refuses an owner in another namespace",
			owner:   deployment("other", "web", "u1"),
			obj:     cm("ns", "child"),
			wantErr: "cross-namespace",
		},
		{
			name:  "accepts a cluster-scoped owner",
			owner: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns", UID: "u5"}},
			obj:   cm("ns", "child"),
			want:  []metav1.OwnerReference{controllerRef("v1", "Namespace", "ns", "u5")},
		},
		{
			name:    "refuses an owner whose kind the scheme does not know",
			owner:   &unregistered{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "x", UID: "u1"}},
			obj:     cm("ns", "child"),
			wantErr: "kind of *reconcile_test.unregistered",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := reconcile.SetControllerReference(tc.owner, tc.obj, scheme)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				var owned *reconcile.AlreadyOwnedError
				if got := errors.As(err, &owned); got != tc.wantOwnd {
					t.Errorf("got errors.As(*AlreadyOwnedError) %v, want %v", got, tc.wantOwnd)
				}
			}
			if got := tc.obj.OwnerReferences; !refsEqual(got, tc.want) {
				t.Errorf("got owner references %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSetAndRemoveOwnerReference(t *testing.T) {
	scheme := clientgoscheme.Scheme
	obj := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "child", OwnerReferences: []metav1.OwnerReference{
		controllerRef("apps/v1", "Deployment", "web", "u1"),
	}}}
	steps := []struct {
		name  string
		do    func() error
		wantN int
		want  []metav1.OwnerReference
	}{
		{
			name: "adds a plain reference",
			do:   func() error { return reconcile.SetOwnerReference(deployment("ns", "api", "u2"), obj, scheme) },
			want: []metav1.OwnerReference{
				controllerRef("apps/v1", "Deployment", "web", "u1"),
				{APIVersion: "apps/v1", Kind: "Deployment", Name: "api", UID: "u2"},
			},
		},
		{
			name: "keeps the controller flag of an existing reference",
			do:   func() error { return reconcile.SetOwnerReference(deployment("ns", "web", "u1"), obj, scheme) },
			want: []metav1.OwnerReference{
				controllerRef("apps/v1", "Deployment", "web", "u1"),
				{APIVersion: "apps/v1", Kind: "Deployment", Name: "api", UID: "u2"},
			},
		},
		{
			name: "removes a reference",
			do: func() error {
				removed, err := reconcile.RemoveOwnerReference(deployment("ns", "web", "u1"), obj, scheme)
				if err == nil && !removed {
					err = errors.New("got removed false, want true")
				}
				return err
			},
			want: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "api", UID: "u2"}},
		},
		{
			name: "removing a missing reference changes nothing",
			do: func() error {
				removed, err := reconcile.RemoveOwnerReference(deployment("ns", "web", "u1"), obj, scheme)
				if err == nil && removed {
					err = errors.New("got removed true, want false")
				}
				return err
			},
			want: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "api", UID: "u2"}},
		},
		{
			name: "a cross-namespace owner is refused",
			do: func() error {
				if err := reconcile.SetOwnerReference(deployment("elsewhere", "x", "u3"), obj, scheme); err == nil {
					return errors.New("got no error, want a cross-namespace refusal")
				}
				return nil
			},
			want: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "api", UID: "u2"}},
		},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := obj.OwnerReferences; !refsEqual(got, s.want) {
			t.Fatalf("%s: got %+v, want %+v", s.name, got, s.want)
		}
	}
}

func refsEqual(a, b []metav1.OwnerReference) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.APIVersion != y.APIVersion || x.Kind != y.Kind || x.Name != y.Name || x.UID != y.UID ||
			ptr.Deref(x.Controller, false) != ptr.Deref(y.Controller, false) ||
			ptr.Deref(x.BlockOwnerDeletion, false) != ptr.Deref(y.BlockOwnerDeletion, false) {
			return false
		}
	}
	return true
}

// unregistered is an API-shaped type no scheme knows.
type unregistered struct {
	metav1.TypeMeta
	metav1.ObjectMeta
}

func (u *unregistered) DeepCopyObject() runtime.Object {
	c := *u
	u.ObjectMeta.DeepCopyInto(&c.ObjectMeta)
	return &c
}

func TestFinalizers(t *testing.T) {
	obj := cm("ns", "x")
	steps := []struct {
		name        string
		do          func() bool
		wantChanged bool
		want        []string
	}{
		{"add", func() bool { return reconcile.AddFinalizer(obj, "a/one") }, true, []string{"a/one"}},
		{"add again", func() bool { return reconcile.AddFinalizer(obj, "a/one") }, false, []string{"a/one"}},
		{"add another", func() bool { return reconcile.AddFinalizer(obj, "a/two") }, true, []string{"a/one", "a/two"}},
		{"remove", func() bool { return reconcile.RemoveFinalizer(obj, "a/one") }, true, []string{"a/two"}},
		{"remove missing", func() bool { return reconcile.RemoveFinalizer(obj, "a/one") }, false, []string{"a/two"}},
	}
	for _, s := range steps {
		if got := s.do(); got != s.wantChanged {
			t.Errorf("%s: got changed %v, want %v", s.name, got, s.wantChanged)
		}
		if got := obj.Finalizers; strings.Join(got, ",") != strings.Join(s.want, ",") {
			t.Errorf("%s: got finalizers %v, want %v", s.name, got, s.want)
		}
	}
	if !reconcile.HasFinalizer(obj, "a/two") || reconcile.HasFinalizer(obj, "a/one") {
		t.Errorf("HasFinalizer: got a/two %v a/one %v, want true false", reconcile.HasFinalizer(obj, "a/two"), reconcile.HasFinalizer(obj, "a/one"))
	}

	dup := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Finalizers: []string{"x", "y", "x"}}}
	shared := dup.Finalizers
	if !reconcile.RemoveFinalizer(dup, "x") || strings.Join(dup.Finalizers, ",") != "y" {
		t.Errorf("remove of a duplicated finalizer: got %v, want [y]", dup.Finalizers)
	}
	if strings.Join(shared, ",") != "x,y,x" {
		t.Errorf("the old finalizer slice was modified in place: got %v, want [x y x]", shared)
	}
}

func conflict() error {
	return apierrors.NewConflict(schema.GroupResource{Resource: "configmaps"}, "x", errors.New("the object has been modified"))
}

func TestRetryOnConflict(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name      string
		results   []error // fn's answers, in order; nil after the last
		wantCalls int
		wantErr   func(error) bool
		// bounds of the time spent waiting (jitter is ±10%)
		minWait, maxWait time.Duration
	}{
		{"success at once", nil, 1, func(err error) bool { return err == nil }, 0, 0},
		{"other error is not retried", []error{boom}, 1, func(err error) bool { return errors.Is(err, boom) }, 0, 0},
		{"conflicts then success", []error{conflict(), conflict()}, 3, func(err error) bool { return err == nil }, 27 * time.Millisecond, 33 * time.Millisecond},
		{"conflict then other error", []error{conflict(), boom}, 2, func(err error) bool { return errors.Is(err, boom) }, 9 * time.Millisecond, 11 * time.Millisecond},
		{"gives up after five conflicts", []error{conflict(), conflict(), conflict(), conflict(), conflict(), conflict()}, 5, apierrors.IsConflict,
			135 * time.Millisecond, 165 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				calls := 0
				start := time.Now()
				err := reconcile.RetryOnConflict(context.Background(), func(context.Context) error {
					calls++
					if calls <= len(tc.results) {
						return tc.results[calls-1]
					}
					return nil
				})
				waited := time.Since(start)
				if !tc.wantErr(err) {
					t.Errorf("got error %v, want another", err)
				}
				if calls != tc.wantCalls {
					t.Errorf("got %d calls, want %d", calls, tc.wantCalls)
				}
				if waited < tc.minWait || waited > tc.maxWait {
					t.Errorf("waited %s, want between %s and %s", waited, tc.minWait, tc.maxWait)
				}
			})
		})
	}

	t.Run("context ends while waiting", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			calls := 0
			err := reconcile.RetryOnConflict(ctx, func(context.Context) error {
				calls++
				cancel()
				return conflict()
			})
			if !errors.Is(err, context.Canceled) || !apierrors.IsConflict(err) {
				t.Errorf("got %v, want it to wrap context.Canceled and the conflict", err)
			}
			if calls != 1 {
				t.Errorf("got %d calls, want 1", calls)
			}
		})
	})
}
