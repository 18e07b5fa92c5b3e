// Package capstan is a framework for building Kubernetes controllers and operators.
//
// See the README and the package documentation of each sub-package.
package capstan
