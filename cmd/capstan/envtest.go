package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/capstan-io/capstan/envtest"
)

func runEnvtest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"envtest: want a subcommand: setup or run"}
	}
	switch args[0] {
	case "setup":
		return envtestSetup(ctx, args[1:], stdout, stderr)
	case "run":
		return envtestRun(ctx, args[1:], stdout, stderr)
	}
	return usageError{fmt.Sprintf("envtest: unknown subcommand %q (want setup or run)", args[0])}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected arguments %q", fs.Name(), fs.Args())}
	}
	return nil
}

func envtestSetup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("envtest setup", stderr)
	printPath := fs.Bool("print-path", false, "print only the assets folder (for KUBEBUILDER_ASSETS=$(...))")
	withCM := fs.Bool("controller-manager", false, "also build kube-controller-manager (for BuiltinControllers)")
	withKubectl := fs.Bool("kubectl", false, "also build kubectl")
	if err := parse(fs, args); err != nil {
		return err
	}
	names := []string{"etcd", "kube-apiserver"}
	if *withCM {
		names = append(names, "kube-controller-manager")
	}
	if *withKubectl {
		names = append(names, "kubectl")
	}
	dir, err := envtest.Assets(ctx, envtest.AssetsOptions{Progress: stderr}, names...)
	if err != nil {
		return err
	}
	if *printPath {
		fmt.Fprintln(stdout, dir)
		return nil
	}
	fmt.Fprintf(stdout, "control plane binaries (Kubernetes %s, etcd %s) are in:\n  %s\n", envtest.KubernetesVersion, envtest.EtcdVersion, dir)
	fmt.Fprintf(stdout, "for controller-runtime's envtest:\n  export KUBEBUILDER_ASSETS=%s\n", dir)
	return nil
}

func envtestRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("envtest run", stderr)
	kubeconfig := fs.String("kubeconfig", "", "also write the admin kubeconfig to this path (default: a file in the environment's temp dir)")
	builtin := fs.Bool("builtin-controllers", false, "also run kube-controller-manager's garbage-collector and namespace controllers")
	if err := parse(fs, args); err != nil {
		return err
	}
	start := time.Now()
	fmt.Fprintf(stderr, "starting etcd %s and kube-apiserver %s...\n", envtest.EtcdVersion, envtest.KubernetesVersion)
	env, err := envtest.Start(ctx, envtest.Options{
		Assets:             envtest.AssetsOptions{Progress: stderr},
		BuiltinControllers: *builtin,
	})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(stderr, "stopping the control plane...")
		if err := env.Stop(); err != nil {
			fmt.Fprintf(stderr, "capstan: %v\n", err)
			return
		}
		fmt.Fprintln(stderr, "stopped; every process and temp file is gone")
	}()
	path := env.KubeconfigPath()
	if *kubeconfig != "" {
		abs, err := filepath.Abs(*kubeconfig)
		if err != nil {
			return err
		}
		if err := envtest.WriteKubeconfig(abs, env.Config()); err != nil {
			return err
		}
		defer os.Remove(abs)
		path = abs
	}
	fmt.Fprintf(stdout, "control plane ready in %s at %s\n\n", time.Since(start).Round(10*time.Millisecond), env.Config().Host)
	fmt.Fprintf(stdout, "kubeconfig (admin):\n  %s\n\n", path)
	fmt.Fprintf(stdout, "try:\n  export KUBECONFIG=%s\n  kubectl get namespaces\n  kubectl create configmap hello --from-literal=greeting=hi\n\n", path)
	if _, err := lookPathKubectl(); err != nil {
		fmt.Fprintln(stdout, "(no kubectl on PATH: `go run ./cmd/capstan envtest setup --kubectl` builds one into the assets folder)")
	}
	fmt.Fprintln(stdout, "press Ctrl-C to stop and clean up")
	<-ctx.Done()
	return nil
}
