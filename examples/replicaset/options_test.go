package replicaset

import (
	"strings"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/capstan-io/capstan/reconcile"
)

func TestNewRefusesBadOptions(t *testing.T) {
	// No API call is made before the options are checked, so an address
	// nothing listens on will do.
	mgr, err := reconcile.NewManager(reconcile.ManagerOptions{Config: &rest.Config{Host: "http://127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		mgr     *reconcile.Manager
		opts    Options
		wantErr string
	}{
		{name: "nil manager", opts: Options{}, wantErr: "replicaset: New: manager is nil"},
		{name: "negative workers", mgr: mgr, opts: Options{Workers: -1}, wantErr: "Options.Workers is -1"},
		{name: "negative burst", mgr: mgr, opts: Options{BurstReplicas: -3}, wantErr: "Options.BurstReplicas is -3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.mgr, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestOptionsDefaults(t *testing.T) {
	mgr, err := reconcile.NewManager(reconcile.ManagerOptions{Config: &rest.Config{Host: "http://127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Options{}.withDefaults(mgr)
	if err != nil {
		t.Fatal(err)
	}
	if got.Workers != DefaultWorkers || got.BurstReplicas != DefaultBurstReplicas {
		t.Errorf("got workers %d, burst %d; want %d, %d", got.Workers, got.BurstReplicas, DefaultWorkers, DefaultBurstReplicas)
	}
	kept, err := Options{Workers: 2, BurstReplicas: 7}.withDefaults(mgr)
	if err != nil {
		t.Fatal(err)
	}
	if kept.Workers != 2 || kept.BurstReplicas != 7 {
		t.Errorf("got workers %d, burst %d; want 2, 7", kept.Workers, kept.BurstReplicas)
	}
}
