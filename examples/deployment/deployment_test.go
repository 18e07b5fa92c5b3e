package deployment_test

import (
	"maps"
	"strconv"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/capstan-io/capstan/examples/deployment"
)

var _ = Describe("a new Deployment", func() {
	It("gets a ReplicaSet named <name>-<hash> at revision 1, pods, and a converged status", func(ctx SpecContext) {
		w := setUp(ctx)
		d := createDeployment(ctx, newDeployment(w.ns, "web", 3, "1", "0"))
		hash := deployment.ComputeHash(&d.Spec.Template, nil)
		rsName := "web-" + hash

		var rs *appsv1.ReplicaSet
		Eventually(func(g Gomega) {
			rss := replicaSets(ctx, g, w.ns)
			g.Expect(rss).To(HaveLen(1))
			g.Expect(rss).To(HaveKey(rsName))
			rs = rss[rsName]
		}).WithContext(ctx).Should(Succeed())
		Expect(rs.Labels).To(HaveKeyWithValue(appsv1.DefaultDeploymentUniqueLabelKey, hash))
		Expect(rs.Spec.Template.Labels).To(HaveKeyWithValue(appsv1.DefaultDeploymentUniqueLabelKey, hash))
		Expect(rs.Spec.Selector.MatchLabels).To(Equal(map[string]string{"app": "web", appsv1.DefaultDeploymentUniqueLabelKey: hash}))
		Expect(rs.Annotations).To(HaveKeyWithValue(deployment.RevisionAnnotation, "1"))
		Expect(rs.Annotations).To(HaveKeyWithValue(deployment.DesiredReplicasAnnotation, "3"))
		Expect(rs.Annotations).To(HaveKeyWithValue(deployment.MaxReplicasAnnotation, "4"))
		ref := metav1.GetControllerOf(rs)
		Expect(ref).NotTo(BeNil())
		Expect(ref.UID).To(Equal(d.UID))
		Expect(*ref.BlockOwnerDeletion).To(BeTrue())

		d = waitComplete(ctx, w.ns, "web")
		Expect(d.Annotations).To(HaveKeyWithValue(deployment.RevisionAnnotation, "1"))
		Eventually(func(g Gomega) {
			d := getDeployment(ctx, g, w.ns, "web")
			st := d.Status
			g.Expect(st.ObservedGeneration).To(Equal(d.Generation))
			g.Expect(st.Replicas).To(BeEquivalentTo(3))
			g.Expect(st.UpdatedReplicas).To(BeEquivalentTo(3))
			g.Expect(st.ReadyReplicas).To(BeEquivalentTo(3))
			g.Expect(st.AvailableReplicas).To(BeEquivalentTo(3))
			g.Expect(st.UnavailableReplicas).To(BeZero())
			g.Expect(st.TerminatingReplicas).To(HaveValue(BeZero()))
			g.Expect(st.CollisionCount).To(BeNil())
			avail := condition(d, appsv1.DeploymentAvailable)
			g.Expect(avail).NotTo(BeNil())
			g.Expect(avail.Status).To(Equal(corev1.ConditionTrue))
			g.Expect(avail.Reason).To(Equal("MinimumReplicasAvailable"))
			g.Expect(avail.Message).To(Equal("Deployment has minimum availability."))
			prog := condition(d, appsv1.DeploymentProgressing)
			g.Expect(prog).NotTo(BeNil())
			g.Expect(prog.Status).To(Equal(corev1.ConditionTrue))
			g.Expect(prog.Reason).To(Equal("NewReplicaSetAvailable"))
			g.Expect(prog.Message).To(Equal(`ReplicaSet "` + rsName + `" has successfully progressed.`))
		}).WithContext(ctx).Should(Succeed())

		pods, err := cs.CoreV1().Pods(w.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		Expect(err).NotTo(HaveOccurred())
		Expect(pods.Items).To(HaveLen(3))
		for _, p := range pods.Items {
			Expect(p.Labels).To(HaveKeyWithValue(appsv1.DefaultDeploymentUniqueLabelKey, hash))
			Expect(metav1.GetControllerOf(&p).Name).To(Equal(rsName))
		}
	})

	It("reports the creation, then the progress, in its Progressing condition", func(ctx SpecContext) {
		w := setUp(ctx)
		watch, err := cs.AppsV1().Deployments(w.ns).Watch(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(watch.Stop)
		var mu sync.Mutex
		seen := map[string]string{} // reason -> message of every Progressing condition written
		go func() {
			defer GinkgoRecover()
			for ev := range watch.ResultChan() {
				if d, ok := ev.Object.(*appsv1.Deployment); ok {
					if c := condition(d, appsv1.DeploymentProgressing); c != nil {
						mu.Lock()
						seen[c.Reason] = c.Message
						mu.Unlock()
					}
				}
			}
		}()
		// The pods never start: no node has the label.
		d := createDeployment(ctx, newDeployment(w.ns, "web", 2, "1", "0", func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.NodeSelector = map[string]string{"example.com/nowhere": "true"}
		}))
		rs := newRSName(d)
		Eventually(func(g Gomega) {
			d := getDeployment(ctx, g, w.ns, "web")
			prog := condition(d, appsv1.DeploymentProgressing)
			g.Expect(prog).NotTo(BeNil())
			g.Expect(prog.Status).To(Equal(corev1.ConditionTrue))
			g.Expect(prog.Reason).To(Equal("ReplicaSetUpdated"))
			g.Expect(prog.Message).To(Equal(`ReplicaSet "` + rs + `" is progressing.`))
			avail := condition(d, appsv1.DeploymentAvailable)
			g.Expect(avail).NotTo(BeNil())
			g.Expect(avail.Status).To(Equal(corev1.ConditionFalse))
			g.Expect(avail.Reason).To(Equal("MinimumReplicasUnavailable"))
			g.Expect(avail.Message).To(Equal("Deployment does not have minimum availability."))
			g.Expect(d.Status.Replicas).To(BeEquivalentTo(2))
			g.Expect(d.Status.UnavailableReplicas).To(BeEquivalentTo(2))
		}).WithContext(ctx).Should(Succeed())
		Eventually(func() map[string]string {
			mu.Lock()
			defer mu.Unlock()
			return maps.Clone(seen)
		}).WithContext(ctx).Should(HaveKeyWithValue("NewReplicaSetCreated", `Created new replica set "`+rs+`"`))
	})
})

var _ = Describe("a rolling update", func() {
	DescribeTable("replaces every pod within maxSurge and maxUnavailable",
		func(ctx SpecContext, replicas int32, surge, unavailable string, wantSurge, wantUnavailable int32) {
			w := setUp(ctx)
			createDeployment(ctx, newDeployment(w.ns, "web", replicas, surge, unavailable))
			before := waitComplete(ctx, w.ns, "web")
			oldRS := newRSName(before)

			s, u, err := deployment.ResolveFenceposts(before.Spec.Strategy.RollingUpdate.MaxSurge, before.Spec.Strategy.RollingUpdate.MaxUnavailable, replicas)
			Expect(err).NotTo(HaveOccurred())
			Expect([]int32{s, u}).To(Equal([]int32{wantSurge, wantUnavailable}), "fenceposts")

			check := watchInvariants(ctx, w.ns, "web", false)
			setImage(ctx, w.ns, "web", "registry.example/app:v2")
			after := waitComplete(ctx, w.ns, "web")
			newRS := newRSName(after)
			Expect(newRS).NotTo(Equal(oldRS))

			Expect(check.Violations()).To(BeEmpty())
			obs := check.Observed()
			GinkgoWriter.Printf("observed: %+v\n", obs)
			Expect(obs.MaxPods).To(BeNumerically("<=", int(replicas+wantSurge)))
			if wantSurge > 0 && wantUnavailable == 0 {
				// No old pod may go before a new one is available: the
				// first surge pods run beside every old one.
				Expect(obs.MaxPods).To(Equal(int(replicas+wantSurge)), "the rollout surged")
			}
			Expect(obs.MinAvailable).To(BeNumerically(">=", int(replicas-wantUnavailable)))

			Expect(after.Annotations).To(HaveKeyWithValue(deployment.RevisionAnnotation, "2"))
			Eventually(func(g Gomega) {
				rss := replicaSets(ctx, g, w.ns)
				g.Expect(rss).To(HaveLen(2))
				g.Expect(*rss[oldRS].Spec.Replicas).To(BeZero())
				g.Expect(rss[oldRS].Annotations).To(HaveKeyWithValue(deployment.RevisionAnnotation, "1"))
				g.Expect(*rss[newRS].Spec.Replicas).To(Equal(replicas))
				g.Expect(rss[newRS].Annotations).To(HaveKeyWithValue(deployment.RevisionAnnotation, "2"))
				d := getDeployment(ctx, g, w.ns, "web")
				g.Expect(condition(d, appsv1.DeploymentProgressing).Message).To(Equal(`ReplicaSet "` + newRS + `" has successfully progressed.`))
			}).WithContext(ctx).Should(Succeed())
		},
		Entry("integers: surge 1, unavailable 1", int32(4), "1", "1", int32(1), int32(1)),
		Entry("surge only: surge 2, unavailable 0", int32(3), "2", "0", int32(2), int32(0)),
		Entry("unavailable only: surge 0, unavailable 2", int32(4), "0", "2", int32(0), int32(2)),
		Entry("percentages round surge up and unavailable down: 50% and 20% of 6", int32(6), "50%", "20%", int32(3), int32(1)),
		Entry("API defaults: 25% and 25% of 5", int32(5), "", "", int32(2), int32(1)),
	)
})

var _ = Describe("a Recreate Deployment", func() {
	It("stops every old pod before the first new one starts", func(ctx SpecContext) {
		w := setUp(ctx)
		createDeployment(ctx, newDeployment(w.ns, "web", 3, "", "", func(d *appsv1.Deployment) {
			d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
		}))
		before := waitComplete(ctx, w.ns, "web")

		check := watchInvariants(ctx, w.ns, "web", true)
		setImage(ctx, w.ns, "web", "registry.example/app:v2")
		after := waitComplete(ctx, w.ns, "web")
		Expect(newRSName(after)).NotTo(Equal(newRSName(before)))
		Expect(check.Violations()).To(BeEmpty())
		Expect(check.Observed().MaxPods).To(Equal(3))
		Eventually(func(g Gomega) {
			rss := replicaSets(ctx, g, w.ns)
			g.Expect(rss).To(HaveLen(2))
			g.Expect(*rss[newRSName(before)].Spec.Replicas).To(BeZero())
			g.Expect(rss[newRSName(after)].Annotations).To(HaveKeyWithValue(deployment.RevisionAnnotation, "2"))
		}).WithContext(ctx).Should(Succeed())
	})
})

var _ = Describe("a rollback", func() {
	It("restoring an earlier template reuses its ReplicaSet with a new revision", func(ctx SpecContext) {
		w := setUp(ctx)
		createDeployment(ctx, newDeployment(w.ns, "web", 3, "1", "1"))
		v1 := newRSName(waitComplete(ctx, w.ns, "web"))
		setImage(ctx, w.ns, "web", "registry.example/app:v2")
		v2 := newRSName(waitComplete(ctx, w.ns, "web"))

		check := watchInvariants(ctx, w.ns, "web", false)
		setImage(ctx, w.ns, "web", "registry.example/app:v1")
		d := waitComplete(ctx, w.ns, "web")
		Expect(newRSName(d)).To(Equal(v1))
		Expect(check.Violations()).To(BeEmpty())
		Eventually(func(g Gomega) {
			rss := replicaSets(ctx, g, w.ns)
			g.Expect(rss).To(HaveLen(2), "no third ReplicaSet")
			g.Expect(rss[v1].Annotations).To(HaveKeyWithValue(deployment.RevisionAnnotation, "3"))
			g.Expect(rss[v1].Annotations).To(HaveKeyWithValue(deployment.RevisionHistoryAnnotation, "1"))
			g.Expect(*rss[v1].Spec.Replicas).To(BeEquivalentTo(3))
			g.Expect(*rss[v2].Spec.Replicas).To(BeZero())
			g.Expect(getDeployment(ctx, g, w.ns, "web").Annotations).To(HaveKeyWithValue(deployment.RevisionAnnotation, "3"))
		}).WithContext(ctx).Should(Succeed())
	})

	It("follows the deprecated rollbackTo annotation to the previous revision", func(ctx SpecContext) {
		w := setUp(ctx)
		createDeployment(ctx, newDeployment(w.ns, "web", 2, "1", "0", func(d *appsv1.Deployment) {
			d.Annotations = map[string]string{"kubernetes.io/change-cause": "v1"}
		}))
		v1 := newRSName(waitComplete(ctx, w.ns, "web"))
		// One change of template and change-cause, as kubectl makes it.
		patchDeployment(ctx, w.ns, "web", map[string]any{
			"metadata": map[string]any{"annotations": map[string]any{"kubernetes.io/change-cause": "v2"}},
			"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
				"containers": []any{map[string]any{"name": "app", "image": "registry.example/app:v2"}},
			}}},
		})
		waitComplete(ctx, w.ns, "web")

		check := watchInvariants(ctx, w.ns, "web", false)
		patchDeployment(ctx, w.ns, "web", map[string]any{"metadata": map[string]any{"annotations": map[string]any{appsv1.DeprecatedRollbackTo: "0"}}})
		Eventually(func(g Gomega) {
			d := getDeployment(ctx, g, w.ns, "web")
			g.Expect(d.Annotations).NotTo(HaveKey(appsv1.DeprecatedRollbackTo))
			g.Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal("registry.example/app:v1"))
			g.Expect(d.Annotations).To(HaveKeyWithValue("kubernetes.io/change-cause", "v1"))
		}).WithContext(ctx).Should(Succeed())
		d := waitComplete(ctx, w.ns, "web")
		Expect(newRSName(d)).To(Equal(v1))
		Expect(check.Violations()).To(BeEmpty())
	})
})

