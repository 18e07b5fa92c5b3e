package main

import (
	"fmt"
	"io"
	"os/exec"
	"runtime/debug"

	"github.com/capstan-io/capstan/envtest"
)

func runVersion(stdout io.Writer) error {
	version := "(devel)"
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		version = info.Main.Version
	}
	fmt.Fprintf(stdout, "capstan %s (Kubernetes %s, etcd %s)\n", version, envtest.KubernetesVersion, envtest.EtcdVersion)
	return nil
}

func lookPathKubectl() (string, error) { return exec.LookPath("kubectl") }
