// Package ginkgosuite is a sample Ginkgo v2 + Gomega suite on envtest, in the
// shape scaffolded operator projects use: the control plane starts once in
// BeforeSuite and stops in AfterSuite; specs assert the state of the world.
// It holds only tests.
package ginkgosuite
