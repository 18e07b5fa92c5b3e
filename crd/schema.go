package crd

import (
	"fmt"
	"go/ast"
	"go/token"
	"go/types"
	"reflect"
	"sort"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/capstan-io/capstan/crd/internal/markers"
)

// schemaGen turns Go types into OpenAPI v3 schemas in two steps, as
// controller-gen does (so that the result is the same): first a "partial"
// schema per named type, where references to other named types are $ref
// links carrying the referring field's own description and markers; then
// flattening, which replaces every link by the referenced type's schema
// merged with the link's own constraints.
type schemaGen struct {
	u                   *universe
	allowDangerousTypes bool

	refs    map[string]*types.TypeName
	partial map[*types.TypeName]*apiextensionsv1.JSONSchemaProps
	flat    map[*types.TypeName]*apiextensionsv1.JSONSchemaProps
	// inProgress marks types being flattened, to find recursion.
	inProgress map[*types.TypeName]bool
	errs       *errList
}

// errList gathers errors, each naming a place.
type errList struct{ errs []error }

func (e *errList) add(pos token.Position, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if pos.IsValid() {
		msg = pos.String() + ": " + msg
	}
	e.errs = append(e.errs, fmt.Errorf("crd: %s", msg))
}

func newSchemaGen(u *universe, allowDangerous bool, errs *errList) *schemaGen {
	return &schemaGen{
		u: u, allowDangerousTypes: allowDangerous, errs: errs,
		refs:       map[string]*types.TypeName{},
		partial:    map[*types.TypeName]*apiextensionsv1.JSONSchemaProps{},
		flat:       map[*types.TypeName]*apiextensionsv1.JSONSchemaProps{},
		inProgress: map[*types.TypeName]bool{},
	}
}

func refKey(tn *types.TypeName) string {
	if tn.Pkg() == nil {
		return tn.Name()
	}
	return tn.Pkg().Path() + "." + tn.Name()
}

// where describes a place for error messages: "type T field F (file:line)".
type where struct {
	typeName  string
	fieldName string
	pos       token.Position
}

func (w where) String() string {
	s := "type " + w.typeName
	if w.fieldName != "" {
		s += " field " + w.fieldName
	}
	return s
}

// link returns a $ref to a named type, with the type hints controller-gen
// puts on links so that field markers can check what they apply to.
func (g *schemaGen) link(tn *types.TypeName, w where) *apiextensionsv1.JSONSchemaProps {
	key := refKey(tn)
	g.refs[key] = tn
	s := &apiextensionsv1.JSONSchemaProps{Ref: &key}
	switch tn.Type().Underlying().(type) {
	case *types.Slice:
		s.Type = "array"
	case *types.Map:
		s.Type = "object"
	case *types.Basic:
		if p := g.typeSchema(tn, w); p != nil {
			s.Type, s.Format = p.Type, p.Format
		}
	}
	return s
}

// typeSchema returns the partial schema of a named type.
func (g *schemaGen) typeSchema(tn *types.TypeName, w where) *apiextensionsv1.JSONSchemaProps {
	if s, ok := g.partial[tn]; ok {
		return s
	}
	if tn.Pkg() != nil {
		if s := knownSchema(tn.Pkg().Path(), tn.Name()); s != nil {
			g.partial[tn] = s
			return s
		}
	}
	g.partial[tn] = &apiextensionsv1.JSONSchemaProps{} // placeholder while building
	doc, pkgDoc, err := g.u.typeDoc(tn)
	if err != nil {
		g.errs.add(w.pos, "%s: reading documentation of %s: %v", w, refKey(tn), err)
	}
	var tdoc markers.Doc
	if doc != nil {
		tdoc = doc.Doc
	}
	tw := where{typeName: tn.Name(), pos: tdoc.Pos}
	if !tw.pos.IsValid() {
		tw.pos = g.u.fset.Position(tn.Pos())
	}
	s := g.buildTypeSchema(tn, doc, pkgDoc, tw)
	g.partial[tn] = s
	return s
}

