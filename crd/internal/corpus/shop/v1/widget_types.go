package v1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/capstan-io/capstan/crd/internal/corpus/common"
)

// Size is the size class of a widget.
// +kubebuilder:validation:Enum=small;medium;large
type Size string

// The sizes.
const (
	SizeSmall  Size = "small"
	SizeMedium Size = "medium"
	SizeLarge  Size = "large"
)

// Percent is a whole percentage.
// +kubebuilder:validation:Minimum=0
// +kubebuilder:validation:Maximum=100
type Percent int32

// Color is an RGB color written as #rrggbb.
// +kubebuilder:validation:Pattern=`^#[0-9a-f]{6}$`
type Color string

// Part is one part of a widget.
type Part struct {
	// Name identifies the part within the widget.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`

	// Count of this part.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:default=1
	// +optional
	Count int32 `json:"count,omitempty"`

	// Color of the part.
	// +optional
	Color Color `json:"color,omitempty"`
}

// Paint describes how a widget is painted. Exactly one way may be chosen.
// +kubebuilder:validation:ExactlyOneOf=solid;gradient
type Paint struct {
	// Solid paints the widget in one color.
	// +optional
	Solid *Color `json:"solid,omitempty"`

	// Gradient paints the widget from the first color to the last.
	// +optional
	// +kubebuilder:validation:MinItems=2
	Gradient []Color `json:"gradient,omitempty"`
}

// Meta is embedded in the spec: its fields appear inline.
type Meta struct {
	// Owner is a team name.
	// +optional
	Owner string `json:"owner,omitempty"`

	// Revision counts changes to the spec.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Revision int64 `json:"revision,omitempty"`
}

// Limits holds limits the widget must respect.
// +structType=atomic
type Limits struct {
	// CPU limit.
	// +optional
	CPU *resource.Quantity `json:"cpu,omitempty"`

	// Memory limit.
	// +optional
	Memory *resource.Quantity `json:"memory,omitempty"`
}

