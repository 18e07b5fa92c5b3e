package controllerref

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

var rsGVK = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}

func owner(deleting bool) *metav1.ObjectMeta {
	o := &metav1.ObjectMeta{Namespace: "ns", Name: "rs", UID: "owner-uid"}
	if deleting {
		ts := metav1.Now()
		o.DeletionTimestamp = &ts
	}
	return o
}

type podOpt func(*corev1.Pod)

func controlledBy(uid types.UID) podOpt {
	return func(p *corev1.Pod) {
		t := true
		p.OwnerReferences = append(p.OwnerReferences, metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "x", UID: uid, Controller: &t})
	}
}

func ownedBy(uid types.UID) podOpt { // not as controller
	return func(p *corev1.Pod) {
		p.OwnerReferences = append(p.OwnerReferences, metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "x", UID: uid})
	}
}

func deleting(p *corev1.Pod) { ts := metav1.Now(); p.DeletionTimestamp = &ts }

func inNamespace(ns string) podOpt { return func(p *corev1.Pod) { p.Namespace = ns } }

func newPod(name, app string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID(name + "-uid"), Labels: map[string]string{"app": app}}}
	for _, o := range opts {
		o(p)
	}
	return p
}

var selector = labels.SelectorFromSet(labels.Set{"app": "web"})

