package informer

import (
	"errors"
	"slices"
	"sort"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func labelled(ns, name, app string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": app}}}
}

var byApp = Indexers[*corev1.ConfigMap]{"app": func(o *corev1.ConfigMap) []string {
	if v, ok := o.Labels["app"]; ok {
		return []string{v}
	}
	return nil
}}

func names(objs []*corev1.ConfigMap) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = KeyOf(o)
	}
	sort.Strings(out)
	return out
}

func TestIndexer(t *testing.T) {
	cases := []struct {
		name  string
		ops   func(x *Indexer[*corev1.ConfigMap])
		index string
		value string
		want  []string
	}{
		{
			name: "namespace index built in",
			ops: func(x *Indexer[*corev1.ConfigMap]) {
				x.Set("a/1", labelled("a", "1", "web"))
				x.Set("b/1", labelled("b", "1", "web"))
				x.Set("a/2", labelled("a", "2", "db"))
			},
			index: NamespaceIndex, value: "a", want: []string{"a/1", "a/2"},
		},
		{
			name: "update moves the key between index values",
			ops: func(x *Indexer[*corev1.ConfigMap]) {
				x.Set("a/1", labelled("a", "1", "web"))
				x.Set("a/1", labelled("a", "1", "db"))
			},
			index: "app", value: "web", want: []string{},
		},
		{
			name: "delete removes from every index",
			ops: func(x *Indexer[*corev1.ConfigMap]) {
				x.Set("a/1", labelled("a", "1", "web"))
				x.Set("a/2", labelled("a", "2", "web"))
				x.Delete("a/1")
			},
			index: "app", value: "web", want: []string{"a/2"},
		},
		{
			name: "replace rebuilds the indexes",
			ops: func(x *Indexer[*corev1.ConfigMap]) {
				x.Set("a/1", labelled("a", "1", "web"))
				x.Replace([]*corev1.ConfigMap{labelled("c", "9", "web")})
			},
			index: "app", value: "web", want: []string{"c/9"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			x, err := NewIndexer(IndexerOptions[*corev1.ConfigMap]{Indexers: byApp})
			if err != nil {
				t.Fatal(err)
			}
			tc.ops(x)
			got, err := x.ByIndex(tc.index, tc.value)
			if err != nil {
				t.Fatal(err)
			}
			if g := names(got); !slices.Equal(g, tc.want) {
				t.Errorf("got %v, want %v", g, tc.want)
			}
			keys, _ := x.IndexKeys(tc.index, tc.value)
			sort.Strings(keys)
			if !slices.Equal(keys, tc.want) {
				t.Errorf("got IndexKeys %v, want %v", keys, tc.want)
			}
		})
	}
}

func TestIndexerErrors(t *testing.T) {
	if _, err := NewIndexer(IndexerOptions[*corev1.ConfigMap]{Indexers: Indexers[*corev1.ConfigMap]{NamespaceIndex: byApp["app"]}}); err == nil {
		t.Errorf("got nil error for an index named %q, want one", NamespaceIndex)
	}
	x, _ := NewIndexer(IndexerOptions[*corev1.ConfigMap]{})
	if _, err := x.ByIndex("nope", "v"); !errors.Is(err, ErrNoIndex) {
		t.Errorf("got %v, want ErrNoIndex", err)
	}
	if err := x.AddIndexers(Indexers[*corev1.ConfigMap]{"nil": nil}); err == nil {
		t.Errorf("got nil error for a nil IndexFunc, want one")
	}
}

func TestIndexerAddIndexersIndexesExisting(t *testing.T) {
	x, _ := NewIndexer(IndexerOptions[*corev1.ConfigMap]{})
	x.Set("a/1", labelled("a", "1", "web"))
	if err := x.AddIndexers(byApp); err != nil {
		t.Fatal(err)
	}
	got, _ := x.ByIndex("app", "web")
	if g := names(got); !slices.Equal(g, []string{"a/1"}) {
		t.Errorf("got %v, want [a/1]", g)
	}
}

func TestLister(t *testing.T) {
	x, _ := NewIndexer(IndexerOptions[*corev1.ConfigMap]{Indexers: byApp})
	for _, o := range []*corev1.ConfigMap{labelled("a", "1", "web"), labelled("a", "2", "db"), labelled("b", "1", "web"), labelled("", "c", "web")} {
		x.Set(KeyOf(o), o)
	}
	l := NewLister(x)
	web := labels.SelectorFromSet(labels.Set{"app": "web"})
	cases := []struct {
		name string
		got  []*corev1.ConfigMap
		want []string
	}{
		{"list all", l.List(nil), []string{"a/1", "a/2", "b/1", "c"}},
		{"list by label", l.List(web), []string{"a/1", "b/1", "c"}},
		{"namespace", l.ListNamespace("a", nil), []string{"a/1", "a/2"}},
		{"namespace by label", l.ListNamespace("a", web), []string{"a/1"}},
		{"cluster scope", l.ListNamespace("", nil), []string{"c"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if g := names(tc.got); !slices.Equal(g, tc.want) {
				t.Errorf("got %v, want %v", g, tc.want)
			}
		})
	}
	if o, ok := l.Get("a", "2"); !ok || o.Labels["app"] != "db" {
		t.Errorf("got Get(a, 2) = %v, %v; want the db object", o, ok)
	}
	if _, ok := l.Get("a", "9"); ok {
		t.Errorf("got Get(a, 9) found, want not found")
	}
}

func TestIndexerConcurrent(t *testing.T) {
	x, _ := NewIndexer(IndexerOptions[*corev1.ConfigMap]{Indexers: byApp})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				o := labelled("ns", string(rune('a'+w)), []string{"web", "db"}[i%2])
				x.Set(KeyOf(o), o)
				_, _ = x.ByIndex("app", "web")
				_ = x.List()
			}
		})
	}
	wg.Wait()
	web, _ := x.ByIndex("app", "web")
	db, _ := x.ByIndex("app", "db")
	if len(web)+len(db) != 4 || x.Len() != 4 {
		t.Errorf("got %d web + %d db of %d objects, want 4 objects each indexed once", len(web), len(db), x.Len())
	}
}
