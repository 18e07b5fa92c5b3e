package informer

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// The differential test feeds capstan's DeltaFIFO and client-go's (the
// anchor, configured as client-go's informers configure it) the same
// operations and compares what each pops. Each FIFO has its own known-objects
// store, updated from the popped deltas exactly as an informer does.
//
// The only permitted difference is the order in which the deletions inferred
// by one Replace, or the keys re-queued by one Resync, are queued (client-go
// takes them from map iteration). When
// client-go pops a key from such a group, the test moves the same key to the
// head of capstan's queue, after checking it belongs to the same group.

type simpleDelta struct {
	Type string
	Key  string
	RV   string
	DFSU bool
}

func (d simpleDelta) String() string {
	s := d.Type + " " + d.Key + "@" + d.RV
	if d.DFSU {
		s += " (final state unknown)"
	}
	return s
}

type diffHarness struct {
	t       *testing.T
	ours    *DeltaFIFO[*corev1.ConfigMap]
	ourKnow *Indexer[*corev1.ConfigMap]
	theirs  *cache.DeltaFIFO
	thKnow  cache.Indexer
	group   map[string]int // key -> Replace group of a queued inferred deletion
	ngroups int
	rv      int
	log     []string
}

func newDiffHarness(t *testing.T) *diffHarness {
	known, err := NewIndexer(IndexerOptions[*corev1.ConfigMap]{})
	if err != nil {
		t.Fatal(err)
	}
	thKnow := cache.NewIndexer(cache.DeletionHandlingMetaNamespaceKeyFunc, cache.Indexers{})
	return &diffHarness{
		t:       t,
		ours:    NewDeltaFIFO(DeltaFIFOOptions[*corev1.ConfigMap]{KnownObjects: known}),
		ourKnow: known,
		theirs: cache.NewDeltaFIFOWithOptions(cache.DeltaFIFOOptions{
			KnownObjects:          thKnow,
			EmitDeltaTypeReplaced: true,
		}),
		thKnow: thKnow,
		group:  map[string]int{},
	}
}

var diffNames = []string{"a/x", "a/y", "b/x", "b/y", "z"}

func (h *diffHarness) obj(i int) *corev1.ConfigMap {
	h.rv++
	ns, name, _ := SplitKey(diffNames[i%len(diffNames)])
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: strconv.Itoa(h.rv)}}
}

func (h *diffHarness) fail(format string, args ...any) {
	h.t.Helper()
	h.t.Fatalf("%s\noperations:\n  %s", fmt.Sprintf(format, args...), joinLines(h.log))
}

func joinLines(s []string) string {
	out := ""
	for i, l := range s {
		if i > 0 {
			out += "\n  "
		}
		out += l
	}
	return out
}

func (h *diffHarness) check(what string, errOurs, errTheirs error) {
	h.t.Helper()
	if (errOurs == nil) != (errTheirs == nil) {
		h.fail("%s: got error %v, client-go got %v", what, errOurs, errTheirs)
	}
	if got, want := h.ours.HasSynced(), h.theirs.HasSynced(); got != want {
		h.fail("after %s: got HasSynced %v, client-go %v", what, got, want)
	}
}

func (h *diffHarness) step(op byte, arg byte) {
	h.t.Helper()
	switch op % 6 {
	case 0:
		o := h.obj(int(arg))
		h.log = append(h.log, "Add "+KeyOf(o)+"@"+o.ResourceVersion)
		h.check("Add", h.ours.Add(o), h.theirs.Add(o))
	case 1:
		o := h.obj(int(arg))
		h.log = append(h.log, "Update "+KeyOf(o)+"@"+o.ResourceVersion)
		h.check("Update", h.ours.Update(o), h.theirs.Update(o))
	case 2:
		o := h.obj(int(arg))
		h.log = append(h.log, "Delete "+KeyOf(o)+"@"+o.ResourceVersion)
		h.check("Delete", h.ours.Delete(o), h.theirs.Delete(o))
	case 3:
		var list []*corev1.ConfigMap
		var theirs []any
		desc := "Replace"
		for i := range diffNames {
			if arg&(1<<i) != 0 {
				o := h.obj(i)
				list = append(list, o)
				theirs = append(theirs, o)
				desc += " " + KeyOf(o) + "@" + o.ResourceVersion
			}
		}
		h.log = append(h.log, desc)
		before := map[string]bool{}
		for _, k := range h.ours.queue[h.ours.head:] {
			before[k] = true
		}
		listed := map[string]bool{}
		for _, o := range list {
			listed[KeyOf(o)] = true
		}
		h.check("Replace", h.ours.Replace(list, strconv.Itoa(h.rv)), h.theirs.Replace(theirs, strconv.Itoa(h.rv)))
		h.ngroups++
		for _, k := range h.ours.queue[h.ours.head:] {
			if !before[k] && !listed[k] {
				h.group[k] = h.ngroups
			}
		}
	case 4:
		h.log = append(h.log, "Resync")
		before := map[string]bool{}
		for _, k := range h.ours.queue[h.ours.head:] {
			before[k] = true
		}
		h.check("Resync", h.ours.Resync(), h.theirs.Resync())
		h.ngroups++
		for _, k := range h.ours.queue[h.ours.head:] {
			if !before[k] {
				h.group[k] = h.ngroups
			}
		}
	case 5:
		h.pop()
	}
	h.log = append(h.log, fmt.Sprintf("    queue %v groups %v", h.ours.queue[h.ours.head:], h.group))
}