func TestDecide(t *testing.T) {
	tests := []struct {
		name          string
		ownerDeleting bool
		pod           *corev1.Pod
		want          Decision
	}{
		{name: "owned and matching", pod: newPod("a", "web", controlledBy("owner-uid")), want: Keep},
		{name: "owned and matching while owner is deleted", ownerDeleting: true, pod: newPod("a", "web", controlledBy("owner-uid")), want: Keep},
		{name: "owned, not matching", pod: newPod("a", "db", controlledBy("owner-uid")), want: Release},
		{name: "owned, not matching, owner deleted", ownerDeleting: true, pod: newPod("a", "db", controlledBy("owner-uid")), want: Ignore},
		{name: "owned and being deleted still kept", pod: newPod("a", "web", controlledBy("owner-uid"), deleting), want: Keep},
		{name: "another controller's", pod: newPod("a", "web", controlledBy("other")), want: Ignore},
		{name: "orphan matching", pod: newPod("a", "web"), want: Adopt},
		{name: "orphan with a non-controller owner", pod: newPod("a", "web", ownedBy("cm")), want: Adopt},
		{name: "orphan not matching", pod: newPod("a", "db"), want: Ignore},
		{name: "orphan being deleted", pod: newPod("a", "web", deleting), want: Ignore},
		{name: "orphan, owner being deleted", ownerDeleting: true, pod: newPod("a", "web"), want: Ignore},
		{name: "orphan in another namespace", pod: newPod("a", "web", inNamespace("other")), want: Ignore},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decide(owner(tt.ownerDeleting), selector, tt.pod); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClaim(t *testing.T) {
	notFound := apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, "x")
	boom := errors.New("boom")
	tests := []struct {
		name       string
		pods       []*corev1.Pod
		canAdopt   error
		adoptErr   map[string]error
		releaseErr map[string]error
		want       []string // names claimed
		adopted    []string
		released   []string
		canAdopts  int
		wantErr    string
	}{
		{
			name: "mixed",
			pods: []*corev1.Pod{
				newPod("kept", "web", controlledBy("owner-uid")),
				newPod("orphan", "web"),
				newPod("gone", "db", controlledBy("owner-uid")),
				newPod("foreign", "web", controlledBy("other")),
				newPod("orphan2", "web"),
			},
			want: []string{"kept", "orphan", "orphan2"}, adopted: []string{"orphan", "orphan2"}, released: []string{"gone"}, canAdopts: 1,
		},
		{
			name:     "no orphans: CanAdopt never called",
			pods:     []*corev1.Pod{newPod("kept", "web", controlledBy("owner-uid"))},
			canAdopt: boom,
			want:     []string{"kept"},
		},
		{
			name:     "CanAdopt refuses: no adoption, releases go on, error reported",
			pods:     []*corev1.Pod{newPod("o1", "web"), newPod("o2", "web"), newPod("gone", "db", controlledBy("owner-uid"))},
			canAdopt: boom, released: []string{"gone"}, canAdopts: 1,
			wantErr: `cannot adopt "ns/o1": boom`,
		},
		{
			name:     "adoption of a vanished pod is skipped silently",
			pods:     []*corev1.Pod{newPod("o1", "web"), newPod("o2", "web")},
			adoptErr: map[string]error{"o1": notFound},
			want:     []string{"o2"}, adopted: []string{"o1", "o2"}, canAdopts: 1,
		},
		{
			name:     "failed adoption is reported and not claimed",
			pods:     []*corev1.Pod{newPod("o1", "web"), newPod("o2", "web")},
			adoptErr: map[string]error{"o1": boom},
			want:     []string{"o2"}, adopted: []string{"o1", "o2"}, canAdopts: 1,
			wantErr: `adopting "ns/o1" for ReplicaSet "ns/rs": boom`,
		},
		{
			name:       "failed release is reported; vanished one is not",
			pods:       []*corev1.Pod{newPod("r1", "db", controlledBy("owner-uid")), newPod("r2", "db", controlledBy("owner-uid"))},
			releaseErr: map[string]error{"r1": boom, "r2": notFound},
			released:   []string{"r1", "r2"},
			wantErr:    `releasing "ns/r1" from ReplicaSet "ns/rs": boom`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var adopted, released []string
			canAdopts := 0
			c := &Claimer[*corev1.Pod]{
				Owner:    owner(false),
				OwnerGVK: rsGVK,
				Selector: selector,
				CanAdopt: func(context.Context) error { canAdopts++; return tt.canAdopt },
				Adopt: func(_ context.Context, p *corev1.Pod) error {
					adopted = append(adopted, p.Name)
					return tt.adoptErr[p.Name]
				},
				Release: func(_ context.Context, p *corev1.Pod) error {
					released = append(released, p.Name)
					return tt.releaseErr[p.Name]
				},
			}
			got, err := c.Claim(context.Background(), tt.pods)
			var names []string
			for _, p := range got {
				names = append(names, p.Name)
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("claimed %v, want %v", names, tt.want)
			}
			if !slices.Equal(adopted, tt.adopted) {
				t.Errorf("adopted %v, want %v", adopted, tt.adopted)
			}
			if !slices.Equal(released, tt.released) {
				t.Errorf("released %v, want %v", released, tt.released)
			}
			if canAdopts != tt.canAdopts {
				t.Errorf("CanAdopt called %d times, want %d", canAdopts, tt.canAdopts)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("got error %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestRecheckOwner(t *testing.T) {
	ts := metav1.Now()
	tests := []struct {
		name    string
		fresh   *metav1.ObjectMeta
		getErr  error
		wantErr string
	}{
		{name: "same and alive", fresh: owner(false)},
		{name: "replaced", fresh: &metav1.ObjectMeta{Namespace: "ns", Name: "rs", UID: "new"}, wantErr: "is gone: got uid new, want owner-uid"},
		{name: "being deleted", fresh: &metav1.ObjectMeta{Namespace: "ns", Name: "rs", UID: "owner-uid", DeletionTimestamp: &ts}, wantErr: "has just been deleted"},
		{name: "get fails", getErr: errors.New("boom"), wantErr: "rechecking ReplicaSet \"ns/rs\" before adoption: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := RecheckOwner(owner(false), "ReplicaSet", func(context.Context) (metav1.Object, error) {
				if tt.getErr != nil {
					return nil, tt.getErr
				}
				return tt.fresh, nil
			})(context.Background())
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("got %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestPatches(t *testing.T) {
	adopt, err := AdoptPatch(owner(false), rsGVK, "pod-uid")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(adopt, &got); err != nil {
		t.Fatal(err)
	}
	want := `{"metadata":{"ownerReferences":[{"apiVersion":"apps/v1","blockOwnerDeletion":true,"controller":true,"kind":"ReplicaSet","name":"rs","uid":"owner-uid"}],"uid":"pod-uid"}}`
	if b, _ := json.Marshal(got); string(b) != want {
		t.Errorf("AdoptPatch:\n got %s\nwant %s", b, want)
	}
	release, err := ReleasePatch("owner-uid", "pod-uid")
	if err != nil {
		t.Fatal(err)
	}
	want = `{"metadata":{"ownerReferences":[{"$patch":"delete","uid":"owner-uid"}],"uid":"pod-uid"}}`
	if string(release) != want {
		t.Errorf("ReleasePatch:\n got %s\nwant %s", release, want)
	}
}
