package envtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/capstan-io/capstan/internal/crdinstall"
)

// Options configures a control plane. The zero value starts etcd and
// kube-apiserver with the binaries from AssetsOptions' defaults.
type Options struct {
	// Assets says where the binaries are, or where to build them.
	Assets AssetsOptions

	// APIServerFlags are kube-apiserver flags, without the leading dashes,
	// set over the defaults; an empty value removes a default flag.
	APIServerFlags map[string]string
	// EtcdFlags are etcd flags, set over the defaults like APIServerFlags.
	EtcdFlags map[string]string
	// FeatureGates are passed to kube-apiserver (and kube-controller-manager)
	// as --feature-gates.
	FeatureGates map[string]bool

	// BuiltinControllers also runs kube-controller-manager with the
	// garbage-collector and namespace controllers, so that owner-reference
	// cascades and namespace deletion work. Off by default: it adds a build
	// on first use and about a second to start.
	BuiltinControllers bool
	// ControllerManagerFlags are kube-controller-manager flags set over the
	// defaults; "controllers" chooses other controllers.
	ControllerManagerFlags map[string]string

	// CRDs are installed once the API server is ready; Start returns when
	// each is Established and served.
	CRDs []*apiextensionsv1.CustomResourceDefinition
	// CRDPaths are YAML or JSON files, or folders of them, holding CRDs to
	// install like CRDs.
	CRDPaths []string

	// StartTimeout bounds Start once the binaries are present (building them
	// is bounded by ctx only). Default: 60s.
	StartTimeout time.Duration
	// StopTimeout is how long kube-apiserver gets to exit after SIGTERM in
	// StopAPIServer and Restart before it is killed. Default: 10s. (Stop
	// kills at once.)
	StopTimeout time.Duration
}

const (
	defaultStartTimeout = 60 * time.Second
	defaultStopTimeout  = 10 * time.Second
	// readyPoll is how often Start asks /readyz. The API server is usually
	// ready within a few seconds; 20ms adds at most that to every start,
	// where controller-runtime's envtest polls every 100ms.
	readyPoll = 20 * time.Millisecond
	// startAttempts covers the rare race in which another process takes a
	// port between our choosing it and the component binding it.
	startAttempts = 3
)

func (o Options) defaults() Options {
	if o.StartTimeout <= 0 {
		o.StartTimeout = defaultStartTimeout
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = defaultStopTimeout
	}
	return o
}

// Environment is a running control plane. Its methods are safe for
// concurrent use. Call Stop when done, also when a test fails.
type Environment struct {
	opts     Options
	dir      string // temp root: certificates, etcd data, logs, kubeconfigs
	assets   string
	ca       *authority
	apiPort  int
	etcdPort int
	admin    *rest.Config

	mu        sync.Mutex
	etcd      *process
	apiServer *process
	ctrlMgr   *process
	stopped   bool
}

