package crd_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/capstan-io/capstan/crd"
	"github.com/capstan-io/capstan/envtest"
)

// obj is a JSON-like object; with returns a deep copy with path set to v
// (v == nil deletes it).
type obj = map[string]any

func with(base obj, path string, v any) obj {
	out := deepCopyJSON(base).(obj)
	parts := strings.Split(path, ".")
	m := out
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(obj)
		if !ok {
			next = obj{}
			m[p] = next
		}
		m = next
	}
	if v == nil {
		delete(m, parts[len(parts)-1])
	} else {
		m[parts[len(parts)-1]] = v
	}
	return out
}

func deepCopyJSON(v any) any {
	switch v := v.(type) {
	case obj:
		out := obj{}
		for k, e := range v {
			out[k] = deepCopyJSON(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = deepCopyJSON(e)
		}
		return out
	}
	return v
}

// TestInstallAndValidate installs every generated CRD into a real API
// server, then checks that a valid sample of each kind is accepted and that
// objects breaking one rule each are rejected by the server.
func TestInstallAndValidate(t *testing.T) {
	env := envtest.StartForTest(t, envtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	crds := generateCorpus(t)
	if err := crd.Install(ctx, env.Config(), crds...); err != nil {
		t.Fatalf("Install: %v", err)
	}
	// Installing again updates in place.
	if err := crd.Install(ctx, env.Config(), crds...); err != nil {
		t.Fatalf("Install (update): %v", err)
	}
	dyn, err := dynamic.NewForConfig(env.Config())
	if err != nil {
		t.Fatal(err)
	}

	widget := obj{"spec": obj{"displayName": "widget-a", "legacy": "x", "model": "m1", "replicas": int64(2),
		"maxReplicas": int64(5), "parts": []any{obj{"name": "bolt"}}, "paint": obj{"solid": "#ff0000"},
		"efficiency": int64(50), "memory": "1Gi", "maxUnavailable": "25%", "aliases": []any{"a", "b"},
		"endpoints": []any{obj{"host": "example.com"}}, "zero": int64(0)}}
	gadget := obj{"spec": obj{"kind": "knob", "turns": int64(1)}}
	setting := obj{"spec": obj{"value": "on", "policy": obj{"steps": []any{obj{"percent": int64(10)}}}}}
	long := strings.Repeat("a", 64)
	many := obj{}
	for _, k := range strings.Split("a b c d e f g h i j k", " ") {
		many[k] = "v"
	}

	kinds := []struct {
		gvr        schema.GroupVersionResource
		namespaced bool
		valid      obj
		invalid    map[string]obj // rule → object breaking it
	}{
		{
			gvr: schema.GroupVersionResource{Group: "shop.capstan.io", Version: "v1", Resource: "widgets"}, namespaced: true, valid: widget,
			invalid: map[string]obj{
				"required":         with(widget, "spec.displayName", nil),
				"type":             with(widget, "spec.replicas", "two"),
				"minimum":          with(widget, "spec.replicas", int64(-1)),
				"maximum":          with(widget, "spec.replicas", int64(1001)),
				"exclusiveMaximum": with(widget, "spec.maxReplicas", int64(10000)),
				"multipleOf":       with(widget, "spec.step", int64(7)),
				"enum":             with(widget, "spec.size", "huge"),
				"pattern":          with(widget, "spec.displayName", "Bad_Name"),
				"maxLength":        with(widget, "spec.displayName", long),
				"minLength":        with(widget, "spec.displayName", ""),
				"minItems":         with(widget, "spec.paint", obj{"gradient": []any{"#000000"}}),
				"listType=set":     with(widget, "spec.aliases", []any{"a", "a"}),
				"listType=map":     with(widget, "spec.parts", []any{obj{"name": "bolt"}, obj{"name": "bolt"}}),
				"items:pattern":    with(widget, "spec.aliases", []any{"UPPER"}),
				"maxProperties":    with(widget, "spec.annotations", many),
				"XValidation":      with(widget, "spec.replicas", int64(9)),
				"ExactlyOneOf":     with(widget, "spec.paint", obj{"solid": "#ff0000", "gradient": []any{"#000000", "#ffffff"}}),
				"named type bound": with(widget, "spec.efficiency", int64(101)),
				"shared type rule": with(widget, "spec.endpoints", []any{obj{"host": ""}}),
				"quantity pattern": with(widget, "spec.memory", "lots"),
				"int-or-string":    with(widget, "spec.maxUnavailable", "x%"),
				"format":           with(widget, "spec.notBefore", "yesterday"),
			},
		},
		{
			gvr: schema.GroupVersionResource{Group: "shop.capstan.io", Version: "v2", Resource: "gadgetry"}, valid: gadget,
			invalid: map[string]obj{
				"enum":             with(gadget, "spec.kind", "wrench"),
				"exclusiveMinimum": with(gadget, "spec.turns", int64(0)),
				"required":         with(gadget, "spec.kind", nil),
			},
		},
		{
			gvr: schema.GroupVersionResource{Group: "config.capstan.io", Version: "v1alpha1", Resource: "settings"}, valid: setting,
			invalid: map[string]obj{
				"AtLeastOneOf":              with(setting, "spec.value", nil),
				"required in optional pkg":  with(setting, "spec.policy.steps", nil),
				"minItems":                  with(setting, "spec.policy.steps", []any{}),
				"enum via default override": with(setting, "spec.policy.strategy", "Sometimes"),
			},
		},
	}
	for _, k := range kinds {
		t.Run(k.gvr.Resource, func(t *testing.T) {
			var client dynamic.ResourceInterface = dyn.Resource(k.gvr)
			if k.namespaced {
				client = dyn.Resource(k.gvr).Namespace("default")
			}
			mk := func(name string, o obj) *unstructured.Unstructured {
				u := &unstructured.Unstructured{Object: deepCopyJSON(o).(obj)}
				u.SetAPIVersion(k.gvr.GroupVersion().String())
				u.SetKind(kindOf(crds, k.gvr))
				u.SetName(name)
				return u
			}
			if _, err := client.Create(ctx, mk("valid", k.valid), metav1.CreateOptions{}); err != nil {
				t.Fatalf("valid sample rejected: %v", err)
			}
			for rule, o := range k.invalid {
				_, err := client.Create(ctx, mk("invalid-"+strings.ToLower(strings.NewReplacer(" ", "-", "=", "-", ":", "-").Replace(rule)), o), metav1.CreateOptions{})
				if err == nil {
					t.Errorf("%s: object breaking the rule was accepted", rule)
					continue
				}
				if !apierrors.IsInvalid(err) {
					t.Errorf("%s: got %v, want an Invalid error", rule, err)
				}
			}
		})
	}
}

func kindOf(crds []*apiextensionsv1.CustomResourceDefinition, gvr schema.GroupVersionResource) string {
	for _, c := range crds {
		if c.Spec.Group == gvr.Group && c.Spec.Names.Plural == gvr.Resource {
			return c.Spec.Names.Kind
		}
	}
	return ""
}

// TestInstallRefusedNames checks that Install reports a CRD whose names the
// server refuses instead of waiting forever.
func TestInstallRefusedNames(t *testing.T) {
	env := envtest.StartForTest(t, envtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	crds := generateCorpus(t)
	if err := crd.Install(ctx, env.Config(), crds[0]); err != nil {
		t.Fatal(err)
	}
	clash := crds[0].DeepCopy()
	clash.Name = "clashes." + clash.Spec.Group
	clash.Spec.Names.Plural = "clashes"
	clash.Spec.Names.Singular = "clash"
	clash.Spec.Names.ShortNames = nil
	clash.Spec.Names.Categories = nil
	// Same kind as an existing CRD of the group: the server refuses the names.
	err := crd.Install(ctx, env.Config(), clash)
	if !errors.Is(err, crd.ErrNotEstablished) {
		t.Fatalf("got %v, want ErrNotEstablished", err)
	}
}
