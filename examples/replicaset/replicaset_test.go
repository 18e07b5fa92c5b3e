package replicaset_test

import (
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/capstan-io/capstan/envtest/nodesim"
	"github.com/capstan-io/capstan/envtest/wiretap"
	"github.com/capstan-io/capstan/examples/replicaset"
)

// specTimeout bounds each spec, so that a hang fails with a progress report.
const specTimeout = 4 * time.Minute

var _ = Describe("the ReplicaSet controller", func() {
	var ns string

	BeforeEach(func(ctx SpecContext) {
		ns = newNamespace(ctx)
	})

	It("creates pods from the template and reports a converged status", func(ctx SpecContext) {
		startNodes(ctx, ns, nodesim.Options{})
		tap := wiretap.New()
		startController(ctx, tap.Wrap(env.Config()))
		rs := createRS(ctx, newRS(ns, "web", 3))

		Eventually(ctx, converged(ctx, ns, "web", 3)).Should(Succeed())
		Expect(tap.Count("create", "pods")).To(Equal(3))
		pods := controlledPods(ctx, Default, rs)
		for _, p := range pods {
			Expect(p.GenerateName).To(Equal("web-"))
			Expect(p.Name).To(HavePrefix("web-"))
			Expect(p.Labels).To(Equal(map[string]string{"app": "web", "tier": "front"}))
			Expect(p.Annotations).To(HaveKeyWithValue("example.com/note", "from the template"))
			Expect(p.OwnerReferences).To(ConsistOf(metav1.OwnerReference{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: rs.UID,
				Controller: new(true), BlockOwnerDeletion: new(true),
			}))
			Expect(p.Spec.Containers).To(HaveLen(1))
		}
		Eventually(ctx, func(g Gomega) {
			events, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			created := 0
			for _, e := range events.Items {
				if e.Reason == replicaset.EventSuccessfulCreate && e.InvolvedObject.UID == rs.UID && e.Source.Component == replicaset.EventSource {
					created += int(max(e.Count, 1))
				}
			}
			g.Expect(created).To(Equal(3))
		}).Should(Succeed())

		By("writing the status only when it changes")
		writes := func() int {
			return tap.Count("update", "replicasets/status") + tap.Count("patch", "replicasets/status")
		}
		Expect(tap.Count("update", "replicasets")).To(BeZero(), "the status is written through the status subresource only")
		settled := writes()
		// A no-op change wakes the controller: it must not write again.
		_, err := cs.AppsV1().ReplicaSets(ns).Patch(ctx, "web", types.MergePatchType, []byte(`{"metadata":{"annotations":{"touched":"yes"}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Consistently(ctx, writes).WithTimeout(time.Second).Should(Equal(settled))
	}, SpecTimeout(specTimeout))

	It("scales up and down, reporting terminating pods", func(ctx SpecContext) {
		// Deleted pods take 3s to stop, so terminatingReplicas can be seen.
		startNodes(ctx, ns, nodesim.Options{StopDelay: 3 * time.Second})
		startController(ctx, env.Config())
		createRS(ctx, newRS(ns, "web", 2))
		Eventually(ctx, converged(ctx, ns, "web", 2)).Should(Succeed())

		scale(ctx, ns, "web", 5)
		Eventually(ctx, converged(ctx, ns, "web", 5)).Should(Succeed())

		scale(ctx, ns, "web", 1)
		Eventually(ctx, func(g Gomega) {
			st := getRS(ctx, ns, "web").Status
			g.Expect(st.Replicas).To(BeEquivalentTo(1))
			g.Expect(st.TerminatingReplicas).To(HaveValue(BeEquivalentTo(4)))
		}).Should(Succeed())
		Eventually(ctx, converged(ctx, ns, "web", 1)).Should(Succeed())

		scale(ctx, ns, "web", 0)
		Eventually(ctx, converged(ctx, ns, "web", 0)).Should(Succeed())
	}, SpecTimeout(specTimeout))

	It("deletes unscheduled, then not ready, then cheaper pods first", func(ctx SpecContext) {
		// One node with room for 3 pods: of 5, 2 stay unscheduled. The
		// pods run but stay unready until their readiness gate is set.
		startNodes(ctx, ns, nodesim.Options{Nodes: []nodesim.NodeSpec{{
			Name: ns + "-small", Capacity: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("3")},
		}}})
		startController(ctx, env.Config())
		const gate = "example.com/warm"
		rs := createRS(ctx, newRS(ns, "web", 5, func(rs *appsv1.ReplicaSet) {
			rs.Spec.Template.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: gate}}
		}))

		var scheduled, unscheduled []string
		Eventually(ctx, func(g Gomega) {
			scheduled, unscheduled = nil, nil
			for _, p := range controlledPods(ctx, g, rs) {
				if p.Spec.NodeName == "" {
					unscheduled = append(unscheduled, p.Name)
				} else if p.Status.Phase == corev1.PodRunning {
					scheduled = append(scheduled, p.Name)
				}
			}
			g.Expect(scheduled).To(HaveLen(3))
			g.Expect(unscheduled).To(HaveLen(2))
		}).Should(Succeed())
		// Warm two of the running pods up.
		warm, cold := scheduled[:2], scheduled[2]
		for _, name := range warm {
			patch := []byte(`{"status":{"conditions":[{"type":"` + gate + `","status":"True"}]}}`)
			_, err := cs.CoreV1().Pods(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
			Expect(err).NotTo(HaveOccurred())
		}
		Eventually(ctx, func(g Gomega) {
			st := getRS(ctx, ns, "web").Status
			g.Expect(st.Replicas).To(BeEquivalentTo(5))
			g.Expect(st.ReadyReplicas).To(BeEquivalentTo(2))
		}).Should(Succeed())

		remaining := func(g Gomega) []string {
			var out []string
			for _, p := range controlledPods(ctx, g, rs) {
				if p.DeletionTimestamp == nil {
					out = append(out, p.Name)
				}
			}
			return out
		}
		By("scaling to 3: the unscheduled pods go")
		scale(ctx, ns, "web", 3)
		Eventually(ctx, remaining).Should(ConsistOf(scheduled))

		By("scaling to 2: the pod that is not ready goes")
		scale(ctx, ns, "web", 2)
		Eventually(ctx, remaining).Should(ConsistOf(warm))
		Expect(remaining(Default)).NotTo(ContainElement(cold))

		By("scaling to 1: the pod with the lower deletion cost goes")
		patch := []byte(`{"metadata":{"annotations":{"` + replicaset.PodDeletionCostAnnotation + `":"-100"}}}`)
		_, err := cs.CoreV1().Pods(ns).Patch(ctx, warm[1], types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		patch = []byte(`{"metadata":{"annotations":{"` + replicaset.PodDeletionCostAnnotation + `":"100"}}}`)
		_, err = cs.CoreV1().Pods(ns).Patch(ctx, warm[0], types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		scale(ctx, ns, "web", 1)
		Eventually(ctx, remaining).Should(ConsistOf(warm[0]))
		Eventually(ctx, converged(ctx, ns, "web", 1)).Should(Succeed())
	}, SpecTimeout(specTimeout))

	It("adopts matching orphans, never one being deleted, and releases pods that stop matching", func(ctx SpecContext) {
		startNodes(ctx, ns, nodesim.Options{})
		startController(ctx, env.Config())
		orphan := func(name string, finalizers ...string) *corev1.Pod {
			p, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "web", "tier": "front"}, Finalizers: finalizers},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
			}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			return p
		}
		adoptee := orphan("adoptee")
		doomed := orphan("doomed", "example.com/hold")
		DeferCleanup(func(ctx SpecContext) {
			_, err := cs.CoreV1().Pods(ns).Patch(ctx, doomed.Name, types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
			Expect(client(err)).To(Succeed())
		})
		Expect(cs.CoreV1().Pods(ns).Delete(ctx, doomed.Name, metav1.DeleteOptions{})).To(Succeed())
		Eventually(ctx, func(g Gomega) {
			p, err := cs.CoreV1().Pods(ns).Get(ctx, doomed.Name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.DeletionTimestamp).NotTo(BeNil())
		}).Should(Succeed())

		rs := createRS(ctx, newRS(ns, "web", 2))
		Eventually(ctx, converged(ctx, ns, "web", 2)).Should(Succeed())
		Expect(podNames(controlledPods(ctx, Default, rs))).To(ContainElement(adoptee.Name), "the orphan was adopted")
		p, err := cs.CoreV1().Pods(ns).Get(ctx, doomed.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(p.OwnerReferences).To(BeEmpty(), "a pod being deleted is never adopted")

		By("changing the adopted pod's labels so that the selector no longer matches")
		_, err = cs.CoreV1().Pods(ns).Patch(ctx, adoptee.Name, types.MergePatchType, []byte(`{"metadata":{"labels":{"app":"elsewhere"}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(ctx, func(g Gomega) {
			p, err := cs.CoreV1().Pods(ns).Get(ctx, adoptee.Name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.OwnerReferences).To(BeEmpty())
		}).Should(Succeed())
		Eventually(ctx, converged(ctx, ns, "web", 2)).Should(Succeed())
		Expect(podNames(controlledPods(ctx, Default, rs))).NotTo(ContainElement(adoptee.Name))
	}, SpecTimeout(specTimeout))

	It("reports pods available only minReadySeconds after they are ready", func(ctx SpecContext) {
		startNodes(ctx, ns, nodesim.Options{})
		startController(ctx, env.Config())
		const minReady = 4
		rs := createRS(ctx, newRS(ns, "web", 2, func(rs *appsv1.ReplicaSet) { rs.Spec.MinReadySeconds = minReady }))

		Eventually(ctx, func(g Gomega) {
			st := getRS(ctx, ns, "web").Status
			g.Expect(st.ReadyReplicas).To(BeEquivalentTo(2))
			g.Expect(st.AvailableReplicas).To(BeEquivalentTo(0))
		}).Should(Succeed())
		// Nothing happens to the pods from now on: only the controller's own
		// requeue can report them available.
		Eventually(ctx, converged(ctx, ns, "web", 2)).WithTimeout(time.Minute).Should(Succeed())
		for _, p := range controlledPods(ctx, Default, rs) {
			var readySince time.Time
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady {
					readySince = c.LastTransitionTime.Time
				}
			}
			Expect(time.Since(readySince)).To(BeNumerically(">=", minReady*time.Second), "pod %s reported available too early", p.Name)
		}
	}, SpecTimeout(specTimeout))

	It("reports ReplicaFailure while a quota refuses pods, and clears it when the quota is raised", func(ctx SpecContext) {
		startNodes(ctx, ns, nodesim.Options{})
		_, err := cs.CoreV1().ResourceQuotas(ns).Create(ctx, &corev1.ResourceQuota{
			ObjectMeta: metav1.ObjectMeta{Name: "pods"},
			Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("2")}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(ctx, func(g Gomega) {
			q, err := cs.CoreV1().ResourceQuotas(ns).Get(ctx, "pods", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(q.Status.Hard).To(HaveKey(corev1.ResourcePods))
		}).Should(Succeed())
		startController(ctx, env.Config())
		createRS(ctx, newRS(ns, "web", 4))

		Eventually(ctx, func(g Gomega) {
			rs := getRS(ctx, ns, "web")
			g.Expect(rs.Status.Replicas).To(BeEquivalentTo(2))
			var failure *appsv1.ReplicaSetCondition
			for i, c := range rs.Status.Conditions {
				if c.Type == appsv1.ReplicaSetReplicaFailure {
					failure = &rs.Status.Conditions[i]
				}
			}
			g.Expect(failure).NotTo(BeNil())
			g.Expect(failure.Status).To(Equal(corev1.ConditionTrue))
			g.Expect(failure.Reason).To(Equal(replicaset.ReasonFailedCreate))
			g.Expect(failure.Message).To(And(ContainSubstring("forbidden"), ContainSubstring("exceeded quota: pods")))
			g.Expect(strings.HasPrefix(failure.Message, "pods ")).To(BeTrue(), "the API server's message, as upstream: %q", failure.Message)
		}).Should(Succeed())

		By("raising the quota")
		_, err = cs.CoreV1().ResourceQuotas(ns).Patch(ctx, "pods", types.MergePatchType, []byte(`{"spec":{"hard":{"pods":"10"}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(ctx, converged(ctx, ns, "web", 4)).WithTimeout(2 * time.Minute).Should(Succeed())
		Eventually(ctx, func(g Gomega) {
			g.Expect(getRS(ctx, ns, "web").Status.Conditions).To(BeEmpty())
		}).Should(Succeed())
	}, SpecTimeout(specTimeout))

	It("leaves bad specs to the API server, which rejects them, and keeps running", func(ctx SpecContext) {
		startNodes(ctx, ns, nodesim.Options{})
		startController(ctx, env.Config())
		_, err := cs.AppsV1().ReplicaSets(ns).Create(ctx, newRS(ns, "bad", 1, func(rs *appsv1.ReplicaSet) {
			rs.Spec.Template.Labels = map[string]string{"app": "something-else"}
		}), metav1.CreateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
		Expect(err.Error()).To(ContainSubstring("`selector` does not match template `labels`"))

		createRS(ctx, newRS(ns, "good", 2))
		Eventually(ctx, converged(ctx, ns, "good", 2)).Should(Succeed())

		By("changing the template's labels of a running ReplicaSet so that they no longer match")
		rs := getRS(ctx, ns, "good")
		rs.Spec.Template.Labels = map[string]string{"app": "something-else"}
		_, err = cs.AppsV1().ReplicaSets(ns).Update(ctx, rs, metav1.UpdateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
		scale(ctx, ns, "good", 3)
		Eventually(ctx, converged(ctx, ns, "good", 3)).Should(Succeed())
	}, SpecTimeout(specTimeout))

	It("lets the garbage collector delete the pods of a deleted ReplicaSet", func(ctx SpecContext) {
		startNodes(ctx, ns, nodesim.Options{})
		startController(ctx, env.Config())
		rs := createRS(ctx, newRS(ns, "web", 3))
		Eventually(ctx, converged(ctx, ns, "web", 3)).Should(Succeed())

		Expect(cs.AppsV1().ReplicaSets(ns).Delete(ctx, "web", metav1.DeleteOptions{})).To(Succeed())
		Eventually(ctx, func(g Gomega) []corev1.Pod { return controlledPods(ctx, g, rs) }).Should(BeEmpty())
	}, SpecTimeout(specTimeout))

	It("starts a ReplicaSet re-created under the same name afresh", func(ctx SpecContext) {
		// With a lagging pod cache the first ReplicaSet's expectations are
		// still pending when its namesake appears; they must not hold it up
		// for their 5-minute timeout.
		startNodes(ctx, ns, nodesim.Options{})
		tap := wiretap.New()
		tap.SetWatchDelay("pods", 3*time.Second)
		startController(ctx, tap.Wrap(env.Config()))
		first := createRS(ctx, newRS(ns, "web", 5))
		Eventually(ctx, func() int { return tap.Count("create", "pods") }).Should(BeNumerically(">=", 1))
		Expect(cs.AppsV1().ReplicaSets(ns).Delete(ctx, "web", metav1.DeleteOptions{})).To(Succeed())
		second := createRS(ctx, newRS(ns, "web", 2))
		Expect(second.UID).NotTo(Equal(first.UID))
		Eventually(ctx, converged(ctx, ns, "web", 2)).Should(Succeed())
	}, SpecTimeout(specTimeout))

	It("never creates or deletes twice on a lagging pod cache (0 -> 20 -> 3 -> 20)", func(ctx SpecContext) {
		const lag = 2 * time.Second
		startNodes(ctx, ns, nodesim.Options{})
		tap := wiretap.New()
		tap.SetWatchDelay("pods", lag)
		startController(ctx, tap.Wrap(env.Config()))
		createRS(ctx, newRS(ns, "web", 0))
		Eventually(ctx, converged(ctx, ns, "web", 0)).Should(Succeed())

		counts := func() [2]int { return [2]int{tap.Count("create", "pods"), tap.Count("delete", "pods")} }
		step := func(replicas int32, creates, deletes int) {
			By("scaling to " + strconv.Itoa(int(replicas)))
			scale(ctx, ns, "web", replicas)
			Eventually(ctx, converged(ctx, ns, "web", replicas)).WithTimeout(time.Minute).Should(Succeed())
			Expect(counts()).To(Equal([2]int{creates, deletes}), "pod creates and deletes so far")
		}
		step(20, 20, 0)
		step(3, 20, 17)
		step(20, 37, 17)
		// A second create or delete would come from a decision on a cache
		// that lags by `lag`: give it that long to show.
		Consistently(ctx, counts).WithTimeout(lag + time.Second).Should(Equal([2]int{37, 17}))
	}, SpecTimeout(specTimeout))
})
