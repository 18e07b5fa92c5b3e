package deployment_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/capstan-io/capstan/envtest"
	"github.com/capstan-io/capstan/envtest/nodesim"
	"github.com/capstan-io/capstan/examples/deployment"
	"github.com/capstan-io/capstan/examples/deployment/internal/invariant"
	"github.com/capstan-io/capstan/examples/replicaset"
	"github.com/capstan-io/capstan/reconcile"
)

// The suite shares one control plane: kube-apiserver, etcd and
// kube-controller-manager running only its garbage-collector and namespace
// controllers. Every spec works in a namespace of its own, with a node
// simulator scoped to it and a Manager of its own running the Deployment
// and ReplicaSet controllers, all stopped when the spec ends; no mutable
// state is shared between specs.
var (
	env *envtest.Environment
	cs  *kubernetes.Clientset
)

// readyDelay keeps new pods Pending for a moment, so that a rollout takes
// observable steps.
const readyDelay = 300 * time.Millisecond

func TestDeployment(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Deployment controller suite")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	// A spec context has no deadline: without this, an Eventually given
	// one would poll forever.
	EnforceDefaultTimeoutsWhenUsingContexts()
	SetDefaultEventuallyTimeout(60 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	SetDefaultConsistentlyPollingInterval(50 * time.Millisecond)
	var err error
	env, err = envtest.Start(ctx, envtest.Options{BuiltinControllers: true})
	Expect(err).NotTo(HaveOccurred())
	cs, err = kubernetes.NewForConfig(env.Config())
	Expect(err).NotTo(HaveOccurred())
	// Building the binaries on first use takes minutes; later starts take
	// seconds.
}, NodeTimeout(30*time.Minute))

var _ = AfterSuite(func() {
	if env != nil {
		if CurrentSpecReport().Failed() {
			GinkgoWriter.Println(env.Logs(40))
		}
		Expect(env.Stop()).To(Succeed())
	}
})

// world is what a spec works with: its namespace and node simulator.
type world struct {
	ns  string
	sim *nodesim.Simulator
}

// setUp creates a namespace, a node simulator for it and a Manager running
// both controllers, all torn down when the spec ends (the Deployments and
// ReplicaSets first, so that no later spec's controllers act for them).
func setUp(ctx context.Context) *world {
	nsObj, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "deploy-"}}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	ns := nsObj.Name
	DeferCleanup(func(ctx SpecContext) {
		Expect(cs.AppsV1().Deployments(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})).To(Succeed())
		Expect(cs.AppsV1().ReplicaSets(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})).To(Succeed())
		Expect(cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})).To(Succeed())
	})

	nodes := []nodesim.NodeSpec{{Name: ns + "-a"}, {Name: ns + "-b"}}
	sim, err := nodesim.Start(context.WithoutCancel(ctx), env.Config(), nodesim.Options{
		Namespace:  ns,
		Nodes:      nodes,
		ReadyDelay: readyDelay,
		Logger:     GinkgoLogr.WithName("nodesim"),
	})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) {
		sim.Stop()
		for _, n := range nodes {
			err := cs.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{})
			if !apierrors.IsNotFound(err) {
				Expect(err).NotTo(HaveOccurred())
			}
		}
	})

	mgr, err := reconcile.NewManager(reconcile.ManagerOptions{Config: env.Config(), Logger: GinkgoLogr})
	Expect(err).NotTo(HaveOccurred())
	_, err = deployment.New(mgr, deployment.Options{})
	Expect(err).NotTo(HaveOccurred())
	_, err = replicaset.New(mgr, replicaset.Options{})
	Expect(err).NotTo(HaveOccurred())
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- mgr.Start(runCtx) }()
	DeferCleanup(func(ctx SpecContext) {
		cancel()
		select {
		case err := <-done:
			Expect(err).NotTo(HaveOccurred())
		case <-ctx.Done():
			Fail("the manager did not stop")
		}
	}, NodeTimeout(40*time.Second))
	select {
	case <-mgr.Synced():
	case err := <-done:
		Fail(fmt.Sprintf("the manager stopped: %v", err))
	case <-time.After(30 * time.Second):
		Fail("the manager did not sync within 30s")
	}
	return &world{ns: ns, sim: sim}
}

