package nodesim_test

import (
	"context"
	"log"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/capstan-io/capstan/envtest"
	"github.com/capstan-io/capstan/envtest/nodesim"
)

// Start a control plane and two simulated nodes, then create a Pod that
// completes after a second. (Compile-only: it needs the envtest binaries.)
func Example() {
	ctx := context.Background()
	env, err := envtest.Start(ctx, envtest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer env.Stop()

	sim, err := nodesim.Start(ctx, env.Config(), nodesim.Options{
		Nodes: []nodesim.NodeSpec{
			{Name: "small", Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}},
			{Name: "gpu", Taints: []corev1.Taint{{Key: "gpu", Effect: corev1.TaintEffectNoSchedule}}},
		},
		ReadyDelay: 500 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sim.Stop()

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "job", Namespace: "default",
			Annotations: map[string]string{nodesim.AnnotationExitAfter: "1s", nodesim.AnnotationExitCode: "0"},
		},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "main", Image: "example.com/job:v1"}},
		},
	}
	if _, err := sim.Client().CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		log.Fatal(err)
	}
	// The Pod is bound to "small" (it does not tolerate the gpu taint),
	// Pending for ReadyDelay, Running and Ready for a second, then
	// Succeeded.
}
