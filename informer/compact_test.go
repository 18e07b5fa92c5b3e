package informer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// The compact store is checked against the default store as an oracle:
// both get the same random operations, and every read must answer the
// same (objects compared with Kubernetes' semantic equality, which treats
// nil and empty maps alike, or exactly where the encoding keeps
// everything).

// widget is a CRD-like Go type without protobuf code: a compact store
// keeps it as JSON.
type widget struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              widgetSpec `json:"spec"`
}

type widgetSpec struct {
	Replicas int32             `json:"replicas"`
	Tags     []string          `json:"tags,omitempty"`
	Extra    map[string]string `json:"extra,omitempty"`
}

func (w *widget) DeepCopyObject() runtime.Object {
	c := *w
	w.ObjectMeta.DeepCopyInto(&c.ObjectMeta)
	c.Spec.Tags = slices.Clone(w.Spec.Tags)
	if w.Spec.Extra != nil {
		c.Spec.Extra = map[string]string{}
		for k, v := range w.Spec.Extra {
			c.Spec.Extra[k] = v
		}
	}
	return &c
}

var (
	testNamespaces = []string{"a", "b", "c", ""}
	testLabelVals  = []string{"x", "y", "z"}
	testSelectors  = []string{"", "app=x", "app!=y", "app in (x,z)", "!app", "tier", "app=x,tier=y", "app notin (x)", "tier=z,!app"}
)

// randMeta fills the metadata of an object with one of a few names, in
// one of a few namespaces (or none), with random labels.
func randMeta(rng *rand.Rand, o metav1.Object) {
	ns := testNamespaces[rng.IntN(len(testNamespaces))]
	o.SetNamespace(ns)
	o.SetName("o" + strconv.Itoa(rng.IntN(8)))
	o.SetResourceVersion(strconv.Itoa(rng.IntN(1000)))
	o.SetUID(types.UID("uid-" + strconv.Itoa(rng.IntN(4))))
	if rng.IntN(5) > 0 {
		l := map[string]string{}
		if rng.IntN(3) > 0 {
			l["app"] = testLabelVals[rng.IntN(3)]
		}
		if rng.IntN(2) > 0 {
			l["tier"] = testLabelVals[rng.IntN(3)]
		}
		if len(l) > 0 {
			o.SetLabels(l)
		}
	}
	if rng.IntN(4) == 0 {
		o.SetAnnotations(map[string]string{"note": strings.Repeat("n", rng.IntN(50))})
	}
	if rng.IntN(4) == 0 {
		o.SetFinalizers([]string{"f/" + strconv.Itoa(rng.IntN(3))})
	}
}

func randConfigMap(rng *rand.Rand) *corev1.ConfigMap {
	o := &corev1.ConfigMap{}
	randMeta(rng, o)
	if rng.IntN(4) > 0 {
		o.Data = map[string]string{"k": strings.Repeat("v", rng.IntN(300))}
	}
	if rng.IntN(4) == 0 {
		o.BinaryData = map[string][]byte{"bin": {0, 1, 2, byte(rng.IntN(256))}}
	}
	return o
}

func randMetadata(rng *rand.Rand) *metav1.PartialObjectMetadata {
	o := &metav1.PartialObjectMetadata{}
	randMeta(rng, o)
	switch rng.IntN(3) {
	case 1:
		o.APIVersion, o.Kind = "meta.k8s.io/v1", "PartialObjectMetadata"
	case 2:
		o.APIVersion, o.Kind = "v1", "ConfigMap"
	}
	return o
}

func randWidget(rng *rand.Rand) *widget {
	o := &widget{TypeMeta: metav1.TypeMeta{APIVersion: "example.com/v1", Kind: "Widget"}}
	randMeta(rng, o)
	o.Spec.Replicas = rng.Int32N(10)
	if rng.IntN(2) == 0 {
		o.Spec.Tags = []string{"t" + strconv.Itoa(rng.IntN(3))}
	}
	if rng.IntN(2) == 0 {
		o.Spec.Extra = map[string]string{"e": "f"}
	}
	return o
}

func randValue(rng *rand.Rand, depth int) any {
	switch n := rng.IntN(10); {
	case n == 0 && depth < 3:
		m := map[string]any{}
		for i := range rng.IntN(3) {
			m["k"+strconv.Itoa(i)] = randValue(rng, depth+1)
		}
		return m
	case n == 1 && depth < 3:
		s := []any{}
		for range rng.IntN(3) {
			s = append(s, randValue(rng, depth+1))
		}
		return s
	case n == 2:
		return float64(rng.IntN(3)) // 0.0, 1.0, 2.0: floats that look like ints
	case n == 3:
		return rng.Float64()
	case n == 4:
		return rng.Int64() - math.MaxInt64/2
	case n == 5:
		return rng.IntN(2) == 0
	case n == 6:
		return nil
	default:
		return strings.Repeat("s", rng.IntN(20))
	}
}

