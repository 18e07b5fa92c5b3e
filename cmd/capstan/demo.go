package main

import (
	"context"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"

	"github.com/capstan-io/capstan/examples/demo"
)

// runDemo is `capstan demo`, the README's main job.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	kubeconfig := fs.String("kubeconfig", "", "run against this existing cluster instead of a local control plane with simulated nodes")
	keep := fs.Bool("keep", false, "after the rollout, keep running until interrupted (to look around with kubectl)")
	replicas := fs.Int("replicas", 6, "replicas of the demo Deployment")
	maxSurge := fs.String("max-surge", "2", "maxSurge of the rolling update (a number or a percentage)")
	maxUnavailable := fs.String("max-unavailable", "1", "maxUnavailable of the rolling update (a number or a percentage)")
	readyDelay := fs.Duration("ready-delay", 0, "how long a simulated Pod takes to become Ready (default 1s)")
	verbosity := fs.Int("v", -1, "log the controllers at this verbosity to stderr (-1: no logs)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *replicas <= 0 || *replicas > 1000 {
		return usageError{fmt.Sprintf("demo: --replicas: want 1..1000, got %d", *replicas)}
	}
	opts := demo.Options{
		Out:            stdout,
		Progress:       stderr,
		Replicas:       int32(*replicas),
		MaxSurge:       ptrTo(intstr.Parse(*maxSurge)),
		MaxUnavailable: ptrTo(intstr.Parse(*maxUnavailable)),
		ReadyDelay:     *readyDelay,
		Keep:           *keep,
	}
	if *verbosity >= 0 {
		opts.Logger = newLogger(stderr, *verbosity)
	}
	if *kubeconfig != "" {
		var cfg *rest.Config
		cfg, err := loadConfig(*kubeconfig)
		if err != nil {
			return err
		}
		opts.Config = cfg
	}
	_, err := demo.Run(ctx, opts)
	return err
}

func ptrTo[T any](v T) *T { return &v }
