package controllermanager_test

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/capstan-io/capstan/envtest"
	"github.com/capstan-io/capstan/examples/controllermanager"
	"github.com/capstan-io/capstan/internal/testmain"
)

var env = envtest.NewShared(envtest.Options{})

func TestMain(m *testing.M) { testmain.Run(m, env) }

func TestEnabled(t *testing.T) {
	tests := []struct {
		name        string
		controllers []string
		want        map[string]bool
	}{
		{"star", []string{"*"}, map[string]bool{"deployment": true, "replicaset": true}},
		{"none", nil, map[string]bool{"deployment": false, "replicaset": false}},
		{"one named", []string{"replicaset"}, map[string]bool{"deployment": false, "replicaset": true}},
		{"star minus one", []string{"*", "-deployment"}, map[string]bool{"deployment": false, "replicaset": true}},
		{"minus before star", []string{"-replicaset", "*"}, map[string]bool{"deployment": true, "replicaset": false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for name, want := range tt.want {
				if got := controllermanager.Enabled(tt.controllers, name); got != want {
					t.Errorf("Enabled(%q, %q) = %v, want %v", tt.controllers, name, got, want)
				}
			}
		})
	}
}

func TestNewManagerRejectsBadOptions(t *testing.T) {
	cfg := env.Get(t).Config()
	tests := []struct {
		name    string
		opts    controllermanager.Options
		wantErr string
	}{
		{"no config", controllermanager.Options{}, "Options.Config: required"},
		{"unknown controller", controllermanager.Options{Config: cfg, Controllers: []string{"*", "cronjob"}}, `Options.Controllers[1]: unknown controller "cronjob"`},
		{"everything off", controllermanager.Options{Config: cfg, Controllers: []string{"-deployment", "-replicaset"}}, "turns every controller off"},
		{"negative workers", controllermanager.Options{Config: cfg, ConcurrentSyncs: map[string]int{"replicaset": -1}}, `ConcurrentSyncs["replicaset"]: must not be negative`},
		{"workers for unknown", controllermanager.Options{Config: cfg, ConcurrentSyncs: map[string]int{"job": 1}}, `unknown controller "job"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := controllermanager.NewManager(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewManager: got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestRunWithLeaderElection: Run takes the Lease, its ReplicaSet controller
// creates the Pods of a new ReplicaSet, and when Run's context ends it
// returns and releases the Lease for a successor.
func TestRunWithLeaderElection(t *testing.T) {
	e := env.Get(t)
	cs, err := kubernetes.NewForConfig(e.Config())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const leaseName = "cm-test"
	done := make(chan error, 1)
	go func() {
		done <- controllermanager.Run(ctx, controllermanager.Options{
			Config:              e.Config(),
			Controllers:         []string{"replicaset"},
			LeaderElect:         true,
			LeaderElectName:     leaseName,
			LeaderElectIdentity: "test-identity",
			LeaseDuration:       4 * time.Second,
			RenewDeadline:       3 * time.Second,
			RetryPeriod:         500 * time.Millisecond,
		})
	}()
	eventually(t, "the Lease held by this process", func() bool {
		l, err := cs.CoordinationV1().Leases(controllermanager.DefaultLeaderElectNamespace).Get(ctx, leaseName, metav1.GetOptions{})
		return err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == "test-identity"
	})

	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "cm-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	replicas := int32(3)
	labels := map[string]string{"app": "cm"}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "rs"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img"}}},
			},
		},
	}
	if _, err := cs.AppsV1().ReplicaSets(ns.Name).Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "3 pods created by the ReplicaSet controller", func() bool {
		l, err := cs.CoreV1().Pods(ns.Name).List(ctx, metav1.ListOptions{})
		return err == nil && len(l.Items) == 3
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of its context ending")
	}
	l, err := cs.CoordinationV1().Leases(controllermanager.DefaultLeaderElectNamespace).Get(context.Background(), leaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := l.Spec.HolderIdentity; h != nil && *h != "" {
		t.Errorf("Lease holder after Run returned: got %q, want it released", *h)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
