package crd

import (
	"fmt"
	"go/types"
	"reflect"
	"sort"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// flatType returns the schema of a named type with every $ref replaced by
// the referenced type's schema. A type that contains itself cannot be
// written as a structural schema: that is an error (controller-gen writes an
// empty schema at the point of recursion instead).
func (g *schemaGen) flatType(tn *types.TypeName, chain []string) *apiextensionsv1.JSONSchemaProps {
	if s, ok := g.flat[tn]; ok {
		return s
	}
	if g.inProgress[tn] {
		g.errs.add(g.u.fset.Position(tn.Pos()), "type %s is recursive (%s); CRD schemas cannot express recursive types, use apiextensionsv1.JSON or +kubebuilder:validation:Schemaless with +kubebuilder:pruning:PreserveUnknownFields on the recursive field",
			tn.Name(), strings.Join(append(chain, tn.Name()), " → "))
		return &apiextensionsv1.JSONSchemaProps{}
	}
	g.inProgress[tn] = true
	partial := g.typeSchema(tn, where{typeName: tn.Name(), pos: g.u.fset.Position(tn.Pos())})
	s := partial.DeepCopy()
	g.resolveRefs(s, append(chain, tn.Name()))
	delete(g.inProgress, tn)
	g.flat[tn] = s
	return s
}

// resolveRefs replaces $ref links in s and below.
func (g *schemaGen) resolveRefs(s *apiextensionsv1.JSONSchemaProps, chain []string) {
	if s == nil {
		return
	}
	if s.Ref != nil {
		tn := g.refs[*s.Ref]
		ref := g.flatType(tn, chain).DeepCopy()
		preserveFields(ref, *s)
		*s = *ref
		return
	}
	forEachChild(s, func(c *apiextensionsv1.JSONSchemaProps) { g.resolveRefs(c, chain) })
}

// preserveFields combines a referenced type's schema (dst) with the link
// that referred to it (src): both go to AllOf, to be merged later; the
// link's description wins when it has one.
func preserveFields(dst *apiextensionsv1.JSONSchemaProps, src apiextensionsv1.JSONSchemaProps) {
	desc, title, extDocs, example := src.Description, src.Title, src.ExternalDocs, src.Example
	src.Description, src.Title, src.ExternalDocs, src.Example = "", "", nil, nil
	src.Ref = nil
	*dst = apiextensionsv1.JSONSchemaProps{
		AllOf:        []apiextensionsv1.JSONSchemaProps{*dst, src},
		Description:  dst.Description,
		Title:        dst.Title,
		ExternalDocs: dst.ExternalDocs,
		Example:      dst.Example,
	}
	if desc != "" {
		dst.Description = desc
	}
	if title != "" {
		dst.Title = title
	}
	if extDocs != nil {
		dst.ExternalDocs = extDocs
	}
	if example != nil {
		dst.Example = example
	}
}

// forEachChild calls f on every direct sub-schema of s.
func forEachChild(s *apiextensionsv1.JSONSchemaProps, f func(*apiextensionsv1.JSONSchemaProps)) {
	if s.Items != nil {
		if s.Items.Schema != nil {
			f(s.Items.Schema)
		}
		for i := range s.Items.JSONSchemas {
			f(&s.Items.JSONSchemas[i])
		}
	}
	for _, list := range [][]apiextensionsv1.JSONSchemaProps{s.AllOf, s.OneOf, s.AnyOf} {
		for i := range list {
			f(&list[i])
		}
	}
	if s.Not != nil {
		f(s.Not)
	}
	for _, m := range []map[string]apiextensionsv1.JSONSchemaProps{s.Properties, s.PatternProperties, s.Definitions} {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := m[k]
			f(&v)
			m[k] = v
		}
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		f(s.AdditionalProperties.Schema)
	}
	if s.AdditionalItems != nil && s.AdditionalItems.Schema != nil {
		f(s.AdditionalItems.Schema)
	}
}

