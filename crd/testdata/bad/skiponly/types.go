// +groupName=bad.capstan.io
package skiponly

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Thing is skipped in its only version.
// +kubebuilder:object:root=true
// +kubebuilder:skipversion
type Thing struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
}
