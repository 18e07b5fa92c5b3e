package crd

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/capstan-io/capstan/crd/internal/markers"
)

// priority orders marker application as controller-gen does: the ones that
// set the type first, defaults after, the one-of rules last.
func priority(name string) int {
	switch strings.TrimPrefix(name, "items:") {
	case markers.ValidationPrefix + "Type", markers.ValidationPrefix + "XIntOrString",
		"listType", "k8s:listType", "default":
		return 9
	case markers.ValidationPrefix + "AtMostOneOf":
		return 11
	case markers.ValidationPrefix + "ExactlyOneOf":
		return 12
	case markers.ValidationPrefix + "AtLeastOneOf":
		return 13
	}
	return 10
}

// applyMarkers applies schema markers to s (items: markers to its items).
func (g *schemaGen) applyMarkers(s *apiextensionsv1.JSONSchemaProps, ms []*markers.Value, w where) {
	var direct, items []*markers.Value
	for _, m := range ms {
		if strings.HasPrefix(m.Name, markers.ItemsPrefix) {
			items = append(items, m)
		} else {
			direct = append(direct, m)
		}
	}
	byPriority := func(list []*markers.Value) {
		sort.SliceStable(list, func(i, j int) bool {
			return priority(normalizeItems(list[i].Name)) < priority(normalizeItems(list[j].Name))
		})
	}
	byPriority(direct)
	byPriority(items)
	for _, m := range direct {
		if err := applyOne(s, m.Name, m); err != nil {
			g.errs.add(m.Pos, "%s: +%s: %v", w, m.Text, err)
		}
	}
	for _, m := range items {
		if s.Type != "array" || s.Items == nil || s.Items.Schema == nil {
			g.errs.add(m.Pos, "%s: +%s: must apply to an array, found %q", w, m.Text, s.Type)
			continue
		}
		if err := applyOne(s.Items.Schema, normalizeItems(m.Name), m); err != nil {
			g.errs.add(m.Pos, "%s: +%s: %v", w, m.Text, err)
		}
	}
}

func normalizeItems(name string) string {
	if strings.HasPrefix(name, markers.ItemsPrefix) {
		return markers.ValidationPrefix + strings.TrimPrefix(name, markers.ItemsPrefix)
	}
	return name
}

func isNumeric(s *apiextensionsv1.JSONSchemaProps) bool {
	return s.Type == "integer" || s.Type == "number"
}

func isTextual(s *apiextensionsv1.JSONSchemaProps) bool {
	return s.Type == "string" || s.XIntOrString
}

// number converts a number literal to float64 for a schema bound. For an
// integer schema the literal must be an integer that float64 holds exactly
// (controller-gen silently rounds 2^53+1 to 2^53).
func number(lit markers.NumberLit, integer bool) (float64, error) {
	text := string(lit)
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return 0, fmt.Errorf("bad number %q: %w", text, err)
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("number %q is out of range", text)
	}
	if integer {
		if f != math.Trunc(f) {
			return 0, fmt.Errorf("cannot apply non-integral value %s to an integer", text)
		}
		exact, ok := new(big.Float).SetPrec(0).SetString(text)
		if ok {
			bf := new(big.Float).SetFloat64(f)
			if exact.Cmp(bf) != 0 {
				return 0, fmt.Errorf("integer %s cannot be represented exactly in a CRD schema (float64); the nearest value is %s", text, strconv.FormatFloat(f, 'f', -1, 64))
			}
		}
	}
	return f, nil
}

func intPtr(v any) *int64 {
	n := v.(int64)
	return &n
}

