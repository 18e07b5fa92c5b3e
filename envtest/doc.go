// Package envtest runs a real control plane, etcd and kube-apiserver (and
// optionally kube-controller-manager), for tests: integration tests run
// against the real API server, never a mock.
//
// # Guarantees
//
//   - Hermetic binaries: kube-apiserver (KubernetesVersion) and etcd
//     (EtcdVersion) are taken from $CAPSTAN_ASSETS or $KUBEBUILDER_ASSETS when
//     set, else from the per-user cache (os.UserCacheDir()/capstan/envtest/
//     <version>), where they are built from the Go module proxy the first
//     time (about 4 minutes on 2 cores; later runs are instant). A file lock
//     makes parallel test binaries build once; a killed build leaves no half
//     binary. Nothing is downloaded from anywhere but the Go module proxy.
//   - Parallel-safe: every environment has its own free ports, temp dir,
//     certificate authority and etcd, so `go test ./...` may start many at
//     once, in one test binary or several.
//   - Real security: the API server serves TLS with a generated CA, checks
//     client certificates, and authorises with Node and RBAC. Config is an
//     admin (system:masters); UserConfig is an identity with no rights beyond
//     what RBAC objects grant, for RBAC tests.
//   - Nothing leaks: Stop ends every process it started (each in its own
//     process group) and removes the temp dir; on Linux the components are
//     also killed by the kernel if the test process dies without calling
//     Stop. A failed Start cleans up the same way and returns the tail of the
//     components' logs.
//
// # Use
//
// In a plain Go test:
//
//	func TestSomething(t *testing.T) {
//		env := envtest.StartForTest(t, envtest.Options{})
//		cs := kubernetes.NewForConfigOrDie(env.Config())
//		// ... act on the API server ...
//	}
//
// For a whole package, start once in TestMain with Start and Stop it before
// os.Exit. From a Ginkgo suite, Start in BeforeSuite and Stop in AfterSuite
// (see envtest/ginkgo_test.go for the shape scaffolded projects use).
//
// With controller-runtime's envtest, point KUBEBUILDER_ASSETS at the folder
// printed by `go run github.com/capstan-io/capstan/cmd/capstan envtest setup
// --print-path`.
//
// # Caveats
//
//   - The ServiceAccount admission plugin is disabled by default, as in
//     controller-runtime's envtest: without the service-account controller no
//     "default" ServiceAccount exists and every Pod would be refused.
//   - Without Options.BuiltinControllers nothing garbage-collects dependents
//     and deleted namespaces stay Terminating, as in any bare API server.
//   - envtest needs a Unix system (process groups and signals).
package envtest
