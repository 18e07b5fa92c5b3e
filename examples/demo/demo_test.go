package demo_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/capstan-io/capstan/examples/demo"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestDemo runs the whole demo locally (control plane, simulated nodes,
// controllers, a rolling update) and checks what it reports: the rollout
// completed within the Deployment's limits, with the writes a rolling update
// needs, and a readable table.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, progress bytes.Buffer
	sum, err := demo.Run(ctx, demo.Options{
		Out:            &out,
		Progress:       &progress,
		Replicas:       5,
		MaxSurge:       ptr(intstr.FromString("40%")), // 2
		MaxUnavailable: ptr(intstr.FromInt32(1)),
		ReadyDelay:     300 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s\noutput:\n%s", err, &progress, &out)
	}
	t.Logf("output:\n%s", &out)
	if sum.Surge != 2 || sum.Unavailable != 1 {
		t.Errorf("resolved surge/unavailable: got %d/%d, want 2/1", sum.Surge, sum.Unavailable)
	}
	if sum.MaxPods > sum.Replicas+sum.Surge {
		t.Errorf("most pods at once: got %d, want at most %d", sum.MaxPods, sum.Replicas+sum.Surge)
	}
	if sum.MaxPods <= sum.Replicas {
		t.Errorf("most pods at once: got %d, want more than %d (the rollout surges)", sum.MaxPods, sum.Replicas)
	}
	if sum.MinAvailable < sum.Replicas-sum.Unavailable {
		t.Errorf("fewest available: got %d, want at least %d", sum.MinAvailable, sum.Replicas-sum.Unavailable)
	}
	// Every old pod is deleted and a new one created per replica.
	if got := sum.Writes["create pods"]; got != int(sum.Replicas) {
		t.Errorf("pods created in the rolling update: got %d, want %d", got, sum.Replicas)
	}
	if got := sum.Writes["delete pods"]; got != int(sum.Replicas) {
		t.Errorf("pods deleted in the rolling update: got %d, want %d", got, sum.Replicas)
	}
	if got := sum.Writes["create replicasets"]; got != 1 {
		t.Errorf("ReplicaSets created in the rolling update: got %d, want 1", got)
	}
	for _, want := range []string{"rolling update to web:v2", "old ReplicaSet ready", "rollout complete in", "most pods at once", "controllers' writes"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "✗") {
		t.Errorf("output reports a broken limit:\n%s", &out)
	}
}

func ptr[T any](v T) *T { return &v }
