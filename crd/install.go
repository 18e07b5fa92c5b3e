package crd

import (
	"context"
	"errors"
	"fmt"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// ErrNotEstablished is wrapped when the API server refuses a CRD's names.
var ErrNotEstablished = errors.New("crd: CRD not established")

// Install creates each CRD, or updates it if it exists, then waits until
// every one is Established (its API is served). It returns early with an
// error wrapping ErrNotEstablished if the server refuses a CRD's names, and
// with ctx's error if ctx ends first: bound the wait with a deadline.
func Install(ctx context.Context, cfg *rest.Config, crds ...*apiextensionsv1.CustomResourceDefinition) error {
	if cfg == nil {
		return errors.New("crd: Install needs a rest.Config, got nil")
	}
	cs, err := clientset.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("crd: creating apiextensions client: %w", err)
	}
	client := cs.ApiextensionsV1().CustomResourceDefinitions()
	for _, c := range crds {
		if err := apply(ctx, client, c); err != nil {
			return err
		}
	}
	for _, c := range crds {
		if err := waitEstablished(ctx, client, c.Name); err != nil {
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
		return fmt.Errorf("crd: creating %s: %w", c.Name, err)
	}
	// Update the existing object, retrying on conflicting writers.
	for {
		cur, err := client.Get(ctx, c.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("crd: reading %s: %w", c.Name, err)
		}
		next := c.DeepCopy()
		next.ResourceVersion = cur.ResourceVersion
		_, err = client.Update(ctx, next, metav1.UpdateOptions{})
		switch {
		case err == nil:
			return nil
		case apierrors.IsConflict(err):
			if ctx.Err() != nil {
				return fmt.Errorf("crd: updating %s: %w", c.Name, ctx.Err())
			}
			continue
		default:
			return fmt.Errorf("crd: updating %s: %w", c.Name, err)
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
			return fmt.Errorf("crd: reading %s: %w", name, err)
		}
		if ok, err := established(cur); ok || err != nil {
			return err
		}
		w, err := client.Watch(ctx, metav1.ListOptions{
			FieldSelector:   fields.OneTermEqualSelector("metadata.name", name).String(),
			ResourceVersion: cur.ResourceVersion,
		})
		if err != nil {
			return fmt.Errorf("crd: watching %s: %w", name, err)
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
			return false, fmt.Errorf("crd: waiting for %s to be established: %w", name, ctx.Err())
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
