package leasetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/capstan-io/capstan/leaderelection"
)

// Conformance checks that store behaves as leaderelection.LeaseStore requires: not-found and
// conflict errors, resourceVersion checks, round-tripping of every Record field (times at
// microsecond precision, durations in whole seconds), and that of concurrent updates from
// one version exactly one wins. key, and key with the suffix "-absent", must not exist when it
// is called.
//
// An Update of an absent lease may fail with ErrLeaseNotFound or ErrLeaseConflict, or create
// it (the Kubernetes Lease API allows create-on-update); the elector is safe with either.
func Conformance(t *testing.T, store leaderelection.LeaseStore, key types.NamespacedName) {
	t.Helper()
	ctx := t.Context()
	at := time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)

	if _, err := store.Get(ctx, key); !errors.Is(err, leaderelection.ErrLeaseNotFound) {
		t.Fatalf("Get of absent lease: got err %v, want ErrLeaseNotFound", err)
	}
	want := leaderelection.Record{
		HolderIdentity:   "a",
		LeaseDuration:    15 * time.Second,
		AcquireTime:      at,
		RenewTime:        at.Add(time.Second),
		LeaseTransitions: 3,
	}
	created, err := store.Create(ctx, key, want)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if created.ResourceVersion == "" {
		t.Fatalf("Create: got empty ResourceVersion")
	}
	checkRecord(t, "Create", created, want)
	if _, err := store.Create(ctx, key, want); !errors.Is(err, leaderelection.ErrLeaseConflict) {
		t.Fatalf("second Create: got err %v, want ErrLeaseConflict", err)
	}
	got, err := store.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkRecord(t, "Get after Create", got, want)
	if got.ResourceVersion != created.ResourceVersion {
		t.Fatalf("Get after Create: got resourceVersion %q, want %q", got.ResourceVersion, created.ResourceVersion)
	}

	next := got
	next.HolderIdentity = ""
	next.RenewTime = at.Add(2 * time.Second)
	updated, err := store.Update(ctx, key, next)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if updated.ResourceVersion == got.ResourceVersion {
		t.Fatalf("Update: resourceVersion unchanged (%q)", updated.ResourceVersion)
	}
	want.HolderIdentity, want.RenewTime = "", next.RenewTime
	checkRecord(t, "Update", updated, want)

	if _, err := store.Update(ctx, key, next); !errors.Is(err, leaderelection.ErrLeaseConflict) {
		t.Fatalf("Update with stale resourceVersion: got err %v, want ErrLeaseConflict", err)
	}

	absent := types.NamespacedName{Namespace: key.Namespace, Name: key.Name + "-absent"}
	_, err = store.Update(ctx, absent, leaderelection.Record{HolderIdentity: "a", LeaseDuration: time.Second, ResourceVersion: updated.ResourceVersion})
	if err != nil && !errors.Is(err, leaderelection.ErrLeaseNotFound) && !errors.Is(err, leaderelection.ErrLeaseConflict) {
		t.Fatalf("Update of absent lease: got err %v, want nil, ErrLeaseNotFound or ErrLeaseConflict", err)
	}

	// Racing updates from one version: exactly one wins.
	const racers = 4
	var wg sync.WaitGroup
	errs := make([]error, racers)
	for i := range racers {
		wg.Go(func() {
			r := updated
			r.HolderIdentity = string(rune('p' + i))
			_, errs[i] = store.Update(context.WithoutCancel(ctx), key, r)
		})
	}
	wg.Wait()
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, leaderelection.ErrLeaseConflict):
			t.Errorf("racing Update %d: got err %v, want nil or ErrLeaseConflict", i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("racing Updates: got %d winners, want 1", wins)
	}
}

func checkRecord(t *testing.T, what string, got, want leaderelection.Record) {
	t.Helper()
	if got.HolderIdentity != want.HolderIdentity || got.LeaseDuration != want.LeaseDuration ||
		!got.AcquireTime.Equal(want.AcquireTime) || !got.RenewTime.Equal(want.RenewTime) ||
		got.LeaseTransitions != want.LeaseTransitions {
		got.ResourceVersion = ""
		t.Fatalf("%s: got %+v, want %+v", what, got, want)
	}
}
