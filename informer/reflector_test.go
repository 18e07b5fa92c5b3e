package informer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/capstan-io/capstan/informer"
	"github.com/capstan-io/capstan/informer/informertest"
)

// recorder is a ReflectorStore that records what it receives.
type recorder struct {
	mu  sync.Mutex
	ops []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.ops = append(r.ops, s)
	r.mu.Unlock()
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.ops
	r.ops = nil
	return out
}

func (r *recorder) Add(o *corev1.ConfigMap) error {
	r.add("Add " + o.Name + "@" + o.ResourceVersion)
	return nil
}
func (r *recorder) Update(o *corev1.ConfigMap) error {
	r.add("Update " + o.Name + "@" + o.ResourceVersion)
	return nil
}
func (r *recorder) Delete(o *corev1.ConfigMap) error {
	r.add("Delete " + o.Name + "@" + o.ResourceVersion)
	return nil
}
func (r *recorder) Resync() error { r.add("Resync"); return nil }
func (r *recorder) Replace(l []*corev1.ConfigMap, rv string) error {
	names := make([]string, len(l))
	for i, o := range l {
		names[i] = o.Name
	}
	sort.Strings(names)
	r.add(fmt.Sprintf("Replace [%s]@%s", strings.Join(names, " "), rv))
	return nil
}

func newCM(name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}}
}

type reflectorRig struct {
	src    *informertest.Source[*corev1.ConfigMap]
	rec    *recorder
	r      *informer.Reflector[*corev1.ConfigMap]
	cancel context.CancelFunc
	done   chan error
}

// startReflector must be called inside a synctest bubble.
func startReflector(t *testing.T, src *informertest.Source[*corev1.ConfigMap], opts informer.ReflectorOptions) *reflectorRig {
	t.Helper()
	rec := &recorder{}
	r, err := informer.NewReflector[*corev1.ConfigMap](src, rec, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	rig := &reflectorRig{src: src, rec: rec, r: r, cancel: cancel, done: make(chan error, 1)}
	go func() { rig.done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-rig.done
	})
	synctest.Wait()
	return rig
}

func (rig *reflectorRig) expect(t *testing.T, want ...string) {
	t.Helper()
	synctest.Wait()
	if got := rig.rec.take(); !slices.Equal(got, want) {
		t.Errorf("got store ops\n  %q\nwant\n  %q", got, want)
	}
}

func TestReflectorListThenWatch(t *testing.T) {
	cases := []struct {
		name      string
		watchList bool
		mode      informer.WatchListMode
		// lists and watches the initial sync takes
		lists, watches int
	}{
		{name: "streaming list", watchList: true, mode: informer.WatchListAuto, lists: 0, watches: 1},
		{name: "fallback when the server refuses streaming", watchList: false, mode: informer.WatchListAuto, lists: 1, watches: 2},
		{name: "lists when streaming is off", watchList: true, mode: informer.WatchListOff, lists: 1, watches: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{WatchList: tc.watchList})
				_, _ = src.Create(newCM("a"))
				_, _ = src.Create(newCM("b"))
				rig := startReflector(t, src, informer.ReflectorOptions{WatchList: tc.mode})
				rig.expect(t, "Replace [a b]@2")
				if l, w := src.Calls(); l != tc.lists || w != tc.watches {
					t.Errorf("got %d lists and %d watches, want %d and %d", l, w, tc.lists, tc.watches)
				}
				_, _ = src.Create(newCM("c"))
				o, _ := src.Get("ns", "a")
				o.Data = map[string]string{"k": "v"}
				_, _ = src.Update(o)
				_ = src.Delete("ns", "b")
				rig.expect(t, "Add c@3", "Update a@4", "Delete b@5")
				if got := rig.r.LastSyncResourceVersion(); got != "5" {
					t.Errorf("got LastSyncResourceVersion %q, want 5", got)
				}
			})
		})
	}
}

func TestReflectorResumesClosedWatchWithoutRelist(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
		_, _ = src.Create(newCM("a"))
		rig := startReflector(t, src, informer.ReflectorOptions{WatchList: informer.WatchListOff})
		rig.expect(t, "Replace [a]@1")
		time.Sleep(time.Minute) // a watch that lived long is not "very short"
		src.DropWatches()
		_, _ = src.Create(newCM("b")) // happens while no watch is open
		rig.expect(t, "Add b@2")
		if l, w := src.Calls(); l != 1 || w != 2 {
			t.Errorf("got %d lists and %d watches, want 1 list and 2 watches", l, w)
		}
	})
}