// Start builds or finds the binaries and starts etcd and kube-apiserver (and
// kube-controller-manager with Options.BuiltinControllers), waits until the
// API server reports ready and installs Options' CRDs. On failure it stops
// whatever it started, removes its temp dir and returns an error holding the
// tail of the components' logs.
func Start(ctx context.Context, opts Options) (*Environment, error) {
	opts = opts.defaults()
	names := []string{binEtcd, binAPIServer}
	if opts.BuiltinControllers {
		names = append(names, binControllerManager)
	}
	assets, err := Assets(ctx, opts.Assets, names...)
	if err != nil {
		return nil, err
	}

	var lastErr error
	for range startAttempts {
		env, err := start(ctx, opts, assets)
		if err == nil {
			return env, nil
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

var errPortTaken = errors.New("a port was taken by another process")

func start(ctx context.Context, opts Options, assets string) (_ *Environment, err error) {
	dir, err := os.MkdirTemp("", "capstan-envtest-")
	if err != nil {
		return nil, fmt.Errorf("envtest: creating temp dir: %w", err)
	}
	e := &Environment{opts: opts, dir: dir, assets: assets}
	defer func() {
		if err != nil {
			logs := e.logTails(30)
			_ = e.Stop()
			if logs != "" {
				err = fmt.Errorf("%w\n%s", err, logs)
			}
		}
	}()

	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	e.apiPort, e.etcdPort = ports[0], ports[1]
	if e.ca, err = newAuthority(); err != nil {
		return nil, fmt.Errorf("envtest: %w", err)
	}
	if err := e.writeCredentials(); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()

	// etcd and kube-apiserver start together: the API server retries its
	// etcd connection, and starting both at once saves etcd's start time.
	e.etcd = newProcess("etcd", filepath.Join(assets, binEtcd), e.path("etcd.log"), e.etcdArgs())
	if err := e.etcd.start(); err != nil {
		return nil, fmt.Errorf("envtest: %w", err)
	}
	e.apiServer = newProcess("kube-apiserver", filepath.Join(assets, binAPIServer), e.path("kube-apiserver.log"), e.apiServerArgs())
	if err := e.apiServer.start(); err != nil {
		return nil, fmt.Errorf("envtest: %w", err)
	}
	if err := e.waitReady(ctx); err != nil {
		return nil, err
	}
	if opts.BuiltinControllers {
		if err := e.startControllerManager(); err != nil {
			return nil, err
		}
	}
	if err := e.installCRDs(ctx, opts.CRDs, opts.CRDPaths); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Environment) path(name string) string { return filepath.Join(e.dir, name) }

// writeCredentials writes the CA, the serving certificate, the service
// account keys and the admin kubeconfig, and builds the admin rest.Config.
func (e *Environment) writeCredentials() error {
	serving, err := e.ca.serving()
	if err != nil {
		return fmt.Errorf("envtest: %w", err)
	}
	saKey, saPub, err := signingKey()
	if err != nil {
		return fmt.Errorf("envtest: %w", err)
	}
	files := map[string][]byte{
		"ca.crt":      e.ca.certPEM,
		"serving.crt": serving.certPEM,
		"serving.key": serving.keyPEM,
		"sa.key":      saKey,
		"sa.pub":      saPub,
	}
	for name, data := range files {
		if err := os.WriteFile(e.path(name), data, 0o600); err != nil {
			return fmt.Errorf("envtest: writing %s: %w", name, err)
		}
	}
	// system:masters is the group the API server authorises for everything,
	// without any RBAC object.
	e.admin, err = e.clientConfig("capstan-admin", []string{"system:masters"})
	if err != nil {
		return err
	}
	return writeKubeconfig(e.path("admin.kubeconfig"), e.admin)
}

func (e *Environment) clientConfig(user string, groups []string) (*rest.Config, error) {
	kp, err := e.ca.client(user, groups)
	if err != nil {
		return nil, fmt.Errorf("envtest: %w", err)
	}
	return &rest.Config{
		Host: "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(e.apiPort)),
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   e.ca.certPEM,
			CertData: kp.certPEM,
			KeyData:  kp.keyPEM,
		},
		// Tests create many objects quickly; the client-side limiter's
		// 5 qps default would make them measure the limiter.
		QPS:   1000,
		Burst: 2000,
	}, nil
}

func (e *Environment) etcdArgs() []string {
	client := "http://127.0.0.1:" + strconv.Itoa(e.etcdPort)
	flags := map[string]string{
		"name":                  "capstan-envtest",
		"data-dir":              e.path("etcd"),
		"listen-client-urls":    client,
		"advertise-client-urls": client,
		// Port 0: etcd binds any free port for a peer listener nobody uses.
		"listen-peer-urls": "http://127.0.0.1:0",
		// Tests never need durability; fsync dominates etcd's latency.
		"unsafe-no-fsync": "true",
		"log-level":       "warn",
	}
	return flagList(flags, e.opts.EtcdFlags)
}

func (e *Environment) apiServerArgs() []string {
	flags := map[string]string{
		"etcd-servers":      "http://127.0.0.1:" + strconv.Itoa(e.etcdPort),
		"bind-address":      "127.0.0.1",
		"advertise-address": "127.0.0.1",
		// A loopback advertise address is refused by the endpoint
		// reconciler, and tests need no "kubernetes" Service endpoints.
		"endpoint-reconciler-type":         "none",
		"secure-port":                      strconv.Itoa(e.apiPort),
		"cert-dir":                         e.dir,
		"tls-cert-file":                    e.path("serving.crt"),
		"tls-private-key-file":             e.path("serving.key"),
		"client-ca-file":                   e.path("ca.crt"),
		"service-account-key-file":         e.path("sa.pub"),
		"service-account-signing-key-file": e.path("sa.key"),
		"service-account-issuer":           "https://kubernetes.default.svc",
		"service-cluster-ip-range":         "10.0.0.0/24",
		"authorization-mode":               "Node,RBAC",
		"allow-privileged":                 "true",
		// Without the service-account controller no namespace has a
		// "default" ServiceAccount, and this plugin would refuse every Pod.
		"disable-admission-plugins": "ServiceAccount",
	}
	if gates := featureGates(e.opts.FeatureGates); gates != "" {
		flags["feature-gates"] = gates
	}
	return flagList(flags, e.opts.APIServerFlags)
}

func (e *Environment) startControllerManager() error {
	flags := map[string]string{
		"kubeconfig":                       e.path("admin.kubeconfig"),
		"controllers":                      "garbagecollector,namespace",
		"leader-elect":                     "false",
		"secure-port":                      "0",
		"use-service-account-credentials":  "false",
		"service-account-private-key-file": e.path("sa.key"),
		"root-ca-file":                     e.path("ca.crt"),
		"concurrent-gc-syncs":              "20",
		"concurrent-namespace-syncs":       "5",
	}
	if gates := featureGates(e.opts.FeatureGates); gates != "" {
		flags["feature-gates"] = gates
	}
	p := newProcess("kube-controller-manager", filepath.Join(e.assets, binControllerManager), e.path("kube-controller-manager.log"), flagList(flags, e.opts.ControllerManagerFlags))
	if err := p.start(); err != nil {
		return fmt.Errorf("envtest: %w", err)
	}
	e.mu.Lock()
	e.ctrlMgr = p
	e.mu.Unlock()
	return nil
}

// waitReady polls the API server's /readyz until it answers ok, a component
// exits, or ctx ends.
func (e *Environment) waitReady(ctx context.Context) error {
	client, err := e.healthClient()
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	url := e.admin.Host + "/readyz"
	ticker := time.NewTicker(readyPoll)
	defer ticker.Stop()
	e.mu.Lock()
	etcdDone, apiDone := e.etcd.done(), e.apiServer.done()
	e.mu.Unlock()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("envtest: %w", err)
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("envtest: waiting for kube-apiserver on %s to be ready: %w", url, ctx.Err())
		case <-etcdDone:
			return e.exitError(e.etcd)
		case <-apiDone:
			return e.exitError(e.apiServer)
		case <-ticker.C:
		}
	}
}

