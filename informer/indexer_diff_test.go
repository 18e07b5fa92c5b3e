package informer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
)

// The default Indexer is checked against client-go's thread-safe store,
// an independent implementation, on random operations, including keys
// that are not the object's namespace/name (Set and Delete accept any
// key).

type indexerDiff struct {
	t    testing.TB
	rng  *rand.Rand
	ours *Indexer[*corev1.ConfigMap]
	cg   cache.ThreadSafeStore
	log  []string
}

var diffIndexFuncs = map[string]func(o *corev1.ConfigMap) []string{
	NamespaceIndex: func(o *corev1.ConfigMap) []string { return []string{o.Namespace} },
	"app": func(o *corev1.ConfigMap) []string {
		if v, ok := o.Labels["app"]; ok {
			return []string{v}
		}
		return nil
	},
	"multi": func(o *corev1.ConfigMap) []string {
		var out []string
		for k, v := range o.Labels {
			out = append(out, k, k+"="+v)
		}
		return out
	},
}

func newIndexerDiff(t testing.TB, seed uint64) *indexerDiff {
	ours, err := NewIndexer(IndexerOptions[*corev1.ConfigMap]{Indexers: Indexers[*corev1.ConfigMap]{
		"app": diffIndexFuncs["app"], "multi": diffIndexFuncs["multi"],
	}})
	if err != nil {
		t.Fatal(err)
	}
	cgIdx := cache.Indexers{}
	for name, fn := range diffIndexFuncs {
		cgIdx[name] = func(o any) ([]string, error) { return fn(o.(*corev1.ConfigMap)), nil }
	}
	return &indexerDiff{t: t, rng: rand.New(rand.NewPCG(seed, 7)), ours: ours, cg: cache.NewThreadSafeStore(cgIdx, cache.Indices{})}
}

func (h *indexerDiff) fail(format string, args ...any) {
	h.t.Helper()
	h.t.Fatalf("after\n  %s\n%s", strings.Join(h.log, "\n  "), fmt.Sprintf(format, args...))
}

func (h *indexerDiff) obj() *corev1.ConfigMap {
	o := randConfigMap(h.rng)
	if h.rng.IntN(20) == 0 {
		o.Namespace = "x/y" // a namespace with a slash: its key is ambiguous
	}
	if h.rng.IntN(20) == 0 {
		o.Name = "n/m"
	}
	return o
}

// key is usually the object's key, sometimes another.
func (h *indexerDiff) key(o *corev1.ConfigMap) string {
	switch h.rng.IntN(12) {
	case 0:
		return "custom-" + strconv.Itoa(h.rng.IntN(3))
	case 1:
		return Key(testNamespaces[h.rng.IntN(len(testNamespaces))], "o"+strconv.Itoa(h.rng.IntN(8)))
	}
	return KeyOf(o)
}

func (h *indexerDiff) anyKey() string {
	switch h.rng.IntN(6) {
	case 0:
		return "custom-" + strconv.Itoa(h.rng.IntN(3))
	case 1:
		return "x/y/o" + strconv.Itoa(h.rng.IntN(8))
	}
	return Key(testNamespaces[h.rng.IntN(len(testNamespaces))], "o"+strconv.Itoa(h.rng.IntN(8)))
}

func cgObjs(items []any) []*corev1.ConfigMap {
	out := make([]*corev1.ConfigMap, len(items))
	for i, it := range items {
		out[i] = it.(*corev1.ConfigMap)
	}
	return out
}

// sameSet compares objects by identity (both stores hold the same
// pointers).
func (h *indexerDiff) sameSet(what string, ours, theirs []*corev1.ConfigMap) {
	h.t.Helper()
	id := func(s []*corev1.ConfigMap) []string {
		out := make([]string, len(s))
		for i, o := range s {
			out[i] = fmt.Sprintf("%p", o)
		}
		sort.Strings(out)
		return out
	}
	if a, b := id(ours), id(theirs); !slices.Equal(a, b) {
		h.fail("%s: ours %v, client-go %v", what, keysOf(ours), keysOf(theirs))
	}
}

