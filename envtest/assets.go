package envtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/mod/modfile"

	"github.com/capstan-io/capstan/internal/gobuild"
)

// The versions of the control plane envtest builds. They follow the
// k8s.io/* minor version capstan is built against.
const (
	// KubernetesVersion is the version of kube-apiserver and
	// kube-controller-manager built from the k8s.io/kubernetes module.
	KubernetesVersion = "v1.37.2"
	// stagingVersion is the published version of the k8s.io staging modules
	// that matches KubernetesVersion.
	stagingVersion = "v0.37.2"
	// EtcdVersion is the version of etcd built from go.etcd.io/etcd/server/v3.
	EtcdVersion = "v3.6.16"
)

// Names of the binaries in an assets folder, as controller-runtime's envtest
// (KUBEBUILDER_ASSETS) expects them.
const (
	binAPIServer         = "kube-apiserver"
	binEtcd              = "etcd"
	binControllerManager = "kube-controller-manager"
	binKubectl           = "kubectl"
)

// Environment variables naming a folder that already holds the binaries.
const (
	// EnvAssets is capstan's own variable; it wins over EnvKubebuilderAssets.
	EnvAssets = "CAPSTAN_ASSETS"
	// EnvKubebuilderAssets is controller-runtime's convention, honoured so
	// that one folder serves both.
	EnvKubebuilderAssets = "KUBEBUILDER_ASSETS"
)

// AssetsOptions says where to find or build the control plane binaries.
// The zero value looks in $CAPSTAN_ASSETS, then $KUBEBUILDER_ASSETS, then
// the per-user cache, building what is missing into the cache.
type AssetsOptions struct {
	// Dir is a folder holding the binaries. When set, nothing is built: a
	// missing binary is an error.
	Dir string
	// CacheDir is the root of the per-user cache. Default:
	// os.UserCacheDir()/capstan/envtest.
	CacheDir string
	// Progress receives one line when a first-time build starts and one when
	// it ends. Default: os.Stderr.
	Progress io.Writer
}

// defaults fills in the zero fields. This is the one place envtest reads the
// environment.
func (o AssetsOptions) defaults() (AssetsOptions, error) {
	if o.Dir == "" {
		if d := os.Getenv(EnvAssets); d != "" {
			o.Dir = d
		} else if d := os.Getenv(EnvKubebuilderAssets); d != "" {
			o.Dir = d
		}
	}
	if o.CacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return o, fmt.Errorf("envtest: finding the user cache folder (set %s to a folder holding kube-apiserver and etcd): %w", EnvKubebuilderAssets, err)
		}
		o.CacheDir = filepath.Join(base, "capstan", "envtest")
	}
	if o.Progress == nil {
		o.Progress = os.Stderr
	}
	return o, nil
}

// Assets finds, or builds into the per-user cache, the binaries named and
// returns the folder holding them. Names are "kube-apiserver", "etcd",
// "kube-controller-manager" and "kubectl"; none means the first two.
//
// A first-time build of kube-apiserver takes about 4 minutes of a 2-core
// machine; concurrent callers, in this process or others, wait for one build.
func Assets(ctx context.Context, opts AssetsOptions, names ...string) (string, error) {
	opts, err := opts.defaults()
	if err != nil {
		return "", err
	}
	if len(names) == 0 {
		names = []string{binEtcd, binAPIServer}
	}
	if opts.Dir != "" {
		for _, n := range names {
			p := filepath.Join(opts.Dir, n)
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("envtest: %s not found in the assets folder %s (from Options, %s or %s): %w", n, opts.Dir, EnvAssets, EnvKubebuilderAssets, err)
			}
		}
		return opts.Dir, nil
	}
	dir := filepath.Join(opts.CacheDir, KubernetesVersion)
	for _, n := range names {
		spec, err := buildSpec(n)
		if err != nil {
			return "", err
		}
		if err := gobuild.Ensure(ctx, filepath.Join(dir, n), spec, opts.Progress); err != nil {
			return "", fmt.Errorf("envtest: %w (to use prebuilt binaries instead, set %s to a folder holding kube-apiserver and etcd)", err, EnvKubebuilderAssets)
		}
	}
	return dir, nil
}

