package v2

import (
	"encoding/json"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/capstan-io/capstan/crd/internal/corpus/common"
)

// Level is an integer level; its markers travel with the type.
// +kubebuilder:validation:Minimum=1
// +kubebuilder:validation:Maximum=9
type Level int64

// StrongLevel is a Level with a stricter bound of its own.
// +kubebuilder:validation:Minimum=5
type StrongLevel Level

// Version is a string alias.
type Version = string

// Stamp marshals itself as a string.
type Stamp struct {
	at time.Time
}

// MarshalText implements encoding.TextMarshaler.
func (s Stamp) MarshalText() ([]byte, error) { return []byte(s.at.Format(time.RFC3339)), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Stamp) UnmarshalText(b []byte) error {
	t, err := time.Parse(time.RFC3339, string(b))
	s.at = t
	return err
}

// DeepCopyInto copies s into out.
func (s *Stamp) DeepCopyInto(out *Stamp) { *out = *s }

// Flexible marshals itself as JSON and declares its schema type by marker.
// +kubebuilder:validation:Type=string
// +kubebuilder:validation:Format=uri
type Flexible struct {
	raw string
}

// MarshalJSON implements json.Marshaler.
func (f Flexible) MarshalJSON() ([]byte, error) { return json.Marshal(f.raw) }

// UnmarshalJSON implements json.Unmarshaler.
func (f *Flexible) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, &f.raw) }

// DeepCopyInto copies f into out.
func (f *Flexible) DeepCopyInto(out *Flexible) { *out = *f }

// Wheel is one wheel of a widget.
type Wheel struct {
	// Diameter in millimetres.
	// +kubebuilder:validation:Minimum=10
	Diameter int32 `json:"diameter"`
	// Position on the widget.
	// +kubebuilder:validation:Enum=front;back
	Position string `json:"position"`
}

// Base holds fields shared by spec types, embedded through a pointer.
type Base struct {
	// Note is a free text note.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Note string `json:"note,omitempty"`
}

// WidgetSpec is the desired state of a Widget.
// +kubebuilder:validation:AtMostOneOf=wheels;tracks
// +kubebuilder:validation:MinProperties=1
type WidgetSpec struct {
	*Base `json:",inline"`

	// Replicas is the number of widget copies.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:default=1
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Level of quality.
	// +optional
	Level Level `json:"level,omitempty"`

	// Strong level, with the field's own upper bound.
	// +kubebuilder:validation:Maximum=8
	// +optional
	Strong StrongLevel `json:"strong,omitempty"`

	// Levels lists levels; the items carry Level's bounds.
	// +kubebuilder:validation:items:Maximum=7
	// +optional
	Levels []Level `json:"levels,omitempty"`

	// Version of the widget design.
	// +kubebuilder:validation:MinLength=1
	// +optional
	Version Version `json:"version,omitempty"`

	// Stamp is written as text.
	// +optional
	Stamp *Stamp `json:"stamp,omitempty"`

	// Link is a JSON-marshalled URI.
	// +optional
	Link *Flexible `json:"link,omitempty"`

	// Wheels of the widget.
	// +listType=map
	// +listMapKey=position
	// +optional
	Wheels []*Wheel `json:"wheels,omitempty"`

	// Tracks replace wheels.
	// +optional
	Tracks map[string]*Wheel `json:"tracks,omitempty"`

	// Triple is a fixed-size array.
	// +optional
	Triple [3]int32 `json:"triple,omitempty"`

	// Anything is arbitrary JSON.
	// +optional
	Anything *apiextensionsv1.JSON `json:"anything,omitempty"`

	// Endpoint is shared with v1; the field adds a rule.
	// +kubebuilder:validation:XValidation:rule="self.host != 'localhost'",message="no localhost"
	// +optional
	Endpoint *common.Endpoint `json:"endpoint,omitempty"`

	// Until is a timestamp.
	// +optional
	Until metav1.Time `json:"until,omitempty"`

	// Ranks maps names to ranks, at least one.
	// +kubebuilder:validation:MinProperties=1
	// +optional
	Ranks map[string]int32 `json:"ranks,omitempty"`
}

// WidgetStatus is the observed state of a Widget.
type WidgetStatus struct {
	// Ready copies.
	// +optional
	Ready int32 `json:"ready,omitempty"`
	// Conditions of the widget.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Widget is a thing the shop sells.
// +kubebuilder:object:root=true
// +kubebuilder:storageversion
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName={wd,wdg},categories={shop,all},singular=widget
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.ready`
// +kubebuilder:selectablefield:JSONPath=`.spec.version`
type Widget struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   WidgetSpec   `json:"spec,omitempty"`
	Status WidgetStatus `json:"status,omitempty"`
}

// WidgetList is a list of Widgets.
// +kubebuilder:object:root=true
type WidgetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Widget `json:"items"`
}

// Gadget is a cluster-scoped accessory.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,path=gadgetry
// +kubebuilder:metadata:annotations="shop.capstan.io/owner=team-a",labels="shop.capstan.io/tier=gold"
type Gadget struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec of the gadget.
	Spec GadgetSpec `json:"spec"`
}

// GadgetSpec describes a gadget.
type GadgetSpec struct {
	// Kind of gadget.
	// +kubebuilder:validation:Enum=lever;knob;dial
	Kind string `json:"kind"`
	// Turns it takes.
	// +kubebuilder:validation:ExclusiveMinimum=true
	// +kubebuilder:validation:Minimum=0
	Turns int32 `json:"turns"`
	// Wheel it uses, if any.
	// +optional
	Wheel *Wheel `json:"wheel,omitempty"`
}

// GadgetList is a list of Gadgets.
// +kubebuilder:object:root=true
type GadgetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Gadget `json:"items"`
}