// WidgetSpec is the desired state of a Widget.
// +kubebuilder:validation:XValidation:rule="!has(self.maxReplicas) || self.replicas <= self.maxReplicas",message="replicas must not exceed maxReplicas"
type WidgetSpec struct {
	Meta `json:",inline"`

	// Replicas is the number of widget copies.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=1
	Replicas int32 `json:"replicas"`

	// MaxReplicas bounds Replicas.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:ExclusiveMaximum=true
	// +kubebuilder:validation:Maximum=10000
	// +optional
	MaxReplicas *int32 `json:"maxReplicas,omitempty"`

	// Step must be a multiple of five.
	// +kubebuilder:validation:MultipleOf=5
	// +optional
	Step int64 `json:"step,omitempty"`

	// Size of the widget.
	// +kubebuilder:default=medium
	// +optional
	Size Size `json:"size,omitempty"`

	// Mode of operation, an inline enum.
	// +kubebuilder:validation:Enum=fast;slow
	// +optional
	Mode string `json:"mode,omitempty"`

	// Name is a DNS label.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:MinLength=1
	DisplayName string `json:"displayName"`

	// Email of the owner.
	// +kubebuilder:validation:Format=email
	// +optional
	Email string `json:"email,omitempty"`

	// Efficiency in percent.
	// +optional
	Efficiency Percent `json:"efficiency,omitempty"`

	// Discount in percent, at most half.
	// +kubebuilder:validation:Maximum=50
	// +optional
	Discount *Percent `json:"discount,omitempty"`

	// Parts of the widget, keyed by name.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Parts []Part `json:"parts,omitempty"`

	// Tags of the widget.
	// +optional
	Tags common.Tags `json:"tags,omitempty"`

	// Aliases must be unique.
	// +listType=set
	// +kubebuilder:validation:UniqueItems=false
	// +kubebuilder:validation:items:Pattern=`^[a-z]+$`
	// +optional
	Aliases []string `json:"aliases,omitempty"`

	// Matrix is a nested list.
	// +optional
	Matrix [][]int32 `json:"matrix,omitempty"`

	// Labels are set atomically.
	// +optional
	Labels common.Labels `json:"labels,omitempty"`

	// Annotations is a plain map.
	// +kubebuilder:validation:MaxProperties=10
	// +kubebuilder:validation:MinProperties=0
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`

	// Weights maps a part name to its weight in grams.
	// +mapType=granular
	// +optional
	Weights map[string]int64 `json:"weights,omitempty"`

	// PartsByZone groups parts by zone.
	// +optional
	PartsByZone map[string][]Part `json:"partsByZone,omitempty"`

	// Payload is opaque bytes, base64 in JSON.
	// +optional
	Payload []byte `json:"payload,omitempty"`

	// Paint of the widget.
	// +optional
	Paint *Paint `json:"paint,omitempty"`

	// Limits of the widget.
	// +optional
	Limits Limits `json:"limits,omitempty"`

	// Endpoints the widget calls.
	// +listType=atomic
	// +optional
	Endpoints []common.Endpoint `json:"endpoints,omitempty"`

	// Primary is the main endpoint. Its own description wins over the type's.
	// +optional
	Primary *common.Endpoint `json:"primary,omitempty"`

	// Timeout of one operation.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// NotBefore is when the widget may start.
	// +optional
	NotBefore *metav1.Time `json:"notBefore,omitempty"`

	// Precise is a microsecond timestamp.
	// +optional
	Precise *metav1.MicroTime `json:"precise,omitempty"`

	// Port is a number or a name.
	// +optional
	Port *intstr.IntOrString `json:"port,omitempty"`

	// MaxUnavailable is a number or a percentage.
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:Pattern=`^[0-9]+%?$`
	// +optional
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`

	// Memory is a quantity.
	// +optional
	Memory resource.Quantity `json:"memory,omitempty"`

	// Config is arbitrary JSON.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +optional
	Config runtime.RawExtension `json:"config,omitempty"`

	// Template is an embedded Kubernetes object.
	// +kubebuilder:validation:EmbeddedResource
	// +kubebuilder:pruning:PreserveUnknownFields
	// +optional
	Template runtime.RawExtension `json:"template,omitempty"`

	// Extra is not described by a schema.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	// +optional
	Extra map[string]string `json:"extra,omitempty"`

	// Selector selects the pods of the widget.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`

	// PodTemplate describes the pods of the widget.
	// +optional
	PodTemplate *corev1.PodTemplateSpec `json:"podTemplate,omitempty"`

	// Owner points at another object.
	// +optional
	OwnerRef *corev1.ObjectReference `json:"ownerRef,omitempty"`

	// Nickname may be null.
	// +nullable
	// +optional
	Nickname *string `json:"nickname,omitempty"`

	// Enabled by default.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// Ports default to a list.
	// +kubebuilder:default={80,443}
	// +optional
	Ports []int32 `json:"ports,omitempty"`

	// Settings default to a map.
	// +kubebuilder:default={mode: "fast", level: "1"}
	// +optional
	Settings map[string]string `json:"settings,omitempty"`

	// Greeting uses the Kubernetes-native default marker.
	// +default="hello"
	// +optional
	Greeting string `json:"greeting,omitempty"`

	// Immutable cannot change once set.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="immutable is immutable",reason=FieldValueForbidden
	// +optional
	Immutable string `json:"immutable,omitempty"`

	// Title and example are documentation markers.
	// +kubebuilder:title="The motto"
	// +kubebuilder:example="keep going"
	// +optional
	Motto string `json:"motto,omitempty"`

	// Ignored is never serialized.
	Ignored string `json:"-"`

	// Required explicitly, despite omitempty.
	// +required
	Model string `json:"model,omitempty"`

	// Legacy is required through the kubebuilder marker.
	// +kubebuilder:validation:Required
	Legacy string `json:"legacy,omitempty"`

	// Hint is optional through the kubebuilder marker.
	// +kubebuilder:validation:Optional
	Hint string `json:"hint"`

	// Zero uses omitzero.
	Zero int32 `json:"zero,omitzero"`
}

// WidgetStatus is the observed state of a Widget.
type WidgetStatus struct {
	// Replicas is the number of ready copies.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// Selector is the label selector in string form, for the scale subresource.
	// +optional
	Selector string `json:"selector,omitempty"`

	// Conditions of the widget.
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// ObservedGeneration is the last generation acted upon.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// Widget is a thing the shop sells.
//
// It has many parts.
// TODO: this line is dropped from the description.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName={wd,wdg},categories={shop,all},singular=widget
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.spec.replicas`,description="Desired copies"
// +kubebuilder:printcolumn:name="Size",type=string,JSONPath=".spec.size",priority=1
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
// +kubebuilder:deprecatedversion:warning="shop.capstan.io/v1 Widget is deprecated; use v2"
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