func TestReflectorRelistsOnGone(t *testing.T) {
	for _, watchList := range []bool{false, true} {
		t.Run(fmt.Sprintf("watchList=%v", watchList), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{WatchList: watchList})
				_, _ = src.Create(newCM("a"))
				_, _ = src.Create(newCM("b"))
				rig := startReflector(t, src, informer.ReflectorOptions{})
				rig.expect(t, "Replace [a b]@2")
				time.Sleep(time.Minute)
				// Keep the watch down while objects change and etcd compacts.
				src.SetWatchError(apierrors.NewTooManyRequests("down", 1))
				src.DropWatches()
				synctest.Wait()
				_ = src.Delete("ns", "a")
				_, _ = src.Create(newCM("c"))
				src.Compact() // the watch cannot resume from 2
				src.SetWatchError(nil)
				time.Sleep(time.Minute)
				rig.expect(t, "Replace [b c]@4")
				_, _ = src.Create(newCM("d"))
				rig.expect(t, "Add d@5")
			})
		})
	}
}

func TestReflectorBookmarkAdvancesResourceVersion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{WatchList: true})
		_, _ = src.Create(newCM("a"))
		rig := startReflector(t, src, informer.ReflectorOptions{})
		rig.expect(t, "Replace [a]@1")
		src.BumpResourceVersion()
		src.BumpResourceVersion()
		src.Bookmark()
		synctest.Wait()
		if got := rig.r.LastSyncResourceVersion(); got != "3" {
			t.Errorf("got LastSyncResourceVersion %q after a bookmark, want 3", got)
		}
		rig.expect(t) // a bookmark is not a change
		// The next watch starts from the bookmark's resourceVersion: after a
		// compaction at 3 it resumes without a relist.
		src.Compact()
		time.Sleep(time.Minute)
		src.DropWatches()
		_, _ = src.Create(newCM("b"))
		rig.expect(t, "Add b@4")
		if l, _ := src.Calls(); l != 0 {
			t.Errorf("got %d lists, want 0", l)
		}
	})
}

func TestReflectorBacksOffOnErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
		_, _ = src.Create(newCM("a"))
		src.SetListError(apierrors.NewServiceUnavailable("apiserver is restarting"))
		rig := startReflector(t, src, informer.ReflectorOptions{WatchList: informer.WatchListOff})
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		lists, _ := src.Calls()
		// Delays double from [0.8s,1.6s) to [30s,60s): at most 4+ (600-24)/30 ≈ 24
		// attempts in 10 minutes, at least 600/60 = 10.
		if lists < 10 || lists > 25 {
			t.Errorf("got %d list attempts in 10 minutes of failures, want 10..25 (jittered exponential backoff capped at 30s)", lists)
		}
		src.SetListError(nil)
		time.Sleep(time.Minute)
		rig.expect(t, "Replace [a]@1")
	})
}

func TestReflectorRetriesRefusedWatchWithoutRelist(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
		_, _ = src.Create(newCM("a"))
		rig := startReflector(t, src, informer.ReflectorOptions{WatchList: informer.WatchListOff})
		rig.expect(t, "Replace [a]@1")
		time.Sleep(time.Minute)
		src.SetWatchError(apierrors.NewTooManyRequests("slow down", 1))
		src.DropWatches()
		time.Sleep(time.Minute)
		src.SetWatchError(nil)
		_, _ = src.Create(newCM("b"))
		time.Sleep(time.Minute)
		rig.expect(t, "Add b@2")
		if l, w := src.Calls(); l != 1 || w < 3 {
			t.Errorf("got %d lists and %d watches, want 1 list and several watch attempts", l, w)
		}
	})
}

func TestReflectorStopsWhenResourceNotServed(t *testing.T) {
	for _, watchList := range []bool{false, true} {
		t.Run(fmt.Sprintf("watchList=%v", watchList), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{WatchList: watchList})
				nf := apierrors.NewNotFound(schema.GroupResource{Group: "example.com", Resource: "widgets"}, "")
				src.SetListError(nf)
				src.SetWatchError(nf)
				r, err := informer.NewReflector[*corev1.ConfigMap](src, &recorder{}, informer.ReflectorOptions{})
				if err != nil {
					t.Fatal(err)
				}
				err = r.Run(t.Context())
				if !errors.Is(err, informer.ErrNotServed) || !apierrors.IsNotFound(err) {
					t.Errorf("got %v, want an error wrapping ErrNotServed and the NotFound", err)
				}
			})
		})
	}
}

