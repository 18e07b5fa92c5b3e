package crd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/format"
	"go/types"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/capstan-io/capstan/crd/internal/markers"
)

// DeepCopyFileName is the file GenerateDeepCopy writes in each package.
const DeepCopyFileName = "zz_generated.deepcopy.go"

// File is one generated file.
type File struct {
	// Path is where the file goes (absolute when Options.Dir is).
	Path string
	Data []byte
}

// GenerateDeepCopy returns a zz_generated.deepcopy.go for each package in
// opts.Paths that asks for one, with DeepCopyInto and DeepCopy for every
// enabled type and DeepCopyObject for root types, as controller-gen's object
// generator does:
//   - a package enables every exported type with +kubebuilder:object:generate=true
//     (or the legacy +k8s:deepcopy-gen=package);
//   - a type opts in or out with +kubebuilder:object:generate=true|false;
//   - +kubebuilder:object:root=true adds DeepCopyObject (runtime.Object);
//   - hand-written DeepCopyInto or DeepCopy methods are kept and used.
//
// The copy shares no memory with the original. Types that cannot be deep
// copied (channels, functions, interfaces other than runtime.Object, types
// of other packages holding pointers without DeepCopy methods) are errors.
func GenerateDeepCopy(ctx context.Context, opts Options) ([]File, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	u, err := loadRoots(ctx, opts.Dir, opts.Paths, opts.BuildTags)
	if err != nil {
		return nil, err
	}
	return generateDeepCopy(u, opts.Header)
}