func randUnstructured(rng *rand.Rand) *unstructured.Unstructured {
	o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "Widget"}}
	randMeta(rng, o)
	spec := map[string]any{}
	for i := range rng.IntN(4) {
		spec["f"+strconv.Itoa(i)] = randValue(rng, 0)
	}
	if rng.IntN(40) == 0 {
		spec["nan"] = math.NaN() // cannot be encoded: kept decoded
	}
	o.Object["spec"] = spec
	return o
}

type compactHarness[T Object] struct {
	t        testing.TB
	rng      *rand.Rand
	gen      func(*rand.Rand) T
	equal    func(a, b T) bool
	def, cmp *Indexer[T]
	dl, cl   *Lister[T]
	late     bool
	log      []string
}

var compactIndexers = func() map[string]func(metav1.Object) []string {
	return map[string]func(metav1.Object) []string{
		"app": func(o metav1.Object) []string {
			if v, ok := o.GetLabels()["app"]; ok {
				return []string{v}
			}
			return nil
		},
		// Several values per object, some shared.
		"multi": func(o metav1.Object) []string {
			var out []string
			for k, v := range o.GetLabels() {
				out = append(out, k, k+"="+v)
			}
			return out
		},
	}
}

func newCompactHarness[T Object](t testing.TB, seed uint64, hot int, gen func(*rand.Rand) T, equal func(a, b T) bool) *compactHarness[T] {
	idx := Indexers[T]{}
	for name, fn := range compactIndexers() {
		idx[name] = func(o T) []string { return fn(o) }
	}
	def, err := NewIndexer(IndexerOptions[T]{Indexers: idx})
	if err != nil {
		t.Fatal(err)
	}
	cmp, err := NewIndexer(IndexerOptions[T]{Indexers: idx, Compact: true, CompactHotObjects: hot})
	if err != nil {
		t.Fatal(err)
	}
	return &compactHarness[T]{t: t, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), gen: gen, equal: equal,
		def: def, cmp: cmp, dl: NewLister(def), cl: NewLister(cmp)}
}

func (h *compactHarness[T]) fail(format string, args ...any) {
	h.t.Helper()
	h.t.Fatalf("after\n  %s\n%s", strings.Join(h.log, "\n  "), fmt.Sprintf(format, args...))
}

func (h *compactHarness[T]) key() string {
	ns := testNamespaces[h.rng.IntN(len(testNamespaces))]
	return Key(ns, "o"+strconv.Itoa(h.rng.IntN(8)))
}

func (h *compactHarness[T]) selector() labels.Selector {
	s := testSelectors[h.rng.IntN(len(testSelectors))]
	if s == "" && h.rng.IntN(2) == 0 {
		return nil
	}
	sel, err := labels.Parse(s)
	if err != nil {
		h.t.Fatal(err)
	}
	return sel
}

func (h *compactHarness[T]) sameObj(what string, a, b T, aok, bok bool) {
	h.t.Helper()
	if aok != bok {
		h.fail("%s: default found %v, compact found %v", what, aok, bok)
	}
	if aok && !h.equal(a, b) {
		h.fail("%s: default has\n  %#v\ncompact has\n  %#v", what, a, b)
	}
}

func (h *compactHarness[T]) sameList(what string, a, b []T) {
	h.t.Helper()
	if len(a) != len(b) {
		h.fail("%s: default has %d objects %v, compact %d %v", what, len(a), keysOf(a), len(b), keysOf(b))
	}
	byKey := func(s []T) {
		sort.Slice(s, func(i, j int) bool { return KeyOf(s[i]) < KeyOf(s[j]) })
	}
	byKey(a)
	byKey(b)
	for i := range a {
		h.sameObj(what+" "+KeyOf(a[i]), a[i], b[i], true, true)
	}
}

func keysOf[T Object](objs []T) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = KeyOf(o)
	}
	sort.Strings(out)
	return out
}

func sameStrings(h interface{ fail(string, ...any) }, what string, a, b []string, errA, errB error) {
	if (errA == nil) != (errB == nil) {
		h.fail("%s: default error %v, compact error %v", what, errA, errB)
	}
	a, b = slices.Clone(a), slices.Clone(b)
	sort.Strings(a)
	sort.Strings(b)
	if len(a) == 0 && len(b) == 0 {
		return
	}
	if !slices.Equal(a, b) {
		h.fail("%s: default %q, compact %q", what, a, b)
	}
}

