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
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
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

// ErrNotEstablished is wrapped when the API server refuses a CRD's names
// or the CRD is deleted while Install waits for it.
var ErrNotEstablished = errors.New("crd: CRD not established")

// poll is how often Install looks at discovery once a CRD is Established.
const poll = 20 * time.Millisecond

// Install creates each CRD, or updates it when it exists, then waits until
// every one is Established and each served version appears in discovery
// (so clients that discover resources see it at once), or ctx ends.
func Install(ctx context.Context, cfg *rest.Config, crds ...*apiextensionsv1.CustomResourceDefinition) error {
	if cfg == nil {
		return errors.New("installing CRDs: rest.Config is nil")
	}
	cs, err := apiextclient.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("installing CRDs: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return fmt.Errorf("installing CRDs: %w", err)
	}
	client := cs.CustomResourceDefinitions()
	for _, c := range crds {
		if err := apply(ctx, client, c); err != nil {
			return err
		}
	}
	for _, c := range crds {
		if err := waitEstablished(ctx, client, c.Name); err != nil {
			return err
		}
		if err := waitDiscovered(ctx, disc, c); err != nil {
			return err
		}
	}
	return nil
}

type crdClient interface {
	Create(context.Context, *apiextensionsv1.CustomResourceDefinition, metav1.CreateOptions) (*apiextensionsv1.CustomResourceDefinition, error)
	Update(context.Context, *apiextensionsv1.CustomResourceDefinition, metav1.UpdateOptions) (*apiextensionsv1.CustomResourceDefinition, error)
	Get(context.Context, string, metav1.GetOptions) (*apiextensionsv1.CustomResourceDefinition, error)
	Watch(context.Context, metav1.ListOptions) (watch.Interface, error)
}

func apply(ctx context.Context, client crdClient, c *apiextensionsv1.CustomResourceDefinition) error {
	_, err := client.Create(ctx, c, metav1.CreateOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating %s: %w", c.Name, err)
	}
	// Update the existing object, retrying on conflicting writers.
	for {
		cur, err := client.Get(ctx, c.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading %s: %w", c.Name, err)
		}
		next := c.DeepCopy()
		next.ResourceVersion = cur.ResourceVersion
		_, err = client.Update(ctx, next, metav1.UpdateOptions{})
		switch {
		case err == nil:
			return nil
		case apierrors.IsConflict(err):
			if ctx.Err() != nil {
				return fmt.Errorf("updating %s: %w", c.Name, ctx.Err())
			}
			continue
		default:
			return fmt.Errorf("updating %s: %w", c.Name, err)
		}
	}
}

// established returns (true, nil) when Established, or an error when the
// names were refused.
func established(c *apiextensionsv1.CustomResourceDefinition) (bool, error) {
	for _, cond := range c.Status.Conditions {
		switch {
		case cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue:
			return true, nil
		case cond.Type == apiextensionsv1.NamesAccepted && cond.Status == apiextensionsv1.ConditionFalse:
			return false, fmt.Errorf("%w: %s: names not accepted: %s", ErrNotEstablished, c.Name, cond.Message)
		}
	}
	return false, nil
}

func waitEstablished(ctx context.Context, client crdClient, name string) error {
	for {
		cur, err := client.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		if ok, err := established(cur); ok || err != nil {
			return err
		}
		w, err := client.Watch(ctx, metav1.ListOptions{
			FieldSelector:   fields.OneTermEqualSelector("metadata.name", name).String(),
			ResourceVersion: cur.ResourceVersion,
		})
		if err != nil {
			return fmt.Errorf("watching %s: %w", name, err)
		}
		done, err := watchUntilEstablished(ctx, w, name)
		w.Stop()
		if done || err != nil {
			return err
		}
		// The watch closed early: read again and resume.
	}
}

func watchUntilEstablished(ctx context.Context, w watch.Interface, name string) (bool, error) {
	for {
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("waiting for %s to be established: %w", name, ctx.Err())
		case ev, ok := <-w.ResultChan():
			if !ok {
				return false, nil
			}
			c, isCRD := ev.Object.(*apiextensionsv1.CustomResourceDefinition)
			if !isCRD {
				continue
			}
			if ev.Type == watch.Deleted {
				return false, fmt.Errorf("%w: %s was deleted while waiting", ErrNotEstablished, name)
			}
			if ok, err := established(c); ok || err != nil {
				return true, err
			}
		}
	}
}

// waitDiscovered polls discovery until each served version of crd lists
// its plural.
func waitDiscovered(ctx context.Context, disc discovery.DiscoveryInterface, crd *apiextensionsv1.CustomResourceDefinition) error {
	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	for {
		missing, err := undiscovered(disc, crd)
		if err != nil {
			return err
		}
		if missing == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to be in discovery: %w", missing, ctx.Err())
		case <-ticker.C:
		}
	}
}

// undiscovered returns the first group/version/plural of crd's served
// versions that discovery does not list yet, or "".
func undiscovered(disc discovery.DiscoveryInterface, crd *apiextensionsv1.CustomResourceDefinition) (string, error) {
	for _, v := range crd.Spec.Versions {
		if !v.Served {
			continue
		}
		gv := crd.Spec.Group + "/" + v.Name
		want := gv + "/" + crd.Spec.Names.Plural
		list, err := disc.ServerResourcesForGroupVersion(gv)
		if apierrors.IsNotFound(err) {
			return want, nil
		}
		if err != nil {
			return "", fmt.Errorf("discovering %s for CRD %s: %w", gv, crd.Name, err)
		}
		if !slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == crd.Spec.Names.Plural }) {
			return want, nil
		}
	}
	return "", nil
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