// flattenAllOf merges every AllOf into its schema, top down.
func flattenAllOf(s *apiextensionsv1.JSONSchemaProps, errs *errList) {
	orig := s.AllOf
	s.AllOf = nil
	for _, e := range orig {
		flattenAllOfInto(s, e, errs)
	}
	forEachChild(s, func(c *apiextensionsv1.JSONSchemaProps) { flattenAllOf(c, errs) })
}

var schemaType = reflect.TypeFor[apiextensionsv1.JSONSchemaProps]()

// flattenAllOfInto merges src into dst. Where both set the same constraint
// differently, both values are kept in a new AllOf (the API server checks
// both), except for the fields whose merge is well defined.
func flattenAllOfInto(dst *apiextensionsv1.JSONSchemaProps, src apiextensionsv1.JSONSchemaProps, errs *errList) {
	for _, e := range src.AllOf {
		flattenAllOfInto(dst, e, errs)
	}
	src = *src.DeepCopy()
	dv := reflect.ValueOf(dst).Elem()
	sv := reflect.ValueOf(&src).Elem()
	var dstRem, srcRem apiextensionsv1.JSONSchemaProps
	dr := reflect.ValueOf(&dstRem).Elem()
	sr := reflect.ValueOf(&srcRem).Elem()
	hoisted := false
	for i := range schemaType.NumField() {
		name := schemaType.Field(i).Name
		switch name {
		case "AllOf", "Title", "Description", "Example", "ExternalDocs":
			continue
		case "Enum":
			if len(src.Enum) > 0 && len(dst.Enum) == 0 {
				dst.Enum = append([]apiextensionsv1.JSON(nil), src.Enum...)
			}
			continue
		}
		sf, df := sv.Field(i), dv.Field(i)
		if isZero(sf) {
			continue
		}
		if isZero(df) {
			df.Set(sf)
			continue
		}
		if k := sf.Kind(); k != reflect.Pointer && sf.Type().Comparable() && sf.Interface() == df.Interface() {
			continue
		}
		switch name {
		case "Properties":
			for k, v := range src.Properties {
				d, ok := dst.Properties[k]
				if !ok {
					dst.Properties[k] = v
					continue
				}
				flattenAllOfInto(&d, v, errs)
				dst.Properties[k] = d
			}
		case "Required":
			dst.Required = append(dst.Required, src.Required...)
		case "MinProperties", "MaxProperties":
			if *sf.Interface().(*int64) == *df.Interface().(*int64) {
				continue
			}
			sr.Field(i).Set(sf)
			dr.Field(i).Set(df)
			df.Set(reflect.Zero(df.Type()))
			hoisted = true
		case "Type":
			errs.add(noPos, "conflicting types in an embedded schema: %s vs %s", dst.Type, src.Type)
		case "AdditionalProperties":
			if src.AdditionalProperties.Schema == nil {
				continue
			}
			if dst.AdditionalProperties.Schema == nil {
				dst.AdditionalProperties.Schema = &apiextensionsv1.JSONSchemaProps{}
			}
			flattenAllOfInto(dst.AdditionalProperties.Schema, *src.AdditionalProperties.Schema, errs)
		case "XPreserveUnknownFields", "XMapType", "XListType", "XListMapKeys":
			df.Set(sf)
		case "XValidations":
			dst.XValidations = append(src.XValidations, dst.XValidations...)
		default:
			sr.Field(i).Set(sf)
			dr.Field(i).Set(df)
			df.Set(reflect.Zero(df.Type()))
			hoisted = true
		}
	}
	if hoisted {
		dst.AllOf = append(dst.AllOf, dstRem, srcRem)
	}
	if len(dst.Required) > 0 {
		uniq := map[string]bool{}
		out := dst.Required[:0:0]
		for _, r := range dst.Required {
			if !uniq[r] {
				uniq[r] = true
				out = append(out, r)
			}
		}
		sort.Strings(out)
		dst.Required = out
	}
}

func isZero(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
		return v.IsNil()
	}
	return v.IsZero()
}

var noPos = where{}.pos

// describe is used in messages about a schema path.
func describe(path []string) string {
	if len(path) == 0 {
		return "(root)"
	}
	return fmt.Sprint(strings.Join(path, "."))
}
