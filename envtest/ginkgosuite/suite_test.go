package ginkgosuite_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/kubernetes"

	"github.com/capstan-io/capstan/envtest"
)

var (
	env       *envtest.Environment
	clientset *kubernetes.Clientset
)

func TestGinkgoSuite(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "envtest Ginkgo sample suite")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	var err error
	env, err = envtest.Start(ctx, envtest.Options{})
	Expect(err).NotTo(HaveOccurred())
	clientset, err = kubernetes.NewForConfig(env.Config())
	Expect(err).NotTo(HaveOccurred())
}, NodeTimeout(envtestStartTimeout))

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})
