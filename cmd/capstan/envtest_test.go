package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// lockedBuffer is a bytes.Buffer safe for one writer and one reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestEnvtestRun drives `capstan envtest run` as a user would: wait for the
// ready message, use the printed kubeconfig, interrupt, and find everything
// cleaned up.
func TestEnvtestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runCtx, interrupt := context.WithCancel(ctx)
	kubeconfig := filepath.Join(t.TempDir(), "envtest.kubeconfig")
	var out, errb lockedBuffer
	done := make(chan error, 1)
	go func() { done <- run(runCtx, []string{"envtest", "run", "--kubeconfig", kubeconfig}, &out, &errb) }()

	for !strings.Contains(out.String(), "press Ctrl-C") {
		select {
		case err := <-done:
			t.Fatalf("envtest run returned early: %v\nstdout: %s\nstderr: %s", err, out.String(), errb.String())
		case <-ctx.Done():
			t.Fatalf("no ready message\nstdout: %s\nstderr: %s", out.String(), errb.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if !strings.Contains(out.String(), kubeconfig) || !strings.Contains(out.String(), "kubectl get namespaces") {
		t.Errorf("output lacks the kubeconfig path or the kubectl example:\n%s", out.String())
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatalf("loading the printed kubeconfig: %v", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("using the printed kubeconfig: %v", err)
	}

	interrupt()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("envtest run: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("envtest run did not return after interrupt")
	}
	if !strings.Contains(errb.String(), "every process and temp file is gone") {
		t.Errorf("stderr lacks the clean-up message:\n%s", errb.String())
	}
	if _, err := os.Stat(kubeconfig); !os.IsNotExist(err) {
		t.Errorf("kubeconfig %s left behind (stat: %v)", kubeconfig, err)
	}
}
