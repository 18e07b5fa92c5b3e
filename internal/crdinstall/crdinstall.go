// Package crdinstall creates or updates CustomResourceDefinitions and waits
// until the API server serves them. It backs crd.Install and envtest.
package crdinstall

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset/typed/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// poll is how often Install looks at a CRD's conditions and discovery. The
// API server establishes a CRD in tens of milliseconds.
const poll = 20 * time.Millisecond

// Install creates each CRD, or updates it when it exists, then waits until
// every one is Established with its names accepted and each served version
// appears in discovery, or ctx ends.
func Install(ctx context.Context, cfg *rest.Config, crds ...*apiextensionsv1.CustomResourceDefinition) error {
	client, err := apiextclient.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("installing CRDs: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return fmt.Errorf("installing CRDs: %w", err)
	}
	for _, crd := range crds {
		if err := apply(ctx, client.CustomResourceDefinitions(), crd); err != nil {
			return err
		}
	}
	for _, crd := range crds {
		if err := waitServed(ctx, client.CustomResourceDefinitions(), disc, crd); err != nil {
			return err
		}
	}
	return nil
}

func apply(ctx context.Context, c apiextclient.CustomResourceDefinitionInterface, crd *apiextensionsv1.CustomResourceDefinition) error {
	_, err := c.Create(ctx, crd, metav1.CreateOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating CRD %s: %w", crd.Name, err)
	}
	// Update on top of the current object; retry on conflicts, which only
	// mean another writer got there between our get and update.
	for {
		cur, err := c.Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("getting CRD %s: %w", crd.Name, err)
		}
		upd := crd.DeepCopy()
		upd.ResourceVersion = cur.ResourceVersion
		_, err = c.Update(ctx, upd, metav1.UpdateOptions{})
		if err == nil {
			return nil
		}
		if !apierrors.IsConflict(err) {
			return fmt.Errorf("updating CRD %s: %w", crd.Name, err)
		}
	}
}

func waitServed(ctx context.Context, c apiextclient.CustomResourceDefinitionInterface, disc discovery.DiscoveryInterface, crd *apiextensionsv1.CustomResourceDefinition) error {
	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	var why string
	for {
		ok, reason, err := served(ctx, c, disc, crd)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		why = reason
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for CRD %s to be served (%s): %w", crd.Name, why, ctx.Err())
		case <-ticker.C:
		}
	}
}

// served reports whether crd is established and each served version is in
// discovery; reason says what is still missing.
func served(ctx context.Context, c apiextclient.CustomResourceDefinitionInterface, disc discovery.DiscoveryInterface, crd *apiextensionsv1.CustomResourceDefinition) (bool, string, error) {
	cur, err := c.Get(ctx, crd.Name, metav1.GetOptions{})
	if err != nil {
		return false, "", fmt.Errorf("getting CRD %s: %w", crd.Name, err)
	}
	var established bool
	for _, cond := range cur.Status.Conditions {
		switch {
		case cond.Type == apiextensionsv1.NamesAccepted && cond.Status == apiextensionsv1.ConditionFalse:
			return false, "", fmt.Errorf("CRD %s: names not accepted: %s", crd.Name, cond.Message)
		case cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue:
			established = true
		}
	}
	if !established {
		return false, "not yet Established", nil
	}
	for _, v := range cur.Spec.Versions {
		if !v.Served {
			continue
		}
		gv := cur.Spec.Group + "/" + v.Name
		list, err := disc.ServerResourcesForGroupVersion(gv)
		if err != nil {
			if apierrors.IsNotFound(err) {
				return false, gv + " not yet in discovery", nil
			}
			return false, "", fmt.Errorf("discovering %s for CRD %s: %w", gv, crd.Name, err)
		}
		if !slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == cur.Spec.Names.Plural }) {
			return false, gv + "/" + cur.Spec.Names.Plural + " not yet in discovery", nil
		}
	}
	return true, "", nil
}

// ReadFiles reads CRDs from YAML or JSON files, or from every .yaml, .yml
// and .json file directly in a folder. A file may hold several documents;
// documents of other kinds are an error naming the file.
func ReadFiles(paths ...string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("reading CRDs: %w", err)
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("reading CRDs: %w", err)
		}
		for _, ent := range entries {
			switch strings.ToLower(filepath.Ext(ent.Name())) {
			case ".yaml", ".yml", ".json":
				if !ent.IsDir() {
					files = append(files, filepath.Join(p, ent.Name()))
				}
			}
		}
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		got, err := readFile(f)
		if err != nil {
			return nil, err
		}
		crds = append(crds, got...)
	}
	return crds, nil
}

func readFile(path string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CRDs: %w", err)
	}
	reader := utilyaml.NewYAMLReader(bufioReader(data))
	var crds []*apiextensionsv1.CustomResourceDefinition
	for i := 1; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return crds, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading CRDs from %s, document %d: %w", path, i, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 || isOnlyComments(doc) {
			continue
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(doc, crd); err != nil {
			return nil, fmt.Errorf("reading CRDs from %s, document %d: %w", path, i, err)
		}
		if crd.APIVersion != "apiextensions.k8s.io/v1" || crd.Kind != "CustomResourceDefinition" {
			return nil, fmt.Errorf("reading CRDs from %s, document %d: kind %q, apiVersion %q is not an apiextensions.k8s.io/v1 CustomResourceDefinition", path, i, crd.Kind, crd.APIVersion)
		}
		crds = append(crds, crd)
	}
}

func isOnlyComments(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

func bufioReader(data []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(data)) }
