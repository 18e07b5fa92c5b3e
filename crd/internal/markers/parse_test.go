package markers

import (
	"go/token"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	reg := Default()
	tests := []struct {
		name     string
		text     string
		wantName string
		wantAnon any
		wantArgs map[string]any
		wantErr  string
	}{
		{"number", "kubebuilder:validation:Minimum=-1.5", "kubebuilder:validation:Minimum", NumberLit("-1.5"), nil, ""},
		{"big integer kept as text", "kubebuilder:validation:Maximum=9007199254740993", "kubebuilder:validation:Maximum", NumberLit("9007199254740993"), nil, ""},
		{"int", "kubebuilder:validation:MaxLength=63", "kubebuilder:validation:MaxLength", int64(63), nil, ""},
		{"raw string pattern", "kubebuilder:validation:Pattern=`^a{1,3}$`", "kubebuilder:validation:Pattern", "^a{1,3}$", nil, ""},
		{"enum of strings", "kubebuilder:validation:Enum=a;b;c", "kubebuilder:validation:Enum", []any{"a", "b", "c"}, nil, ""},
		{"enum of ints", "kubebuilder:validation:Enum={1,2}", "kubebuilder:validation:Enum", []any{int64(1), int64(2)}, nil, ""},
		{"default bool", "kubebuilder:default=true", "kubebuilder:default", true, nil, ""},
		{"default map", `kubebuilder:default={a: 1, b: "x"}`, "kubebuilder:default", map[string]any{"a": int64(1), "b": "x"}, nil, ""},
		{"default empty braces", "kubebuilder:default={}", "kubebuilder:default", map[string]any{}, nil, ""},
		{"default slice", "kubebuilder:default={80,443}", "kubebuilder:default", []any{int64(80), int64(443)}, nil, ""},
		{"default semicolon slice", "kubebuilder:default=a;b", "kubebuilder:default", []any{"a", "b"}, nil, ""},
		{"default bare string", "kubebuilder:default=medium", "kubebuilder:default", "medium", nil, ""},
		{"k8s default is JSON", `default="hello"`, "default", "hello", nil, ""},
		{"flag", "kubebuilder:subresource:status", "kubebuilder:subresource:status", nil, map[string]any{}, ""},
		{"named args glued to name", `kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"`,
			"kubebuilder:printcolumn", nil, map[string]any{"name": "Age", "type": "date", "JSONPath": ".metadata.creationTimestamp"}, ""},
		{"string slices", "kubebuilder:resource:shortName={wd,wdg},categories=all", "kubebuilder:resource", nil,
			map[string]any{"shortName": []string{"wd", "wdg"}, "categories": []string{"all"}}, ""},
		{"xvalidation with commas in quotes", `kubebuilder:validation:XValidation:rule="a, b",message="m"`,
			"kubebuilder:validation:XValidation", nil, map[string]any{"rule": "a, b", "message": "m"}, ""},
		{"bare bool marker means true", "kubebuilder:object:root", "kubebuilder:object:root", true, nil, ""},
		{"missing required argument", "kubebuilder:printcolumn:name=Age", "", nil, nil, `missing argument "`},
		{"unknown argument", "kubebuilder:resource:scopes=Cluster", "", nil, nil, `unknown argument "scopes"`},
		{"bad int", "kubebuilder:validation:MaxItems=many", "", nil, nil, "expected an integer"},
		{"extra arguments", "kubebuilder:validation:MaxItems=1,2", "", nil, nil, "extra arguments"},
		{"bad JSON", "default=hello", "", nil, nil, "not JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := reg.Parse(tt.text, token.Position{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if v == nil {
				t.Fatal("got no marker, want one")
			}
			if v.Name != tt.wantName {
				t.Errorf("got name %q, want %q", v.Name, tt.wantName)
			}
			if !reflect.DeepEqual(v.Anon, tt.wantAnon) {
				t.Errorf("got value %#v, want %#v", v.Anon, tt.wantAnon)
			}
			if tt.wantArgs != nil && !reflect.DeepEqual(v.Args, tt.wantArgs) {
				t.Errorf("got args %#v, want %#v", v.Args, tt.wantArgs)
			}
		})
	}
}

func TestKnown(t *testing.T) {
	reg := Default()
	tests := []struct {
		text string
		want bool
	}{
		{"kubebuilder:validation:Minimun=1", false},
		{"kubebuilder:webhook:path=/x", true},
		{"genclient", true},
		{"k8s:openapi-gen=true", true},
		{"kubebuilder:subresource:statuss", false},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			if got := reg.Known(tt.text); got != tt.want {
				t.Errorf("Known(%q) = %v, want %v", tt.text, got, tt.want)
			}
		})
	}
}
