// Package corpus holds API packages written to exercise the crd generator:
// every marker and Go shape it supports, in the forms operator authors use.
// The CRDs generated from them are compared with controller-gen's and
// installed into a real API server by the crd package's tests.
package corpus