func (e *Environment) exitError(p *process) error {
	err := fmt.Errorf("envtest: %w", p.exitErr())
	if p.logContains("address already in use") {
		return fmt.Errorf("%w: %w", err, errPortTaken)
	}
	return err
}

// healthClient is an HTTP client that trusts the environment's CA and
// presents the admin certificate.
func (e *Environment) healthClient() (*http.Client, error) {
	cert, err := tls.X509KeyPair(e.admin.CertData, e.admin.KeyData)
	if err != nil {
		return nil, fmt.Errorf("envtest: loading admin certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.ca.certPEM)
	return &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: false,
		},
	}, nil
}

// Config returns a copy of the admin configuration: its user is in
// system:masters, which the API server lets do anything.
func (e *Environment) Config() *rest.Config { return rest.CopyConfig(e.admin) }

// UserConfig returns a configuration that authenticates as user in groups
// (plus system:authenticated, which the API server adds), with no
// permission beyond what RBAC objects grant it: for RBAC tests.
func (e *Environment) UserConfig(user string, groups ...string) (*rest.Config, error) {
	if user == "" {
		return nil, errors.New("envtest: UserConfig: user name is empty")
	}
	return e.clientConfig(user, groups)
}

// KubeconfigPath is the path of a kubeconfig file for the admin user, for
// kubectl and other tools. It is removed by Stop.
func (e *Environment) KubeconfigPath() string { return e.path("admin.kubeconfig") }

