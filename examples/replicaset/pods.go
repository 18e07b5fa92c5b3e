package replicaset

import (
	"errors"
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
)

// errNoLabels refuses to create a pod without labels: no selector could
// ever claim it, and the ReplicaSet would create pods forever.
var errNoLabels = errors.New("unable to create pods, no labels")

// gvk is the kind this controller owns pods for.
var gvk = appsv1.SchemeGroupVersion.WithKind("ReplicaSet")

// PodFromTemplate returns the pod a controller creates from template for
// its owner, as kube-controller-manager builds it: the template's labels,
// annotations, finalizers and spec (copied), GenerateName "<owner name>-"
// (just "<owner name>" if the dash would make it too long), and ref, if
// not nil, as its only owner reference. The namespace is left to the
// caller.
func PodFromTemplate(template *corev1.PodTemplateSpec, ownerName string, ref *metav1.OwnerReference) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Labels:       maps.Clone(template.Labels),
			Annotations:  maps.Clone(template.Annotations),
			Finalizers:   slices.Clone(template.Finalizers),
			GenerateName: podNamePrefix(ownerName),
		},
		Spec: *template.Spec.DeepCopy(),
	}
	if ref != nil {
		pod.OwnerReferences = []metav1.OwnerReference{*ref}
	}
	return pod
}

// podNamePrefix is "<name>-" when that, completed by the server's random
// suffix, is still a valid pod name.
func podNamePrefix(name string) string {
	prefix := name + "-"
	// The server appends 5 characters, and truncates the prefix to keep
	// the name within 253: what matters is that the prefix, with its dash
	// masked, is a DNS subdomain.
	if len(validation.IsDNS1123Subdomain(name+"a")) != 0 {
		return name
	}
	return prefix
}

// controllerRef is the owner reference pods of rs carry.
func controllerRef(rs *appsv1.ReplicaSet) *metav1.OwnerReference {
	return metav1.NewControllerRef(rs, gvk)
}

// parseGroup returns the group of an apiVersion ("apps/v1" -> "apps").
func parseGroup(apiVersion string) (string, error) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	return gv.Group, err
}
