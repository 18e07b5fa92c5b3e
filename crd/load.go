package crd

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"golang.org/x/tools/go/packages"

	"github.com/capstan-io/capstan/crd/internal/markers"
)

// pkgInfo is one package the generator looks at: a root (loaded from
// source, its markers checked strictly) or a dependency (types from export
// data, doc comments and markers parsed from its source directory on
// demand).
type pkgInfo struct {
	path  string
	types *types.Package
	root  bool
	// For roots: the syntax and type information go/packages produced.
	syntax    []*ast.File
	typesInfo *types.Info
	// docs is nil until the package's source has been read.
	docs    *markers.Package
	docsErr error
	once    sync.Once
	// imports by file: local name → path, for resolving `type A pkg.B`.
	fileImports map[*ast.File]map[string]string
}

// universe holds every package reachable from the roots.
type universe struct {
	fset   *token.FileSet
	reg    *markers.Registry
	roots  []*pkgInfo
	mu     sync.Mutex
	byPath map[string]*pkgInfo
}

// loadRoots loads the packages matching patterns, type-checked, with
// dependencies taken from export data.
func loadRoots(ctx context.Context, dir string, patterns []string, buildTags []string) (*universe, error) {
	cfg := &packages.Config{
		Context: ctx,
		Dir:     dir,
		Mode: packages.NeedName | packages.NeedFiles | packages.NeedImports |
			packages.NeedTypes | packages.NeedTypesInfo | packages.NeedSyntax,
		Fset: token.NewFileSet(),
	}
	if len(buildTags) > 0 {
		cfg.BuildFlags = []string{"-tags=" + strings.Join(buildTags, ",")}
	}
	pkgs, err := packages.Load(cfg, patterns...)
	if err != nil {
		return nil, fmt.Errorf("crd: loading %s: %w", strings.Join(patterns, " "), err)
	}
	var errs []error
	for _, p := range pkgs {
		for _, e := range p.Errors {
			errs = append(errs, fmt.Errorf("crd: package %s: %s", p.PkgPath, e))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("crd: no packages match %s", strings.Join(patterns, " "))
	}
	u := &universe{fset: cfg.Fset, reg: markers.Default(), byPath: map[string]*pkgInfo{}}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].PkgPath < pkgs[j].PkgPath })
	for _, p := range pkgs {
		pi := &pkgInfo{path: p.PkgPath, types: p.Types, root: true, syntax: p.Syntax, typesInfo: p.TypesInfo}
		u.byPath[p.PkgPath] = pi
		u.roots = append(u.roots, pi)
	}
	return u, nil
}

// pkg returns the info for a types.Package, registering it on first use.
func (u *universe) pkg(tp *types.Package) *pkgInfo {
	u.mu.Lock()
	defer u.mu.Unlock()
	if pi, ok := u.byPath[tp.Path()]; ok {
		return pi
	}
	pi := &pkgInfo{path: tp.Path(), types: tp}
	u.byPath[tp.Path()] = pi
	return pi
}

// docsOf returns the markers and doc comments of a package, reading its
// source the first time.
func (u *universe) docsOf(pi *pkgInfo) (*markers.Package, error) {
	pi.once.Do(func() {
		files := pi.syntax
		if !pi.root {
			files, pi.docsErr = u.parseDir(pi)
			if pi.docsErr != nil {
				return
			}
		}
		pi.fileImports = map[*ast.File]map[string]string{}
		for _, f := range files {
			m := map[string]string{}
			for _, imp := range f.Imports {
				path := strings.Trim(imp.Path.Value, `"`)
				name := ""
				if imp.Name != nil {
					name = imp.Name.Name
				} else if tp := findImport(pi.types, path); tp != nil {
					name = tp.Name()
				} else {
					name = filepath.Base(path)
				}
				m[name] = path
			}
			pi.fileImports[f] = m
		}
		pi.docs, pi.docsErr = markers.Collect(u.fset, files, u.reg, pi.root)
	})
	return pi.docs, pi.docsErr
}

func findImport(p *types.Package, path string) *types.Package {
	for _, imp := range p.Imports() {
		if imp.Path() == path {
			return imp
		}
	}
	return nil
}

// parseDir parses the hand-written Go files of a dependency's directory,
// found from the position of any object in its scope.
func (u *universe) parseDir(pi *pkgInfo) ([]*ast.File, error) {
	dir := ""
	scope := pi.types.Scope()
	for _, name := range scope.Names() {
		if pos := scope.Lookup(name).Pos(); pos.IsValid() {
			if f := u.fset.Position(pos).Filename; f != "" {
				dir = filepath.Dir(f)
				break
			}
		}
	}
	if dir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("crd: reading the source of %s: %w", pi.path, err)
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") ||
			strings.HasSuffix(n, ".pb.go") || strings.HasPrefix(n, "zz_generated") ||
			strings.HasSuffix(n, "_generated.go") {
			continue
		}
		names = append(names, n)
	}
	files := make([]*ast.File, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() {
			files[i], errs[i] = parser.ParseFile(u.fset, filepath.Join(dir, n), nil, parser.ParseComments|parser.SkipObjectResolution)
		})
	}
	wg.Wait()
	var out []*ast.File
	for i, f := range files {
		if errs[i] != nil || f.Name.Name != pi.types.Name() {
			continue // another package in the directory, or a file we cannot read: docs only
		}
		out = append(out, f)
	}
	return out, nil
}

// typeDoc returns the documentation of a named type (nil when its source
// cannot be found, which leaves it without description or markers).
func (u *universe) typeDoc(tn *types.TypeName) (*markers.Type, *markers.Package, error) {
	if tn.Pkg() == nil {
		return nil, nil, nil
	}
	pi := u.pkg(tn.Pkg())
	docs, err := u.docsOf(pi)
	if err != nil || docs == nil {
		return nil, docs, err
	}
	return docs.Types[tn.Name()], docs, nil
}

// resolveTypeExpr resolves the right-hand side of `type A B` or
// `type A pkg.B` to a named type, or returns nil.
func (u *universe) resolveTypeExpr(pi *pkgInfo, file *ast.File, expr ast.Expr) types.Type {
	if pi.typesInfo != nil {
		if t := pi.typesInfo.TypeOf(expr); t != nil {
			return t
		}
	}
	switch e := expr.(type) {
	case *ast.Ident:
		if o := pi.types.Scope().Lookup(e.Name); o != nil {
			if tn, ok := o.(*types.TypeName); ok {
				return tn.Type()
			}
		}
		if o := types.Universe.Lookup(e.Name); o != nil {
			return o.Type()
		}
	case *ast.SelectorExpr:
		x, ok := e.X.(*ast.Ident)
		if !ok {
			return nil
		}
		path := pi.fileImports[file][x.Name]
		if tp := findImport(pi.types, path); tp != nil {
			if o, ok := tp.Scope().Lookup(e.Sel.Name).(*types.TypeName); ok {
				return o.Type()
			}
		}
	}
	return nil
}
