// Package deployment is the reference Deployment controller.
package deployment
