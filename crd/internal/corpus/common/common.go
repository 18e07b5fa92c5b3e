// Package common holds types shared by the corpus API versions. It is not an
// API version itself.
// +kubebuilder:object:generate=true
package common

// Endpoint is a network address a widget talks to.
type Endpoint struct {
	// Host is a DNS name or an IP address.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Host string `json:"host"`

	// Port is the TCP port.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=443
	// +optional
	Port int32 `json:"port,omitempty"`

	// Protocol of the endpoint.
	// +optional
	Protocol Protocol `json:"protocol,omitempty"`
}

// Protocol is a transport protocol.
// +kubebuilder:validation:Enum=TCP;UDP;SCTP
type Protocol string

// Labels are free-form labels, set as a whole.
// +mapType=atomic
type Labels map[string]string

// Tags is a set of short tags.
// +listType=set
// +kubebuilder:validation:MaxItems=16
// +kubebuilder:validation:items:MaxLength=32
type Tags []string
