package crd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// RunGenerate runs a generation described by controller-gen's command-line
// arguments, so that `capstan generate` drops into Makefiles written for
// controller-gen:
//
//	crd[:allowDangerousTypes=true,maxDescLen=0,crdVersions=v1,headerFile=F]
//	object[:headerFile=F,year=Y]        (alias: deepcopy)
//	rbac[:roleName=manager-role,fileName=role.yaml,headerFile=F]
//	paths=./api/...;./internal/...      (or paths={a,b}; may repeat)
//	output:crd:artifacts:config=DIR     (also output:<gen>:dir=DIR, output:<gen>:stdout,
//	                                     output:dir=DIR for all, output=DIR for all)
//
// Defaults are controller-gen's: CRDs to config/crd/bases, the role to
// config/rbac/role.yaml, DeepCopy next to the types. Relative paths are
// relative to dir ("" means the current directory). Everything is generated
// before anything is written; on error no file is changed and the error
// names every problem.
func RunGenerate(ctx context.Context, dir string, args []string, stdout, stderr io.Writer) error {
	inv, err := parseGenerateArgs(args)
	if err != nil {
		return err
	}
	base := dir
	if base == "" {
		if base, err = os.Getwd(); err != nil {
			return fmt.Errorf("crd: %w", err)
		}
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	readHeader := func(file, year string) (string, error) {
		if file == "" {
			return "", nil
		}
		b, err := os.ReadFile(abs(file))
		if err != nil {
			return "", fmt.Errorf("crd: reading headerFile: %w", err)
		}
		return strings.ReplaceAll(string(b), " YEAR", " "+year), nil
	}
	opts := Options{Paths: inv.paths, Dir: base}
	opts.setDefaults()
	type pending struct {
		out   outputRule
		files map[string][]byte
	}
	var writes []pending
	var goFiles []File
	crdOpts := opts
	if g, ok := inv.gens["crd"]; ok {
		o := &crdOpts
		if v := g["allowDangerousTypes"]; v != "" {
			if o.AllowDangerousTypes, err = strconv.ParseBool(v); err != nil {
				return fmt.Errorf("%w: crd:allowDangerousTypes=%s: %w", ErrUsage, v, err)
			}
		}
		if v, ok := g["maxDescLen"]; ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("%w: crd:maxDescLen=%s: want a number >= 0", ErrUsage, v)
			}
			o.MaxDescLen, o.NoDescriptions = n, n == 0
		}
		if v, ok := g["crdVersions"]; ok && strings.Trim(v, "{}") != "v1" {
			return fmt.Errorf("%w: crd:crdVersions=%s: only v1 is supported (apiextensions.k8s.io/v1beta1 was removed in Kubernetes 1.22)", ErrUsage, v)
		}
	}
	// One load serves every generator.
	u, err := loadRoots(ctx, base, opts.Paths, nil)
	if err != nil {
		return err
	}
	if g, ok := inv.gens["crd"]; ok {
		header, err := readHeader(g["headerFile"], g["year"])
		if err != nil {
			return err
		}
		crds, err := generate(u, crdOpts)
		if err != nil {
			return err
		}
		files := map[string][]byte{}
		for _, c := range crds {
			c = c.DeepCopy()
			if c.Annotations == nil {
				c.Annotations = map[string]string{}
			}
			c.Annotations[GeneratorAnnotation] = generatorVersion()
			b, err := MarshalCRD(c)
			if err != nil {
				return err
			}
			files[FileName(c)] = append([]byte(header), b...)
		}
		writes = append(writes, pending{inv.output("crd", "config/crd/bases"), files})
	}
	if g, ok := inv.gens["object"]; ok {
		o := opts
		if o.Header, err = readHeader(g["headerFile"], g["year"]); err != nil {
			return err
		}
		if goFiles, err = generateDeepCopy(u, o.Header); err != nil {
			return err
		}
	}
	if g, ok := inv.gens["rbac"]; ok {
		roles, err := generateRBAC(u, g["roleName"])
		if err != nil {
			return err
		}
		header, err := readHeader(g["headerFile"], g["year"])
		if err != nil {
			return err
		}
		var b strings.Builder
		b.WriteString(header)
		var objs []any
		for _, r := range roles.ClusterRoles {
			objs = append(objs, r)
		}
		for _, r := range roles.Roles {
			objs = append(objs, r)
		}
		for _, o := range objs {
			y, err := marshalClean(o)
			if err != nil {
				return err
			}
			b.WriteString("---\n")
			b.Write(y)
		}
		name := g["fileName"]
		if name == "" {
			name = "role.yaml"
		}
		if len(objs) > 0 {
			writes = append(writes, pending{inv.output("rbac", "config/rbac"), map[string][]byte{name: []byte(b.String())}})
		}
	}
	// Everything is generated: now write.
	for _, w := range writes {
		switch {
		case w.out.none:
		case w.out.stdout:
			names := make([]string, 0, len(w.files))
			for n := range w.files {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				if _, err := stdout.Write(w.files[n]); err != nil {
					return fmt.Errorf("crd: writing to stdout: %w", err)
				}
			}
		default:
			if err := WriteFiles(abs(w.out.dir), w.files); err != nil {
				return err
			}
		}
	}
	if err := WriteGeneratedFiles(goFiles); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "capstan: generated %s\n", strings.Join(inv.order, ", "))
	return nil
}

