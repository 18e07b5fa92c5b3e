// Package v1alpha1 contains the config.capstan.io/v1alpha1 API. Every field
// is optional unless marked otherwise.
// +kubebuilder:object:generate=true
// +kubebuilder:validation:Optional
// +groupName=config.capstan.io
package v1alpha1
