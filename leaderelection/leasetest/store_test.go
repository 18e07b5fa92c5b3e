package leasetest_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/capstan-io/capstan/leaderelection"
	"github.com/capstan-io/capstan/leaderelection/leasetest"
)

var key = types.NamespacedName{Namespace: "ns", Name: "l"}

func TestConformance(t *testing.T) {
	t.Run("store", func(t *testing.T) {
		leasetest.Conformance(t, leasetest.NewStore(leasetest.Options{}), key)
	})
	t.Run("client", func(t *testing.T) {
		leasetest.Conformance(t, leasetest.NewStore(leasetest.Options{}).Client(), key)
	})
}

func TestFaults(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name       string
		fault      leasetest.Fault
		wantErr    error
		wantWrites int
		wantWait   time.Duration
	}{
		{name: "none", wantWrites: 1},
		{name: "error", fault: leasetest.Fault{Err: errBoom}, wantErr: errBoom},
		{name: "lost response", fault: leasetest.Fault{Err: errBoom, Applied: true}, wantErr: errBoom, wantWrites: 1},
		{name: "latency", fault: leasetest.Fault{Latency: 3 * time.Second}, wantWrites: 1, wantWait: 3 * time.Second},
		{name: "latency past ctx", fault: leasetest.Fault{Latency: time.Minute}, wantErr: context.DeadlineExceeded, wantWait: 5 * time.Second},
		{name: "hang", fault: leasetest.Fault{Hang: true}, wantErr: context.DeadlineExceeded, wantWait: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := leasetest.NewStore(leasetest.Options{})
				c := s.Client()
				c.SetFault(func(op leasetest.Op, k types.NamespacedName) leasetest.Fault {
					if op == leasetest.OpCreate && k == key {
						return tt.fault
					}
					return leasetest.Fault{}
				})
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer cancel()
				start := time.Now()
				_, err := c.Create(ctx, key, leaderelection.Record{HolderIdentity: "a"})
				if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
					t.Errorf("Create: got %v, want %v", err, tt.wantErr)
				}
				if got := s.Writes(); got != tt.wantWrites {
					t.Errorf("writes: got %d, want %d", got, tt.wantWrites)
				}
				if got := time.Since(start); got != tt.wantWait {
					t.Errorf("call took %v, want %v", got, tt.wantWait)
				}
				if got := c.Calls(leasetest.OpCreate); got != 1 {
					t.Errorf("Calls(create): got %d, want 1", got)
				}
				// Another client of the same store is unaffected.
				if _, err := s.Client().Get(t.Context(), types.NamespacedName{Namespace: "ns", Name: "other"}); !errors.Is(err, leaderelection.ErrLeaseNotFound) {
					t.Errorf("other client Get: got %v, want ErrLeaseNotFound", err)
				}
			})
		})
	}
}
