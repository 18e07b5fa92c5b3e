package ginkgosuite_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// envtestStartTimeout covers a start once the binaries are built (make test
// builds them before any test binary runs).
const envtestStartTimeout = 2 * time.Minute

var _ = Describe("the envtest API server", func() {
	var ns string

	BeforeEach(func(ctx SpecContext) {
		created, err := clientset.CoreV1().Namespaces().Create(ctx,
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "spec-"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		ns = created.Name
	})

	It("stores and returns a ConfigMap", func(ctx SpecContext) {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: ns},
			Data:       map[string]string{"mode": "fast"},
		}
		_, err := clientset.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		got, err := clientset.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Data).To(HaveKeyWithValue("mode", "fast"))
	})

	It("refuses a second object with the same name", func(ctx SpecContext) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "once", Namespace: ns}}
		_, err := clientset.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = clientset.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
		Expect(apierrors.IsAlreadyExists(err)).To(BeTrue(), "got %v", err)
	})

	It("validates objects like a real cluster", func(ctx SpecContext) {
		bad := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "Not_A_DNS_Name", Namespace: ns}}
		_, err := clientset.CoreV1().ConfigMaps(ns).Create(ctx, bad, metav1.CreateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	})
})
