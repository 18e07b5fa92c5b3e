// +groupName=bad.capstan.io
package bigint

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Thing is a kind.
// +kubebuilder:object:root=true
type Thing struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ThingSpec `json:"spec"`
}

// ThingSpec has a bound float64 cannot hold.
type ThingSpec struct {
	// +kubebuilder:validation:Maximum=9007199254740993
	Count int64 `json:"count"`
}
