// Package v1beta1 contains the shop.capstan.io/v1beta1 API, no longer served.
// +kubebuilder:object:generate=true
// +groupName=shop.capstan.io
package v1beta1
