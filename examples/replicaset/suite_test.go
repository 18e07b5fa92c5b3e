package replicaset_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/capstan-io/capstan/envtest"
	"github.com/capstan-io/capstan/envtest/nodesim"
	"github.com/capstan-io/capstan/examples/replicaset"
	"github.com/capstan-io/capstan/reconcile"
)

// The suite shares one control plane (kube-apiserver, etcd and
// kube-controller-manager's garbage-collector, namespace and
// resource-quota controllers). Every spec works in a namespace of its own,
// with a node simulator and a controller of its own, both stopped when the
// spec ends; nothing mutable is shared between specs.
var (
	env *envtest.Environment
	cs  *kubernetes.Clientset
)

func TestReplicaSet(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "ReplicaSet controller suite")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	SetDefaultEventuallyTimeout(time.Minute)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	SetDefaultConsistentlyPollingInterval(50 * time.Millisecond)
	var err error
	env, err = envtest.Start(ctx, envtest.Options{
		BuiltinControllers: true,
		// The resource-quota controller fills in quotas' status, without
		// which the API server refuses every pod of their namespace.
		ControllerManagerFlags: map[string]string{"controllers": "garbagecollector,namespace,resourcequota"},
	})
	Expect(err).NotTo(HaveOccurred())
	cs, err = kubernetes.NewForConfig(env.Config())
	Expect(err).NotTo(HaveOccurred())
	// Building the binaries on first use takes minutes; later starts take
	// seconds.
}, NodeTimeout(20*time.Minute))

var _ = AfterSuite(func() {
	if env != nil {
		if CurrentSpecReport().Failed() {
			GinkgoWriter.Println(env.Logs(40))
		}
		Expect(env.Stop()).To(Succeed())
	}
})

// newNamespace creates a namespace for the current spec. When the spec
// ends, its ReplicaSets are deleted (so that no later spec's controller
// acts for them) and the namespace with them.
func newNamespace(ctx context.Context) string {
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "rs-"}}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) {
		Expect(cs.AppsV1().ReplicaSets(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})).To(Succeed())
		Expect(cs.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})).To(Succeed())
	}, NodeTimeout(30*time.Second))
	return ns.Name
}

// startNodes runs a node simulator for the pods of ns, on nodes named
// after ns, until the spec ends.
func startNodes(ctx context.Context, ns string, opts nodesim.Options) *nodesim.Simulator {
	opts.Namespace = ns
	if len(opts.Nodes) == 0 {
		opts.Nodes = []nodesim.NodeSpec{{Name: ns + "-a"}, {Name: ns + "-b"}}
	}
	opts.Logger = GinkgoLogr.WithName("nodesim")
	sim, err := nodesim.Start(ctx, env.Config(), opts)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) {
		go sim.Stop()
		select {
		case <-sim.Done():
		case <-ctx.Done():
			Fail("the node simulator did not stop")
		}
		for _, n := range opts.Nodes {
			err := cs.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{})
			Expect(client(err)).To(Succeed())
		}
	}, NodeTimeout(30*time.Second))
	return sim
}

// client ignores NotFound.
func client(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// startController runs a Manager with the ReplicaSet controller on cfg
// until the spec ends, and returns once its caches have synced.
func startController(ctx context.Context, cfg *rest.Config) {
	mgr, err := reconcile.NewManager(reconcile.ManagerOptions{Config: cfg, Logger: GinkgoLogr})
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
		Fail("the manager stopped: " + errString(err))
	case <-time.After(30 * time.Second):
		Fail("the manager did not sync within 30s")
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// newRS returns a ReplicaSet selecting app=<name>, whose template adds
// tier=front and runs one container.
func newRS(ns, name string, replicas int32, mutate ...func(*appsv1.ReplicaSet)) *appsv1.ReplicaSet {
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      map[string]string{"app": name, "tier": "front"},
					Annotations: map[string]string{"example.com/note": "from the template"},
				},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
			},
		},
	}
	for _, m := range mutate {
		m(rs)
	}
	return rs
}

func createRS(ctx context.Context, rs *appsv1.ReplicaSet) *appsv1.ReplicaSet {
	out, err := cs.AppsV1().ReplicaSets(rs.Namespace).Create(ctx, rs, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	return out
}

func getRS(ctx context.Context, ns, name string) *appsv1.ReplicaSet {
	rs, err := cs.AppsV1().ReplicaSets(ns).Get(ctx, name, metav1.GetOptions{})
	Expect(err).NotTo(HaveOccurred())
	return rs
}

// scale sets spec.replicas with a merge patch.
func scale(ctx context.Context, ns, name string, replicas int32) {
	patch := []byte(`{"spec":{"replicas":` + strconv.Itoa(int(replicas)) + `}}`)
	_, err := cs.AppsV1().ReplicaSets(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
	Expect(err).NotTo(HaveOccurred())
}

// converged asserts that the ReplicaSet ns/name has observed its spec and
// reports replicas pods, all ready and available, none terminating.
func converged(ctx context.Context, ns, name string, replicas int32) func(Gomega) {
	return func(g Gomega) {
		rs, err := cs.AppsV1().ReplicaSets(ns).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		st := rs.Status
		g.Expect(st.ObservedGeneration).To(Equal(rs.Generation), "observedGeneration")
		g.Expect(st.Replicas).To(Equal(replicas), "replicas")
		g.Expect(st.FullyLabeledReplicas).To(Equal(replicas), "fullyLabeledReplicas")
		g.Expect(st.ReadyReplicas).To(Equal(replicas), "readyReplicas")
		g.Expect(st.AvailableReplicas).To(Equal(replicas), "availableReplicas")
		g.Expect(st.TerminatingReplicas).To(HaveValue(BeZero()), "terminatingReplicas")
		g.Expect(controlledPods(ctx, g, rs)).To(HaveLen(int(replicas)), "pods controlled by the ReplicaSet")
	}
}

// controlledPods lists the pods of rs's namespace that rs controls.
func controlledPods(ctx context.Context, g Gomega, rs *appsv1.ReplicaSet) []corev1.Pod {
	pods, err := cs.CoreV1().Pods(rs.Namespace).List(ctx, metav1.ListOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	var out []corev1.Pod
	for _, p := range pods.Items {
		if metav1.IsControlledBy(&p, rs) {
			out = append(out, p)
		}
	}
	return out
}

func podNames(pods []corev1.Pod) []string {
	out := make([]string, len(pods))
	for i, p := range pods {
		out[i] = p.Name
	}
	return out
}
