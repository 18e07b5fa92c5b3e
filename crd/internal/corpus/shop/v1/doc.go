// Package v1 contains the shop.capstan.io/v1 API.
//
// +kubebuilder:object:generate=true
// +groupName=shop.capstan.io
package v1
