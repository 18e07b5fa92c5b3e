// Package capstan is a framework for building Kubernetes controllers and
// operators: faster and leaner than client-go's machinery and
// controller-runtime, and exactly as correct. This root package holds no code;
// it is the map.
//
// # The flow of data
//
//	API server ──list/watch──▶ Reflector ──▶ DeltaFIFO ──pop──▶ Indexer (shared cache)
//	                                               └──▶ event handlers (one buffered queue each)
//	                                                        └──▶ map to Request ──▶ workqueue
//	workqueue (dedup, rate limit, delay, priority) ──▶ N workers ──▶ Reconciler ──▶ API server writes
//	Lease leader election gates the workers; one Manager owns all of it.
//
// # Packages
//
//   - workqueue: a generic queue with deduplication, per-item serialisation,
//     delays, rate limiting and priorities whose waits are bounded (no
//     starvation of a cold-start backlog).
//   - informer: typed list/watch caches: Reflector, DeltaFIFO, indexed store,
//     shared informers with one buffer per handler, and a Factory.
//   - leaderelection: a Lease elector that measures expiry on the local
//     monotonic clock and fences writes once leadership is lost.
//   - reconcile: Request, Result, Reconciler, Controller, the builder and the
//     Manager (cached client, metrics, health, leader election).
//   - crd: CRDs, DeepCopy and RBAC generated from Go types with
//     kubebuilder-compatible markers; Install waits for Established.
//   - envtest: a real etcd and kube-apiserver (optionally
//     kube-controller-manager) for tests, built from the Go module proxy.
//   - cmd/capstan: the command-line tool (envtest setup and run, scaffolding,
//     generation, the demo).
//
// What users must not import lives under internal/.
package capstan