// step runs one random operation on both stores and compares.
func (h *compactHarness[T]) step(op byte) {
	switch op % 14 {
	case 0, 1, 2: // set
		obj := h.gen(h.rng)
		key := KeyOf(obj)
		h.log = append(h.log, "set "+key)
		// Each store gets its own copy, as each informer decodes its own.
		oa, ea := h.def.Set(key, obj.DeepCopyObject().(T))
		ob, eb := h.cmp.Set(key, obj.DeepCopyObject().(T))
		h.sameObj("Set's previous object", oa, ob, ea, eb)
	case 3: // delete
		key := h.key()
		h.log = append(h.log, "delete "+key)
		oa, ea := h.def.Delete(key)
		ob, eb := h.cmp.Delete(key)
		h.sameObj("Delete's object", oa, ob, ea, eb)
	case 4, 5: // get
		key := h.key()
		oa, ea := h.def.Get(key)
		ob, eb := h.cmp.Get(key)
		h.sameObj("Get "+key, oa, ob, ea, eb)
		if h.cmp.has(key) != eb {
			h.fail("has %s: %v, Get found %v", key, h.cmp.has(key), eb)
		}
	case 6:
		h.sameList("List", h.def.List(), h.cmp.List())
		sameStrings(h, "ListKeys", h.def.ListKeys(), h.cmp.ListKeys(), nil, nil)
		if h.def.Len() != h.cmp.Len() {
			h.fail("Len: default %d, compact %d", h.def.Len(), h.cmp.Len())
		}
	case 7: // ByIndex, IndexKeys, IndexValues
		index := []string{NamespaceIndex, "app", "multi", "nope"}[h.rng.IntN(4)]
		var value string
		switch index {
		case NamespaceIndex:
			value = testNamespaces[h.rng.IntN(len(testNamespaces))]
		case "multi":
			value = []string{"app", "tier", "app=x", "tier=y"}[h.rng.IntN(4)]
		default:
			value = testLabelVals[h.rng.IntN(3)]
		}
		a, errA := h.def.ByIndex(index, value)
		b, errB := h.cmp.ByIndex(index, value)
		if (errA == nil) != (errB == nil) {
			h.fail("ByIndex(%s, %s): default error %v, compact %v", index, value, errA, errB)
		}
		h.sameList("ByIndex("+index+", "+value+")", a, b)
		ka, errA := h.def.IndexKeys(index, value)
		kb, errB := h.cmp.IndexKeys(index, value)
		sameStrings(h, "IndexKeys("+index+", "+value+")", ka, kb, errA, errB)
		va, errA := h.def.IndexValues(index)
		vb, errB := h.cmp.IndexValues(index)
		sameStrings(h, "IndexValues("+index+")", va, vb, errA, errB)
	case 8, 9: // Lister.List and ListNamespace with selectors
		sel := h.selector()
		h.sameList(fmt.Sprintf("Lister.List(%v)", sel), h.dl.List(sel), h.cl.List(sel))
		ns := testNamespaces[h.rng.IntN(len(testNamespaces))]
		h.sameList(fmt.Sprintf("Lister.ListNamespace(%q, %v)", ns, sel), h.dl.ListNamespace(ns, sel), h.cl.ListNamespace(ns, sel))
	case 10: // replace
		var objs []T
		for range h.rng.IntN(12) {
			objs = append(objs, h.gen(h.rng))
		}
		h.log = append(h.log, fmt.Sprintf("replace %v", keysOf(objs)))
		copies := func() []T {
			out := make([]T, len(objs))
			for i, o := range objs {
				out[i] = o.DeepCopyObject().(T)
			}
			return out
		}
		h.def.Replace(copies())
		h.cmp.Replace(copies())
	case 11: // an index added late indexes what is stored
		if h.late {
			return
		}
		h.late = true
		h.log = append(h.log, "add index late")
		late := Indexers[T]{"late": func(o T) []string { return []string{string(o.GetUID()) + "|" + o.GetNamespace()} }}
		errA := h.def.AddIndexers(late)
		errB := h.cmp.AddIndexers(late)
		if errA != nil || errB != nil {
			h.fail("AddIndexers: default %v, compact %v", errA, errB)
		}
	case 12:
		if errA, errB := h.def.AddIndexers(Indexers[T]{"app": func(T) []string { return nil }}), h.cmp.AddIndexers(Indexers[T]{"app": func(T) []string { return nil }}); (errA == nil) != (errB == nil) {
			h.fail("duplicate AddIndexers: default %v, compact %v", errA, errB)
		}
	case 13: // late index values
		if !h.late {
			return
		}
		value := "uid-" + strconv.Itoa(h.rng.IntN(4)) + "|" + testNamespaces[h.rng.IntN(len(testNamespaces))]
		a, errA := h.def.ByIndex("late", value)
		b, errB := h.cmp.ByIndex("late", value)
		if errA != nil || errB != nil {
			h.fail("ByIndex(late): default %v, compact %v", errA, errB)
		}
		h.sameList("ByIndex(late, "+value+")", a, b)
	}
}

