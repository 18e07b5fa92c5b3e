// Command capstan is capstan's command-line tool.
//
//	capstan envtest setup [--print-path] [--controller-manager] [--kubectl]
//	capstan envtest run [--kubeconfig PATH] [--builtin-controllers]
//	capstan generate crd|object|rbac paths=./api/... [output=DIR]
//	capstan controller-manager [--kubeconfig PATH] [--controllers LIST] [--leader-elect] ...
//	capstan demo [--kubeconfig PATH] [--keep]
//	capstan version
//
// Run `capstan help` for details.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "capstan: %v\n", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a command line that does not parse.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

const usage = `capstan: a framework for Kubernetes controllers and operators.

Usage:
  capstan envtest setup [--print-path] [--controller-manager] [--kubectl]
        Find or build (from the Go module proxy, first time only) the control
        plane binaries and print their folder. With controller-runtime:
          export KUBEBUILDER_ASSETS=$(capstan envtest setup --print-path)
  capstan envtest run [--kubeconfig PATH] [--builtin-controllers]
        Start a local control plane (etcd + kube-apiserver), print a kubeconfig
        and a kubectl example, and run until interrupted; then clean up.
  capstan generate crd|object|rbac[:options] paths=./api/... [output=DIR]
        Generate CRDs, DeepCopy code and RBAC roles from Go types with
        kubebuilder markers; arguments as controller-gen takes them, so
        Makefiles switch by changing the command name.
  capstan controller-manager [--kubeconfig PATH] [--controllers '*'] [--leader-elect=true]
        [--kube-api-qps 20] [--kube-api-burst 30] [--metrics-bind-address :8080]
        [--health-probe-bind-address :8081] (see --help for all)
        Run the reference Deployment and ReplicaSet controllers like a small
        kube-controller-manager, until interrupted.
  capstan demo [--kubeconfig PATH] [--keep] [--replicas 6]
        Start a local control plane with simulated nodes, run the reference
        controllers, create a Deployment and show a rolling update live; with
        --kubeconfig, run against an existing cluster instead.
  capstan version
        Print capstan's version and the Kubernetes version it targets.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "envtest":
		return runEnvtest(ctx, args[1:], stdout, stderr)
	case "generate":
		return runGenerate(ctx, args[1:], stdout, stderr)
	case "controller-manager":
		return runControllerManager(ctx, args[1:], stdout, stderr)
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		return runVersion(stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}
