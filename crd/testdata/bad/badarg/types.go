// +groupName=bad.capstan.io
package badarg

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Thing is a kind.
// +kubebuilder:object:root=true
type Thing struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ThingSpec `json:"spec"`
}

// ThingSpec has a marker with a bad value.
type ThingSpec struct {
	// +kubebuilder:validation:MaxLength=abc
	Name string `json:"name"`
}
