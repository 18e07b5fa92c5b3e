package leaderelection_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/capstan-io/capstan/leaderelection"
	"github.com/capstan-io/capstan/leaderelection/leasetest"
)

func TestOptionsValidation(t *testing.T) {
	store := leasetest.NewStore(leasetest.Options{})
	valid := func() leaderelection.Options {
		return leaderelection.Options{Namespace: "ns", Name: "lease", Store: store}
	}
	tests := []struct {
		name    string
		mod     func(*leaderelection.Options)
		wantErr string // substring; "" means valid
	}{
		{name: "defaults", mod: func(*leaderelection.Options) {}},
		{name: "client instead of store", mod: func(o *leaderelection.Options) {
			o.Store = nil
			o.Client = fake.NewClientset().CoordinationV1()
		}},
		{name: "missing namespace", mod: func(o *leaderelection.Options) { o.Namespace = "" }, wantErr: "Options.Namespace must not be empty"},
		{name: "missing name", mod: func(o *leaderelection.Options) { o.Name = "" }, wantErr: "Options.Name must not be empty"},
		{name: "no client or store", mod: func(o *leaderelection.Options) { o.Store = nil }, wantErr: "Options.Client or Options.Store must be set"},
		{name: "client and store", mod: func(o *leaderelection.Options) { o.Client = fake.NewClientset().CoordinationV1() }, wantErr: "both set"},
		{name: "negative lease duration", mod: func(o *leaderelection.Options) { o.LeaseDuration = -time.Second }, wantErr: "Options.LeaseDuration must be > 0"},
		{name: "negative renew deadline", mod: func(o *leaderelection.Options) { o.RenewDeadline = -time.Second }, wantErr: "Options.RenewDeadline must be > 0"},
		{name: "negative retry period", mod: func(o *leaderelection.Options) { o.RetryPeriod = -time.Second }, wantErr: "Options.RetryPeriod must be > 0"},
		{name: "renew deadline equal to lease duration", mod: func(o *leaderelection.Options) {
			o.LeaseDuration, o.RenewDeadline = 10*time.Second, 10*time.Second
		}, wantErr: "Options.RenewDeadline (10s) must be < Options.LeaseDuration (10s)"},
		{name: "renew deadline above default lease duration", mod: func(o *leaderelection.Options) { o.RenewDeadline = 20 * time.Second }, wantErr: "must be < Options.LeaseDuration (15s)"},
		{name: "retry period too close to renew deadline", mod: func(o *leaderelection.Options) { o.RetryPeriod = 6 * time.Second }, wantErr: "Options.RetryPeriod (6s) must be <= Options.RenewDeadline/2 (5s)"},
		{name: "retry period at half the deadline", mod: func(o *leaderelection.Options) { o.RetryPeriod = 5 * time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := valid()
			tt.mod(&o)
			el, err := leaderelection.New(o)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: got %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("New: got %v, want error containing %q", err, tt.wantErr)
			case tt.wantErr != "" && !strings.HasPrefix(err.Error(), "leaderelection: "):
				t.Fatalf("New: got %q, want the package prefix", err)
			case err == nil && el == nil:
				t.Fatalf("New: got nil elector and nil error")
			}
		})
	}
}

func TestDefaultIdentity(t *testing.T) {
	store := leasetest.NewStore(leasetest.Options{})
	a, err := leaderelection.New(leaderelection.Options{Namespace: "ns", Name: "l", Store: store})
	if err != nil {
		t.Fatal(err)
	}
	b, err := leaderelection.New(leaderelection.Options{Namespace: "ns", Name: "l", Store: store})
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	re := regexp.MustCompile("^" + regexp.QuoteMeta(host) + "_[0-9a-f]{8}$")
	if !re.MatchString(a.Identity()) {
		t.Errorf("default identity: got %q, want %s", a.Identity(), re)
	}
	if a.Identity() == b.Identity() {
		t.Errorf("default identities: got %q twice, want distinct", a.Identity())
	}
}
