package informer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func cm(ns, name, rv string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: rv}}
}

// popAll pops until the FIFO is empty and renders each pop as
// "key: Type@rv Type@rv!" ("!" marks FinalStateUnknown).
func popAll(t *testing.T, f *DeltaFIFO[*corev1.ConfigMap], known *Indexer[*corev1.ConfigMap]) []string {
	t.Helper()
	var out []string
	for f.Len() > 0 {
		err := f.Pop(t.Context(), func(key string, deltas []Delta[*corev1.ConfigMap], _ bool) error {
			out = append(out, renderDeltas(key, deltas))
			if known != nil {
				applyDeltas(known, key, deltas)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Pop: %v", err)
		}
	}
	return out
}

func applyDeltas(known *Indexer[*corev1.ConfigMap], key string, deltas []Delta[*corev1.ConfigMap]) {
	for _, d := range deltas {
		if d.Type == Deleted {
			known.Delete(key)
		} else {
			known.Set(key, d.Object)
		}
	}
}

func renderDeltas(key string, deltas []Delta[*corev1.ConfigMap]) string {
	parts := make([]string, len(deltas))
	for i, d := range deltas {
		parts[i] = d.Type.String() + "@" + d.Object.ResourceVersion
		if d.FinalStateUnknown {
			parts[i] += "!"
		}
	}
	return key + ": " + strings.Join(parts, " ")
}

func TestDeltaFIFO(t *testing.T) {
	type fifo = DeltaFIFO[*corev1.ConfigMap]
	cases := []struct {
		name string
		// known objects, popped into the known store before ops run
		seed []*corev1.ConfigMap
		ops  func(f *fifo)
		want []string
	}{
		{
			name: "deltas of one key accumulate in order under one queue slot",
			ops: func(f *fifo) {
				_ = f.Add(cm("ns", "a", "1"))
				_ = f.Add(cm("ns", "b", "2"))
				_ = f.Update(cm("ns", "a", "3"))
				_ = f.Delete(cm("ns", "a", "4"))
			},
			want: []string{"ns/a: Added@1 Updated@3 Deleted@4", "ns/b: Added@2"},
		},
		{
			name: "delete of an unknown, unqueued key is dropped",
			ops: func(f *fifo) {
				_ = f.Delete(cm("ns", "ghost", "1"))
			},
			want: nil,
		},
		{
			name: "consecutive deletes collapse keeping the older known state",
			ops: func(f *fifo) {
				_ = f.Add(cm("ns", "a", "1"))
				_ = f.Delete(cm("ns", "a", "2"))
				_ = f.Delete(cm("ns", "a", "3"))
			},
			want: []string{"ns/a: Added@1 Deleted@2"},
		},
		{
			name: "a known delete replaces a preceding final-state-unknown delete",
			seed: []*corev1.ConfigMap{cm("ns", "a", "1")},
			ops: func(f *fifo) {
				_ = f.Replace(nil, "5")
				_ = f.Delete(cm("ns", "a", "2"))
			},
			want: []string{"ns/a: Deleted@2"},
		},
		{
			name: "relist reports vanished known objects as deleted with final state unknown",
			seed: []*corev1.ConfigMap{cm("ns", "a", "1"), cm("ns", "b", "2")},
			ops: func(f *fifo) {
				_ = f.Replace([]*corev1.ConfigMap{cm("ns", "b", "3")}, "3")
			},
			want: []string{"ns/b: Replaced@3", "ns/a: Deleted@1!"},
		},
		{
			name: "relist reports vanished queued objects with their newest state",
			ops: func(f *fifo) {
				_ = f.Add(cm("ns", "a", "1"))
				_ = f.Update(cm("ns", "a", "2"))
				_ = f.Replace(nil, "3")
			},
			want: []string{"ns/a: Added@1 Updated@2 Deleted@2!"},
		},
		{
			name: "resync skips keys with pending deltas",
			seed: []*corev1.ConfigMap{cm("ns", "a", "1"), cm("ns", "b", "2")},
			ops: func(f *fifo) {
				_ = f.Update(cm("ns", "a", "3"))
				_ = f.Resync()
			},
			want: []string{"ns/a: Updated@3", "ns/b: Sync@2"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			known, err := NewIndexer(IndexerOptions[*corev1.ConfigMap]{})
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range tc.seed {
				known.Set(KeyOf(o), o)
			}
			f := NewDeltaFIFO(DeltaFIFOOptions[*corev1.ConfigMap]{KnownObjects: known})
			tc.ops(f)
			got := popAll(t, f, known)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got pops\n  %q\nwant\n  %q", got, tc.want)
			}
		})
	}
}

func TestDeltaFIFOHasSynced(t *testing.T) {
	cases := []struct {
		name string
		ops  func(f *DeltaFIFO[*corev1.ConfigMap])
		// pops before Synced must close (-1: never)
		pops int
	}{
		{name: "empty first list syncs at once", ops: func(f *DeltaFIFO[*corev1.ConfigMap]) { _ = f.Replace(nil, "1") }, pops: 0},
		{name: "first list of two syncs after two pops", ops: func(f *DeltaFIFO[*corev1.ConfigMap]) {
			_ = f.Replace([]*corev1.ConfigMap{cm("a", "1", "1"), cm("a", "2", "1")}, "1")
		}, pops: 2},
		{name: "add before any list syncs at once", ops: func(f *DeltaFIFO[*corev1.ConfigMap]) { _ = f.Add(cm("a", "1", "1")) }, pops: 0},
		{name: "nothing delivered never syncs", ops: func(*DeltaFIFO[*corev1.ConfigMap]) {}, pops: -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := NewDeltaFIFO(DeltaFIFOOptions[*corev1.ConfigMap]{})
			tc.ops(f)
			popped := 0
			for {
				if f.HasSynced() {
					break
				}
				if f.Len() == 0 {
					popped = -1
					break
				}
				var initial bool
				_ = f.Pop(t.Context(), func(_ string, _ []Delta[*corev1.ConfigMap], isInInitialList bool) error {
					initial = isInInitialList
					return nil
				})
				if !initial {
					t.Errorf("pop %d before sync: got isInInitialList false, want true", popped)
				}
				popped++
			}
			if popped != tc.pops {
				t.Errorf("got synced after %d pops, want %d", popped, tc.pops)
			}
			select {
			case <-f.Synced():
				if tc.pops < 0 {
					t.Errorf("got Synced closed, want open")
				}
			default:
				if tc.pops >= 0 {
					t.Errorf("got Synced open, want closed")
				}
			}
		})
	}
}