var _ = Describe("revisionHistoryLimit", func() {
	It("deletes the oldest ReplicaSets beyond the limit once a rollout completes", func(ctx SpecContext) {
		w := setUp(ctx)
		createDeployment(ctx, newDeployment(w.ns, "web", 2, "1", "0", func(d *appsv1.Deployment) {
			limit := int32(1)
			d.Spec.RevisionHistoryLimit = &limit
		}))
		names := []string{newRSName(waitComplete(ctx, w.ns, "web"))}
		for i := 2; i <= 4; i++ {
			setImage(ctx, w.ns, "web", "registry.example/app:v"+strconv.Itoa(i))
			names = append(names, newRSName(waitComplete(ctx, w.ns, "web")))
		}
		Eventually(func(g Gomega) {
			rss := replicaSets(ctx, g, w.ns)
			g.Expect(rss).To(HaveLen(2))
			g.Expect(rss).To(HaveKey(names[3]), "the current ReplicaSet")
			g.Expect(rss).To(HaveKey(names[2]), "the previous one, within the limit")
			g.Expect(rss[names[3]].Annotations).To(HaveKeyWithValue(deployment.RevisionAnnotation, "4"))
		}).WithContext(ctx).Should(Succeed())
	})
})

var _ = Describe("a paused Deployment", func() {
	It("does not roll out, still scales, and rolls out once resumed", func(ctx SpecContext) {
		w := setUp(ctx)
		createDeployment(ctx, newDeployment(w.ns, "web", 2, "1", "0"))
		v1 := newRSName(waitComplete(ctx, w.ns, "web"))

		patchDeployment(ctx, w.ns, "web", map[string]any{"spec": map[string]any{"paused": true}})
		Eventually(func(g Gomega) {
			d := getDeployment(ctx, g, w.ns, "web")
			prog := condition(d, appsv1.DeploymentProgressing)
			g.Expect(prog.Status).To(Equal(corev1.ConditionUnknown))
			g.Expect(prog.Reason).To(Equal("DeploymentPaused"))
			g.Expect(prog.Message).To(Equal("Deployment is paused"))
		}).WithContext(ctx).Should(Succeed())

		setImage(ctx, w.ns, "web", "registry.example/app:v2")
		patchDeployment(ctx, w.ns, "web", map[string]any{"spec": map[string]any{"replicas": 4}})
		Eventually(func(g Gomega) {
			d := getDeployment(ctx, g, w.ns, "web")
			g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
			g.Expect(d.Status.Replicas).To(BeEquivalentTo(4))
			g.Expect(d.Status.AvailableReplicas).To(BeEquivalentTo(4))
			g.Expect(d.Status.UpdatedReplicas).To(BeZero(), "no pod of the new template")
		}).WithContext(ctx).Should(Succeed())
		Consistently(func(g Gomega) {
			rss := replicaSets(ctx, g, w.ns)
			g.Expect(rss).To(HaveLen(1))
			g.Expect(*rss[v1].Spec.Replicas).To(BeEquivalentTo(4))
		}).WithContext(ctx).WithTimeout(time.Second).Should(Succeed())

		check := watchInvariants(ctx, w.ns, "web", false)
		patchDeployment(ctx, w.ns, "web", map[string]any{"spec": map[string]any{"paused": false}})
		d := waitComplete(ctx, w.ns, "web")
		Expect(newRSName(d)).NotTo(Equal(v1))
		Expect(check.Violations()).To(BeEmpty())
		Expect(d.Status.Replicas).To(BeEquivalentTo(4))
		Expect(condition(d, appsv1.DeploymentProgressing).Reason).To(Equal("NewReplicaSetAvailable"))
	})
})

