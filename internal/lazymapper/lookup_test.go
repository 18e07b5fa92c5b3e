package lazymapper_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/capstan-io/capstan/internal/lazymapper"
)

// resettable knows its kinds only after a Reset.
type resettable struct {
	meta.RESTMapper
	resets int
}

func (r *resettable) Reset() { r.resets++ }

func (r *resettable) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	if r.resets == 0 {
		return nil, &meta.NoKindMatchError{GroupKind: gk, SearchedVersions: versions}
	}
	return &meta.RESTMapping{Resource: schema.GroupVersionResource{Group: gk.Group, Version: versions[0], Resource: "widgets"}}, nil
}

// TestLookupResetsOtherMappers: a mapper that does not refresh itself is
// Reset once on a miss and asked again.
func TestLookupResetsOtherMappers(t *testing.T) {
	r := &resettable{}
	m, err := lazymapper.Lookup(r, schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"})
	if err != nil || m.Resource.Resource != "widgets" || r.resets != 1 {
		t.Fatalf("got %v, %v after %d resets; want the widgets mapping after 1", m, err, r.resets)
	}
}