func (h *compactHarness[T]) run(ops []byte) {
	for _, op := range ops {
		h.step(op)
	}
	// A final full comparison.
	h.step(6)
	var total int64
	h.cmp.c.each(func(e string) bool { total += h.cmp.c.entryBytes(e); return true })
	if total != h.cmp.c.bytes {
		h.fail("byte count %d, entries hold %d", h.cmp.c.bytes, total)
	}
}

func semantic[T any](a, b T) bool { return equality.Semantic.DeepEqual(a, b) }
func exact[T any](a, b T) bool    { return reflect.DeepEqual(a, b) }

// exactUnstructured is exact equality, except that NaN equals NaN (objects
// with NaN cannot be encoded and are kept as they were).
func exactUnstructured(a, b *unstructured.Unstructured) bool {
	if reflect.DeepEqual(a, b) {
		return true
	}
	nan, _, _ := unstructured.NestedFieldNoCopy(a.Object, "spec", "nan")
	f, ok := nan.(float64)
	return ok && math.IsNaN(f) && fmt.Sprintf("%#v", a) == fmt.Sprintf("%#v", b)
}

func randOps(rng *rand.Rand, n int) []byte {
	ops := make([]byte, n)
	for i := range ops {
		ops[i] = byte(rng.IntN(256))
	}
	return ops
}

func TestCompactIndexerDifferential(t *testing.T) {
	for _, hot := range []int{-1, 1, 4, 0} {
		t.Run(fmt.Sprintf("hot=%d", hot), func(t *testing.T) {
			for seed := range uint64(40) {
				rng := rand.New(rand.NewPCG(seed, 1))
				ops := randOps(rng, 300)
				t.Run("ConfigMap", func(t *testing.T) {
					newCompactHarness(t, seed, hot, randConfigMap, semantic[*corev1.ConfigMap]).run(ops)
				})
				t.Run("PartialObjectMetadata", func(t *testing.T) {
					newCompactHarness(t, seed, hot, randMetadata, semantic[*metav1.PartialObjectMetadata]).run(ops)
				})
				t.Run("Unstructured", func(t *testing.T) {
					// CBOR keeps every JSON value as it was: exact equality.
					newCompactHarness(t, seed, hot, randUnstructured, exactUnstructured).run(ops)
				})
				t.Run("JSONType", func(t *testing.T) {
					newCompactHarness(t, seed, hot, randWidget, semantic[*widget]).run(ops)
				})
			}
		})
	}
}

func FuzzCompactIndexerDifferential(f *testing.F) {
	f.Add(uint64(1), []byte{0, 1, 2, 4, 6, 7, 8, 10, 11, 13, 3, 6})
	f.Add(uint64(7), []byte{0, 0, 0, 10, 0, 9, 3, 3, 5, 7, 7, 12})
	f.Fuzz(func(t *testing.T, seed uint64, ops []byte) {
		if len(ops) > 2000 {
			ops = ops[:2000]
		}
		hot := int(seed%5) - 1
		newCompactHarness(t, seed, hot, randConfigMap, semantic[*corev1.ConfigMap]).run(ops)
		newCompactHarness(t, seed, hot, randUnstructured, exactUnstructured).run(ops)
	})
}

// A canonical object (as decoded from the wire: no empty maps) comes back
// exactly, TypeMeta included.
func TestCompactRoundTripExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		cm := randConfigMap(rng)
		if rng.IntN(2) == 0 {
			cm.APIVersion, cm.Kind = "v1", "ConfigMap"
		}
		pom := randMetadata(rng)
		checkRoundTrip(t, cm)
		checkRoundTrip(t, pom)
	}
}