// buildSpec describes how to build one binary from the Go module proxy.
func buildSpec(name string) (gobuild.Spec, error) {
	versionFlags := fmt.Sprintf("-s -w -X k8s.io/component-base/version.gitVersion=%[1]s -X k8s.io/component-base/version.gitMajor=%[2]s -X k8s.io/component-base/version.gitMinor=%[3]s -X k8s.io/component-base/version.gitTreeState=clean",
		KubernetesVersion, major(KubernetesVersion), minor(KubernetesVersion))
	switch name {
	case binEtcd:
		return gobuild.Spec{
			Name:     "etcd " + EtcdVersion,
			Estimate: "~1 min",
			GoMod:    func(context.Context) (string, error) { return etcdGoMod, nil },
			Files:    map[string]string{"main.go": etcdMain},
			Package:  ".",
			LDFlags:  "-s -w",
		}, nil
	case binAPIServer, binControllerManager, binKubectl:
		estimate := "~4 min"
		if name == binKubectl {
			estimate = "~1 min"
		}
		pkg := "k8s.io/kubernetes/cmd/" + name
		return gobuild.Spec{
			Name:     name + " " + KubernetesVersion,
			Estimate: estimate,
			GoMod:    kubernetesGoMod,
			Files:    map[string]string{"tools.go": "//go:build tools\n\npackage tools\n\nimport _ \"" + pkg + "\"\n"},
			Package:  pkg,
			LDFlags:  versionFlags,
		}, nil
	}
	return gobuild.Spec{}, fmt.Errorf("envtest: unknown binary %q (want kube-apiserver, etcd, kube-controller-manager or kubectl)", name)
}

const etcdGoMod = "module capstan.local/envtest/etcd\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 " + EtcdVersion + "\n"

const etcdMain = `// Command etcd is etcd's own main, built from the Go module proxy by capstan's envtest.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
`

// kubernetesGoMod writes a module that requires k8s.io/kubernetes and
// replaces each staging module its go.mod points at ./staging with the
// published module of the matching version: k8s.io/kubernetes is not meant
// to be required, and this is what makes it buildable from the proxy.
func kubernetesGoMod(ctx context.Context) (string, error) {
	modPath, err := downloadGoMod(ctx, "k8s.io/kubernetes@"+KubernetesVersion)
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(modPath)
	if err != nil {
		return "", fmt.Errorf("reading go.mod of k8s.io/kubernetes: %w", err)
	}
	upstream, err := modfile.Parse(modPath, data, nil)
	if err != nil {
		return "", fmt.Errorf("parsing go.mod of k8s.io/kubernetes: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "module capstan.local/envtest/kubernetes\n\ngo 1.26\n\nrequire k8s.io/kubernetes %s\n\n", KubernetesVersion)
	for _, r := range upstream.Replace {
		if strings.HasPrefix(r.New.Path, "./staging/") {
			fmt.Fprintf(&b, "replace %s => %s %s\n", r.Old.Path, r.Old.Path, stagingVersion)
		}
	}
	return b.String(), nil
}

// downloadGoMod fetches module@version through the go command (and so the
// module proxy) and returns the path of its go.mod in the module cache.
func downloadGoMod(ctx context.Context, modVersion string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("downloading %s: %w", modVersion, gobuild.ErrNoToolchain)
	}
	cmd := exec.CommandContext(ctx, goBin, "mod", "download", "-json", modVersion)
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	out, err := cmd.Output()
	var info struct {
		GoMod string
		Error string
	}
	if jerr := json.Unmarshal(out, &info); jerr == nil && info.Error != "" {
		return "", fmt.Errorf("downloading %s: %s", modVersion, info.Error)
	}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return "", fmt.Errorf("downloading %s: %w: %s", modVersion, err, ee.Stderr)
		}
		return "", fmt.Errorf("downloading %s: %w", modVersion, err)
	}
	if info.GoMod == "" {
		return "", fmt.Errorf("downloading %s: go mod download reported no go.mod", modVersion)
	}
	return info.GoMod, nil
}

func major(v string) string {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	return parts[0]
}

func minor(v string) string {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return ""
	}
	return parts[1]
}
