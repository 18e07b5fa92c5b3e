package informer

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Object is what an informer caches: a Kubernetes API object with object
// metadata, used through a pointer, for example *corev1.ConfigMap,
// *unstructured.Unstructured or *metav1.PartialObjectMetadata.
//
// It is the same shape as controller-runtime's client.Object, so values move
// between the two without conversion.
type Object interface {
	metav1.Object
	runtime.Object
}

// KeyOf returns the cache key of obj: "namespace/name" for a namespaced
// object and "name" for a cluster-scoped one. The key is the same as
// client-go's MetaNamespaceKeyFunc produces, so keys can be shared with code
// written for client-go.
func KeyOf(obj metav1.Object) string {
	return Key(obj.GetNamespace(), obj.GetName())
}

// Key builds the cache key for a namespace and a name. An empty namespace
// means a cluster-scoped object.
func Key(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

// SplitKey is the inverse of [Key]. It reports false for a key with more than
// one "/".
func SplitKey(key string) (namespace, name string, ok bool) {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			namespace, name = key[:i], key[i+1:]
			for j := 0; j < len(name); j++ {
				if name[j] == '/' {
					return "", "", false
				}
			}
			return namespace, name, true
		}
	}
	return "", key, true
}