func (g *schemaGen) buildTypeSchema(tn *types.TypeName, doc *markers.Type, pkgDoc *markers.Package, w where) *apiextensionsv1.JSONSchemaProps {
	var tdoc markers.Doc
	if doc != nil {
		tdoc = doc.Doc
	}
	t := tn.Type()
	if named, ok := t.(*types.Named); ok && named.TypeParams().Len() > 0 {
		g.errs.add(w.pos, "%s: generic types are not supported in CRD schemas", w)
		return &apiextensionsv1.JSONSchemaProps{}
	}
	switch {
	case implements(t, jsonMarshaler):
		s := &apiextensionsv1.JSONSchemaProps{}
		g.applyMarkers(s, tdoc.Markers, w)
		if s.Type != "" {
			return s
		}
	case implements(t, textMarshaler):
		s := &apiextensionsv1.JSONSchemaProps{Type: "string"}
		g.applyMarkers(s, tdoc.Markers, w)
		if s.Type != "string" {
			g.errs.add(w.pos, "%s implements encoding.TextMarshaler but its schema type is %q, not string", w, s.Type)
		}
		return s
	}
	var s *apiextensionsv1.JSONSchemaProps
	// `type A B` keeps the link to B (and B's markers and description).
	var rhs types.Type
	if doc != nil && doc.Spec != nil {
		switch doc.Spec.Type.(type) {
		case *ast.Ident, *ast.SelectorExpr:
			rhs = g.u.resolveTypeExpr(g.u.pkg(tn.Pkg()), doc.File, doc.Spec.Type)
		}
	}
	if _, isAlias := t.(*types.Alias); isAlias {
		rhs = types.Unalias(t)
	}
	switch {
	case rhs != nil:
		if _, basic := rhs.(*types.Basic); basic {
			s = g.exprSchema(rhs, w)
		} else {
			s = g.exprSchema(rhs, w)
		}
	default:
		if st, ok := t.Underlying().(*types.Struct); ok {
			s = g.structSchema(tn, st, doc, pkgDoc, w)
		} else {
			s = g.exprSchema(t.Underlying(), w)
		}
	}
	s.Description = tdoc.Description
	g.applyMarkers(s, tdoc.Markers, w)
	return s
}

// exprSchema is the partial schema of a type used by a field, item or map
// value: links for named types, inline schemas for the rest.
func (g *schemaGen) exprSchema(t types.Type, w where) *apiextensionsv1.JSONSchemaProps {
	switch t := t.(type) {
	case *types.Alias:
		if _, basic := types.Unalias(t).(*types.Basic); basic && t.Obj().Pkg() != nil {
			return g.link(t.Obj(), w)
		}
		return g.exprSchema(types.Unalias(t), w)
	case *types.Named:
		if t.Obj().Pkg() == nil { // error
			g.errs.add(w.pos, "%s: interface type %s is not supported in CRD schemas; use a concrete type or apiextensionsv1.JSON", w, t)
			return &apiextensionsv1.JSONSchemaProps{}
		}
		if _, isIface := t.Underlying().(*types.Interface); isIface {
			g.errs.add(w.pos, "%s: interface type %s is not supported in CRD schemas; use a concrete type or apiextensionsv1.JSON", w, t)
			return &apiextensionsv1.JSONSchemaProps{}
		}
		return g.link(t.Obj(), w)
	case *types.Basic:
		typ, format, err := basicSchema(t, g.allowDangerousTypes)
		if err != nil {
			g.errs.add(w.pos, "%s: %v", w, err)
		}
		return &apiextensionsv1.JSONSchemaProps{Type: typ, Format: format}
	case *types.Pointer:
		return g.exprSchema(t.Elem(), w)
	case *types.Slice:
		if b, ok := t.Elem().(*types.Basic); ok && b.Kind() == types.Byte {
			return &apiextensionsv1.JSONSchemaProps{Type: "string", Format: "byte"}
		}
		return &apiextensionsv1.JSONSchemaProps{Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: g.exprSchema(t.Elem(), w)}}
	case *types.Array:
		return &apiextensionsv1.JSONSchemaProps{Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: g.exprSchema(t.Elem(), w)}}
	case *types.Map:
		if !isStringKey(t.Key()) {
			g.errs.add(w.pos, "%s: map keys must be strings or implement encoding.TextMarshaler, not %s", w, t.Key())
			return &apiextensionsv1.JSONSchemaProps{}
		}
		if _, isIface := t.Elem().Underlying().(*types.Interface); isIface {
			g.errs.add(w.pos, "%s: interface type %s is not supported as a map value in CRD schemas; use a concrete type or apiextensionsv1.JSON", w, t.Elem())
			return &apiextensionsv1.JSONSchemaProps{}
		}
		return &apiextensionsv1.JSONSchemaProps{Type: "object", AdditionalProperties: &apiextensionsv1.JSONSchemaPropsOrBool{Allows: true, Schema: g.exprSchema(t.Elem(), w)}}
	case *types.Struct:
		g.errs.add(w.pos, "%s: inline struct types are not supported in CRD schemas; use a named type", w)
	case *types.Interface:
		g.errs.add(w.pos, "%s: interface type %s is not supported in CRD schemas; use a concrete type or apiextensionsv1.JSON", w, t)
	case *types.Chan:
		g.errs.add(w.pos, "%s: channel type %s cannot be serialized to JSON", w, t)
	case *types.Signature:
		g.errs.add(w.pos, "%s: function type %s cannot be serialized to JSON", w, t)
	case *types.TypeParam:
		g.errs.add(w.pos, "%s: type parameter %s is not supported in CRD schemas", w, t)
	default:
		g.errs.add(w.pos, "%s: unsupported type %s", w, t)
	}
	return &apiextensionsv1.JSONSchemaProps{}
}