// marshalClean renders an object as YAML without creationTimestamp.
func marshalClean(o any) ([]byte, error) {
	j, err := json.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("crd: encoding: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, fmt.Errorf("crd: encoding: %w", err)
	}
	if meta, ok := m["metadata"].(map[string]any); ok {
		delete(meta, "creationTimestamp")
	}
	return yaml.Marshal(m)
}

type outputRule struct {
	dir          string
	stdout, none bool
}

type invocation struct {
	gens    map[string]map[string]string
	order   []string
	paths   []string
	outputs map[string]outputRule // by generator; "" for all
}

func (inv *invocation) output(gen, def string) outputRule {
	if o, ok := inv.outputs[gen]; ok {
		return o
	}
	if o, ok := inv.outputs[""]; ok {
		return o
	}
	return outputRule{dir: def}
}

// ErrUsage is wrapped by errors about RunGenerate's arguments.
var ErrUsage = fmt.Errorf("crd: bad arguments")

func parseGenerateArgs(args []string) (*invocation, error) {
	inv := &invocation{gens: map[string]map[string]string{}, outputs: map[string]outputRule{}}
	for _, a := range args {
		a = strings.TrimPrefix(a, "+")
		key, val, hasVal := strings.Cut(a, "=")
		switch {
		case key == "paths":
			inv.paths = append(inv.paths, splitList(val)...)
		case key == "output":
			inv.outputs[""] = outputRule{dir: val}
		case strings.HasPrefix(key, "output:"):
			rest := strings.TrimPrefix(key, "output:")
			gen := ""
			if g, r, ok := strings.Cut(rest, ":"); ok && g != "artifacts" && (g == "crd" || g == "rbac" || g == "object" || g == "deepcopy" || g == "webhook") {
				gen, rest = normalizeGen(g), r
			} else if !ok && (rest == "crd" || rest == "rbac" || rest == "object" || rest == "deepcopy") && hasVal {
				return nil, fmt.Errorf("%w: %q: want output:%s:dir=DIR", ErrUsage, a, rest)
			}
			switch rest {
			case "dir", "artifacts:config":
				if !hasVal || val == "" {
					return nil, fmt.Errorf("%w: %q needs a directory", ErrUsage, a)
				}
				inv.outputs[gen] = outputRule{dir: val}
			case "stdout":
				inv.outputs[gen] = outputRule{stdout: true}
			case "none":
				inv.outputs[gen] = outputRule{none: true}
			default:
				return nil, fmt.Errorf("%w: unknown output rule %q (want dir=, artifacts:config=, stdout or none)", ErrUsage, a)
			}
		default:
			name, opts, _ := strings.Cut(a, ":")
			name = normalizeGen(name)
			if name != "crd" && name != "object" && name != "rbac" {
				return nil, fmt.Errorf("%w: unknown argument %q (generators: crd, object|deepcopy, rbac; paths=; output:...)", ErrUsage, a)
			}
			o := map[string]string{}
			if opts != "" {
				for _, kv := range splitTopLevel(opts) {
					k, v, _ := strings.Cut(kv, "=")
					v = strings.Trim(v, `"`)
					switch name + ":" + k {
					case "crd:allowDangerousTypes", "crd:maxDescLen", "crd:crdVersions", "crd:headerFile", "crd:year",
						"object:headerFile", "object:year", "rbac:roleName", "rbac:fileName", "rbac:headerFile", "rbac:year":
						o[k] = v
					default:
						return nil, fmt.Errorf("%w: %s does not take %q", ErrUsage, name, k)
					}
				}
			}
			if _, dup := inv.gens[name]; !dup {
				inv.order = append(inv.order, name)
			}
			inv.gens[name] = o
		}
	}
	if len(inv.gens) == 0 {
		return nil, fmt.Errorf("%w: no generator given (crd, object, rbac)", ErrUsage)
	}
	if len(inv.paths) == 0 {
		inv.paths = []string{"./..."}
	}
	return inv, nil
}

func normalizeGen(g string) string {
	if g == "deepcopy" {
		return "object"
	}
	return g
}

// splitList reads a;b;c or {a,b,c}.
func splitList(v string) []string {
	v = strings.TrimSpace(v)
	sep := ";"
	if strings.HasPrefix(v, "{") && strings.HasSuffix(v, "}") {
		v, sep = v[1:len(v)-1], ","
	}
	var out []string
	for _, p := range strings.Split(v, sep) {
		if p = strings.Trim(strings.TrimSpace(p), `"`); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// splitTopLevel splits on commas outside quotes and braces.
func splitTopLevel(s string) []string {
	var out []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '`':
			quote = c
		case c == '{':
			depth++
		case c == '}':
			depth--
		case c == ',' && depth == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
