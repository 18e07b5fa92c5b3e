package leaderelection

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
)

// Sentinel errors returned by a [LeaseStore]. Implementations must return errors for which
// errors.Is reports these, so the elector can tell the normal races of an election from
// real failures.
var (
	// ErrLeaseNotFound: Get or Update found no Lease with that key.
	ErrLeaseNotFound = errors.New("leaderelection: lease not found")
	// ErrLeaseConflict: Create found the Lease already present, or Update carried a
	// resourceVersion that is no longer current. Both are normal in an election.
	ErrLeaseConflict = errors.New("leaderelection: lease conflict")
)

// Record is the part of a coordination.k8s.io/v1 Lease that an election reads and writes.
//
// RenewTime and AcquireTime are written for humans and other tools; the elector never compares
// them with its own clock (see the package Guarantees).
type Record struct {
	// HolderIdentity is the identity of the current holder; empty means released.
	HolderIdentity string
	// LeaseDuration is how long candidates wait without seeing a change before taking over.
	// Stored as whole seconds (rounded up) in a Kubernetes Lease.
	LeaseDuration time.Duration
	// AcquireTime is when the current holder acquired the lease (wall clock, informative).
	AcquireTime time.Time
	// RenewTime is when the holder last renewed (wall clock, informative).
	RenewTime time.Time
	// LeaseTransitions counts changes of holder.
	LeaseTransitions int32
	// ResourceVersion is set by the store on every Get, Create and Update. Update succeeds
	// only when it equals the stored version (optimistic concurrency).
	ResourceVersion string
}

// LeaseStore reads and writes one kind of lease record with optimistic concurrency.
//
// Implementations must be safe for concurrent use, must honour ctx cancellation promptly, and
// must report ErrLeaseNotFound and ErrLeaseConflict as described on those errors. An Update or
// Create that returns an error may or may not have been applied; the elector assumes nothing
// about it.
type LeaseStore interface {
	// Get returns the current record of the lease key.
	Get(ctx context.Context, key types.NamespacedName) (Record, error)
	// Create stores rec as a new lease and returns it with its ResourceVersion.
	Create(ctx context.Context, key types.NamespacedName, rec Record) (Record, error)
	// Update replaces the lease if rec.ResourceVersion is current and returns the new record.
	Update(ctx context.Context, key types.NamespacedName, rec Record) (Record, error)
}

// KubeLeaseStore is a LeaseStore on the coordination.k8s.io/v1 Lease API.
//
// It keeps the last Lease object it read or wrote per key so that Update preserves fields it
// does not manage (labels, annotations, owner references, strategy, preferred holder) when the
// resourceVersion still matches.
type KubeLeaseStore struct {
	client coordinationv1client.LeasesGetter

	mu   sync.Mutex
	last map[types.NamespacedName]*coordinationv1.Lease // guarded by mu; objects never mutated
}

var _ LeaseStore = (*KubeLeaseStore)(nil)

// NewKubeLeaseStore returns a LeaseStore that uses client (for example
// kubernetes.NewForConfig(cfg).CoordinationV1()). The client must not be wrapped by a
// [Fence]: the elector's own writes are what keep the fence down.
func NewKubeLeaseStore(client coordinationv1client.LeasesGetter) *KubeLeaseStore {
	return &KubeLeaseStore{client: client, last: map[types.NamespacedName]*coordinationv1.Lease{}}
}

// Get implements LeaseStore.
func (s *KubeLeaseStore) Get(ctx context.Context, key types.NamespacedName) (Record, error) {
	l, err := s.client.Leases(key.Namespace).Get(ctx, key.Name, metav1.GetOptions{})
	if err != nil {
		return Record{}, kubeErr("get", key, err)
	}
	s.remember(key, l)
	return recordFromLease(l), nil
}

// Create implements LeaseStore.
func (s *KubeLeaseStore) Create(ctx context.Context, key types.NamespacedName, rec Record) (Record, error) {
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	applyRecord(l, rec)
	out, err := s.client.Leases(key.Namespace).Create(ctx, l, metav1.CreateOptions{})
	if err != nil {
		return Record{}, kubeErr("create", key, err)
	}
	s.remember(key, out)
	return recordFromLease(out), nil
}

// Update implements LeaseStore.
func (s *KubeLeaseStore) Update(ctx context.Context, key types.NamespacedName, rec Record) (Record, error) {
	if rec.ResourceVersion == "" {
		return Record{}, fmt.Errorf("leaderelection: update lease %s: empty resourceVersion", key)
	}
	s.mu.Lock()
	prev := s.last[key]
	s.mu.Unlock()
	var l *coordinationv1.Lease
	if prev != nil && prev.ResourceVersion == rec.ResourceVersion {
		l = prev.DeepCopy()
	} else {
		l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	}
	l.ResourceVersion = rec.ResourceVersion
	applyRecord(l, rec)
	out, err := s.client.Leases(key.Namespace).Update(ctx, l, metav1.UpdateOptions{})
	if err != nil {
		return Record{}, kubeErr("update", key, err)
	}
	s.remember(key, out)
	return recordFromLease(out), nil
}

func (s *KubeLeaseStore) remember(key types.NamespacedName, l *coordinationv1.Lease) {
	s.mu.Lock()
	s.last[key] = l
	s.mu.Unlock()
}

func kubeErr(op string, key types.NamespacedName, err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s lease %s: %w: %w", op, key, ErrLeaseNotFound, err)
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		return fmt.Errorf("%s lease %s: %w: %w", op, key, ErrLeaseConflict, err)
	default:
		return fmt.Errorf("%s lease %s: %w", op, key, err)
	}
}

func recordFromLease(l *coordinationv1.Lease) Record {
	r := Record{ResourceVersion: l.ResourceVersion}
	if l.Spec.HolderIdentity != nil {
		r.HolderIdentity = *l.Spec.HolderIdentity
	}
	if l.Spec.LeaseDurationSeconds != nil {
		r.LeaseDuration = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	if l.Spec.AcquireTime != nil {
		r.AcquireTime = l.Spec.AcquireTime.Time
	}
	if l.Spec.RenewTime != nil {
		r.RenewTime = l.Spec.RenewTime.Time
	}
	if l.Spec.LeaseTransitions != nil {
		r.LeaseTransitions = *l.Spec.LeaseTransitions
	}
	return r
}

func applyRecord(l *coordinationv1.Lease, r Record) {
	holder := r.HolderIdentity
	transitions := r.LeaseTransitions
	l.Spec.HolderIdentity = &holder
	l.Spec.LeaseDurationSeconds = nil
	if r.LeaseDuration > 0 {
		secs := int32(min(math.Ceil(r.LeaseDuration.Seconds()), math.MaxInt32))
		l.Spec.LeaseDurationSeconds = &secs
	}
	l.Spec.LeaseTransitions = &transitions
	l.Spec.AcquireTime = microTimeOrNil(r.AcquireTime)
	l.Spec.RenewTime = microTimeOrNil(r.RenewTime)
}

func microTimeOrNil(t time.Time) *metav1.MicroTime {
	if t.IsZero() {
		return nil
	}
	mt := metav1.NewMicroTime(t)
	return &mt
}
