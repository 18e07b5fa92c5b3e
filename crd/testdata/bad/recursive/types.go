// +groupName=bad.capstan.io
package recursive

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Thing is a kind.
// +kubebuilder:object:root=true
type Thing struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ThingSpec `json:"spec"`
}

// ThingSpec is a tree.
type ThingSpec struct {
	Node Node `json:"node"`
}

// Node has children of its own type.
type Node struct {
	Children []Node `json:"children,omitempty"`
}
