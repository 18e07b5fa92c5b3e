package crd

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RBACOptions configures GenerateRBAC.
type RBACOptions struct {
	Options
	// RoleName names the ClusterRole (and namespaced Roles) of markers
	// without roleName=. Empty means "manager-role", kubebuilder's default.
	RoleName string
}

// Roles are the RBAC objects generated from +kubebuilder:rbac markers.
type Roles struct {
	ClusterRoles []rbacv1.ClusterRole
	Roles        []rbacv1.Role
}

// rbacRule is one marker's rule, for one resource.
type rbacRule struct {
	groups, resources, names, verbs, urls []string
}

func (r *rbacRule) normalize() {
	r.groups = dedupSort(r.groups)
	r.resources = dedupSort(r.resources)
	r.names = dedupSort(r.names)
	r.verbs = dedupSort(r.verbs)
	r.urls = dedupSort(r.urls)
}

func dedupSort(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	out := slices.Clone(s)
	sort.Strings(out)
	return slices.Compact(out)
}

func join(s []string) string { return strings.Join(s, "&") }

// GenerateRBAC collects the +kubebuilder:rbac markers of the packages in
// opts.Paths into a ClusterRole (markers without namespace=) and one Role
// per namespace, merging rules as controller-gen does: verbs of identical
// rules are combined, then rules differing only in resources, in groups, or
// in URLs; the "core" group is written as "".
func GenerateRBAC(ctx context.Context, opts RBACOptions) (*Roles, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	u, err := loadRoots(ctx, opts.Dir, opts.Paths, opts.BuildTags)
	if err != nil {
		return nil, err
	}
	return generateRBAC(u, opts.RoleName)
}

func generateRBAC(u *universe, roleName string) (*Roles, error) {
	if roleName == "" {
		roleName = "manager-role"
	}
	type nsRole struct{ ns, role string }
	byRole := map[nsRole][]*rbacRule{}
	for _, pi := range u.roots {
		docs, err := u.docsOf(pi)
		if err != nil {
			return nil, fmt.Errorf("%w:\n%w", ErrInvalidInput, err)
		}
		for _, m := range docs.Doc.All("kubebuilder:rbac") {
			role := m.String("roleName")
			if role == "" {
				role = roleName
			}
			key := nsRole{m.String("namespace"), role}
			base := rbacRule{groups: argStrings(m, "groups"), names: argStrings(m, "resourceNames"), verbs: argStrings(m, "verbs"), urls: argStrings(m, "urls")}
			for i, g := range base.groups {
				if g == "core" {
					base.groups[i] = ""
				}
			}
			resources := argStrings(m, "resources")
			if len(resources) == 0 {
				r := base
				byRole[key] = append(byRole[key], &r)
			}
			for _, res := range resources {
				r := base
				r.resources = []string{res}
				byRole[key] = append(byRole[key], &r)
			}
		}
	}
	keys := make([]nsRole, 0, len(byRole))
	for k := range byRole {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].ns != keys[j].ns {
			return keys[i].ns < keys[j].ns
		}
		return keys[i].role < keys[j].role
	})
	out := &Roles{}
	for _, k := range keys {
		rules := normalizeRules(byRole[k])
		if len(rules) == 0 {
			continue
		}
		if k.ns == "" {
			out.ClusterRoles = append(out.ClusterRoles, rbacv1.ClusterRole{
				TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole"},
				ObjectMeta: metav1.ObjectMeta{Name: k.role},
				Rules:      rules,
			})
		} else {
			out.Roles = append(out.Roles, rbacv1.Role{
				TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"},
				ObjectMeta: metav1.ObjectMeta{Name: k.role, Namespace: k.ns},
				Rules:      rules,
			})
		}
	}
	return out, nil
}

// mergeBy groups rules by key and merges each group with merge.
func mergeBy(rules []*rbacRule, key func(*rbacRule) string, merge func(into, from *rbacRule)) []*rbacRule {
	groups := map[string][]*rbacRule{}
	var order []string
	for _, r := range rules {
		r.normalize()
		k := key(r)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	sort.Strings(order)
	out := make([]*rbacRule, 0, len(order))
	for _, k := range order {
		g := groups[k]
		for _, r := range g[1:] {
			merge(g[0], r)
		}
		g[0].normalize()
		out = append(out, g[0])
	}
	return out
}

func normalizeRules(rules []*rbacRule) []rbacv1.PolicyRule {
	fullKey := func(r *rbacRule) string {
		return join(r.groups) + " + " + join(r.resources) + " + " + join(r.names) + " + " + join(r.urls)
	}
	rules = mergeBy(rules, fullKey, func(a, b *rbacRule) { a.verbs = append(a.verbs, b.verbs...) })
	rules = mergeBy(rules, func(r *rbacRule) string {
		return join(r.groups) + " + " + join(r.names) + " + " + join(r.urls) + " + " + join(r.verbs)
	}, func(a, b *rbacRule) { a.resources = append(a.resources, b.resources...) })
	rules = mergeBy(rules, func(r *rbacRule) string {
		return join(r.resources) + " + " + join(r.names) + " + " + join(r.urls) + " + " + join(r.verbs)
	}, func(a, b *rbacRule) { a.groups = append(a.groups, b.groups...) })
	rules = mergeBy(rules, func(r *rbacRule) string {
		return join(r.groups) + " + " + join(r.resources) + " + " + join(r.names) + " + " + join(r.verbs)
	}, func(a, b *rbacRule) { a.urls = append(a.urls, b.urls...) })
	sort.SliceStable(rules, func(i, j int) bool { return fullKey(rules[i]) < fullKey(rules[j]) })
	out := make([]rbacv1.PolicyRule, 0, len(rules))
	for _, r := range rules {
		verbs := r.verbs
		if slices.Contains(verbs, "*") {
			verbs = []string{"*"}
		}
		out = append(out, rbacv1.PolicyRule{APIGroups: r.groups, Resources: r.resources, ResourceNames: r.names, Verbs: verbs, NonResourceURLs: r.urls})
	}
	return out
}
