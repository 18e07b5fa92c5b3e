package markers

import (
	"errors"
	"fmt"
	"go/ast"
	"go/token"
	"sort"
	"strings"
)

// Doc is the documentation of one package, type or field: its description
// (the doc comment without markers) and its markers.
type Doc struct {
	Description string
	Markers     []*Value
	Pos         token.Position
}

// Get returns the first marker with the given name, or nil.
func (d *Doc) Get(name string) *Value {
	if d == nil {
		return nil
	}
	for _, m := range d.Markers {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// All returns every marker with the given name, in source order.
func (d *Doc) All(name string) []*Value {
	if d == nil {
		return nil
	}
	var out []*Value
	for _, m := range d.Markers {
		if m.Name == name {
			out = append(out, m)
		}
	}
	return out
}

// Field is one struct field's documentation. Embedded fields have Name "".
type Field struct {
	Name string
	Doc
	Node *ast.Field
}

// Type is one type declaration's documentation.
type Type struct {
	Name string
	Doc
	Spec   *ast.TypeSpec
	File   *ast.File
	Fields []Field
}

// Package is the documentation of one package.
type Package struct {
	Doc   Doc
	Types map[string]*Type
}

// Collect reads the markers and doc comments of a package's files, with the
// association rules of controller-gen: a type's or field's markers are those
// in its doc comment and in the comment group just before it (separated by
// a blank line); comment groups belonging to no type or field are
// package-level. When strict, unknown kubebuilder markers and markers placed
// where they do not apply are errors.
func Collect(fset *token.FileSet, files []*ast.File, reg *Registry, strict bool) (*Package, error) {
	pkg := &Package{Types: map[string]*Type{}}
	var errs []error
	parse := func(c *ast.Comment, target Target, what string) *Value {
		text, ok := markerText(c.Text)
		if !ok {
			return nil
		}
		pos := fset.Position(c.Pos())
		v, err := reg.Parse(text, pos)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", pos, err))
			return nil
		}
		if v == nil {
			if strict && !reg.Known(text) {
				errs = append(errs, fmt.Errorf("%s: unknown marker +%s", pos, text))
			}
			return nil
		}
		def := reg.defs[v.Name]
		if def.Targets&target == 0 {
			if strict {
				errs = append(errs, fmt.Errorf("%s: marker +%s applies to %s, not to %s", pos, text, def.Targets, what))
			}
			return nil
		}
		return v
	}

	for _, file := range files {
		used := map[*ast.CommentGroup]bool{}
		groups := file.Comments
		// before returns the comment group ending just before pos and
		// after limit, if any.
		before := func(pos, limit token.Pos) *ast.CommentGroup {
			i := sort.Search(len(groups), func(i int) bool { return groups[i].End() >= pos })
			if i == 0 {
				return nil
			}
			g := groups[i-1]
			if g.Pos() <= limit {
				return nil
			}
			return g
		}
		var topLevel []*ast.CommentGroup
		prevEnd := file.Name.End()
		for _, decl := range file.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				prevEnd = decl.End()
				continue
			}
			// The groups of a single-spec declaration belong to its type.
			var declGroups []*ast.CommentGroup
			if gd.Lparen == token.NoPos {
				start := gd.Pos()
				if gd.Doc != nil {
					declGroups = append(declGroups, gd.Doc)
					start = gd.Doc.Pos()
				}
				if g := before(start, prevEnd); g != nil {
					declGroups = append(declGroups, g)
				}
			} else if gd.Doc != nil {
				topLevel = append(topLevel, gd.Doc)
				if g := before(gd.Doc.Pos(), prevEnd); g != nil {
					topLevel = append(topLevel, g)
				}
			}
			specEnd := gd.Lparen
			for _, s := range gd.Specs {
				spec := s.(*ast.TypeSpec)
				t := &Type{Name: spec.Name.Name, Spec: spec, File: file}
				t.Pos = fset.Position(spec.Pos())
				groupsOfSpec := declGroups
				docGroup := spec.Doc
				if gd.Lparen != token.NoPos {
					groupsOfSpec = nil
					start := spec.Pos()
					if spec.Doc != nil {
						groupsOfSpec = append(groupsOfSpec, spec.Doc)
						start = spec.Doc.Pos()
					}
					if g := before(start, specEnd); g != nil {
						groupsOfSpec = append(groupsOfSpec, g)
					}
				} else if docGroup == nil {
					docGroup = gd.Doc
				}
				specEnd = spec.End()
				// Source order: the earlier group first.
				sort.Slice(groupsOfSpec, func(i, j int) bool { return groupsOfSpec[i].Pos() < groupsOfSpec[j].Pos() })
				for _, g := range groupsOfSpec {
					used[g] = true
					for _, c := range g.List {
						text, ok := markerText(c.Text)
						if !ok {
							continue
						}
						// A package marker written above a type is the
						// package's (controller-gen does the same).
						if def, _, _, _ := reg.Lookup(text); def != nil && def.Targets&OnType == 0 && def.Targets&OnPackage != 0 {
							if v := parse(c, OnPackage, "packages"); v != nil {
								pkg.Doc.Markers = append(pkg.Doc.Markers, v)
							}
							continue
						}
						if v := parse(c, OnType, "types"); v != nil {
							t.Markers = append(t.Markers, v)
						}
					}
				}
				t.Description = Description(docGroup)
				if st, ok := spec.Type.(*ast.StructType); ok {
					fieldEnd := st.Fields.Opening
					for _, f := range st.Fields.List {
						var d Doc
						d.Pos = fset.Position(f.Pos())
						var fg []*ast.CommentGroup
						start := f.Pos()
						if f.Doc != nil {
							start = f.Doc.Pos()
						}
						if g := before(start, fieldEnd); g != nil && g != f.Doc {
							fg = append(fg, g)
						}
						if f.Doc != nil {
							fg = append(fg, f.Doc)
						}
						fieldEnd = f.End()
						for _, g := range fg {
							for _, c := range g.List {
								if v := parse(c, OnField, "fields"); v != nil {
									d.Markers = append(d.Markers, v)
								}
							}
						}
						d.Description = Description(f.Doc)
						if len(f.Names) == 0 {
							t.Fields = append(t.Fields, Field{Doc: d, Node: f})
						}
						for _, n := range f.Names {
							t.Fields = append(t.Fields, Field{Name: n.Name, Doc: d, Node: f})
						}
					}
				}
				pkg.Types[t.Name] = t
			}
			prevEnd = gd.End()
		}
		// Everything else outside declaration bodies is package-level.
		for _, g := range groups {
			if used[g] || insideDecl(file, g) {
				continue
			}
			topLevel = append(topLevel, g)
		}
		seen := map[*ast.CommentGroup]bool{}
		for _, g := range topLevel {
			if seen[g] {
				continue
			}
			seen[g] = true
			for _, c := range g.List {
				if v := parse(c, OnPackage, "packages"); v != nil {
					pkg.Doc.Markers = append(pkg.Doc.Markers, v)
				}
			}
		}
		if file.Doc != nil && pkg.Doc.Description == "" {
			pkg.Doc.Description = Description(file.Doc)
		}
	}
	sort.SliceStable(pkg.Doc.Markers, func(i, j int) bool {
		a, b := pkg.Doc.Markers[i].Pos, pkg.Doc.Markers[j].Pos
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		return a.Offset < b.Offset
	})
	return pkg, errors.Join(errs...)
}

