package crd

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// GeneratorAnnotation is the annotation capstan puts on the CRDs it writes,
// in the place of controller-gen's controller-gen.kubebuilder.io/version.
const GeneratorAnnotation = "capstan.io/generator-version"

// generatorVersion is the version of the capstan module in this binary.
func generatorVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Path == "github.com/capstan-io/capstan" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
		for _, d := range bi.Deps {
			if d.Path == "github.com/capstan-io/capstan" {
				return d.Version
			}
		}
	}
	return "(devel)"
}

// MarshalCRD renders a CRD as controller-gen writes it: a YAML document
// starting with "---", keys sorted, without status or creationTimestamp.
func MarshalCRD(c *apiextensionsv1.CustomResourceDefinition) ([]byte, error) {
	j, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("crd: encoding %s: %w", c.Name, err)
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, fmt.Errorf("crd: encoding %s: %w", c.Name, err)
	}
	delete(m, "status")
	if meta, ok := m["metadata"].(map[string]any); ok {
		delete(meta, "creationTimestamp")
	}
	y, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("crd: encoding %s: %w", c.Name, err)
	}
	return append([]byte("---\n"), y...), nil
}

// FileName is the name controller-gen gives a CRD's file: <group>_<plural>.yaml.
func FileName(c *apiextensionsv1.CustomResourceDefinition) string {
	return c.Spec.Group + "_" + c.Spec.Names.Plural + ".yaml"
}

// WriteFiles writes each file (name → content) into dir, creating dir. Every
// file is first written under a temporary name; nothing is renamed into place
// unless all were written, so a failure leaves no partial output.
func WriteFiles(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("crd: creating output directory: %w", err)
	}
	tmps := map[string]string{}
	cleanup := func() {
		for _, t := range tmps {
			_ = os.Remove(t)
		}
	}
	for name, content := range files {
		f, err := os.CreateTemp(dir, "."+name+".tmp-")
		if err != nil {
			cleanup()
			return fmt.Errorf("crd: writing %s: %w", name, err)
		}
		tmps[name] = f.Name()
		_, werr := f.Write(content)
		cerr := f.Close()
		if werr != nil || cerr != nil {
			cleanup()
			return fmt.Errorf("crd: writing %s: %w", name, errorsJoin(werr, cerr))
		}
		if err := os.Chmod(f.Name(), 0o644); err != nil {
			cleanup()
			return fmt.Errorf("crd: writing %s: %w", name, err)
		}
	}
	for name, t := range tmps {
		if err := os.Rename(t, filepath.Join(dir, name)); err != nil {
			cleanup()
			return fmt.Errorf("crd: writing %s: %w", name, err)
		}
		delete(tmps, name)
	}
	return nil
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// WriteCRDs writes each CRD to dir as <group>_<plural>.yaml, with the
// generator annotation added. On error no file is changed.
func WriteCRDs(dir string, crds []*apiextensionsv1.CustomResourceDefinition) error {
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
		files[FileName(c)] = b
	}
	return WriteFiles(dir, files)
}