func (h *indexerDiff) step(op byte) {
	switch op % 10 {
	case 0, 1, 2:
		o := h.obj()
		k := h.key(o)
		h.log = append(h.log, "set "+k+" ("+KeyOf(o)+")")
		old, existed := h.ours.Set(k, o)
		cgOld, cgExisted := h.cg.Get(k)
		h.cg.Update(k, o)
		if existed != cgExisted || (existed && old != cgOld.(*corev1.ConfigMap)) {
			h.fail("Set %s: previous %v (%v), client-go %v (%v)", k, old, existed, cgOld, cgExisted)
		}
	case 3:
		k := h.anyKey()
		h.log = append(h.log, "delete "+k)
		old, existed := h.ours.Delete(k)
		cgOld, cgExisted := h.cg.Get(k)
		h.cg.Delete(k)
		if existed != cgExisted || (existed && old != cgOld.(*corev1.ConfigMap)) {
			h.fail("Delete %s: %v (%v), client-go %v (%v)", k, old, existed, cgOld, cgExisted)
		}
	case 4:
		k := h.anyKey()
		o, ok := h.ours.Get(k)
		cgO, cgOK := h.cg.Get(k)
		if ok != cgOK || (ok && o != cgO.(*corev1.ConfigMap)) || h.ours.has(k) != cgOK {
			h.fail("Get %s: %v (%v), client-go %v (%v)", k, o, ok, cgO, cgOK)
		}
	case 5:
		h.sameSet("List", h.ours.List(), cgObjs(h.cg.List()))
		a, b := h.ours.ListKeys(), h.cg.ListKeys()
		sort.Strings(a)
		sort.Strings(b)
		if !slices.Equal(a, b) || h.ours.Len() != len(b) {
			h.fail("ListKeys: ours %q (Len %d), client-go %q", a, h.ours.Len(), b)
		}
	case 6:
		index := []string{NamespaceIndex, "app", "multi"}[h.rng.IntN(3)]
		value := []string{"a", "b", "", "x/y", "x", "y", "app", "tier=y"}[h.rng.IntN(8)]
		ours, err := h.ours.ByIndex(index, value)
		theirs, cgErr := h.cg.ByIndex(index, value)
		if err != nil || cgErr != nil {
			h.fail("ByIndex(%s, %s): %v, client-go %v", index, value, err, cgErr)
		}
		h.sameSet("ByIndex("+index+", "+value+")", ours, cgObjs(theirs))
		keys, _ := h.ours.IndexKeys(index, value)
		cgKeys, _ := h.cg.IndexKeys(index, value)
		sort.Strings(keys)
		sort.Strings(cgKeys)
		if len(keys)+len(cgKeys) > 0 && !slices.Equal(keys, cgKeys) {
			h.fail("IndexKeys(%s, %s): ours %q, client-go %q", index, value, keys, cgKeys)
		}
		vals, _ := h.ours.IndexValues(index)
		cgVals := h.cg.ListIndexFuncValues(index)
		sort.Strings(vals)
		sort.Strings(cgVals)
		if len(vals)+len(cgVals) > 0 && !slices.Equal(vals, cgVals) {
			h.fail("IndexValues(%s): ours %q, client-go %q", index, vals, cgVals)
		}
	case 7:
		sel := labels.Everything()
		if s := testSelectors[h.rng.IntN(len(testSelectors))]; s != "" {
			sel, _ = labels.Parse(s)
		}
		ns := []string{"a", "b", "", "x/y"}[h.rng.IntN(4)]
		var want, wantNS []*corev1.ConfigMap
		for _, o := range cgObjs(h.cg.List()) {
			if sel.Matches(labels.Set(o.Labels)) {
				want = append(want, o)
			}
		}
		theirs, _ := h.cg.ByIndex(NamespaceIndex, ns)
		for _, o := range cgObjs(theirs) {
			if sel.Matches(labels.Set(o.Labels)) {
				wantNS = append(wantNS, o)
			}
		}
		l := NewLister(h.ours)
		h.sameSet(fmt.Sprintf("Lister.List(%v)", sel), l.List(sel), want)
		h.sameSet(fmt.Sprintf("Lister.ListNamespace(%q, %v)", ns, sel), l.ListNamespace(ns, sel), wantNS)
	case 8:
		var objs []*corev1.ConfigMap
		m := map[string]any{}
		for range h.rng.IntN(10) {
			o := h.obj()
			objs = append(objs, o)
			m[KeyOf(o)] = o
		}
		h.log = append(h.log, fmt.Sprintf("replace %v", keysOf(objs)))
		h.ours.Replace(objs)
		h.cg.Replace(m, "")
	case 9:
		if _, err := h.ours.IndexKeys("nope", "x"); err == nil {
			h.fail("IndexKeys of an unknown index: no error")
		}
		// Reserving for a list that does not come must change nothing.
		h.ours.reserve([]*corev1.ConfigMap{h.obj(), h.obj()})
	}
}

func TestIndexerDifferentialClientGo(t *testing.T) {
	for seed := range uint64(60) {
		h := newIndexerDiff(t, seed)
		for _, op := range randOps(h.rng, 400) {
			h.step(op)
		}
		h.step(5)
	}
}

func FuzzIndexerDifferentialClientGo(f *testing.F) {
	f.Add(uint64(1), []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Fuzz(func(t *testing.T, seed uint64, ops []byte) {
		h := newIndexerDiff(t, seed)
		for _, op := range ops {
			h.step(op)
		}
		h.step(5)
	})
}
