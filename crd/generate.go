package crd

import (
	"context"
	"errors"
	"fmt"
	"go/token"
	"go/types"
	"sort"
	"strings"
	"unicode"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/capstan-io/capstan/crd/internal/markers"
)

// ErrInvalidInput is wrapped by every error about the user's API types or
// markers (as opposed to failures to load or write).
var ErrInvalidInput = errors.New("crd: invalid API types")

// Options configures Generate. The zero value is valid and generates CRDs
// for the packages in the current directory.
type Options struct {
	// Paths are package patterns as `go list` takes them, e.g. "./api/...".
	// Empty means ".".
	Paths []string
	// Dir is the directory the patterns are relative to; empty means the
	// current directory.
	Dir string
	// BuildTags are passed to the go command when loading packages.
	BuildTags []string
	// AllowDangerousTypes allows float32/float64 fields (schema type
	// "number"). Off by default: floats round differently across languages.
	AllowDangerousTypes bool
	// MaxDescLen truncates descriptions longer than this at a sentence or
	// word boundary. 0 means no limit.
	MaxDescLen int
	// Header is written at the top of generated Go files (a license, say).
	Header string
	// NoDescriptions drops every description (controller-gen's
	// crd:maxDescLen=0), which keeps large CRDs under the size limit.
	NoDescriptions bool
}

func (o *Options) setDefaults() {
	if len(o.Paths) == 0 {
		o.Paths = []string{"."}
	}
}

func (o *Options) validate() error {
	if o.MaxDescLen < 0 {
		return fmt.Errorf("crd: Options.MaxDescLen must not be negative, got %d", o.MaxDescLen)
	}
	for i, p := range o.Paths {
		if strings.TrimSpace(p) == "" {
			return fmt.Errorf("crd: Options.Paths[%d] is empty", i)
		}
	}
	return nil
}

// kindVersion is one Go type serving one version of a kind.
type kindVersion struct {
	pkg     *pkgInfo
	tn      *types.TypeName
	doc     *markers.Type
	group   string
	version string
}

// Generate loads the packages in opts.Paths and returns one
// CustomResourceDefinition per kind (a struct embedding metav1.TypeMeta and
// metav1.ObjectMeta in a package with +groupName), sorted by group and kind,
// with all versions of a kind merged. On any error it returns no CRD and an
// error listing every problem found, each naming the type, field and
// file:line.
func Generate(ctx context.Context, opts Options) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	u, err := loadRoots(ctx, opts.Dir, opts.Paths, opts.BuildTags)
	if err != nil {
		return nil, err
	}
	return generate(u, opts)
}

func generate(u *universe, opts Options) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	errs := &errList{}
	kinds := map[[2]string][]*kindVersion{}
	for _, pi := range u.roots {
		docs, err := u.docsOf(pi)
		if err != nil {
			errs.errs = append(errs.errs, fmt.Errorf("crd: %w", err))
		}
		if docs == nil || docs.Doc.Get("kubebuilder:skip") != nil {
			continue
		}
		if err := checkRepeats(&docs.Doc); err != nil {
			errs.add(token.Position{}, "package %s: %v", pi.path, err)
		}
		group, version := "", pi.types.Name()
		hasGroup := false
		if m := docs.Doc.Get("groupName"); m != nil {
			group, hasGroup = m.Anon.(string), true
		}
		if m := docs.Doc.Get("versionName"); m != nil {
			version = m.Anon.(string)
		}
		names := make([]string, 0, len(docs.Types))
		for n := range docs.Types {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			td := docs.Types[n]
			tn, ok := pi.types.Scope().Lookup(n).(*types.TypeName)
			if !ok || !isKind(tn) {
				continue
			}
			if !hasGroup {
				errs.add(td.Pos, "type %s: kind in package %s, which has no +groupName marker; add `// +groupName=<group>` to the package documentation", n, pi.path)
				continue
			}
			key := [2]string{group, n}
			kinds[key] = append(kinds[key], &kindVersion{pkg: pi, tn: tn, doc: td, group: group, version: version})
		}
	}
	keys := make([][2]string, 0, len(kinds))
	for k := range kinds {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][1] != keys[j][1] {
			return keys[i][1] < keys[j][1]
		}
		return keys[i][0] < keys[j][0]
	})
	g := newSchemaGen(u, opts.AllowDangerousTypes, errs)
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, k := range keys {
		if c := g.buildCRD(k[0], k[1], kinds[k], opts); c != nil {
			out = append(out, c)
		}
	}
	if len(errs.errs) > 0 {
		return nil, fmt.Errorf("%w:\n%w", ErrInvalidInput, errors.Join(dedupe(errs.errs)...))
	}
	return out, nil
}

