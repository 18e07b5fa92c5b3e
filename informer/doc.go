// Package informer keeps local, indexed, eventually consistent caches of
// Kubernetes API objects and tells event handlers what changed. It is
// written with generics from the ground up: caches, listers, handlers and
// deltas are typed by the object (*corev1.Pod, *unstructured.Unstructured,
// *metav1.PartialObjectMetadata, or a CRD type), so no reader ever
// type-asserts, and a delete whose final state is unknown is a flag on the
// event, not a tombstone type to switch on.
//
// The flow of data:
//
//	ListerWatcher ─▶ Reflector ─▶ DeltaFIFO ─pop─▶ Indexer (the cache)
//	                                         └──▶ Handlers (one buffer and goroutine each)
//
// Guarantees:
//   - Every change the API server reports is applied to the cache, in the
//     server's order per object. A dropped watch resumes from the last
//     resourceVersion seen; when that is too old (410 Gone), the informer
//     relists and reports objects deleted meanwhile with finalStateUnknown.
//   - Per object, handlers see changes in order, exactly as client-go's
//     DeltaFIFO delivers them (checked by a differential test). Each handler
//     has its own unbounded buffer: a slow handler delays nobody else.
//   - A handler added late first gets every cached object.
//   - Errors back off (jittered, 800ms doubling to 30s); a resource the
//     server does not serve stops the informer with [ErrNotServed] rather
//     than retrying forever.
//   - Each object is stored once, without managedFields unless asked
//     ([Options.KeepManagedFields]); cache size and handler backlogs are
//     exported as Prometheus gauges.
//   - Every goroutine stops when Run's context ends; Run returns after they
//     have.
//
// Caveats:
//   - Objects returned by listers and passed to handlers are shared: never
//     modify them; DeepCopy first.
//   - The cache lags the server. After a write, wait for its
//     resourceVersion with [SharedInformer.WaitForResourceVersion] before
//     reading your own write from the cache.
//
// The shortest correct use, with a typed client:
//
//	cms := clientset.CoreV1().ConfigMaps("")
//	inf, err := informer.New(informer.NewListWatch[*corev1.ConfigMap](cms.List, cms.Watch, informer.ListWatchOptions{}), informer.Options[*corev1.ConfigMap]{})
//	if err != nil { ... }
//	inf.AddHandler(informer.HandlerFuncs[*corev1.ConfigMap]{
//		AddFunc: func(cm *corev1.ConfigMap, _ bool) { fmt.Println("added", cm.Name) },
//	}, informer.HandlerOptions{})
//	go inf.Run(ctx)
//	if err := inf.WaitForSync(ctx); err != nil { ... }
//	cm, ok := inf.Lister().Get("default", "settings")
//
// In a program with several consumers, get informers from a [Factory] so
// each kind and scope is watched and cached once. Tests can feed informers
// from the in-memory API server in package informertest.
//
// For large caches read less often than they change, a compact cache
// ([Options.Compact], or [FactoryOptions.CompactKinds] per kind) keeps
// each object in its encoding (protobuf for built-in types) and decodes it
// on read, for about half the memory; reads of objects an event just
// delivered are served decoded from a small cache of hot objects:
//
//	f, err := informer.NewFactory(informer.FactoryOptions{Config: cfg,
//		CompactKinds: []schema.GroupKind{{Kind: "ConfigMap"}, {Kind: "Secret"}}})
//
// A compact cache answers every read as the default one does (checked by
// differential tests); what a read of a cold object costs is a decode,
// about what a DeepCopy of the object costs.
package informer