// newDeployment returns a rolling-update Deployment ns/name selecting
// app=name, with the given surge and unavailability ("" leaves the API
// default, 25%).
func newDeployment(ns, name string, replicas int32, surge, unavailable string, mutate ...func(*appsv1.Deployment)) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:v1"}}},
			},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{}},
		},
	}
	if surge != "" {
		v := intstr.Parse(surge)
		d.Spec.Strategy.RollingUpdate.MaxSurge = &v
	}
	if unavailable != "" {
		v := intstr.Parse(unavailable)
		d.Spec.Strategy.RollingUpdate.MaxUnavailable = &v
	}
	for _, m := range mutate {
		m(d)
	}
	return d
}

func createDeployment(ctx context.Context, d *appsv1.Deployment) *appsv1.Deployment {
	out, err := cs.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	return out
}

func getDeployment(ctx context.Context, g Gomega, ns, name string) *appsv1.Deployment {
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	return d
}

// patchDeployment applies a JSON merge patch given as a Go value.
func patchDeployment(ctx context.Context, ns, name string, patch any) *appsv1.Deployment {
	data, err := json.Marshal(patch)
	Expect(err).NotTo(HaveOccurred())
	out, err := cs.AppsV1().Deployments(ns).Patch(ctx, name, types.MergePatchType, data, metav1.PatchOptions{})
	Expect(err).NotTo(HaveOccurred())
	return out
}

// setImage changes the template's container image: a new revision.
func setImage(ctx context.Context, ns, name, image string) *appsv1.Deployment {
	return patchDeployment(ctx, ns, name, map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
		"containers": []any{map[string]any{"name": "app", "image": image}},
	}}}})
}

// waitComplete waits until the Deployment's rollout of its current
// generation is complete, and returns it.
func waitComplete(ctx context.Context, ns, name string) *appsv1.Deployment {
	var d *appsv1.Deployment
	Eventually(func(g Gomega) {
		d = getDeployment(ctx, g, ns, name)
		g.Expect(deployment.Complete(d)).To(BeTrue(), func() string { return "rollout complete\n" + dump(ctx, ns) })
	}).WithContext(ctx).Should(Succeed())
	return d
}

// dump describes the namespace's Deployments, ReplicaSets and pods, for
// failure messages.
func dump(ctx context.Context, ns string) string {
	var b strings.Builder
	if ds, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, d := range ds.Items {
			fmt.Fprintf(&b, "deployment %s gen %d replicas %d paused %v annotations %v\n  status %+v\n", d.Name, d.Generation, *d.Spec.Replicas, d.Spec.Paused, d.Annotations, d.Status)
		}
	}
	if rss, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, rs := range rss.Items {
			owner := "-"
			if ref := metav1.GetControllerOf(&rs); ref != nil {
				owner = ref.Name
			}
			fmt.Fprintf(&b, "replicaset %s owner %s gen %d spec %d annotations %v\n  status %+v\n", rs.Name, owner, rs.Generation, *rs.Spec.Replicas, rs.Annotations, rs.Status)
		}
	}
	if pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, p := range pods.Items {
			ready := false
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady {
					ready = c.Status == corev1.ConditionTrue
				}
			}
			fmt.Fprintf(&b, "pod %s phase %s ready %v node %q deleting %v\n", p.Name, p.Status.Phase, ready, p.Spec.NodeName, p.DeletionTimestamp != nil)
		}
	}
	return b.String()
}

// replicaSets lists the namespace's ReplicaSets by name.
func replicaSets(ctx context.Context, g Gomega, ns string) map[string]*appsv1.ReplicaSet {
	list, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	out := map[string]*appsv1.ReplicaSet{}
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out
}

// newRSName is the name the controller gives the ReplicaSet of d's
// current template.
func newRSName(d *appsv1.Deployment) string {
	return d.Name + "-" + deployment.ComputeHash(&d.Spec.Template, d.Status.CollisionCount)
}

// watchInvariants starts an invariant checker for ns/name, stopped when
// the spec ends.
func watchInvariants(ctx context.Context, ns, name string, overlap bool) *invariant.Checker {
	c, err := invariant.Start(context.WithoutCancel(ctx), env.Config(), invariant.Options{
		Namespace: ns, Deployment: name, CheckOverlap: overlap, Logger: GinkgoLogr.WithName("invariant"),
	})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(c.Stop)
	return c
}

// unschedulable keeps a template's pods Pending forever: no node has the
// label.
func unschedulable(ctx context.Context, ns, name string) *appsv1.Deployment {
	return patchDeployment(ctx, ns, name, map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
		"nodeSelector": map[string]string{"example.com/nowhere": "true"},
	}}}})
}

func condition(d *appsv1.Deployment, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == t {
			return &d.Status.Conditions[i]
		}
	}
	return nil
}