func isStringKey(t types.Type) bool {
	if b, ok := t.Underlying().(*types.Basic); ok && b.Info()&types.IsString != 0 {
		return true
	}
	return implements(t, textMarshaler)
}

// basicSchema maps Go basic types to JSON schema types. Floats need an
// explicit opt-in (their behaviour differs across languages).
func basicSchema(b *types.Basic, allowFloat bool) (typ, format string, err error) {
	info := b.Info()
	switch {
	case info&types.IsBoolean != 0:
		typ = "boolean"
	case info&types.IsString != 0:
		typ = "string"
	case info&types.IsInteger != 0:
		if b.Kind() == types.Uintptr || b.Kind() == types.UnsafePointer {
			return "", "", fmt.Errorf("unsupported type %s", b)
		}
		typ = "integer"
	case info&types.IsFloat != 0:
		if !allowFloat {
			return "", "", fmt.Errorf("found float type %s; floats behave differently across languages, serialize as a string or resource.Quantity, or opt in with Options.AllowDangerousTypes (crd:allowDangerousTypes=true)", b)
		}
		typ = "number"
	default:
		return "", "", fmt.Errorf("unsupported type %s", b)
	}
	switch b.Kind() {
	case types.Int32, types.Uint32:
		format = "int32"
	case types.Int64, types.Uint64:
		format = "int64"
	}
	return typ, format, nil
}

// structSchema is the schema of a struct type's fields; embedded (inline)
// fields go to AllOf and are merged when flattening.
func (g *schemaGen) structSchema(tn *types.TypeName, st *types.Struct, doc *markers.Type, pkgDoc *markers.Package, w where) *apiextensionsv1.JSONSchemaProps {
	s := &apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{}}
	var fieldDocs []markers.Field
	if doc != nil && len(doc.Fields) == st.NumFields() {
		fieldDocs = doc.Fields
	}
	defaultOptional := pkgDoc != nil && pkgDoc.Doc.Get("kubebuilder:validation:Optional") != nil
	oneOf := map[string]bool{}
	if doc != nil {
		for _, name := range []string{"ExactlyOneOf", "AtMostOneOf", "AtLeastOneOf"} {
			for _, m := range doc.All(markers.ValidationPrefix + name) {
				for _, f := range m.Anon.([]string) {
					if strings.Contains(f, ".") {
						g.errs.add(m.Pos, "%s: +%s: cannot reference nested field %s", w, m.Text, f)
					}
					oneOf[f] = true
				}
			}
		}
	}
	for i := range st.NumFields() {
		f := st.Field(i)
		var fd markers.Field
		if fieldDocs != nil {
			fd = fieldDocs[i]
		}
		fw := where{typeName: w.typeName, fieldName: f.Name(), pos: fd.Pos}
		if !fw.pos.IsValid() {
			fw.pos = g.u.fset.Position(f.Pos())
		}
		tag, hasTag := reflect.StructTag(st.Tag(i)).Lookup("json")
		if !hasTag {
			g.errs.add(fw.pos, "%s: field has no json tag", fw)
			continue
		}
		opts := strings.Split(tag, ",")
		if len(opts) == 1 && opts[0] == "-" {
			continue
		}
		inline, omitEmpty := false, false
		for _, o := range opts[1:] {
			switch o {
			case "inline":
				inline = true
			case "omitempty", "omitzero":
				omitEmpty = true
			}
		}
		name := opts[0]
		inline = inline || name == ""
		if err := checkConflicts(&fd.Doc); err != nil {
			g.errs.add(fw.pos, "%s: %v", fw, err)
		}
		switch {
		case fd.Get("kubebuilder:validation:Optional") != nil:
		case fd.Get("kubebuilder:validation:Required") != nil:
			g.requireField(s, name, oneOf, fw)
		case fd.Get("optional") != nil, fd.Get("k8s:optional") != nil:
		case fd.Get("required") != nil, fd.Get("k8s:required") != nil:
			g.requireField(s, name, oneOf, fw)
		case !defaultOptional:
			if !inline && !omitEmpty {
				if oneOf[name] {
					g.errs.add(fw.pos, "%s: field %s is part of a OneOf constraint and must have omitempty or omitzero", fw, name)
				}
				s.Required = append(s.Required, name)
			}
		}
		var ps *apiextensionsv1.JSONSchemaProps
		if fd.Get("kubebuilder:validation:Schemaless") != nil {
			ps = &apiextensionsv1.JSONSchemaProps{}
		} else {
			ps = g.exprSchema(f.Type(), fw)
		}
		ps.Description = fd.Description
		g.applyMarkers(ps, fd.Markers, fw)
		if inline {
			s.AllOf = append(s.AllOf, *ps)
			continue
		}
		s.Properties[name] = *ps
	}
	sort.Strings(s.Required)
	return s
}

