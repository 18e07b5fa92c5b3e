package crd_test

import (
	"bytes"
	"context"
	"os"
	"reflect"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/conversion"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/randfill"

	"github.com/capstan-io/capstan/crd"
	"github.com/capstan-io/capstan/crd/internal/corpus/common"
	configv1alpha1 "github.com/capstan-io/capstan/crd/internal/corpus/config/v1alpha1"
	shopv1 "github.com/capstan-io/capstan/crd/internal/corpus/shop/v1"
	shopv1beta1 "github.com/capstan-io/capstan/crd/internal/corpus/shop/v1beta1"
	shopv2 "github.com/capstan-io/capstan/crd/internal/corpus/shop/v2"
)

// TestDeepCopyUpToDate regenerates the corpus's zz_generated.deepcopy.go
// files and requires them to equal the committed ones (which the round-trip
// test below compiles and exercises).
func TestDeepCopyUpToDate(t *testing.T) {
	files, err := crd.GenerateDeepCopy(context.Background(), crd.Options{Paths: []string{corpusPaths}, Dir: moduleRoot(t)})
	if err != nil {
		t.Fatalf("GenerateDeepCopy: %v", err)
	}
	if len(files) != 5 {
		t.Fatalf("got %d files, want 5 (common, config/v1alpha1, shop/v1, v1beta1, v2)", len(files))
	}
	for _, f := range files {
		on, err := os.ReadFile(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(on, f.Data) {
			t.Errorf("%s is out of date; regenerate it with crd.GenerateDeepCopy", f.Path)
		}
	}
}

func filler(seed int64) *randfill.Filler {
	return randfill.NewWithSeed(seed).NilChance(0).NumElements(1, 2).MaxDepth(12).Funcs(
		func(q *resource.Quantity, c randfill.Continue) {
			*q = *resource.NewQuantity(c.Int63n(1000), resource.DecimalSI)
		},
		func(r *runtime.RawExtension, c randfill.Continue) {
			r.Raw = []byte(`{"k":"` + c.String(5) + `"}`)
		},
		func(j *apiextensionsv1.JSON, c randfill.Continue) {
			j.Raw = []byte(`"` + c.String(5) + `"`)
		},
		func(tm *metav1.Time, c randfill.Continue) {
			*tm = metav1.Unix(c.Int63n(1<<31), 0)
		},
		func(tm *metav1.MicroTime, c randfill.Continue) {
			*tm = metav1.NewMicroTime(time.Unix(c.Int63n(1<<31), 0))
		},
	)
}

// semantic compares Quantities by value and the corpus types with
// unexported fields by their encoding.
var semantic = func() conversion.Equalities {
	e := equality.Semantic.Copy()
	if err := e.AddFuncs(
		func(a, b shopv2.Stamp) bool {
			x, _ := a.MarshalText()
			y, _ := b.MarshalText()
			return bytes.Equal(x, y)
		},
		func(a, b shopv2.Flexible) bool {
			x, _ := a.MarshalJSON()
			y, _ := b.MarshalJSON()
			return bytes.Equal(x, y)
		},
	); err != nil {
		panic(err)
	}
	return e
}()

// TestDeepCopyRoundTrip fills every corpus type with random values, copies it
// and checks that the copy is equal and shares no pointer, slice or map with
// the original.
func TestDeepCopyRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		obj  func() any
		copy func(any) any
	}{
		{"shop/v1.Widget", func() any { return &shopv1.Widget{} }, func(o any) any { return o.(*shopv1.Widget).DeepCopyObject() }},
		{"shop/v1.WidgetList", func() any { return &shopv1.WidgetList{} }, func(o any) any { return o.(*shopv1.WidgetList).DeepCopyObject() }},
		{"shop/v1beta1.Widget", func() any { return &shopv1beta1.Widget{} }, func(o any) any { return o.(*shopv1beta1.Widget).DeepCopyObject() }},
		{"shop/v2.Widget", func() any { return &shopv2.Widget{} }, func(o any) any { return o.(*shopv2.Widget).DeepCopyObject() }},
		{"shop/v2.GadgetList", func() any { return &shopv2.GadgetList{} }, func(o any) any { return o.(*shopv2.GadgetList).DeepCopyObject() }},
		{"config/v1alpha1.SettingList", func() any { return &configv1alpha1.SettingList{} }, func(o any) any { return o.(*configv1alpha1.SettingList).DeepCopyObject() }},
		{"common.Tags", func() any { return &common.Tags{} }, func(o any) any { c := o.(*common.Tags).DeepCopy(); return &c }},
		{"common.Labels", func() any { return &common.Labels{} }, func(o any) any { c := o.(*common.Labels).DeepCopy(); return &c }},
		{"shop/v1.WidgetSpec", func() any { return &shopv1.WidgetSpec{} }, func(o any) any { return o.(*shopv1.WidgetSpec).DeepCopy() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for seed := range int64(5) {
				orig := tt.obj()
				filler(seed).Fill(orig)
				cp := tt.copy(orig)
				if reflect.TypeOf(cp) != reflect.TypeOf(orig) {
					t.Fatalf("copy has type %T, want %T", cp, orig)
				}
				if !semantic.DeepEqual(orig, cp) {
					t.Fatalf("seed %d: copy differs from the original", seed)
				}
				var shared []string
				findAliasing(reflect.ValueOf(orig), reflect.ValueOf(cp), "", &shared)
				if len(shared) > 0 {
					t.Fatalf("seed %d: copy shares memory with the original at %v", seed, shared)
				}
			}
		})
	}
}

// findAliasing walks a and b in parallel and records every path where they
// share a pointer, a slice's backing array or a map.
func findAliasing(a, b reflect.Value, path string, out *[]string) {
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return
		}
		if a.Pointer() == b.Pointer() && a.Elem().Type().Size() > 0 {
			*out = append(*out, path)
			return
		}
		findAliasing(a.Elem(), b.Elem(), path, out)
	case reflect.Interface:
		if !a.IsNil() && !b.IsNil() {
			findAliasing(a.Elem(), b.Elem(), path, out)
		}
	case reflect.Slice:
		if a.Len() > 0 && b.Len() > 0 && a.Pointer() == b.Pointer() {
			*out = append(*out, path)
			return
		}
		for i := 0; i < a.Len() && i < b.Len(); i++ {
			findAliasing(a.Index(i), b.Index(i), path+"[]", out)
		}
	case reflect.Map:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			*out = append(*out, path)
			return
		}
		for _, k := range a.MapKeys() {
			if bv := b.MapIndex(k); bv.IsValid() {
				findAliasing(a.MapIndex(k), bv, path+"[k]", out)
			}
		}
	case reflect.Array:
		for i := range a.Len() {
			findAliasing(a.Index(i), b.Index(i), path+"[]", out)
		}
	case reflect.Struct:
		for i := range a.NumField() {
			if !a.Type().Field(i).IsExported() {
				continue
			}
			findAliasing(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name, out)
		}
	}
}

// TestFindAliasingDetects guards the round-trip test: a shallow copy must be
// reported.
func TestFindAliasingDetects(t *testing.T) {
	orig := &shopv1.Widget{}
	filler(1).Fill(orig)
	shallow := *orig
	var shared []string
	findAliasing(reflect.ValueOf(orig), reflect.ValueOf(&shallow), "", &shared)
	if len(shared) == 0 {
		t.Fatal("got no aliasing for a shallow copy, want some")
	}
}
