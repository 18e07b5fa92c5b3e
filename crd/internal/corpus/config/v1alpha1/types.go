package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Policy decides how settings roll out.
type Policy struct {
	// Strategy of the rollout.
	// +kubebuilder:validation:Enum=Immediate;Gradual
	// +kubebuilder:default=Gradual
	Strategy string `json:"strategy"`

	// Pause between steps.
	Pause *metav1.Duration `json:"pause"`

	// Steps of the rollout; required even in an optional-by-default package.
	// +required
	// +kubebuilder:validation:MinItems=1
	Steps []Step `json:"steps"`
}

// Step is one rollout step.
type Step struct {
	// Percent of targets.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +required
	Percent int32 `json:"percent"`
}

// SettingSpec is the desired state of a Setting.
// +kubebuilder:validation:AtLeastOneOf=value;valueFrom
type SettingSpec struct {
	// Value of the setting.
	Value string `json:"value,omitempty"`

	// ValueFrom reads the value from a config map key.
	ValueFrom *corev1.ConfigMapKeySelector `json:"valueFrom,omitempty"`

	// Policy of the rollout.
	Policy Policy `json:"policy"`

	// Tolerations copied to the workloads.
	Tolerations []corev1.Toleration `json:"tolerations"`

	// Resources for the workloads.
	Resources corev1.ResourceRequirements `json:"resources"`
}

// Setting is a cluster-wide setting.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=config
// +kubebuilder:printcolumn:name="Value",type=string,JSONPath=`.spec.value`
type Setting struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec SettingSpec `json:"spec,omitempty"`
}

// SettingList is a list of Settings.
// +kubebuilder:object:root=true
type SettingList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Setting `json:"items"`
}

// Policy is also a kind name in another group: Policies are plural-tested.