func checkRoundTrip[T Object](t *testing.T, obj T) {
	t.Helper()
	x, err := NewIndexer(IndexerOptions[T]{Compact: true, CompactHotObjects: -1})
	if err != nil {
		t.Fatal(err)
	}
	x.Set(KeyOf(obj), obj)
	got, ok := x.Get(KeyOf(obj))
	if !ok || !reflect.DeepEqual(got, obj) {
		t.Fatalf("round trip: got\n  %#v\nwant\n  %#v", got, obj)
	}
}

func TestCompactCodecs(t *testing.T) {
	cases := []struct {
		name   string
		codec  func() (string, bool, error)
		want   string
		labels bool
	}{
		{"ConfigMap", codecInfo[*corev1.ConfigMap], "protobuf", true},
		{"PartialObjectMetadata", codecInfo[*metav1.PartialObjectMetadata], "protobuf", true},
		{"Unstructured", codecInfo[*unstructured.Unstructured], "cbor", false},
		{"widget", codecInfo[*widget], "json", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name, labels, err := tc.codec()
			if err != nil || name != tc.want || labels != tc.labels {
				t.Errorf("got codec %q (labels from the encoding: %v, error %v), want %q (%v)", name, labels, err, tc.want, tc.labels)
			}
		})
	}
	if _, err := NewIndexer(IndexerOptions[Object]{Compact: true}); err == nil || !strings.Contains(err.Error(), "IndexerOptions.Compact") {
		t.Errorf("got %v for a compact Indexer of an interface type, want an error naming IndexerOptions.Compact", err)
	}
}

func codecInfo[T Object]() (string, bool, error) {
	c, err := newCodec[T]()
	if err != nil {
		return "", false, err
	}
	return c.name, c.protoLabels, nil
}

// Keys and entries share one allocation; an update must not keep the
// previous entry alive through the index sets or the hot cache.
func TestCompactUpdateReleasesPreviousEntry(t *testing.T) {
	x, err := NewIndexer(IndexerOptions[*corev1.ConfigMap]{Compact: true, Indexers: byApp})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		o := labelled("a", "1", "web")
		o.ResourceVersion = strconv.Itoa(i)
		x.Set("a/1", o)
	}
	e, _ := x.c.lookup("a/1", x.c.hash("a/1"))
	key, _ := entryKey(e)
	inEntry := func(s string) bool {
		return len(s) > 0 && len(e) > 0 && unsafeData(s) >= unsafeData(e) && unsafeData(s) < unsafeData(e)+uintptr(len(e))
	}
	if !inEntry(key) {
		t.Fatalf("stored key is not part of the entry")
	}
	for k := range x.indices["app"]["web"] {
		if !inEntry(k) {
			t.Errorf("the app index holds a key from an older entry")
		}
	}
	s := x.c.hot.set(x.c.hash("a/1"))
	for _, w := range s.ways {
		if w.used && !inEntry(w.key) {
			t.Errorf("the hot cache holds a key from an older entry")
		}
	}
}

func unsafeData(s string) uintptr {
	return uintptr(unsafe.Pointer(unsafe.StringData(s)))
}

func TestCompactIndexerConcurrent(t *testing.T) {
	x, err := NewIndexer(IndexerOptions[*corev1.ConfigMap]{Compact: true, CompactHotObjects: 8, Indexers: byApp})
	if err != nil {
		t.Fatal(err)
	}
	l := NewLister(x)
	sel := labels.SelectorFromSet(labels.Set{"app": "web"})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := range 20 {
					if o, ok := x.Get("ns/" + strconv.Itoa(i)); ok && o.Name != strconv.Itoa(i) {
						t.Errorf("got %s under ns/%d", o.Name, i)
					}
				}
				_ = l.ListNamespace("ns", sel)
				_, _ = x.ByIndex("app", "web")
			}
		})
	}
	last := map[string]string{}
	for round := range 200 {
		for i := range 20 {
			o := labelled("ns", strconv.Itoa(i), testLabelVals[(round+i)%3])
			o.ResourceVersion = strconv.Itoa(round)
			x.Set(KeyOf(o), o)
			last[KeyOf(o)] = o.ResourceVersion
		}
		x.Delete("ns/" + strconv.Itoa(round%20))
		delete(last, "ns/"+strconv.Itoa(round%20))
	}
	close(stop)
	wg.Wait()
	for i := range 20 {
		key := "ns/" + strconv.Itoa(i)
		o, ok := x.Get(key)
		rv, want := last[key]
		if ok != want || (ok && o.ResourceVersion != rv) {
			t.Errorf("after the writes, Get(%s) = %v (found %v), want resourceVersion %q (found %v)", key, o, ok, rv, want)
		}
	}
}