// WriteKubeconfig writes cfg as a kubeconfig file at path (for a
// UserConfig, say).
func WriteKubeconfig(path string, cfg *rest.Config) error { return writeKubeconfig(path, cfg) }

// EtcdEndpoint is the URL of the environment's etcd, for tests that act on
// storage directly (compaction, say).
func (e *Environment) EtcdEndpoint() string { return "http://127.0.0.1:" + strconv.Itoa(e.etcdPort) }

// Dir is the environment's temp folder: certificates, etcd data and the
// components' logs (etcd.log, kube-apiserver.log,
// kube-controller-manager.log). Stop removes it.
func (e *Environment) Dir() string { return e.dir }

// Logs returns the last lines of each component's log, for a failed test.
func (e *Environment) Logs(lines int) string { return e.logTails(lines) }

// Restart stops kube-apiserver and starts it again on the same port with the
// same etcd (so no data is lost), and waits until it is ready. Clients see
// their connections closed and watches ended, as on a real restart.
func (e *Environment) Restart(ctx context.Context) error {
	if err := e.StopAPIServer(); err != nil {
		return err
	}
	return e.StartAPIServer(ctx)
}

// StopAPIServer stops kube-apiserver, leaving etcd running; StartAPIServer
// brings it back. Between the two, clients get connection errors.
func (e *Environment) StopAPIServer() error {
	e.mu.Lock()
	p := e.apiServer
	e.mu.Unlock()
	if p == nil {
		return errors.New("envtest: the environment is stopped")
	}
	if err := p.stop(e.opts.StopTimeout); err != nil {
		return fmt.Errorf("envtest: %w", err)
	}
	return nil
}