func TestReflectorResync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
		rig := startReflector(t, src, informer.ReflectorOptions{ResyncPeriod: time.Minute})
		rig.expect(t, "Replace []@0")
		time.Sleep(150 * time.Second)
		rig.expect(t, "Resync", "Resync")
	})
}

// expireFirstList fails the first List with 410 Expired.
type expireFirstList struct {
	*informertest.Source[*corev1.ConfigMap]
	mu   sync.Mutex
	done bool
	rvs  []string
}

func (e *expireFirstList) List(ctx context.Context, opts metav1.ListOptions) (*informer.Page[*corev1.ConfigMap], error) {
	e.mu.Lock()
	e.rvs = append(e.rvs, opts.ResourceVersion+"/"+fmt.Sprint(opts.Limit)+"/"+opts.Continue)
	first := !e.done
	e.done = true
	e.mu.Unlock()
	if first {
		return nil, apierrors.NewResourceExpired("too old")
	}
	return e.Source.List(ctx, opts)
}

func TestReflectorPaginatesConsistentList(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
		for i := range 7 {
			_, _ = src.Create(newCM(fmt.Sprint(i)))
		}
		lw := &expireFirstList{Source: src}
		rec := &recorder{}
		r, err := informer.NewReflector[*corev1.ConfigMap](lw, rec, informer.ReflectorOptions{WatchList: informer.WatchListOff, PageSize: 3})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		synctest.Wait()
		cancel()
		<-done
		if got, want := rec.take(), []string{"Replace [0 1 2 3 4 5 6]@7"}; !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
		// RV "0" first; after 410, a consistent ("") list in pages of 3.
		if want := []string{"0/3/", "/3/", "/3/c1", "/3/c2"}; !slices.Equal(lw.rvs, want) {
			t.Errorf("got list calls (rv/limit/continue) %q, want %q", lw.rvs, want)
		}
	})
}

func TestNewReflectorValidates(t *testing.T) {
	src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
	cases := []struct {
		name  string
		opts  informer.ReflectorOptions
		field string
	}{
		{"negative resync", informer.ReflectorOptions{ResyncPeriod: -1}, "ResyncPeriod"},
		{"negative page", informer.ReflectorOptions{PageSize: -1}, "PageSize"},
		{"max below initial", informer.ReflectorOptions{InitialBackoff: time.Minute, MaxBackoff: time.Second}, "MaxBackoff"},
		{"short watch timeout", informer.ReflectorOptions{MinWatchTimeout: time.Millisecond}, "MinWatchTimeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := informer.NewReflector[*corev1.ConfigMap](src, &recorder{}, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("got %v, want an error naming %s", err, tc.field)
			}
		})
	}
}

// scriptedLW serves one scripted streaming list, then watches that stay
// open with no events.
type scriptedLW struct {
	events []watch.Event
	mu     sync.Mutex
	served bool
}

func (s *scriptedLW) List(context.Context, metav1.ListOptions) (*informer.Page[*corev1.ConfigMap], error) {
	return nil, errors.New("scriptedLW: no lists")
}

func (s *scriptedLW) Watch(ctx context.Context, _ metav1.ListOptions) (watch.Interface, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := watch.NewFakeWithChanSize(len(s.events), false)
	if !s.served {
		s.served = true
		for _, ev := range s.events {
			w.Action(ev.Type, ev.Object)
		}
	}
	return w, nil
}

func TestReflectorStreamingListWithChangesBeforeBookmark(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rv := func(o *corev1.ConfigMap, v string) *corev1.ConfigMap { o.ResourceVersion = v; return o }
		end := rv(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{metav1.InitialEventsAnnotationKey: "true"}}}, "9")
		lw := &scriptedLW{events: []watch.Event{
			{Type: watch.Added, Object: rv(newCM("a"), "1")},
			{Type: watch.Added, Object: rv(newCM("b"), "2")},
			{Type: watch.Modified, Object: rv(newCM("a"), "3")},
			{Type: watch.Deleted, Object: rv(newCM("b"), "4")},
			{Type: watch.Added, Object: rv(newCM("c"), "5")},
			{Type: watch.Bookmark, Object: end},
		}}
		rec := &recorder{}
		r, err := informer.NewReflector[*corev1.ConfigMap](lw, rec, informer.ReflectorOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		synctest.Wait()
		cancel()
		<-done
		if got, want := rec.take(), []string{"Replace [a c]@9"}; !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}
