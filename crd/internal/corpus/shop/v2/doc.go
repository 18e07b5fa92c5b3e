// Package v2 contains the shop.capstan.io/v2 API, the storage version.
// +kubebuilder:object:generate=true
// +groupName=shop.capstan.io
package v2