// applyOne applies one marker (name already stripped of items:).
func applyOne(s *apiextensionsv1.JSONSchemaProps, name string, m *markers.Value) error {
	v := m.Anon
	switch name {
	case markers.ValidationPrefix + "Maximum", markers.ValidationPrefix + "Minimum", markers.ValidationPrefix + "MultipleOf":
		if !isNumeric(s) {
			return fmt.Errorf("must apply to a numeric value, found %q", s.Type)
		}
		f, err := number(v.(markers.NumberLit), s.Type == "integer")
		if err != nil {
			return err
		}
		switch name {
		case markers.ValidationPrefix + "Maximum":
			s.Maximum = &f
		case markers.ValidationPrefix + "Minimum":
			s.Minimum = &f
		default:
			s.MultipleOf = &f
		}
	case markers.ValidationPrefix + "ExclusiveMaximum", markers.ValidationPrefix + "ExclusiveMinimum":
		if !isNumeric(s) {
			return fmt.Errorf("must apply to a numeric value, found %q", s.Type)
		}
		if name == markers.ValidationPrefix+"ExclusiveMaximum" {
			s.ExclusiveMaximum = v.(bool)
		} else {
			s.ExclusiveMinimum = v.(bool)
		}
	case markers.ValidationPrefix + "MaxLength", markers.ValidationPrefix + "MinLength":
		if !isTextual(s) {
			return fmt.Errorf("must apply to a textual value, found %q", s.Type)
		}
		if name == markers.ValidationPrefix+"MaxLength" {
			s.MaxLength = intPtr(v)
		} else {
			s.MinLength = intPtr(v)
		}
	case markers.ValidationPrefix + "Pattern":
		if !isTextual(s) {
			return fmt.Errorf("must apply to a textual value, found %q", s.Type)
		}
		s.Pattern = v.(string)
	case markers.ValidationPrefix + "MaxItems", markers.ValidationPrefix + "MinItems", markers.ValidationPrefix + "UniqueItems":
		if s.Type != "array" {
			return fmt.Errorf("must apply to an array, found %q", s.Type)
		}
		switch name {
		case markers.ValidationPrefix + "MaxItems":
			s.MaxItems = intPtr(v)
		case markers.ValidationPrefix + "MinItems":
			s.MinItems = intPtr(v)
		default:
			s.UniqueItems = v.(bool)
		}
	case markers.ValidationPrefix + "MinProperties", markers.ValidationPrefix + "MaxProperties":
		if s.Type != "object" {
			return fmt.Errorf("must apply to an object, found %q", s.Type)
		}
		if name == markers.ValidationPrefix+"MinProperties" {
			s.MinProperties = intPtr(v)
		} else {
			s.MaxProperties = intPtr(v)
		}
	case markers.ValidationPrefix + "Enum":
		vals := v.([]any)
		s.Enum = make([]apiextensionsv1.JSON, len(vals))
		for i, e := range vals {
			raw, err := json.Marshal(e)
			if err != nil {
				return err
			}
			s.Enum[i] = apiextensionsv1.JSON{Raw: raw}
		}
	case markers.ValidationPrefix + "Format":
		s.Format = v.(string)
	case markers.ValidationPrefix + "Type":
		s.Type = v.(string)
	case "k8s:minimum", "k8s:maximum", "k8s:maxItems":
		text, _, _ := strings.Cut(v.(string), "#")
		text = strings.TrimSpace(text)
		switch name {
		case "k8s:maxItems":
			n, err := strconv.ParseInt(text, 10, 64)
			if err != nil {
				return fmt.Errorf("invalid maxItems value %q", text)
			}
			if s.Type != "array" {
				return fmt.Errorf("must apply to an array, found %q", s.Type)
			}
			s.MaxItems = &n
		default:
			if !isNumeric(s) {
				return fmt.Errorf("must apply to a numeric value, found %q", s.Type)
			}
			f, err := number(markers.NumberLit(text), s.Type == "integer")
			if err != nil {
				return err
			}
			if name == "k8s:minimum" {
				s.Minimum = &f
			} else {
				s.Maximum = &f
			}
		}
	case "k8s:required":
		one := int64(1)
		switch {
		case s.Type == "string":
			if s.MinLength == nil {
				s.MinLength = &one
			}
		case s.Type == "array":
			if s.MinItems == nil {
				s.MinItems = &one
			}
		case s.Type == "object":
			if s.MinProperties == nil {
				s.MinProperties = &one
			}
		case s.Ref != nil:
			if s.MinProperties == nil {
				s.MinProperties = &one
			}
		}
	case "nullable":
		s.Nullable = true
	case "kubebuilder:default":
		raw, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if s.Type == "array" && string(raw) == "{}" {
			raw = []byte("[]")
		}
		s.Default = &apiextensionsv1.JSON{Raw: raw}
	case "default":
		if v == nil {
			return nil // +default=ref(...)
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return err
		}
		s.Default = &apiextensionsv1.JSON{Raw: raw}
	case "kubebuilder:example":
		raw, err := json.Marshal(v)
		if err != nil {
			return err
		}
		s.Example = &apiextensionsv1.JSON{Raw: raw}
	case "kubebuilder:title":
		if v == nil {
			return nil
		}
		t, ok := v.(string)
		if !ok {
			return fmt.Errorf("expected a string, got %T", v)
		}
		s.Title = t
	case "kubebuilder:externalDocs":
		u := m.String("url")
		if _, err := url.ParseRequestURI(u); err != nil {
			return fmt.Errorf("invalid url %q: %w", u, err)
		}
		s.ExternalDocs = &apiextensionsv1.ExternalDocumentation{URL: u, Description: m.String("description")}
	case markers.ValidationPrefix + "XPreserveUnknownFields", "kubebuilder:pruning:PreserveUnknownFields":
		t := true
		s.XPreserveUnknownFields = &t
	case markers.ValidationPrefix + "XEmbeddedResource", "kubebuilder:validation:EmbeddedResource":
		s.XEmbeddedResource = true
	case markers.ValidationPrefix + "XIntOrString":
		s.XIntOrString = true
	case markers.ValidationPrefix + "XValidation":
		rule := apiextensionsv1.ValidationRule{
			Rule: m.String("rule"), Message: m.String("message"),
			MessageExpression: m.String("messageExpression"), FieldPath: m.String("fieldPath"),
		}
		if r := m.String("reason"); r != "" {
			switch apiextensionsv1.FieldValueErrorReason(r) {
			case apiextensionsv1.FieldValueRequired, apiextensionsv1.FieldValueInvalid,
				apiextensionsv1.FieldValueForbidden, apiextensionsv1.FieldValueDuplicate:
				reason := apiextensionsv1.FieldValueErrorReason(r)
				rule.Reason = &reason
			default:
				return fmt.Errorf("invalid reason %q, valid values are %s, %s, %s and %s", r,
					apiextensionsv1.FieldValueRequired, apiextensionsv1.FieldValueInvalid,
					apiextensionsv1.FieldValueForbidden, apiextensionsv1.FieldValueDuplicate)
			}
		}
		if b, ok := m.Args["optionalOldSelf"].(bool); ok {
			rule.OptionalOldSelf = &b
		}
		s.XValidations = append(s.XValidations, rule)
	case markers.ValidationPrefix + "ExactlyOneOf", markers.ValidationPrefix + "AtMostOneOf", markers.ValidationPrefix + "AtLeastOneOf":
		fields := v.([]string)
		if len(fields) == 0 {
			return nil
		}
		var rule, msg string
		list := "[" + strings.Join(fields, " ") + "]"
		switch name {
		case markers.ValidationPrefix + "AtLeastOneOf":
			parts := make([]string, len(fields))
			for i, f := range fields {
				parts[i] = "has(self." + f + ")"
			}
			rule = strings.Join(parts, "||")
			msg = "at least one of the fields in " + list + " must be set"
		default:
			parts := make([]string, len(fields))
			for i, f := range fields {
				parts[i] = "(has(self." + f + ")?1:0)"
			}
			if name == markers.ValidationPrefix+"ExactlyOneOf" {
				rule = strings.Join(parts, "+") + " == 1"
				msg = "exactly one of the fields in " + list + " must be set"
			} else {
				rule = strings.Join(parts, "+") + " <= 1"
				msg = "at most one of the fields in " + list + " may be set"
			}
		}
		s.XValidations = append(s.XValidations, apiextensionsv1.ValidationRule{Rule: rule, Message: msg})
	case "listType", "k8s:listType":
		if s.Type != "array" {
			return fmt.Errorf("must apply listType to an array, found %q", s.Type)
		}
		lt := v.(string)
		if lt != "map" && lt != "set" && lt != "atomic" {
			return fmt.Errorf(`listType must be "map", "set" or "atomic", not %q`, lt)
		}
		s.XListType = &lt
	case "listMapKey", "k8s:listMapKey":
		if s.Type != "array" {
			return fmt.Errorf("must apply listMapKey to an array, found %q", s.Type)
		}
		if s.XListType == nil || *s.XListType != "map" {
			return fmt.Errorf("must apply listMapKey to a list with +listType=map")
		}
		if k := v.(string); !slices.Contains(s.XListMapKeys, k) {
			s.XListMapKeys = append(s.XListMapKeys, k)
		}
	case "mapType":
		if s.Type != "object" {
			return fmt.Errorf("must apply mapType to an object, found %q", s.Type)
		}
		mt := v.(string)
		if mt != "atomic" && mt != "granular" {
			return fmt.Errorf(`mapType must be "granular" or "atomic", not %q`, mt)
		}
		s.XMapType = &mt
	case "structType":
		if s.Type != "object" && s.Type != "" {
			return fmt.Errorf("must apply structType to an object, found %q", s.Type)
		}
		st := v.(string)
		if st != "atomic" && st != "granular" {
			return fmt.Errorf(`structType must be "granular" or "atomic", not %q`, st)
		}
		s.XMapType = &st
	}
	return nil
}
