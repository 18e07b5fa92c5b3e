package markers

import (
	"encoding/json"
	"fmt"
	"go/token"
	"strings"
)

// Target says where a marker may appear.
type Target uint8

// The targets.
const (
	OnPackage Target = 1 << iota
	OnType
	OnField
)

func (t Target) String() string {
	var parts []string
	if t&OnPackage != 0 {
		parts = append(parts, "packages")
	}
	if t&OnType != 0 {
		parts = append(parts, "types")
	}
	if t&OnField != 0 {
		parts = append(parts, "fields")
	}
	return strings.Join(parts, " and ")
}

// Arg describes one named argument.
type Arg struct {
	Kind     Kind
	Optional bool
}

// Definition describes one marker.
type Definition struct {
	Name    string
	Targets Target
	// Anon is the kind of the single anonymous value (`+name=value`), or 0
	// for a marker with named arguments or none.
	Anon Kind
	// AnonOptional allows the anonymous value to be left out (a bare bool
	// marker then means true).
	AnonOptional bool
	// Args are the named arguments (`+name:arg=value,arg2=value`).
	Args map[string]Arg
}

// Value is one parsed marker.
type Value struct {
	// Name is the definition's name, e.g. "kubebuilder:validation:Minimum".
	Name string
	// Anon is the anonymous value: string, int64, NumberLit, bool,
	// []string, []any, map[string]any or, for JSON markers, the decoded
	// document.
	Anon any
	// Args are the named arguments, by name.
	Args map[string]any
	// Text is the marker as written, without the leading '+'.
	Text string
	// Pos is where the marker was written.
	Pos token.Position
}

// String returns the named argument as a string ("" when absent).
func (v *Value) String(name string) string {
	s, _ := v.Args[name].(string)
	return s
}

// Has reports whether the named argument was given.
func (v *Value) Has(name string) bool {
	_, ok := v.Args[name]
	return ok
}

// Registry is the set of known markers.
type Registry struct {
	defs map[string]*Definition
}

// Lookup finds the definition for a marker text (without '+'), following
// controller-gen's rule: the full name before '=' first, then that name
// without its last ':'-separated part.
func (r *Registry) Lookup(text string) (def *Definition, name, anonName, rest string) {
	anonName, rest, hasEq := strings.Cut(text, "=")
	name = anonName
	if hasEq {
		if i := strings.LastIndexByte(anonName, ':'); i >= 0 {
			name = anonName[:i]
		}
	}
	if d, ok := r.defs[anonName]; ok {
		return d, anonName, anonName, rest
	}
	return r.defs[name], name, anonName, rest
}

// Parse parses one marker text (without the leading '+').
func (r *Registry) Parse(text string, pos token.Position) (*Value, error) {
	def, name, anonName, rest := r.Lookup(text)
	if def == nil {
		return nil, nil
	}
	v := &Value{Name: def.Name, Text: text, Pos: pos}
	switch {
	case def.Anon == JSON:
		rest = strings.TrimSpace(rest)
		if strings.HasPrefix(rest, "ref(") {
			return v, nil // a reference to a Go constant, not a literal default
		}
		dec := json.NewDecoder(strings.NewReader(rest))
		dec.UseNumber()
		var doc any
		if err := dec.Decode(&doc); err != nil {
			return nil, fmt.Errorf("+%s: value is not JSON: %w", text, err)
		}
		v.Anon = doc
		return v, nil
	case def.Anon != 0:
		if anonName != name {
			return nil, fmt.Errorf("+%s: unknown marker %q", text, anonName)
		}
		if !strings.Contains(text, "=") {
			if def.Anon == Bool && def.AnonOptional {
				v.Anon = true
				return v, nil
			}
			return nil, fmt.Errorf("+%s: missing value", text)
		}
		s := &scanner{src: rest}
		val, err := s.parseValue(def.Anon)
		if err != nil {
			return nil, fmt.Errorf("+%s: %w", text, err)
		}
		if !s.eof() {
			return nil, fmt.Errorf("+%s: extra arguments %q", text, s.rest())
		}
		v.Anon = val
		return v, nil
	}
	// Named arguments, possibly with the first one glued to the name:
	// +kubebuilder:printcolumn:name="Age",type=date,...
	if len(anonName) > len(name) {
		rest = anonName[len(name)+1:] + "=" + rest
	} else if strings.Contains(text, "=") && len(def.Args) == 0 {
		return nil, fmt.Errorf("+%s: takes no arguments", text)
	}
	v.Args = map[string]any{}
	s := &scanner{src: rest}
	for len(def.Args) > 0 && !s.eof() {
		arg, err := s.ident()
		if err != nil {
			return nil, fmt.Errorf("+%s: %w", text, err)
		}
		if err := s.expect('=', "'='"); err != nil {
			return nil, fmt.Errorf("+%s: %w", text, err)
		}
		spec, ok := def.Args[arg]
		if !ok {
			return nil, fmt.Errorf("+%s: unknown argument %q", text, arg)
		}
		val, err := s.parseValue(spec.Kind)
		if err != nil {
			return nil, fmt.Errorf("+%s: argument %s: %w", text, arg, err)
		}
		v.Args[arg] = val
		if s.eof() {
			break
		}
		if err := s.expect(',', "a comma"); err != nil {
			return nil, fmt.Errorf("+%s: %w", text, err)
		}
	}
	if !s.eof() {
		return nil, fmt.Errorf("+%s: extra arguments %q", text, s.rest())
	}
	for arg, spec := range def.Args {
		if _, ok := v.Args[arg]; !ok && !spec.Optional {
			return nil, fmt.Errorf("+%s: missing argument %q", text, arg)
		}
	}
	return v, nil
}

