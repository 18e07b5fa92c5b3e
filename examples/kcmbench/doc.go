// Package kcmbench benchmarks kube-controller-manager's ReplicaSet and
// Deployment controllers against capstan's reference controllers
// (examples/replicaset and examples/deployment, run by
// examples/controllermanager) on the same control plane, with the same
// client-side rate limit. It holds no code, only BenchmarkControllers in its
// tests; it is opt-in, so `go test ./...` and `make bench` skip it.
//
// # What it measures
//
// Two scenarios, each timed from the benchmark's API call until its
// informer sees the outcome:
//
//   - replicaset500: a ReplicaSet of 500 replicas is created; metric
//     "pods-s" is the seconds until 500 Pods exist. No nodes run, so the
//     Pods stay Pending: the phase measures creation only.
//   - deployment100: a Deployment of 100 replicas (maxSurge and
//     maxUnavailable at their 25% defaults) is brought to complete, which is
//     not timed, then rolled to a new pod template; metric "rollout-s" is the
//     seconds from the update call until the rollout is complete (status
//     observedGeneration current, updated = replicas = available = 100).
//     envtest/nodesim binds the Pods and makes them Ready at once
//     (ReadyDelay 0) and completes their deletion at once.
//
// Each runs with client QPS/burst 20/30 (kube-controller-manager's defaults)
// and 1000/1000, for these subjects:
//
//   - impl=kcm: kube-controller-manager v1.37.2, started by envtest
//     (Options.BuiltinControllers) with --controllers=replicaset,deployment,
//     --kube-api-qps, --kube-api-burst and --concurrent-replicaset-syncs=5,
//     --concurrent-deployment-syncs=5 (its defaults, set explicitly); no
//     leader election.
//   - impl=capstan: controllermanager.Run in the benchmark's process with
//     the same QPS and Burst, DefaultConcurrentSyncs (5) workers per
//     controller, LeaderElect false.
//
// Every run has a control plane of its own (a fresh envtest: etcd,
// kube-apiserver and, for kcm, kube-controller-manager), so nothing is
// carried over from one run to the next. Before the timed phase a probe
// ReplicaSet of 0 replicas is created in another namespace and the
// benchmark waits until its status is written and the subject has gone
// quiet: both subjects start the timed phase warm, caches synced.
//
// Metric "writes" is the subject's API writes per op: from the timed call
// until the subject has made no write for 2 seconds, so trailing status
// updates and events count too. The breakdown by verb, resource and failed
// response code is logged beside each result, and for kcm the failed syncs
// its log shows, by cause ("stale cache": since v1.36 its ReplicaSet
// controller refuses to sync while its caches are older than its own last
// writes, and retries with backoff).
//
// # How writes are counted
//
// The API server writes an audit log (--audit-policy-file and
// --audit-log-path in a temp dir) with a policy that logs every create,
// update, patch, delete and deletecollection at Metadata level, without the
// RequestReceived stage, so each request is one line. A line counts when
// its userAgent starts with the subject's: "kube-controller-manager"
// (kube-controller-manager names each controller's client
// "kube-controller-manager/<version> ... /replicaset-controller") or
// "capstan-controller-manager" (what controllermanager sets), and its
// requestReceivedTimestamp is not before the timed call. The benchmark's
// own requests ("kcmbench") and the node simulator's ("capstan-nodesim")
// are not counted. Both subjects are counted by the same API server in the
// same way, whatever their client libraries.
//
// # Running it
//
//	go test -run '^$' -bench Controllers -benchtime 1x -count 3 -timeout 60m ./examples/kcmbench -args -kcmbench
//
// (or CAPSTAN_KCMBENCH=1 instead of -args -kcmbench), then compare the
// subjects with benchstat:
//
//	benchstat -col /impl out.txt
//
// Subjects are interleaved run by run: a result asked of a subject with
// none left over runs one round, every subject of the scenario and setting
// once, one after the other (in -kcmbench-impl order in the first round,
// reversed in the second, and so on), and keeps the others' results for
// their own benchmark lines. -count N thus runs N rounds per scenario and
// setting, each line one real run. Because a line's wall time is not its
// subject's, ns/op is suppressed; -benchtime must be a count (1x). Flags,
// after -args:
//
//   - -kcmbench-scale 0.1 multiplies the replica counts (replicaset50,
//     deployment10): a quick check that everything works.
//   - -kcmbench-impl chooses the subjects (default kcm,capstan); filtering with
//     -bench '.../impl=kcm' alone would still run them all and hide some.
//   - -kcmbench-timeout bounds each wait of a run (default 10m).
//
// # Caveats
//
//   - The client-side limits have the same shape: kube-controller-manager
//     gives each controller one client, so one token bucket of QPS/burst
//     for its requests, and controllermanager gives each capstan controller
//     one (reconcile.RateLimited). One difference remains: kcm's events go
//     through each controller's bucket, capstan's through the Manager's
//     event recorder, whose client has a bucket of its own.
//   - capstan runs in the benchmark's process, beside the benchmark's
//     informers and the node simulator; kube-controller-manager is a
//     process of its own. All share the machine with etcd and
//     kube-apiserver: run the benchmark on a quiet machine.
//   - Both use protobuf for built-in types.
package kcmbench
