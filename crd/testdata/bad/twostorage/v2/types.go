// +groupName=bad.capstan.io
package v2

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Thing is marked as storage in both versions.
// +kubebuilder:object:root=true
// +kubebuilder:storageversion
type Thing struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
}
