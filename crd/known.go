package crd

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// quantityPattern is the pattern of resource.Quantity's string form.
const quantityPattern = `^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$`

// knownSchema returns the fixed schema of a well-known Kubernetes type whose
// Go shape says nothing useful about its JSON form (custom marshalling), or
// nil. These are the schemas controller-gen uses, so CRDs stay identical.
func knownSchema(pkgPath, name string) *apiextensionsv1.JSONSchemaProps {
	t := true
	switch pkgPath + "." + name {
	case "k8s.io/apimachinery/pkg/apis/meta/v1.ObjectMeta":
		return &apiextensionsv1.JSONSchemaProps{Type: "object"}
	case "k8s.io/apimachinery/pkg/apis/meta/v1.Time", "k8s.io/apimachinery/pkg/apis/meta/v1.MicroTime":
		return &apiextensionsv1.JSONSchemaProps{Type: "string", Format: "date-time"}
	case "k8s.io/apimachinery/pkg/apis/meta/v1.Duration":
		return &apiextensionsv1.JSONSchemaProps{Type: "string"}
	case "k8s.io/apimachinery/pkg/apis/meta/v1.Fields":
		return &apiextensionsv1.JSONSchemaProps{Type: "object", AdditionalProperties: &apiextensionsv1.JSONSchemaPropsOrBool{Allows: true}}
	case "k8s.io/apimachinery/pkg/api/resource.Quantity":
		return &apiextensionsv1.JSONSchemaProps{
			XIntOrString: true,
			AnyOf:        []apiextensionsv1.JSONSchemaProps{{Type: "integer"}, {Type: "string"}},
			Pattern:      quantityPattern,
		}
	case "k8s.io/apimachinery/pkg/runtime.RawExtension":
		return &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: &t}
	case "k8s.io/apimachinery/pkg/apis/meta/v1/unstructured.Unstructured":
		return &apiextensionsv1.JSONSchemaProps{Type: "object"}
	case "k8s.io/apimachinery/pkg/util/intstr.IntOrString":
		return &apiextensionsv1.JSONSchemaProps{
			XIntOrString: true,
			AnyOf:        []apiextensionsv1.JSONSchemaProps{{Type: "integer"}, {Type: "string"}},
		}
	case "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1.JSON",
		"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1beta1.JSON":
		return &apiextensionsv1.JSONSchemaProps{XPreserveUnknownFields: &t}
	}
	return nil
}