func TestDeltaFIFORequeue(t *testing.T) {
	f := NewDeltaFIFO(DeltaFIFOOptions[*corev1.ConfigMap]{})
	_ = f.Add(cm("ns", "a", "1"))
	_ = f.Add(cm("ns", "b", "2"))
	err := f.Pop(t.Context(), func(key string, deltas []Delta[*corev1.ConfigMap], _ bool) error {
		// A newer delta for the same key arrives while this one is processed.
		// (Pop holds the lock, so simulate it by queueing after the pop.)
		return fmt.Errorf("transient: %w", ErrRequeue)
	})
	if !errors.Is(err, ErrRequeue) {
		t.Fatalf("got Pop error %v, want ErrRequeue", err)
	}
	_ = f.Update(cm("ns", "a", "3"))
	got := popAll(t, f, nil)
	want := []string{"ns/b: Added@2", "ns/a: Added@1 Updated@3"}
	if !slices.Equal(got, want) {
		t.Errorf("got pops %q, want %q", got, want)
	}

	// A requeue while newer deltas are already queued merges them behind the
	// failed ones, keeping the key's queue position.
	f2 := NewDeltaFIFO(DeltaFIFOOptions[*corev1.ConfigMap]{})
	_ = f2.Add(cm("ns", "a", "1"))
	_ = f2.Pop(t.Context(), func(string, []Delta[*corev1.ConfigMap], bool) error {
		f2.queueLocked("ns/a", Delta[*corev1.ConfigMap]{Type: Updated, Object: cm("ns", "a", "2")}, false)
		return ErrRequeue
	})
	got = popAll(t, f2, nil)
	want = []string{"ns/a: Added@1 Updated@2"}
	if !slices.Equal(got, want) {
		t.Errorf("got pops %q, want %q", got, want)
	}
}

func TestDeltaFIFOTransform(t *testing.T) {
	known, _ := NewIndexer(IndexerOptions[*corev1.ConfigMap]{})
	calls := 0
	f := NewDeltaFIFO(DeltaFIFOOptions[*corev1.ConfigMap]{
		KnownObjects: known,
		Transform: func(o *corev1.ConfigMap) (*corev1.ConfigMap, error) {
			calls++
			if o.Name == "bad" {
				return nil, errors.New("boom")
			}
			o.Annotations = map[string]string{"t": "1"}
			return o, nil
		},
	})
	_ = f.Add(cm("ns", "a", "1"))
	if err := f.Add(cm("ns", "bad", "1")); err == nil || !strings.Contains(err.Error(), "ns/bad") {
		t.Errorf("got Add error %v, want one naming ns/bad", err)
	}
	popAll(t, f, known)
	_ = f.Resync()
	var got map[string]string
	_ = f.Pop(t.Context(), func(_ string, d []Delta[*corev1.ConfigMap], _ bool) error {
		got = d[0].Object.Annotations
		return nil
	})
	if got["t"] != "1" {
		t.Errorf("got annotations %v, want the transformed object", got)
	}
	if calls != 2 {
		t.Errorf("got %d transform calls, want 2 (Sync deltas are not transformed)", calls)
	}
}

func TestDeltaFIFOPopBlocksUntilAddCloseOrCancel(t *testing.T) {
	f := NewDeltaFIFO(DeltaFIFOOptions[*corev1.ConfigMap]{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := f.Pop(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v from Pop on a cancelled context, want context.Canceled", err)
	}
	done := make(chan string)
	go func() {
		_ = f.Pop(t.Context(), func(key string, _ []Delta[*corev1.ConfigMap], _ bool) error {
			done <- key
			return nil
		})
	}()
	_ = f.Add(cm("ns", "a", "1"))
	select {
	case got := <-done:
		if got != "ns/a" {
			t.Errorf("got %q, want ns/a", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Pop did not wake on Add")
	}
	errc := make(chan error)
	go func() { errc <- f.Pop(t.Context(), nil) }()
	f.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrFIFOClosed) {
			t.Errorf("got %v, want ErrFIFOClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Pop did not wake on Close")
	}
}

func TestDeltaFIFOManyPoppersNoLostWakeup(t *testing.T) {
	f := NewDeltaFIFO(DeltaFIFOOptions[*corev1.ConfigMap]{})
	const n = 200
	got := make(chan string, n)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for range 4 {
		go func() {
			for {
				err := f.Pop(ctx, func(key string, _ []Delta[*corev1.ConfigMap], _ bool) error {
					got <- key
					return nil
				})
				if err != nil {
					return
				}
			}
		}()
	}
	for i := range n {
		_ = f.Add(cm("ns", fmt.Sprint(i), "1"))
	}
	seen := map[string]bool{}
	timeout := time.After(10 * time.Second)
	for len(seen) < n {
		select {
		case k := <-got:
			seen[k] = true
		case <-timeout:
			t.Fatalf("got %d keys popped, want %d", len(seen), n)
		}
	}
	cancel()
}
