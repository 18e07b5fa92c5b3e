// Package crd generates Kubernetes CustomResourceDefinitions, DeepCopy
// methods and RBAC roles from Go API types annotated with kubebuilder
// markers, and installs CRDs into a cluster. It is a drop-in replacement for
// controller-gen: the same markers, the same CRDs.
//
// Guarantees:
//   - Generate writes apiextensions.k8s.io/v1 CRDs whose schemas are
//     structural OpenAPI v3, with descriptions from doc comments; for the
//     markers and Go shapes controller-gen v0.23.0 supports, the CRDs are
//     the same parsed trees as controller-gen's (the tests check this).
//   - A kind is a struct embedding metav1.TypeMeta and metav1.ObjectMeta in
//     a package with +groupName; its versions (one package each, named by
//     the package or +versionName) are merged into one CRD with exactly one
//     storage version.
//   - Bad input is an error naming the type, the field and file:line, and
//     nothing is written: floats without Options.AllowDangerousTypes, map
//     keys that are not strings, channels, functions, interfaces, unknown or
//     misplaced kubebuilder markers, conflicting markers.
//   - Where controller-gen quietly writes a CRD the API server refuses or a
//     wrong value, capstan refuses with an error instead: a kind in a
//     package without +groupName, +kubebuilder:skipversion on every version
//     of a kind, recursive types (controller-gen writes an empty schema),
//     two storage versions, integer bounds that float64 cannot hold exactly.
//   - Install creates or updates CRDs and returns once each is Established.
//
// The shortest use:
//
//	crds, err := crd.Generate(ctx, crd.Options{Paths: []string{"./api/..."}})
//	if err != nil {
//		return err // every problem, with file:line
//	}
//	err = crd.WriteCRDs("config/crd/bases", crds)
//
// RunGenerate parses controller-gen's command line (crd, object, rbac,
// paths=, output:...) so that a Makefile switches by replacing the binary.
package crd