var _ = Describe("scaling in the middle of a rollout", func() {
	It("shares the new replicas among the ReplicaSets in proportion", func(ctx SpecContext) {
		w := setUp(ctx)
		createDeployment(ctx, newDeployment(w.ns, "web", 10, "3", "2"))
		v1 := newRSName(waitComplete(ctx, w.ns, "web"))

		check := watchInvariants(ctx, w.ns, "web", false)
		// The new pods never start: the rollout stops once the old
		// ReplicaSet is down to 8 (10 - maxUnavailable) and the new one is
		// at 5 (10 + maxSurge - 8).
		d := unschedulable(ctx, w.ns, "web")
		v2 := newRSName(d)
		Eventually(func(g Gomega) {
			rss := replicaSets(ctx, g, w.ns)
			g.Expect(rss).To(HaveLen(2))
			g.Expect(*rss[v1].Spec.Replicas).To(BeEquivalentTo(8))
			g.Expect(*rss[v2].Spec.Replicas).To(BeEquivalentTo(5))
		}).WithContext(ctx).Should(Succeed())
		Consistently(func(g Gomega) {
			rss := replicaSets(ctx, g, w.ns)
			g.Expect(*rss[v1].Spec.Replicas).To(BeEquivalentTo(8))
			g.Expect(*rss[v2].Spec.Replicas).To(BeEquivalentTo(5))
		}).WithContext(ctx).WithTimeout(time.Second).Should(Succeed())

		// 10 -> 20: the 10 replicas the new maximum (23) adds over the old
		// (13) go 8*23/13-8 = 6 to the old ReplicaSet and the remaining 4 to
		// the new one, as kcm shares them.
		patchDeployment(ctx, w.ns, "web", map[string]any{"spec": map[string]any{"replicas": 20}})
		Eventually(func(g Gomega) {
			rss := replicaSets(ctx, g, w.ns)
			g.Expect(*rss[v1].Spec.Replicas).To(BeEquivalentTo(14))
			g.Expect(*rss[v2].Spec.Replicas).To(BeEquivalentTo(9))
			for _, rs := range []*appsv1.ReplicaSet{rss[v1], rss[v2]} {
				g.Expect(rs.Annotations).To(HaveKeyWithValue(deployment.DesiredReplicasAnnotation, "20"))
				g.Expect(rs.Annotations).To(HaveKeyWithValue(deployment.MaxReplicasAnnotation, "23"))
			}
		}).WithContext(ctx).Should(Succeed())

		// 20 -> 5: 15 of the 23 go, largest (and oldest) first:
		// round(14*8/23)-14 = -9 from the old one, round(9*8/23)-9 = -6
		// from the new (5 and 3). The rollout then goes on within the new
		// bounds (maxUnavailable 2): the old one down to 3, the new one up
		// to 5, where it stops again.
		patchDeployment(ctx, w.ns, "web", map[string]any{"spec": map[string]any{"replicas": 5}})
		Eventually(func(g Gomega) {
			rss := replicaSets(ctx, g, w.ns)
			g.Expect(*rss[v1].Spec.Replicas).To(BeEquivalentTo(3))
			g.Expect(*rss[v2].Spec.Replicas).To(BeEquivalentTo(5))
		}).WithContext(ctx).Should(Succeed())
		Expect(check.Violations()).To(BeEmpty())
	})
})

