// Package leasetest provides an in-memory leaderelection.LeaseStore that can inject errors,
// latency, hangs and lost responses per client, and a conformance test for any LeaseStore.
//
// One Store models the API server; each Client models one process's connection to it, with
// its own faults, so a test can cut off one candidate while the others still reach the store.
package leasetest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/capstan-io/capstan/leaderelection"
)

// Op names a LeaseStore operation.
type Op string

// The operations of a LeaseStore.
const (
	OpGet    Op = "get"
	OpCreate Op = "create"
	OpUpdate Op = "update"
)

// Fault is what happens to one call. The zero Fault is a normal call.
type Fault struct {
	// Latency delays the call (on the store's clock) before it reaches the store. The call
	// returns ctx's error if ctx ends first, without reaching the store.
	Latency time.Duration
	// Hang blocks the call until ctx ends; it never reaches the store.
	Hang bool
	// Err fails the call with this error without reaching the store, unless Applied is set.
	Err error
	// Applied, with Err on a write, applies the write and then returns Err: a lost response.
	Applied bool
}

// FaultFunc chooses the fault for one call.
type FaultFunc func(op Op, key types.NamespacedName) Fault

// Options configures a Store. The zero value is valid.
type Options struct {
	// Clock measures injected latency. Default: the real clock.
	Clock clock.Clock
}

// Store is an in-memory lease store with resourceVersions, safe for concurrent use. It
// implements leaderelection.LeaseStore without faults; use Client for faults.
type Store struct {
	clock clock.Clock

	mu     sync.Mutex
	leases map[types.NamespacedName]leaderelection.Record // guarded by mu
	rv     int64                                          // guarded by mu; last resourceVersion
	writes int                                            // guarded by mu; writes applied
}

var (
	_ leaderelection.LeaseStore = (*Store)(nil)
	_ leaderelection.LeaseStore = (*Client)(nil)
)

// NewStore returns an empty Store.
func NewStore(opts Options) *Store {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	return &Store{clock: opts.Clock, leases: map[types.NamespacedName]leaderelection.Record{}}
}

// Get implements leaderelection.LeaseStore.
func (s *Store) Get(ctx context.Context, key types.NamespacedName) (leaderelection.Record, error) {
	if err := ctx.Err(); err != nil {
		return leaderelection.Record{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.leases[key]
	if !ok {
		return leaderelection.Record{}, fmt.Errorf("leasetest: get %s: %w", key, leaderelection.ErrLeaseNotFound)
	}
	return rec, nil
}

// Create implements leaderelection.LeaseStore.
func (s *Store) Create(ctx context.Context, key types.NamespacedName, rec leaderelection.Record) (leaderelection.Record, error) {
	if err := ctx.Err(); err != nil {
		return leaderelection.Record{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.leases[key]; ok {
		return leaderelection.Record{}, fmt.Errorf("leasetest: create %s: already exists: %w", key, leaderelection.ErrLeaseConflict)
	}
	return s.putLocked(key, rec), nil
}

// Update implements leaderelection.LeaseStore.
func (s *Store) Update(ctx context.Context, key types.NamespacedName, rec leaderelection.Record) (leaderelection.Record, error) {
	if err := ctx.Err(); err != nil {
		return leaderelection.Record{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.leases[key]
	if !ok {
		return leaderelection.Record{}, fmt.Errorf("leasetest: update %s: %w", key, leaderelection.ErrLeaseNotFound)
	}
	if rec.ResourceVersion != cur.ResourceVersion {
		return leaderelection.Record{}, fmt.Errorf("leasetest: update %s: resourceVersion %q is not current %q: %w",
			key, rec.ResourceVersion, cur.ResourceVersion, leaderelection.ErrLeaseConflict)
	}
	return s.putLocked(key, rec), nil
}

func (s *Store) putLocked(key types.NamespacedName, rec leaderelection.Record) leaderelection.Record {
	s.rv++
	s.writes++
	rec.ResourceVersion = strconv.FormatInt(s.rv, 10)
	s.leases[key] = rec
	return rec
}

// Lease returns the stored record of key, if any.
func (s *Store) Lease(key types.NamespacedName) (leaderelection.Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.leases[key]
	return rec, ok
}

// Put overwrites key unconditionally (as an administrator's edit would) and returns the
// stored record.
func (s *Store) Put(key types.NamespacedName, rec leaderelection.Record) leaderelection.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.putLocked(key, rec)
}

// Delete removes key.
func (s *Store) Delete(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.leases, key)
}

// Writes returns how many writes the store has applied.
func (s *Store) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// Client returns a new connection to s with no faults.
func (s *Store) Client() *Client { return &Client{s: s} }

// Client is one connection to a Store, with its own faults. Safe for concurrent use.
type Client struct {
	s *Store

	mu    sync.Mutex
	fault FaultFunc  // guarded by mu
	calls map[Op]int // guarded by mu
}

// SetFault sets the fault function for later calls; nil removes faults.
func (c *Client) SetFault(f FaultFunc) {
	c.mu.Lock()
	c.fault = f
	c.mu.Unlock()
}

// Calls returns how many calls of op this client has made (faulted or not).
func (c *Client) Calls(op Op) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[op]
}

func (c *Client) before(ctx context.Context, op Op, key types.NamespacedName) (Fault, error) {
	c.mu.Lock()
	if c.calls == nil {
		c.calls = map[Op]int{}
	}
	c.calls[op]++
	f := c.fault
	c.mu.Unlock()
	var fault Fault
	if f != nil {
		fault = f(op, key)
	}
	if fault.Hang {
		<-ctx.Done()
		return fault, ctx.Err()
	}
	if fault.Latency > 0 {
		t := c.s.clock.NewTimer(fault.Latency)
		select {
		case <-ctx.Done():
			t.Stop()
			return fault, ctx.Err()
		case <-t.C():
		}
	}
	if fault.Err != nil && !fault.Applied {
		return fault, fault.Err
	}
	return fault, nil
}

// Get implements leaderelection.LeaseStore.
func (c *Client) Get(ctx context.Context, key types.NamespacedName) (leaderelection.Record, error) {
	if _, err := c.before(ctx, OpGet, key); err != nil {
		return leaderelection.Record{}, err
	}
	return c.s.Get(ctx, key)
}

// Create implements leaderelection.LeaseStore.
func (c *Client) Create(ctx context.Context, key types.NamespacedName, rec leaderelection.Record) (leaderelection.Record, error) {
	f, err := c.before(ctx, OpCreate, key)
	if err != nil {
		return leaderelection.Record{}, err
	}
	out, err := c.s.Create(ctx, key, rec)
	if err == nil && f.Applied {
		return leaderelection.Record{}, f.Err
	}
	return out, err
}

// Update implements leaderelection.LeaseStore.
func (c *Client) Update(ctx context.Context, key types.NamespacedName, rec leaderelection.Record) (leaderelection.Record, error) {
	f, err := c.before(ctx, OpUpdate, key)
	if err != nil {
		return leaderelection.Record{}, err
	}
	out, err := c.s.Update(ctx, key, rec)
	if err == nil && f.Applied {
		return leaderelection.Record{}, f.Err
	}
	return out, err
}