// StartAPIServer starts kube-apiserver after StopAPIServer, and waits until it
// is ready.
func (e *Environment) StartAPIServer(ctx context.Context) error {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return errors.New("envtest: the environment is stopped")
	}
	p := newProcess("kube-apiserver", filepath.Join(e.assets, binAPIServer), e.path("kube-apiserver.log"), e.apiServerArgs())
	e.apiServer = p
	e.mu.Unlock()
	if err := p.start(); err != nil {
		return fmt.Errorf("envtest: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, e.opts.StartTimeout)
	defer cancel()
	return e.waitReady(ctx)
}

// PauseAPIServer freezes kube-apiserver (SIGSTOP): connections stay open but
// nothing is answered, as when a server hangs or the network drops packets.
// ResumeAPIServer (SIGCONT) lets it go on.
func (e *Environment) PauseAPIServer() error { return e.signalAPIServer(syscall.SIGSTOP) }

// ResumeAPIServer undoes PauseAPIServer.
func (e *Environment) ResumeAPIServer() error { return e.signalAPIServer(syscall.SIGCONT) }

func (e *Environment) signalAPIServer(sig syscall.Signal) error {
	e.mu.Lock()
	p := e.apiServer
	e.mu.Unlock()
	if p == nil {
		return errors.New("envtest: the environment is stopped")
	}
	return p.signal(sig)
}

// InstallCRDs creates (or updates) crds and waits until each is Established
// and its versions are served.
func (e *Environment) InstallCRDs(ctx context.Context, crds ...*apiextensionsv1.CustomResourceDefinition) error {
	return e.installCRDs(ctx, crds, nil)
}

// InstallCRDFiles reads CRDs from YAML or JSON files, or folders of them,
// and installs them like InstallCRDs.
func (e *Environment) InstallCRDFiles(ctx context.Context, paths ...string) error {
	return e.installCRDs(ctx, nil, paths)
}

func (e *Environment) installCRDs(ctx context.Context, crds []*apiextensionsv1.CustomResourceDefinition, paths []string) error {
	if len(paths) > 0 {
		fromFiles, err := crdinstall.ReadFiles(paths...)
		if err != nil {
			return fmt.Errorf("envtest: %w", err)
		}
		crds = append(slices.Clone(crds), fromFiles...)
	}
	if len(crds) == 0 {
		return nil
	}
	if err := crdinstall.Install(ctx, e.admin, crds...); err != nil {
		return fmt.Errorf("envtest: %w", err)
	}
	return nil
}

// Stop ends every process the environment started and removes its temp dir.
// The components are killed outright (SIGKILL): their state is about to be
// deleted, so a graceful shutdown would only cost time (about a second for
// kube-apiserver). It is safe to call more than
// once; later calls do nothing.
func (e *Environment) Stop() error {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return nil
	}
	e.stopped = true
	procs := []*process{e.ctrlMgr, e.apiServer, e.etcd}
	e.mu.Unlock()

	var errs []error
	for _, p := range procs {
		if p == nil {
			continue
		}
		if err := p.kill(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(e.dir); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", e.dir, err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("envtest: stopping: %w", err)
	}
	return nil
}

// PIDs returns the process ids of the running components, for tests that
// check nothing is left behind.
func (e *Environment) PIDs() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	var pids []int
	for _, p := range []*process{e.etcd, e.apiServer, e.ctrlMgr} {
		if p != nil && p.pid() != 0 {
			pids = append(pids, p.pid())
		}
	}
	return pids
}

func (e *Environment) logTails(lines int) string {
	e.mu.Lock()
	procs := []*process{e.etcd, e.apiServer, e.ctrlMgr}
	e.mu.Unlock()
	var parts []string
	for _, p := range procs {
		if p == nil {
			continue
		}
		if t := p.logTail(lines); t != "" {
			parts = append(parts, t)
		}
	}
	return strings.Join(parts, "\n")
}

// flagList renders defaults overridden by overrides as --name=value
// arguments in a stable order; an empty override removes the flag.
func flagList(defaults, overrides map[string]string) []string {
	merged := maps.Clone(defaults)
	for k, v := range overrides {
		merged[strings.TrimLeft(k, "-")] = v
	}
	keys := slices.Sorted(maps.Keys(merged))
	args := make([]string, 0, len(keys))
	for _, k := range keys {
		if v := merged[k]; v != "" {
			args = append(args, "--"+k+"="+v)
		}
	}
	return args
}

func featureGates(gates map[string]bool) string {
	keys := slices.Sorted(maps.Keys(gates))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+strconv.FormatBool(gates[k]))
	}
	return strings.Join(parts, ",")
}

// freePorts asks the kernel for n distinct free ports on the loopback
// address. All listeners stay open until every port is chosen, so the n
// ports differ; another process may still take one before the component
// binds it, which Start handles by retrying.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("envtest: finding a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func writeKubeconfig(path string, cfg *rest.Config) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthorityData: cfg.CAData,
	}
	kc.AuthInfos["envtest"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cfg.CertData,
		ClientKeyData:         cfg.KeyData,
	}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "envtest"}
	kc.CurrentContext = "envtest"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("envtest: writing kubeconfig %s: %w", path, err)
	}
	return nil
}