func dedupe(errs []error) []error {
	seen := map[string]bool{}
	var out []error
	for _, e := range errs {
		if !seen[e.Error()] {
			seen[e.Error()] = true
			out = append(out, e)
		}
	}
	return out
}

// isKind reports whether a type embeds metav1.TypeMeta and metav1.ObjectMeta.
func isKind(tn *types.TypeName) bool {
	st, ok := tn.Type().Underlying().(*types.Struct)
	if !ok {
		return false
	}
	var typeMeta, objectMeta bool
	for i := range st.NumFields() {
		f := st.Field(i)
		if !f.Embedded() {
			continue
		}
		n, ok := types.Unalias(f.Type()).(*types.Named)
		if !ok || n.Obj().Pkg() == nil || n.Obj().Pkg().Path() != "k8s.io/apimachinery/pkg/apis/meta/v1" {
			continue
		}
		switch n.Obj().Name() {
		case "TypeMeta":
			typeMeta = true
		case "ObjectMeta":
			objectMeta = true
		}
	}
	return typeMeta && objectMeta
}

func (g *schemaGen) buildCRD(group, kind string, kvs []*kindVersion, opts Options) *apiextensionsv1.CustomResourceDefinition {
	errs := g.errs
	defaultPlural := plural(kind)
	c := &apiextensionsv1.CustomResourceDefinition{
		TypeMeta:   metav1.TypeMeta{APIVersion: apiextensionsv1.SchemeGroupVersion.String(), Kind: "CustomResourceDefinition"},
		ObjectMeta: metav1.ObjectMeta{Name: defaultPlural + "." + group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{
				Kind: kind, ListKind: kind + "List", Plural: defaultPlural, Singular: strings.ToLower(kind),
			},
			Scope: apiextensionsv1.NamespaceScoped,
		},
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].version < kvs[j].version })
	for i := 1; i < len(kvs); i++ {
		if kvs[i].version == kvs[i-1].version {
			errs.add(kvs[i].doc.Pos, "type %s: version %s of %s.%s is also declared at %s", kind, kvs[i].version, kind, group, kvs[i-1].doc.Pos)
			return nil
		}
	}
	for _, kv := range kvs {
		if err := checkRepeats(&kv.doc.Doc); err != nil {
			errs.add(kv.doc.Pos, "type %s: %v", kind, err)
		}
		s := g.flatType(kv.tn, nil).DeepCopy()
		flattenAllOf(s, errs)
		if _, ok := s.Properties["metadata"]; ok {
			s.Properties["metadata"] = apiextensionsv1.JSONSchemaProps{Type: "object"}
		}
		if opts.NoDescriptions {
			truncateDescriptions(s, 0)
		} else if opts.MaxDescLen > 0 {
			truncateDescriptions(s, opts.MaxDescLen)
		}
		c.Spec.Versions = append(c.Spec.Versions, apiextensionsv1.CustomResourceDefinitionVersion{
			Name: kv.version, Served: true,
			Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: s},
		})
	}
	var resource *markers.Value
	var skipped []string
	for i, kv := range kvs {
		ver := &c.Spec.Versions[i]
		for _, m := range kv.doc.Markers {
			w := fmt.Sprintf("type %s (version %s)", kind, kv.version)
			switch m.Name {
			case "kubebuilder:subresource:status":
				ensureSubresources(ver).Status = &apiextensionsv1.CustomResourceSubresourceStatus{}
			case "kubebuilder:subresource:scale":
				sc := &apiextensionsv1.CustomResourceSubresourceScale{
					SpecReplicasPath: m.String("specpath"), StatusReplicasPath: m.String("statuspath"),
				}
				if m.Has("selectorpath") {
					p := m.String("selectorpath")
					sc.LabelSelectorPath = &p
				}
				ensureSubresources(ver).Scale = sc
			case "kubebuilder:printcolumn":
				// controller-gen also leaves an empty subresources object
				// behind; kept so that switching generators changes nothing.
				ensureSubresources(ver)
				col := apiextensionsv1.CustomResourceColumnDefinition{
					Name: m.String("name"), Type: m.String("type"), JSONPath: m.String("JSONPath"),
					Description: m.String("description"), Format: m.String("format"),
				}
				if p, ok := m.Args["priority"].(int64); ok {
					col.Priority = int32(p)
				}
				ver.AdditionalPrinterColumns = append(ver.AdditionalPrinterColumns, col)
			case "kubebuilder:resource":
				if resource != nil && !sameArgs(resource, m) {
					errs.add(m.Pos, "%s: +%s conflicts with +%s at %s; every version of a kind must agree on its resource", w, m.Text, resource.Text, resource.Pos)
					continue
				}
				resource = m
			case "kubebuilder:storageversion":
				ver.Storage = true
			case "kubebuilder:unservedversion":
				ver.Served = false
			case "kubebuilder:deprecatedversion":
				ver.Deprecated = true
				if m.Has("warning") {
					w := m.String("warning")
					ver.DeprecationWarning = &w
				}
			case "kubebuilder:skipversion":
				skipped = append(skipped, kv.version)
			case "kubebuilder:selectablefield":
				ver.SelectableFields = append(ver.SelectableFields, apiextensionsv1.SelectableField{JSONPath: m.String("JSONPath")})
			case "kubebuilder:metadata":
				for _, a := range argStrings(m, "annotations") {
					k, v, ok := strings.Cut(a, "=")
					if !ok {
						errs.add(m.Pos, "%s: +%s: annotation %q is not in key=value form", w, m.Text, a)
						continue
					}
					if c.Annotations == nil {
						c.Annotations = map[string]string{}
					}
					c.Annotations[k] = v
				}
				for _, l := range argStrings(m, "labels") {
					k, v, ok := strings.Cut(l, "=")
					if !ok {
						errs.add(m.Pos, "%s: +%s: label %q is not in key=value form", w, m.Text, l)
						continue
					}
					if c.Labels == nil {
						c.Labels = map[string]string{}
					}
					c.Labels[k] = v
				}
			}
		}
	}
	if resource != nil {
		if p := resource.String("path"); p != "" {
			c.Spec.Names.Plural = p
		}
		if s := resource.String("singular"); s != "" {
			c.Spec.Names.Singular = s
		}
		c.Spec.Names.ShortNames = argStrings(resource, "shortName")
		c.Spec.Names.Categories = argStrings(resource, "categories")
		switch scope := resource.String("scope"); scope {
		case "", "Namespaced":
			c.Spec.Scope = apiextensionsv1.NamespaceScoped
		case "Cluster":
			c.Spec.Scope = apiextensionsv1.ClusterScoped
		default:
			errs.add(resource.Pos, "type %s: +%s: scope must be Namespaced or Cluster, not %q", kind, resource.Text, scope)
		}
	}
	c.Name = c.Spec.Names.Plural + "." + group
	pos := kvs[0].doc.Pos
	if len(skipped) > 0 {
		if len(skipped) == len(c.Spec.Versions) {
			errs.add(pos, "type %s: +kubebuilder:skipversion on every version of %s.%s leaves no version to write; remove the marker or the package from paths", kind, kind, group)
			return nil
		}
		kept := c.Spec.Versions[:0]
		for _, v := range c.Spec.Versions {
			if !contains(skipped, v.Name) {
				kept = append(kept, v)
			}
		}
		c.Spec.Versions = kept
	}
	if len(c.Spec.Versions) == 1 {
		c.Spec.Versions[0].Storage = true
	}
	var storage, served []string
	for _, v := range c.Spec.Versions {
		if v.Storage {
			storage = append(storage, v.Name)
		}
		if v.Served {
			served = append(served, v.Name)
		}
	}
	switch {
	case len(storage) == 0:
		errs.add(pos, "type %s: %s.%s has %d versions and none is marked +kubebuilder:storageversion; mark exactly one", kind, kind, group, len(c.Spec.Versions))
	case len(storage) > 1:
		errs.add(pos, "type %s: %s.%s has %d storage versions (%s); mark exactly one with +kubebuilder:storageversion", kind, kind, group, len(storage), strings.Join(storage, ", "))
	}
	if len(served) == 0 {
		errs.add(pos, "type %s: %s.%s serves no version; remove +kubebuilder:unservedversion from one", kind, kind, group)
	}
	return c
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func argStrings(m *markers.Value, name string) []string {
	v, _ := m.Args[name].([]string)
	return v
}

func sameArgs(a, b *markers.Value) bool {
	return fmt.Sprint(a.Args) == fmt.Sprint(b.Args)
}

func ensureSubresources(v *apiextensionsv1.CustomResourceDefinitionVersion) *apiextensionsv1.CustomResourceSubresources {
	if v.Subresources == nil {
		v.Subresources = &apiextensionsv1.CustomResourceSubresources{}
	}
	return v.Subresources
}

// truncateDescriptions shortens every description to maxLen, at a sentence
// or word boundary; maxLen 0 removes them.
func truncateDescriptions(s *apiextensionsv1.JSONSchemaProps, maxLen int) {
	if maxLen == 0 {
		s.Description = ""
	} else if len(s.Description) > maxLen {
		d := s.Description[:maxLen]
		if n := strings.LastIndexFunc(d, func(r rune) bool { return r == '.' || r == '!' || r == '?' }); n > 0 {
			d = d[:n+1]
		} else if n := strings.LastIndexFunc(d, unicode.IsSpace); n > 0 {
			d = d[:n] + "..."
		} else {
			d += "..."
		}
		s.Description = d
	}
	forEachChild(s, func(c *apiextensionsv1.JSONSchemaProps) { truncateDescriptions(c, maxLen) })
}