// insideDecl reports whether g lies within the body of a declaration (a
// function body, a struct, a parenthesised group).
func insideDecl(file *ast.File, g *ast.CommentGroup) bool {
	for _, d := range file.Decls {
		if g.Pos() > d.Pos() && g.End() < d.End() {
			return true
		}
	}
	return false
}

// markerText returns the marker in a comment ("// +foo=bar" → "foo=bar").
func markerText(comment string) (string, bool) {
	if !strings.HasPrefix(comment, "//") {
		return "", false
	}
	s := strings.TrimSpace(comment[2:])
	if !strings.HasPrefix(s, "+") {
		return "", false
	}
	return s[1:], true
}

// Description turns a doc comment into a schema description the way
// controller-gen does: markers removed, paragraphs kept, lines starting with
// TODO dropped, and everything from a line starting with --- on cut, except
// inside fenced code blocks.
func Description(g *ast.CommentGroup) string {
	if g == nil {
		return ""
	}
	var kept ast.CommentGroup
	asterisk := false
	for _, c := range g.List {
		if _, ok := markerText(c.Text); ok {
			continue
		}
		if strings.HasPrefix(c.Text, "/*") {
			asterisk = true
		}
		kept.List = append(kept.List, c)
	}
	if len(kept.List) == 0 {
		return ""
	}
	lines := strings.Split(kept.Text(), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	out := make([]string, 0, len(lines))
	inCode := false
	for _, line := range lines {
		if asterisk {
			line = strings.TrimSpace(line)
		}
		if strings.HasPrefix(line, "```") || strings.HasPrefix(line, "~~~") {
			inCode = !inCode
		}
		if !inCode {
			if strings.HasPrefix(line, "TODO") {
				continue
			}
			if strings.HasPrefix(line, "---") {
				break
			}
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}
