// +groupName=bad.capstan.io
package conflict

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Thing is a kind.
// +kubebuilder:object:root=true
type Thing struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ThingSpec `json:"spec"`
}

// ThingSpec has contradicting markers.
type ThingSpec struct {
	// +optional
	// +required
	Count int32 `json:"count"`
}