func (h *diffHarness) pop() {
	h.t.Helper()
	if h.ours.Len() == 0 {
		return
	}
	h.log = append(h.log, "Pop")
	var want []simpleDelta
	var wantInitial bool
	done := make(chan error, 1)
	go func() {
		_, err := h.theirs.Pop(func(obj any, isInInitialList bool) error {
			wantInitial = isInInitialList
			for _, d := range obj.(cache.Deltas) {
				want = append(want, fromClientGo(d))
				applyClientGo(h.thKnow, d)
			}
			return nil
		})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			h.fail("client-go Pop: %v", err)
		}
	case <-time.After(10 * time.Second):
		h.theirs.Close()
		<-done
		h.fail("client-go queue is empty; capstan still has %d keys", h.ours.Len())
	}
	key := want[0].Key
	if head := h.ours.queue[h.ours.head]; head != key {
		g := h.group[key]
		if g == 0 || h.group[head] != g {
			h.fail("client-go popped %q, capstan's head is %q (not deletions of the same Replace); capstan queue %v, groups %v", key, head, h.ours.queue[h.ours.head:], h.group)
		}
		i := slices.Index(h.ours.queue[h.ours.head:], key)
		if i < 0 {
			h.fail("client-go popped %q, not queued in capstan", key)
		}
		q := h.ours.queue[h.ours.head:]
		q[0], q[i] = q[i], q[0]
	}
	var got []simpleDelta
	var gotKey string
	var gotInitial bool
	err := h.ours.Pop(h.t.Context(), func(k string, deltas []Delta[*corev1.ConfigMap], isInInitialList bool) error {
		gotKey, gotInitial = k, isInInitialList
		for _, d := range deltas {
			got = append(got, fromCapstan(k, d))
			if d.Type == Deleted {
				h.ourKnow.Delete(k)
			} else {
				h.ourKnow.Set(k, d.Object)
			}
		}
		return nil
	})
	if err != nil {
		h.fail("Pop: %v", err)
	}
	delete(h.group, gotKey)
	h.log = append(h.log, fmt.Sprintf("  -> %v", want))
	if gotKey != key || !slices.Equal(got, want) {
		h.fail("popped %q %v, client-go popped %q %v", gotKey, got, key, want)
	}
	if gotInitial != wantInitial {
		h.fail("popped with isInInitialList %v, client-go %v", gotInitial, wantInitial)
	}
	if got, want := h.ours.HasSynced(), h.theirs.HasSynced(); got != want {
		h.fail("after Pop: got HasSynced %v, client-go %v", got, want)
	}
}

func fromCapstan(key string, d Delta[*corev1.ConfigMap]) simpleDelta {
	return simpleDelta{Type: d.Type.String(), Key: key, RV: d.Object.ResourceVersion, DFSU: d.FinalStateUnknown}
}

func fromClientGo(d cache.Delta) simpleDelta {
	if u, ok := d.Object.(cache.DeletedFinalStateUnknown); ok {
		rv := "<nil>"
		if u.Obj != nil {
			rv = u.Obj.(*corev1.ConfigMap).ResourceVersion
		}
		return simpleDelta{Type: string(d.Type), Key: u.Key, RV: rv, DFSU: true}
	}
	o := d.Object.(*corev1.ConfigMap)
	return simpleDelta{Type: string(d.Type), Key: KeyOf(o), RV: o.ResourceVersion}
}

func applyClientGo(s cache.Indexer, d cache.Delta) {
	switch d.Type {
	case cache.Deleted:
		_ = s.Delete(d.Object)
	default:
		_ = s.Update(d.Object)
	}
}

func (h *diffHarness) run(ops []byte) {
	h.t.Helper()
	for i := 0; i+1 < len(ops); i += 2 {
		h.step(ops[i], ops[i+1])
	}
	for h.ours.Len() > 0 {
		h.pop()
	}
	h.theirs.Close()
	leftover := false
	_, err := h.theirs.Pop(func(any, bool) error { leftover = true; return nil })
	if leftover || err == nil {
		h.fail("capstan is empty; client-go still had keys")
	}
}

func TestDeltaFIFODifferential(t *testing.T) {
	for seed := range uint64(300) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 42))
			ops := make([]byte, 2*200)
			for i := 0; i < len(ops); i += 8 {
				binary.LittleEndian.PutUint64(ops[i:], r.Uint64())
			}
			newDiffHarness(t).run(ops)
		})
	}
}

func FuzzDeltaFIFODifferential(f *testing.F) {
	f.Add([]byte{3, 0xff, 0, 1, 2, 1, 5, 0, 3, 0x01, 5, 0, 5, 0})
	f.Add([]byte{0, 0, 2, 0, 2, 0, 3, 0, 4, 0, 5, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		newDiffHarness(t).run(ops)
	})
}