func generateDeepCopy(u *universe, header string) ([]File, error) {
	// Which types get methods is decided for every package first, so that a
	// package using another's types sees the same methods on every run.
	enabled := map[*types.TypeName]bool{}
	plans := map[*pkgInfo][]dcType{}
	var errs []error
	for _, pi := range u.roots {
		plan, err := deepCopyPlan(u, pi)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, t := range plan {
			enabled[t.tn] = true
		}
		plans[pi] = plan
	}
	var files []File
	for _, pi := range u.roots {
		if len(plans[pi]) == 0 {
			continue
		}
		f, err := deepCopyPackage(u, pi, plans[pi], enabled, header)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if f != nil {
			files = append(files, *f)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w:\n%w", ErrInvalidInput, errors.Join(errs...))
	}
	return files, nil
}

// WriteGeneratedFiles writes files, each into its directory; nothing is
// renamed into place unless every file was written.
func WriteGeneratedFiles(files []File) error {
	byDir := map[string]map[string][]byte{}
	for _, f := range files {
		d := filepath.Dir(f.Path)
		if byDir[d] == nil {
			byDir[d] = map[string][]byte{}
		}
		byDir[d][filepath.Base(f.Path)] = f.Data
	}
	dirs := make([]string, 0, len(byDir))
	for d := range byDir {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		if err := WriteFiles(d, byDir[d]); err != nil {
			return err
		}
	}
	return nil
}

type dcGen struct {
	pkg     *types.Package
	fset    func(types.Object) string
	imports map[string]string // path → alias
	aliases map[string]bool
	enabled map[*types.TypeName]bool
	buf     bytes.Buffer
	errs    []error
	deep    map[types.Type]int // 1 = shallow, 2 = deep, 3 = in progress
	isRoot  func(*types.Package) bool
	where   string
}

type dcType struct {
	tn     *types.TypeName
	object bool
}

// deepCopyPlan lists the types of a package that get methods.
func deepCopyPlan(u *universe, pi *pkgInfo) ([]dcType, error) {
	docs, err := u.docsOf(pi)
	if err != nil {
		return nil, err
	}
	if len(pi.syntax) == 0 {
		return nil, nil
	}
	pkgOn := false
	if m := docs.Doc.Get("kubebuilder:object:generate"); m != nil {
		pkgOn = m.Anon.(bool)
	} else if m := docs.Doc.Get("k8s:deepcopy-gen"); m != nil {
		first, _, _ := strings.Cut(m.Anon.(string), ",")
		pkgOn = first == "package"
	}
	var todo []dcType
	names := make([]string, 0, len(docs.Types))
	for n := range docs.Types {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		td := docs.Types[n]
		tn, ok := pi.types.Scope().Lookup(n).(*types.TypeName)
		if !ok || !tn.Exported() || tn.IsAlias() {
			continue
		}
		on := pkgOn || isObjectRoot(&td.Doc)
		if m := td.Get("kubebuilder:object:generate"); m != nil {
			on = m.Anon.(bool)
		} else if m := td.Get("k8s:deepcopy-gen"); m != nil {
			on = m.Anon.(string) == "true"
		}
		if !on || !copyable(tn) {
			continue
		}
		todo = append(todo, dcType{tn, isObjectRoot(&td.Doc)})
	}
	return todo, nil
}

func deepCopyPackage(u *universe, pi *pkgInfo, todo []dcType, enabled map[*types.TypeName]bool, header string) (*File, error) {
	g := &dcGen{
		pkg: pi.types, imports: map[string]string{}, aliases: map[string]bool{pi.types.Name(): true},
		enabled: enabled, deep: map[types.Type]int{},
		fset:   func(o types.Object) string { return u.fset.Position(o.Pos()).Filename },
		isRoot: func(p *types.Package) bool { r, ok := u.byPath[p.Path()]; return ok && r.root },
	}
	for _, t := range todo {
		g.where = fmt.Sprintf("%s: type %s", u.fset.Position(t.tn.Pos()), t.tn.Name())
		g.methodsFor(t.tn, t.object)
	}
	if len(g.errs) > 0 {
		return nil, errors.Join(g.errs...)
	}
	var out bytes.Buffer
	out.WriteString("//go:build !ignore_autogenerated\n\n")
	if header != "" {
		out.WriteString(strings.TrimRight(header, "\n") + "\n\n")
	}
	out.WriteString("// Code generated by capstan. DO NOT EDIT.\n\n")
	fmt.Fprintf(&out, "package %s\n\n", pi.types.Name())
	if len(g.imports) > 0 {
		paths := make([]string, 0, len(g.imports))
		for p := range g.imports {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		out.WriteString("import (\n")
		for _, p := range paths {
			fmt.Fprintf(&out, "\t%s %q\n", g.imports[p], p)
		}
		out.WriteString(")\n\n")
	}
	out.Write(g.buf.Bytes())
	src, err := format.Source(out.Bytes())
	if err != nil {
		return nil, fmt.Errorf("crd: formatting deepcopy code for %s: %w", pi.path, err)
	}
	dir := filepath.Dir(u.fset.Position(pi.syntax[0].Pos()).Filename)
	return &File{Path: filepath.Join(dir, DeepCopyFileName), Data: src}, nil
}

func isObjectRoot(d *markers.Doc) bool {
	if m := d.Get("kubebuilder:object:root"); m != nil {
		return m.Anon.(bool)
	}
	for _, m := range d.All("k8s:deepcopy-gen:interfaces") {
		if m.Anon.(string) == "k8s.io/apimachinery/pkg/runtime.Object" {
			return true
		}
	}
	return false
}

// copyable reports whether a named type gets methods: structs, and named
// slices, maps and arrays (not named basic or pointer types).
func copyable(tn *types.TypeName) bool {
	n, ok := tn.Type().(*types.Named)
	if !ok || n.TypeParams().Len() > 0 {
		return false
	}
	switch n.Underlying().(type) {
	case *types.Struct, *types.Slice, *types.Map, *types.Array:
		return true
	}
	return false
}

var versionLike = regexp.MustCompile(`^v[0-9]+((alpha|beta)[0-9]+)?$`)

// qualify returns the name of a package in generated code, importing it.
func (g *dcGen) qualify(p *types.Package) string {
	if p == g.pkg {
		return ""
	}
	if a, ok := g.imports[p.Path()]; ok {
		return a
	}
	alias := p.Name()
	if versionLike.MatchString(alias) {
		alias = filepath.Base(filepath.Dir(p.Path())) + alias
	}
	alias = strings.NewReplacer("-", "", ".", "").Replace(alias)
	base := alias
	for i := 2; g.aliases[alias]; i++ {
		alias = fmt.Sprintf("%s%d", base, i)
	}
	g.aliases[alias] = true
	g.imports[p.Path()] = alias
	return alias
}

func (g *dcGen) typeString(t types.Type) string {
	return types.TypeString(t, g.qualify)
}

func (g *dcGen) line(format string, args ...any) {
	fmt.Fprintf(&g.buf, format+"\n", args...)
}

// manualMethod reports whether t has the named method, not counting the
// ones in a previous zz_generated.deepcopy.go of the package being generated.
func (g *dcGen) manualMethod(t types.Type, name string) (found bool, ptrRecv bool) {
	ms := types.NewMethodSet(types.NewPointer(t))
	sel := ms.Lookup(nil, name)
	if sel == nil || len(sel.Index()) > 1 { // absent, or promoted from an embedded field
		return false, false
	}
	fn := sel.Obj().(*types.Func)
	if fn.Pkg() != nil && g.isRoot(fn.Pkg()) && filepath.Base(g.fset(fn)) == DeepCopyFileName {
		return false, false
	}
	_, ptrRecv = fn.Signature().Recv().Type().(*types.Pointer)
	return true, ptrRecv
}

// hasDeepCopyInto reports whether values of t can be copied with
// in.DeepCopyInto(out): a method exists or will be generated.
func (g *dcGen) hasDeepCopyInto(t types.Type) bool {
	if n, ok := t.(*types.Named); ok && g.enabled[n.Obj()] {
		return true
	}
	found, _ := g.manualMethod(t, "DeepCopyInto")
	return found
}

// needsDeep reports whether copying a value of t needs more than assignment.
func (g *dcGen) needsDeep(t types.Type) bool {
	t = types.Unalias(t)
	switch g.deep[t] {
	case 1:
		return false
	case 2, 3:
		return true
	}
	g.deep[t] = 3
	deep := false
	switch u := t.Underlying().(type) {
	case *types.Basic:
		deep = false
	case *types.Pointer, *types.Slice, *types.Map, *types.Interface, *types.Chan, *types.Signature:
		deep = true
	case *types.Array:
		deep = g.needsDeep(u.Elem())
	case *types.Struct:
		for i := range u.NumFields() {
			if g.needsDeep(u.Field(i).Type()) {
				deep = true
				break
			}
		}
	}
	if !deep {
		if _, isNamed := t.(*types.Named); isNamed {
			if _, basic := t.Underlying().(*types.Basic); !basic && g.hasDeepCopyInto(t) {
				deep = true
			}
		}
	}
	if deep {
		g.deep[t] = 2
	} else {
		g.deep[t] = 1
	}
	return deep
}

func (g *dcGen) methodsFor(tn *types.TypeName, object bool) {
	t := tn.Type()
	name := tn.Name()
	_, isStruct := t.Underlying().(*types.Struct)
	manualInto, _ := g.manualMethod(t, "DeepCopyInto")
	manualCopy, copyPtr := g.manualMethod(t, "DeepCopy")
	if !manualInto {
		g.line("// DeepCopyInto is a generated deepcopy function, copying the receiver, writing into out. in must be non-nil.")
		if isStruct {
			g.line("func (in *%s) DeepCopyInto(out *%s) {", name, name)
		} else {
			g.line("func (in %s) DeepCopyInto(out *%s) {", name, name)
			g.line("{\nin := &in")
		}
		switch {
		case manualCopy && copyPtr:
			g.line("clone := in.DeepCopy()\n*out = *clone")
		case manualCopy:
			g.line("*out = in.DeepCopy()")
		case isStruct:
			g.line("*out = *in")
			st := t.Underlying().(*types.Struct)
			for i := range st.NumFields() {
				f := st.Field(i)
				if !g.needsDeep(f.Type()) {
					continue
				}
				g.fieldCopy(f.Type(), "in."+f.Name(), "out."+f.Name(), f.Name())
			}
		default:
			g.copyNonNil(t.Underlying(), t, "")
		}
		if !isStruct {
			g.line("}")
		}
		g.line("}\n")
	}
	if !manualCopy {
		g.line("// DeepCopy is a generated deepcopy function, copying the receiver, creating a new %s.", name)
		if isStruct {
			g.line("func (in *%s) DeepCopy() *%s {\nif in == nil {\nreturn nil\n}\nout := new(%s)\nin.DeepCopyInto(out)\nreturn out\n}\n", name, name, name)
		} else {
			g.line("func (in %s) DeepCopy() %s {\nif in == nil {\nreturn nil\n}\nout := new(%s)\nin.DeepCopyInto(out)\nreturn *out\n}\n", name, name, name)
		}
		if object {
			rt := g.qualify(types.NewPackage("k8s.io/apimachinery/pkg/runtime", "runtime"))
			if isStruct {
				g.line("// DeepCopyObject is a generated deepcopy function, copying the receiver, creating a new runtime.Object.")
				g.line("func (in *%s) DeepCopyObject() %s.Object {\nif c := in.DeepCopy(); c != nil {\nreturn c\n}\nreturn nil\n}\n", name, rt)
			} else {
				g.line("// DeepCopyObject is a generated deepcopy function, copying the receiver, creating a new runtime.Object.")
				g.line("func (in %s) DeepCopyObject() %s.Object {\nif c := in.DeepCopy(); c != nil {\nreturn c\n}\nreturn nil\n}\n", name, rt)
			}
		}
	}
}

// fieldCopy deep-copies the field inExpr into outExpr (which holds a shallow
// copy already).
func (g *dcGen) fieldCopy(t types.Type, inExpr, outExpr, what string) {
	t = types.Unalias(t)
	if g.hasDeepCopyInto(t) {
		g.line("%s.DeepCopyInto(&%s)", inExpr, outExpr)
		return
	}
	switch u := t.Underlying().(type) {
	case *types.Pointer, *types.Slice, *types.Map:
		g.line("if %s != nil {\nin, out := &%s, &%s", inExpr, inExpr, outExpr)
		g.copyNonNil(u, t, what)
		g.line("}")
	case *types.Interface:
		g.line("if %s != nil {\n%s = %s", inExpr, outExpr, g.objectCopy(t, inExpr, what))
		g.line("}")
	default:
		g.line("{\nin, out := &%s, &%s", inExpr, outExpr)
		g.copyValue(t, what)
		g.line("}")
	}
}

// objectCopy copies an interface value through DeepCopyObject.
func (g *dcGen) objectCopy(t types.Type, expr, what string) string {
	iface := t.Underlying().(*types.Interface)
	for i := range iface.NumMethods() {
		if iface.Method(i).Name() == "DeepCopyObject" {
			if types.Identical(iface.Method(i).Signature().Results().At(0).Type(), t) {
				return expr + ".DeepCopyObject()"
			}
			return expr + ".DeepCopyObject().(" + g.typeString(t) + ")"
		}
	}
	g.errs = append(g.errs, fmt.Errorf("crd: %s field %s: cannot deep copy interface %s (only interfaces with DeepCopyObject, such as runtime.Object, can be copied)", g.where, what, t))
	return expr
}

// copyValue copies *in into *out, where in and out are *t.
func (g *dcGen) copyValue(t types.Type, what string) {
	t = types.Unalias(t)
	if !g.needsDeep(t) {
		g.line("*out = *in")
		return
	}
	if g.hasDeepCopyInto(t) {
		g.line("in.DeepCopyInto(out)")
		return
	}
	if found, ptr := g.manualMethod(t, "DeepCopy"); found {
		if ptr {
			g.line("*out = *in.DeepCopy()")
		} else {
			g.line("*out = in.DeepCopy()")
		}
		return
	}
	switch u := t.Underlying().(type) {
	case *types.Pointer, *types.Slice, *types.Map:
		g.line("if *in != nil {")
		g.copyNonNil(u, t, what)
		g.line("}")
	case *types.Interface:
		g.line("if *in != nil {\n*out = %s\n}", g.objectCopy(t, "(*in)", what))
	case *types.Array:
		g.line("*out = *in\nfor i := range *in {\nin, out := &(*in)[i], &(*out)[i]")
		g.copyValue(u.Elem(), what)
		g.line("}")
	case *types.Struct:
		if n, ok := t.(*types.Named); ok && n.Obj().Pkg() != g.pkg {
			g.errs = append(g.errs, fmt.Errorf("crd: %s field %s: type %s has pointers, slices or maps but no DeepCopyInto method", g.where, what, t))
			return
		}
		g.line("*out = *in")
		for i := range u.NumFields() {
			f := u.Field(i)
			if g.needsDeep(f.Type()) {
				g.fieldCopy(f.Type(), "in."+f.Name(), "out."+f.Name(), what+"."+f.Name())
			}
		}
	case *types.Chan:
		g.errs = append(g.errs, fmt.Errorf("crd: %s field %s: cannot deep copy channel type %s", g.where, what, t))
	case *types.Signature:
		g.errs = append(g.errs, fmt.Errorf("crd: %s field %s: cannot deep copy function type %s", g.where, what, t))
	default:
		g.errs = append(g.errs, fmt.Errorf("crd: %s field %s: cannot deep copy %s", g.where, what, t))
	}
}

// copyNonNil copies *in (non-nil pointer, slice or map, of type t with
// underlying u) into *out.
func (g *dcGen) copyNonNil(u types.Type, t types.Type, what string) {
	switch u := u.(type) {
	case *types.Pointer:
		g.line("*out = new(%s)", g.typeString(u.Elem()))
		if !g.needsDeep(u.Elem()) {
			g.line("**out = **in")
			return
		}
		if g.hasDeepCopyInto(u.Elem()) {
			g.line("(*in).DeepCopyInto(*out)")
			return
		}
		g.line("{\nin, out := *in, *out")
		g.copyValue(u.Elem(), what)
		g.line("}")
	case *types.Slice:
		g.line("*out = make(%s, len(*in))", g.typeString(t))
		if !g.needsDeep(u.Elem()) {
			g.line("copy(*out, *in)")
			return
		}
		if g.hasDeepCopyInto(u.Elem()) {
			g.line("for i := range *in {\n(*in)[i].DeepCopyInto(&(*out)[i])\n}")
			return
		}
		g.line("for i := range *in {\nin, out := &(*in)[i], &(*out)[i]")
		g.copyValue(u.Elem(), what)
		g.line("}")
	case *types.Map:
		g.line("*out = make(%s, len(*in))", g.typeString(t))
		g.line("for key, val := range *in {")
		if !g.needsDeep(u.Elem()) {
			g.line("(*out)[key] = val")
		} else {
			g.line("var outVal %s", g.typeString(u.Elem()))
			g.line("{\nin, out := &val, &outVal")
			g.copyValue(u.Elem(), what)
			g.line("}\n(*out)[key] = outVal")
		}
		g.line("}")
	case *types.Array:
		g.line("*out = *in")
		if g.needsDeep(u.Elem()) {
			g.line("for i := range *in {\nin, out := &(*in)[i], &(*out)[i]")
			g.copyValue(u.Elem(), what)
			g.line("}")
		}
	}
}