// ValidationPrefix is the prefix of validation markers.
const ValidationPrefix = "kubebuilder:validation:"

// ItemsPrefix is the prefix of markers that apply to array items.
const ItemsPrefix = ValidationPrefix + "items:"

// ReservedPrefixes are kubebuilder marker families owned by other generators
// (webhooks, scaffolding, docs): not ours to judge, never reported unknown.
var ReservedPrefixes = []string{
	"kubebuilder:webhook", "kubebuilder:scaffold", "kubebuilder:docs-gen",
	"kubebuilder:ac:", "kubebuilder:informers",
}

// Default returns the registry of every marker capstan understands: the
// CRD, validation, topology, deepcopy and RBAC markers of controller-gen.
func Default() *Registry {
	r := &Registry{defs: map[string]*Definition{}}
	add := func(d *Definition) { r.defs[d.Name] = d }
	anon := func(name string, t Target, k Kind) {
		add(&Definition{Name: name, Targets: t, Anon: k})
	}
	flag := func(name string, t Target) { add(&Definition{Name: name, Targets: t}) }
	named := func(name string, t Target, args map[string]Arg) {
		add(&Definition{Name: name, Targets: t, Args: args})
	}
	req := func(k Kind) Arg { return Arg{Kind: k} }
	opt := func(k Kind) Arg { return Arg{Kind: k, Optional: true} }

	// Package.
	anon("groupName", OnPackage, String)
	anon("versionName", OnPackage, String)
	flag("kubebuilder:skip", OnPackage)
	flag("kubebuilder:validation:Optional", OnPackage|OnField)
	flag("kubebuilder:validation:Required", OnPackage|OnField)

	// Validation, on fields and types, plus their items: variants.
	validation := []struct {
		name string
		kind Kind
	}{
		{"Maximum", Number}, {"Minimum", Number}, {"ExclusiveMaximum", Bool}, {"ExclusiveMinimum", Bool},
		{"MultipleOf", Number}, {"MinProperties", Int}, {"MaxProperties", Int}, {"MaxLength", Int},
		{"MinLength", Int}, {"Pattern", String}, {"MaxItems", Int}, {"MinItems", Int},
		{"UniqueItems", Bool}, {"Enum", AnySlice}, {"Format", String}, {"Type", String},
		{"XPreserveUnknownFields", 0}, {"XEmbeddedResource", 0}, {"XIntOrString", 0},
	}
	for _, v := range validation {
		for _, prefix := range []string{ValidationPrefix, ItemsPrefix} {
			if v.kind == 0 {
				flag(prefix+v.name, OnType|OnField)
			} else {
				anon(prefix+v.name, OnType|OnField, v.kind)
			}
		}
	}
	for _, prefix := range []string{ValidationPrefix, ItemsPrefix} {
		named(prefix+"XValidation", OnType|OnField, map[string]Arg{
			"rule": req(String), "message": opt(String), "messageExpression": opt(String),
			"reason": opt(String), "fieldPath": opt(String), "optionalOldSelf": opt(Bool),
		})
	}
	for _, name := range []string{"ExactlyOneOf", "AtMostOneOf", "AtLeastOneOf"} {
		anon(ValidationPrefix+name, OnType, StringSlice)
	}
	flag("kubebuilder:validation:EmbeddedResource", OnField)
	flag("kubebuilder:validation:Schemaless", OnField)
	flag("kubebuilder:pruning:PreserveUnknownFields", OnType|OnField)
	flag("required", OnField)
	flag("optional", OnField)
	flag("k8s:required", OnField)
	// Declarative validation markers of k8s.io/api that change schemas.
	for _, n := range []string{"k8s:minimum", "k8s:maximum", "k8s:maxItems"} {
		anon(n, OnField, Raw)
	}
	flag("k8s:optional", OnField)
	flag("nullable", OnField)
	anon("kubebuilder:default", OnField, Any)
	add(&Definition{Name: "default", Targets: OnField, Anon: JSON})
	anon("kubebuilder:example", OnField, Any)
	anon("kubebuilder:title", OnType|OnField, Any)
	named("kubebuilder:externalDocs", OnType|OnField, map[string]Arg{"url": req(String), "description": opt(String)})

	// Topology.
	for _, n := range []string{"listType", "k8s:listType", "listMapKey", "k8s:listMapKey", "mapType", "structType"} {
		anon(n, OnType|OnField, String)
	}

	// CRD.
	flag("kubebuilder:subresource:status", OnType)
	named("kubebuilder:subresource:scale", OnType, map[string]Arg{
		"specpath": req(String), "statuspath": req(String), "selectorpath": opt(String),
	})
	named("kubebuilder:printcolumn", OnType, map[string]Arg{
		"name": req(String), "type": req(String), "JSONPath": req(String),
		"description": opt(String), "format": opt(String), "priority": opt(Int),
	})
	named("kubebuilder:resource", OnType, map[string]Arg{
		"path": opt(String), "shortName": opt(StringSlice), "categories": opt(StringSlice),
		"singular": opt(String), "scope": opt(String),
	})
	flag("kubebuilder:storageversion", OnType)
	flag("kubebuilder:skipversion", OnType)
	flag("kubebuilder:unservedversion", OnType)
	named("kubebuilder:deprecatedversion", OnType, map[string]Arg{"warning": opt(String)})
	named("kubebuilder:metadata", OnType, map[string]Arg{"annotations": opt(StringSlice), "labels": opt(StringSlice)})
	named("kubebuilder:selectablefield", OnType, map[string]Arg{"JSONPath": req(String)})

	// DeepCopy.
	add(&Definition{Name: "kubebuilder:object:generate", Targets: OnPackage | OnType, Anon: Bool, AnonOptional: true})
	add(&Definition{Name: "kubebuilder:object:root", Targets: OnType, Anon: Bool, AnonOptional: true})
	anon("k8s:deepcopy-gen", OnPackage|OnType, Raw)
	anon("k8s:deepcopy-gen:interfaces", OnType, String)

	// RBAC.
	named("kubebuilder:rbac", OnPackage, map[string]Arg{
		"groups": opt(StringSlice), "resources": opt(StringSlice), "resourceNames": opt(StringSlice),
		"verbs": req(StringSlice), "urls": opt(StringSlice), "namespace": opt(String),
		"roleName": opt(String),
	})
	return r
}

// Known reports whether name (a marker text without '+') belongs to a
// family capstan knows or deliberately leaves to other tools. Unknown
// names under "kubebuilder:" are typos to report.
func (r *Registry) Known(text string) bool {
	if def, _, _, _ := r.Lookup(text); def != nil {
		return true
	}
	if !strings.HasPrefix(text, "kubebuilder:") {
		return true
	}
	for _, p := range ReservedPrefixes {
		if strings.HasPrefix(text, p) {
			return true
		}
	}
	return false
}
