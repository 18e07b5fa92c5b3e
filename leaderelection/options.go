package leaderelection

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/utils/clock"
)

// Defaults, the same as client-go's and controller-runtime's so existing deployments keep
// their failover budget.
const (
	// DefaultLeaseDuration: candidates take over after this long without seeing the lease
	// change.
	DefaultLeaseDuration = 15 * time.Second
	// DefaultRenewDeadline: the leader deposes itself (and raises its fence) this long after
	// sending its last successful renewal. The gap to LeaseDuration (5 s) is the margin that
	// absorbs in-flight writes and clock-rate differences.
	DefaultRenewDeadline = 10 * time.Second
	// DefaultRetryPeriod: the leader renews, and candidates poll, this often.
	DefaultRetryPeriod = 2 * time.Second
)

// Options configures an Elector. The zero value is not enough: Name, Namespace and one of
// Client or Store are required; everything else has a default.
type Options struct {
	// Namespace and Name of the coordination.k8s.io/v1 Lease. Required.
	Namespace string
	Name      string

	// Client reaches the Lease API, e.g. kubernetes.NewForConfig(cfg).CoordinationV1().
	// It must not go through a Fence. Exactly one of Client and Store must be set.
	Client coordinationv1client.LeasesGetter
	// Store replaces Client with any LeaseStore, e.g. leasetest.NewStore in tests.
	Store LeaseStore

	// Identity of this candidate in the Lease. Default: hostname + "_" + 8 random hex digits,
	// unique per process start, so a restarted pod never mistakes the old holder for itself.
	Identity string

	// LeaseDuration, RenewDeadline and RetryPeriod; see the Default* constants. Rules:
	// all > 0, RenewDeadline < LeaseDuration, RetryPeriod <= RenewDeadline/2 (so at least two
	// renewal attempts fit in a deadline).
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration

	// ReleaseOnCancel: when Run's ctx ends while leading, clear the holder (after the leader's
	// work has returned and its fenced writes have drained) so a successor takes over at its
	// next poll instead of after LeaseDuration.
	ReleaseOnCancel bool

	// ReturnOnLoss makes Run return ErrLeadershipLost after the first loss of leadership
	// instead of rejoining the election (for processes that prefer to exit).
	ReturnOnLoss bool

	// OnStartedLeading runs in its own goroutine each time leadership is acquired. Its ctx is
	// cancelled the instant leadership ends. Run does not return, and does not campaign
	// again, until it has returned. Optional.
	OnStartedLeading func(ctx context.Context)
	// OnStoppedLeading is called from Run after OnStartedLeading has returned, each time a
	// term ends. Optional.
	OnStoppedLeading func()
	// OnNewLeader is called with the holder's identity each time the observed holder changes
	// (including to this candidate, and to "" when released). Calls are made in order from
	// one goroutine; if it is slow, intermediate values are skipped, never reordered.
	// Optional.
	OnNewLeader func(identity string)

	// Clock is the time source. Default: the real clock (monotonic readings).
	Clock clock.WithDelayedExecution
	// Logger receives transitions at V(0) and conflicts and retries at V(1).
	// Default: logr.Discard().
	Logger logr.Logger
	// Registerer, if set, receives the leader_election_master_status{name} gauge.
	Registerer prometheus.Registerer
}

// jitterFraction: candidates wait RetryPeriod*(1-jitterFraction*rand) between polls. Jittering
// downwards keeps candidates out of lockstep without ever waiting longer than RetryPeriod, so a
// released lease is picked up within one RetryPeriod.
const jitterFraction = 0.2

func (o *Options) setDefaults() {
	if o.Identity == "" {
		o.Identity = defaultIdentity()
	}
	if o.LeaseDuration == 0 {
		o.LeaseDuration = DefaultLeaseDuration
	}
	if o.RenewDeadline == 0 {
		o.RenewDeadline = DefaultRenewDeadline
	}
	if o.RetryPeriod == 0 {
		o.RetryPeriod = DefaultRetryPeriod
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
	if o.Store == nil && o.Client != nil {
		o.Store = NewKubeLeaseStore(o.Client)
	}
}

func (o *Options) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("leaderelection: Options."+format, args...))
	}
	if o.Namespace == "" {
		bad("Namespace must not be empty")
	}
	if o.Name == "" {
		bad("Name must not be empty")
	}
	if o.Client != nil && o.Store != nil {
		bad("Client and Options.Store are both set; set one")
	}
	if o.Client == nil && o.Store == nil {
		bad("Client or Options.Store must be set")
	}
	if o.LeaseDuration < 0 {
		bad("LeaseDuration must be > 0, got %v", o.LeaseDuration)
	}
	if o.RenewDeadline < 0 {
		bad("RenewDeadline must be > 0, got %v", o.RenewDeadline)
	}
	if o.RetryPeriod < 0 {
		bad("RetryPeriod must be > 0, got %v", o.RetryPeriod)
	}
	if len(errs) == 0 {
		o.setDefaults()
		if o.RenewDeadline >= o.LeaseDuration {
			bad("RenewDeadline (%v) must be < Options.LeaseDuration (%v)", o.RenewDeadline, o.LeaseDuration)
		}
		if o.RetryPeriod > o.RenewDeadline/2 {
			bad("RetryPeriod (%v) must be <= Options.RenewDeadline/2 (%v) so at least two renewals fit in a deadline", o.RetryPeriod, o.RenewDeadline/2)
		}
	}
	return errors.Join(errs...)
}

func defaultIdentity() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "capstan"
	}
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return host + "_" + hex.EncodeToString(b[:])
}
