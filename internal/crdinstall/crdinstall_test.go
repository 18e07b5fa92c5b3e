package crdinstall

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const crdA = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: as.example.com}
spec:
  group: example.com
  names: {kind: A, plural: as}
  scope: Namespaced
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]
`

func TestReadFiles(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		want    []string // CRD names, in order
		wantErr string
	}{
		{name: "one document", files: map[string]string{"a.yaml": crdA}, want: []string{"as.example.com"}},
		{
			name:  "several documents with comments and empty ones",
			files: map[string]string{"all.yaml": "# header\n---\n" + crdA + "---\n---\n" + strings.ReplaceAll(crdA, "as.example.com", "bs.example.com")},
			want:  []string{"as.example.com", "bs.example.com"},
		},
		{name: "other files in the folder are ignored", files: map[string]string{"a.yml": crdA, "notes.txt": "hello"}, want: []string{"as.example.com"}},
		{name: "wrong kind names the file", files: map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\n"}, wantErr: "cm.yaml, document 1"},
		{name: "unknown field is refused", files: map[string]string{"typo.yaml": crdA + "  scoep: Cluster\n"}, wantErr: "typo.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, c := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			crds, err := ReadFiles(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range crds {
				got = append(got, c.Name)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := ReadFiles(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("missing file: got no error")
	}
}
