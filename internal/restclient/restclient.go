// Package restclient builds the REST clients of typed objects that informer
// and reconcile share: one group/version, the scheme's codecs, protobuf on
// the wire where the type has it.
package restclient

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
)

// For returns a REST client for gv on a copy of cfg, speaking protobuf
// (with JSON accepted) when protobuf is set, else JSON.
func For(cfg *rest.Config, gv schema.GroupVersion, ns runtime.NegotiatedSerializer, protobuf bool) (*rest.RESTClient, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.GroupVersion = &gv
	cfg.APIPath = "/apis"
	if gv.Group == "" {
		cfg.APIPath = "/api"
	}
	cfg.NegotiatedSerializer = ns
	if protobuf {
		cfg.ContentType = runtime.ContentTypeProtobuf
		cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	} else {
		cfg.ContentType = runtime.ContentTypeJSON
		cfg.AcceptContentTypes = runtime.ContentTypeJSON
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	return rest.RESTClientFor(cfg)
}

// IsProtobuf reports whether obj has generated protobuf marshalling, which
// the API server speaks for every built-in type (and never for custom
// resources).
func IsProtobuf(obj any) bool {
	_, ok := obj.(interface {
		Marshal() ([]byte, error)
		Unmarshal([]byte) error
	})
	return ok
}