func (g *schemaGen) requireField(s *apiextensionsv1.JSONSchemaProps, name string, oneOf map[string]bool, fw where) {
	if oneOf[name] {
		g.errs.add(fw.pos, "%s: field %s is part of a OneOf constraint and cannot be required", fw, name)
		return
	}
	s.Required = append(s.Required, name)
}

// checkConflicts reports markers that contradict each other on one node.
func checkConflicts(d *markers.Doc) error {
	optional := d.Get("optional") != nil || d.Get("kubebuilder:validation:Optional") != nil || d.Get("k8s:optional") != nil
	required := d.Get("required") != nil || d.Get("kubebuilder:validation:Required") != nil || d.Get("k8s:required") != nil
	if optional && required {
		return fmt.Errorf("conflicting markers: both optional and required")
	}
	return checkRepeats(d)
}

// repeatable markers may appear several times on one node.
var repeatable = map[string]bool{
	markers.ValidationPrefix + "XValidation": true, markers.ItemsPrefix + "XValidation": true,
	"kubebuilder:printcolumn": true, "listMapKey": true, "k8s:listMapKey": true,
	"kubebuilder:selectablefield": true, "kubebuilder:rbac": true,
	markers.ValidationPrefix + "ExactlyOneOf": true, markers.ValidationPrefix + "AtMostOneOf": true,
	markers.ValidationPrefix + "AtLeastOneOf": true,
}

// checkRepeats reports a single-valued marker given twice with different
// values (controller-gen silently keeps the last).
func checkRepeats(d *markers.Doc) error {
	seen := map[string]*markers.Value{}
	for _, m := range d.Markers {
		if repeatable[m.Name] {
			continue
		}
		if prev, ok := seen[m.Name]; ok && !reflect.DeepEqual(prev.Anon, m.Anon) || ok && !reflect.DeepEqual(prev.Args, m.Args) {
			return fmt.Errorf("conflicting markers +%s (%s) and +%s (%s)", prev.Text, prev.Pos, m.Text, m.Pos)
		}
		seen[m.Name] = m
	}
	return nil
}

// Open-coded encoding/json.Marshaler and encoding.TextMarshaler.
var (
	byteSlice     = types.NewSlice(types.Universe.Lookup("byte").Type())
	errorType     = types.Universe.Lookup("error").Type()
	jsonMarshaler = marshalerIface("MarshalJSON")
	textMarshaler = marshalerIface("MarshalText")
)

func marshalerIface(method string) *types.Interface {
	sig := types.NewSignatureType(nil, nil, nil, nil,
		types.NewTuple(types.NewVar(token.NoPos, nil, "", byteSlice), types.NewVar(token.NoPos, nil, "", errorType)), false)
	return types.NewInterfaceType([]*types.Func{types.NewFunc(token.NoPos, nil, method, sig)}, nil).Complete()
}

func implements(t types.Type, iface *types.Interface) bool {
	return types.Implements(t, iface) || types.Implements(types.NewPointer(t), iface)
}