var _ = Describe("a rollout that makes no progress", func() {
	It("is reported as ProgressDeadlineExceeded after progressDeadlineSeconds", func(ctx SpecContext) {
		w := setUp(ctx)
		createDeployment(ctx, newDeployment(w.ns, "web", 2, "1", "0", func(d *appsv1.Deployment) {
			deadline := int32(3)
			d.Spec.ProgressDeadlineSeconds = &deadline
		}))
		waitComplete(ctx, w.ns, "web")
		check := watchInvariants(ctx, w.ns, "web", false)
		d := unschedulable(ctx, w.ns, "web")
		rs := newRSName(d)
		Eventually(func(g Gomega) {
			d := getDeployment(ctx, g, w.ns, "web")
			prog := condition(d, appsv1.DeploymentProgressing)
			g.Expect(prog).NotTo(BeNil())
			g.Expect(prog.Status).To(Equal(corev1.ConditionFalse))
			g.Expect(prog.Reason).To(Equal("ProgressDeadlineExceeded"))
			g.Expect(prog.Message).To(Equal(`ReplicaSet "` + rs + `" has timed out progressing.`))
			avail := condition(d, appsv1.DeploymentAvailable)
			g.Expect(avail.Status).To(Equal(corev1.ConditionTrue), "the old pods still serve")
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		Expect(check.Violations()).To(BeEmpty())
	})
})

var _ = Describe("ReplicaSet ownership", func() {
	It("adopts a matching orphan ReplicaSet running its template instead of creating one", func(ctx SpecContext) {
		w := setUp(ctx)
		// The Deployment's template as the API server defaults it, to
		// build an orphan with the same template.
		probe := newDeployment(w.ns, "probe", 1, "1", "0", func(d *appsv1.Deployment) { d.Spec.Paused = true })
		probe = createDeployment(ctx, probe)
		template := probe.Spec.Template.DeepCopy()
		template.Labels = map[string]string{"app": "web", appsv1.DefaultDeploymentUniqueLabelKey: "orphan"}
		replicas := int32(2)
		orphan := &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "web-orphan", Labels: template.Labels},
			Spec: appsv1.ReplicaSetSpec{
				Replicas: &replicas,
				Selector: &metav1.LabelSelector{MatchLabels: template.Labels},
				Template: *template,
			},
		}
		_, err := cs.AppsV1().ReplicaSets(w.ns).Create(ctx, orphan, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			rs := replicaSets(ctx, g, w.ns)["web-orphan"]
			g.Expect(rs.Status.AvailableReplicas).To(BeEquivalentTo(2))
		}).WithContext(ctx).Should(Succeed())

		d := createDeployment(ctx, newDeployment(w.ns, "web", 2, "1", "0"))
		d = waitComplete(ctx, w.ns, "web")
		Eventually(func(g Gomega) {
			rss := replicaSets(ctx, g, w.ns)
			g.Expect(rss).To(HaveLen(1), "the orphan is the new ReplicaSet: no other is created")
			rs := rss["web-orphan"]
			ref := metav1.GetControllerOf(rs)
			g.Expect(ref).NotTo(BeNil())
			g.Expect(ref.UID).To(Equal(d.UID))
			g.Expect(rs.Annotations).To(HaveKeyWithValue(deployment.RevisionAnnotation, "1"))
		}).WithContext(ctx).Should(Succeed())
	})

	It("releases a ReplicaSet its selector no longer matches", func(ctx SpecContext) {
		w := setUp(ctx)
		createDeployment(ctx, newDeployment(w.ns, "web", 1, "1", "0"))
		rsName := newRSName(waitComplete(ctx, w.ns, "web"))
		_, err := cs.AppsV1().ReplicaSets(w.ns).Patch(ctx, rsName, "application/merge-patch+json",
			[]byte(`{"metadata":{"labels":{"app":"elsewhere"}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			rs := replicaSets(ctx, g, w.ns)[rsName]
			g.Expect(metav1.GetControllerOf(rs)).To(BeNil())
		}).WithContext(ctx).Should(Succeed())
		// A new ReplicaSet takes over the template (same hash: the name is
		// taken, a collision).
		Eventually(func(g Gomega) {
			d := getDeployment(ctx, g, w.ns, "web")
			g.Expect(d.Status.CollisionCount).To(HaveValue(BeEquivalentTo(1)))
			g.Expect(deployment.Complete(d)).To(BeTrue())
			g.Expect(replicaSets(ctx, g, w.ns)).To(HaveKey(newRSName(d)))
		}).WithContext(ctx).Should(Succeed())
	})
})

var _ = Describe("a hash collision", func() {
	It("raises collisionCount and names the ReplicaSet with the next hash", func(ctx SpecContext) {
		w := setUp(ctx)
		// Paused: the controller creates no ReplicaSet, so the name can be
		// taken first by a foreign ReplicaSet with another template.
		d := createDeployment(ctx, newDeployment(w.ns, "web", 2, "1", "0", func(d *appsv1.Deployment) { d.Spec.Paused = true }))
		taken := newRSName(d)
		zero := int32(0)
		foreign := &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: taken},
			Spec: appsv1.ReplicaSetSpec{
				Replicas: &zero,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "foreign"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "foreign"}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "registry.example/x:1"}}},
				},
			},
		}
		_, err := cs.AppsV1().ReplicaSets(w.ns).Create(ctx, foreign, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		patchDeployment(ctx, w.ns, "web", map[string]any{"spec": map[string]any{"paused": false}})
		d = waitComplete(ctx, w.ns, "web")
		Expect(d.Status.CollisionCount).To(HaveValue(BeEquivalentTo(1)))
		one := int32(1)
		want := "web-" + deployment.ComputeHash(&d.Spec.Template, &one)
		Expect(newRSName(d)).To(Equal(want))
		Eventually(func(g Gomega) {
			rss := replicaSets(ctx, g, w.ns)
			g.Expect(rss).To(HaveLen(2))
			g.Expect(metav1.GetControllerOf(rss[taken])).To(BeNil(), "the foreign ReplicaSet is left alone")
			g.Expect(*rss[want].Spec.Replicas).To(BeEquivalentTo(2))
		}).WithContext(ctx).Should(Succeed())
	})
})

var _ = Describe("deleting a Deployment", func() {
	It("leaves its ReplicaSets and pods to the garbage collector", func(ctx SpecContext) {
		w := setUp(ctx)
		createDeployment(ctx, newDeployment(w.ns, "web", 2, "1", "0"))
		waitComplete(ctx, w.ns, "web")
		Expect(cs.AppsV1().Deployments(w.ns).Delete(ctx, "web", metav1.DeleteOptions{})).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(replicaSets(ctx, g, w.ns)).To(BeEmpty())
			pods, err := cs.CoreV1().Pods(w.ns).List(ctx, metav1.ListOptions{LabelSelector: labels.Set{"app": "web"}.String()})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pods.Items).To(BeEmpty())
		}).WithContext(ctx).Should(Succeed())
	})
})
