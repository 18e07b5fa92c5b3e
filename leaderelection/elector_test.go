package leaderelection_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"

	"github.com/capstan-io/capstan/leaderelection"
	"github.com/capstan-io/capstan/leaderelection/leasetest"
)

var errUnavailable = errors.New("leasetest: injected: service unavailable")

func hang() leasetest.FaultFunc {
	return func(leasetest.Op, types.NamespacedName) leasetest.Fault { return leasetest.Fault{Hang: true} }
}

func TestAcquireAbsentLease(t *testing.T) {
	synctestRun(t, func(w *world) {
		a := w.add("a", nil)
		start := time.Now()
		a.start()
		synctest.Wait()
		if !a.el.IsLeader() {
			t.Fatalf("IsLeader: got false, want true")
		}
		if got := w.holder(); got != "a" {
			t.Errorf("lease holder: got %q, want %q", got, "a")
		}
		if got := a.el.Leader(); got != "a" {
			t.Errorf("Leader(): got %q, want %q", got, "a")
		}
		started := a.eventsOf("started")
		if len(started) != 1 || !started[0].at.Equal(start) {
			t.Errorf("OnStartedLeading: got %v, want one call at start", started)
		}
		if nl := a.eventsOf("newLeader"); len(nl) != 1 || nl[0].value != "a" {
			t.Errorf("OnNewLeader: got %v, want [a]", nl)
		}
		rec, _ := w.store.Lease(key)
		if rec.LeaseDuration != leaseDuration || rec.LeaseTransitions != 0 || !rec.AcquireTime.Equal(start) {
			t.Errorf("record: got %+v, want leaseDuration %v, transitions 0, acquireTime %v", rec, leaseDuration, start)
		}
	})
}

func TestLeaderRenewsAndCandidatesWait(t *testing.T) {
	synctestRun(t, func(w *world) {
		a := w.add("a", nil)
		b := w.add("b", nil)
		a.start()
		synctest.Wait()
		b.start()
		w.run(60 * time.Second)
		if l := w.leader(); l != a {
			t.Fatalf("leader after 60s: got %v, want a", l)
		}
		if got := a.client.Calls(leasetest.OpUpdate); got < 29 || got > 31 {
			t.Errorf("leader renewals in 60s: got %d, want 30±1 (every RetryPeriod)", got)
		}
		if got := b.client.Calls(leasetest.OpUpdate); got != 0 {
			t.Errorf("candidate writes while lease renewed: got %d, want 0", got)
		}
		// Polls are jittered in [0.8, 1] x RetryPeriod: between 30 and 38 in 60 s.
		if got := b.client.Calls(leasetest.OpGet); got < 30 || got > 39 {
			t.Errorf("candidate polls in 60s: got %d, want 30..39", got)
		}
		if nl := b.eventsOf("newLeader"); len(nl) != 1 || nl[0].value != "a" {
			t.Errorf("candidate OnNewLeader: got %v, want [a]", nl)
		}
		if errs := b.errors(); len(errs) != 0 {
			t.Errorf("candidate error logs: got %q, want none", errs)
		}
	})
}

func TestFailover(t *testing.T) {
	tests := []struct {
		name    string
		release bool
		// work is how long the leader's OnStartedLeading takes to return after its ctx ends.
		work time.Duration
		// want bounds the successor's acquisition, measured from the leader's cancellation.
		wantMin, wantMax time.Duration
		// fromLastRenew: measure wantMin/wantMax from the leader's last renewal instead.
		fromLastRenew bool
	}{
		{name: "crash without release", fromLastRenew: true, wantMin: leaseDuration, wantMax: leaseDuration + retryPeriod},
		{name: "graceful release", release: true, wantMin: 0, wantMax: retryPeriod},
		{name: "release waits for leader work", release: true, work: 3 * time.Second, wantMin: 3 * time.Second, wantMax: 3*time.Second + retryPeriod},
		{name: "no release when work outlives the deadline", release: true, work: 30 * time.Second, fromLastRenew: true, wantMin: leaseDuration, wantMax: leaseDuration + retryPeriod},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctestRun(t, func(w *world) {
				a := w.add("a", func(o *leaderelection.Options) {
					o.ReleaseOnCancel = tt.release
					o.OnStartedLeading = func(ctx context.Context) {
						<-ctx.Done()
						time.Sleep(tt.work)
					}
				})
				a.start()
				synctest.Wait()
				b, c := w.add("b", nil), w.add("c", nil)
				b.start()
				c.start()
				w.run(7*time.Second + 300*time.Millisecond) // mid-way between renewals
				rec, _ := w.store.Lease(key)
				lastRenew := rec.RenewTime
				cancelledAt := time.Now()
				a.cancel()
				w.until(time.Minute, "successor", func() bool { l := w.leader(); return l != nil && l != a })
				acquired := time.Now()
				// Leadership changes are exact in virtual time; the step adds at most one step.
				from := cancelledAt
				if tt.fromLastRenew {
					from = lastRenew
				}
				if got := acquired.Sub(from); got < tt.wantMin || got > tt.wantMax+step {
					t.Errorf("successor acquired after %v, want within [%v, %v]", got, tt.wantMin, tt.wantMax)
				}
				if err := <-a.done; err != nil {
					t.Errorf("Run(a): got %v, want nil", err)
				}
				a.done = nil
				if got := len(a.eventsOf("stopped")); got != 1 {
					t.Errorf("OnStoppedLeading calls: got %d, want 1", got)
				}
				rec, _ = w.store.Lease(key)
				if rec.LeaseTransitions != 1 {
					t.Errorf("leaseTransitions: got %d, want 1", rec.LeaseTransitions)
				}
			})
		})
	}
}

func TestRenewDeadlineFencesThenRejoins(t *testing.T) {
	synctestRun(t, func(w *world) {
		a := w.add("a", nil)
		a.start()
		synctest.Wait()
		b := w.add("b", nil)
		b.start()
		w.run(5*time.Second + 500*time.Millisecond)
		rec, _ := w.store.Lease(key)
		deadline := rec.RenewTime.Add(renewDeadline)
		a.client.SetFault(hang()) // a's renewals now hang; b still reaches the store

		w.run(time.Until(deadline) - time.Millisecond)
		if !a.el.IsLeader() || a.el.Fence().Raised() {
			t.Fatalf("1ms before the renew deadline: got IsLeader %v Raised %v, want true false", a.el.IsLeader(), a.el.Fence().Raised())
		}
		time.Sleep(time.Millisecond)
		// At the deadline, before any goroutine has run, IsLeader and the fence have changed.
		if a.el.IsLeader() || !a.el.Fence().Raised() {
			t.Fatalf("at the renew deadline: got IsLeader %v Raised %v, want false true", a.el.IsLeader(), a.el.Fence().Raised())
		}
		if err := a.el.Fence().Check(context.Background()); !errors.Is(err, leaderelection.ErrFenced) {
			t.Errorf("Fence.Check at deadline: got %v, want ErrFenced", err)
		}
		synctest.Wait()
		a.mu.Lock()
		ctx1 := a.leaderCtxs[0]
		a.mu.Unlock()
		if cause := context.Cause(ctx1); !errors.Is(cause, leaderelection.ErrRenewDeadline) {
			t.Errorf("leader ctx cause: got %v, want ErrRenewDeadline", cause)
		}
		if s := a.eventsOf("stopped"); len(s) != 1 || !s[0].at.Equal(deadline) {
			t.Errorf("OnStoppedLeading: got %v, want one at the deadline %v", s, deadline)
		}

		w.until(time.Minute, "b leads", func() bool { return b.el.IsLeader() })
		if got, min := time.Since(rec.RenewTime), leaseDuration; got < min {
			t.Errorf("b acquired %v after a's last renewal, want >= LeaseDuration %v", got, min)
		}

		a.client.SetFault(nil) // a reaches the store again and campaigns
		w.run(30 * time.Second)
		if b.el.Leader() != "b" || a.el.Leader() != "b" || !b.el.IsLeader() {
			t.Fatalf("after a rejoined: got leaders a:%q b:%q, want b", a.el.Leader(), b.el.Leader())
		}
		if err := b.stop(); err != nil {
			t.Errorf("Run(b): %v", err)
		}
		w.until(leaseDuration+retryPeriod+step, "a leads again", func() bool { return a.el.IsLeader() })
		a.mu.Lock()
		ctx2 := a.leaderCtxs[len(a.leaderCtxs)-1]
		a.mu.Unlock()
		fence := a.el.Fence()
		if err := fence.Check(ctx2); err != nil {
			t.Errorf("Fence.Check(term 2 ctx): got %v, want nil", err)
		}
		if err := fence.Check(ctx1); !errors.Is(err, leaderelection.ErrFenced) {
			t.Errorf("Fence.Check(term 1 ctx) while leading term 2: got %v, want ErrFenced", err)
		}
	})
}

func TestAPIServerAway(t *testing.T) {
	synctestRun(t, func(w *world) {
		cands := []*candidate{w.add("a", nil), w.add("b", nil), w.add("c", nil)}
		cands[0].start()
		synctest.Wait()
		cands[1].start()
		cands[2].start()
		w.run(4 * time.Second)
		rec, _ := w.store.Lease(key)
		for _, c := range cands {
			c.client.SetFault(hang())
		}
		w.run(time.Until(rec.RenewTime.Add(renewDeadline)))
		if l := w.leader(); l != nil {
			t.Fatalf("at the renew deadline with the store away: %s still leads", l.id)
		}
		w.run(40 * time.Second) // every step checks that nobody claims leadership
		if l := w.leader(); l != nil {
			t.Fatalf("store away: %s leads", l.id)
		}
		for _, c := range cands {
			c.client.SetFault(nil)
		}
		w.until(leaseDuration+2*retryPeriod, "leadership resumes", func() bool { return w.leader() != nil })
	})
}

func TestTransientRenewErrors(t *testing.T) {
	tests := []struct {
		name     string
		fault    leasetest.Fault
		duration time.Duration
		wantLost bool
	}{
		{name: "errors shorter than the deadline", fault: leasetest.Fault{Err: errUnavailable}, duration: 6500 * time.Millisecond},
		{name: "errors longer than the deadline", fault: leasetest.Fault{Err: errUnavailable}, duration: 12 * time.Second, wantLost: true},
		{name: "slow renewals under the deadline", fault: leasetest.Fault{Latency: 3 * time.Second}, duration: 30 * time.Second},
		{name: "lost responses shorter than the deadline", fault: leasetest.Fault{Err: errUnavailable, Applied: true}, duration: 6500 * time.Millisecond},
		{name: "lost responses longer than the deadline", fault: leasetest.Fault{Err: errUnavailable, Applied: true}, duration: 12 * time.Second, wantLost: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctestRun(t, func(w *world) {
				a := w.add("a", nil)
				a.start()
				synctest.Wait()
				b := w.add("b", nil)
				b.start()
				w.run(time.Second)
				a.client.SetFault(func(op leasetest.Op, _ types.NamespacedName) leasetest.Fault {
					if op == leasetest.OpUpdate {
						return tt.fault
					}
					return leasetest.Fault{}
				})
				w.run(tt.duration)
				a.client.SetFault(nil)
				w.run(20 * time.Second)
				if got := len(a.eventsOf("stopped")) > 0; got != tt.wantLost {
					t.Errorf("leader lost leadership: got %v, want %v", got, tt.wantLost)
				}
				for _, l := range a.errors() {
					if strings.Contains(l, "conflict") {
						t.Errorf("conflict logged as an error: %q", l)
					}
				}
			})
		})
	}
}

func TestDeposed(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(w *world)
	}{
		{name: "holder overwritten", mutate: func(w *world) {
			rec, _ := w.store.Lease(key)
			rec.HolderIdentity = "intruder"
			w.store.Put(key, rec)
		}},
		{name: "lease deleted", mutate: func(w *world) { w.store.Delete(key) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctestRun(t, func(w *world) {
				a := w.add("a", func(o *leaderelection.Options) { o.ReturnOnLoss = true })
				a.start()
				w.run(3 * time.Second)
				tt.mutate(w)
				mutated := time.Now()
				err := <-a.done
				a.done = nil
				if !errors.Is(err, leaderelection.ErrLeadershipLost) {
					t.Errorf("Run: got %v, want ErrLeadershipLost", err)
				}
				if got := time.Since(mutated); got > retryPeriod {
					t.Errorf("stepped down %v after being deposed, want within RetryPeriod %v", got, retryPeriod)
				}
				a.mu.Lock()
				cause := context.Cause(a.leaderCtxs[0])
				a.mu.Unlock()
				if cause == nil || !strings.Contains(cause.Error(), "deposed") {
					t.Errorf("leader ctx cause: got %v, want deposed", cause)
				}
			})
		})
	}
}

func TestExpiryUsesLocalObservation(t *testing.T) {
	past := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		rec  leaderelection.Record
		want time.Duration // time from the candidate's first look to its acquisition
	}{
		{name: "remote renewTime long past", rec: leaderelection.Record{HolderIdentity: "ghost", LeaseDuration: leaseDuration, RenewTime: past}, want: leaseDuration},
		{name: "remote renewTime in the future", rec: leaderelection.Record{HolderIdentity: "ghost", LeaseDuration: leaseDuration, RenewTime: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}, want: leaseDuration},
		{name: "holder declares a longer lease", rec: leaderelection.Record{HolderIdentity: "ghost", LeaseDuration: time.Minute, RenewTime: past}, want: time.Minute},
		{name: "released lease", rec: leaderelection.Record{HolderIdentity: "", LeaseDuration: leaseDuration, RenewTime: past}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctestRun(t, func(w *world) {
				w.store.Put(key, tt.rec)
				b := w.add("b", nil)
				start := time.Now()
				b.start()
				got := w.until(2*time.Minute, "b leads", func() bool { return b.el.IsLeader() })
				if got != tt.want {
					t.Errorf("acquired after %v, want exactly %v", got, tt.want)
				}
				_ = start
			})
		})
	}
}

func TestConflictsAreNotErrors(t *testing.T) {
	synctestRun(t, func(w *world) {
		w.store.Put(key, leaderelection.Record{HolderIdentity: "ghost", LeaseDuration: leaseDuration})
		cands := []*candidate{w.add("a", nil), w.add("b", nil), w.add("c", nil)}
		for _, c := range cands {
			c.start()
		}
		w.until(leaseDuration+step, "one leads", func() bool { return w.leader() != nil })
		w.run(10 * time.Second)
		updates := 0
		for _, c := range cands {
			updates += c.client.Calls(leasetest.OpUpdate)
			if errs := c.errors(); len(errs) != 0 {
				t.Errorf("%s error logs: got %q, want none", c.id, errs)
			}
		}
		// All three raced for the expired lease at the same instant: two lost.
		if l := w.leader(); updates < 3 || l == nil {
			t.Errorf("got %d updates and leader %v, want a race of 3 and one leader", updates, l)
		}
	})
}

func TestHealthCheck(t *testing.T) {
	synctestRun(t, func(w *world) {
		unblock := make(chan struct{})
		const tolerance = 5 * time.Second
		a := w.add("a", func(o *leaderelection.Options) {
			o.OnStartedLeading = func(context.Context) { <-unblock } // ignores its ctx
		})
		b := w.add("b", nil)
		check := a.el.HealthCheck(tolerance)
		a.start()
		synctest.Wait()
		b.start()
		w.run(3 * time.Second)
		if err := check(nil); err != nil {
			t.Errorf("healthy leader: got %v, want nil", err)
		}
		rec, _ := w.store.Lease(key)
		a.client.SetFault(hang())
		w.run(time.Until(rec.RenewTime.Add(renewDeadline + tolerance)))
		if err := check(nil); err != nil {
			t.Errorf("at deadline+tolerance: got %v, want nil", err)
		}
		w.run(step)
		if err := check(nil); err == nil {
			t.Errorf("stuck step-down past deadline+tolerance: got nil, want error")
		}
		if err := b.el.HealthCheck(tolerance)(nil); err != nil {
			t.Errorf("candidate: got %v, want nil", err)
		}
		close(unblock)
		synctest.Wait()
		if err := check(nil); err != nil {
			t.Errorf("after step-down finished: got %v, want nil", err)
		}
	})
}

func TestMetric(t *testing.T) {
	synctestRun(t, func(w *world) {
		reg := prometheus.NewRegistry()
		a := w.add("a", func(o *leaderelection.Options) { o.Registerer = reg })
		b := w.add("b", func(o *leaderelection.Options) { o.Registerer = reg; o.Name = "other" })
		_ = b
		if got := gauge(t, reg, key.Name); got != 0 {
			t.Errorf("before Run: got %v, want 0", got)
		}
		a.start()
		synctest.Wait()
		if got := gauge(t, reg, key.Name); got != 1 {
			t.Errorf("leading: got %v, want 1", got)
		}
		if err := a.stop(); err != nil {
			t.Fatal(err)
		}
		if got := gauge(t, reg, key.Name); got != 0 {
			t.Errorf("after stop: got %v, want 0", got)
		}
		if got := gauge(t, reg, "other"); got != 0 {
			t.Errorf("second elector on the same registry: got %v, want 0", got)
		}
		w.cands = w.cands[:1]
	})
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "leader_election_master_status" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "name" && l.GetValue() == name {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("leader_election_master_status{name=%q} not found", name)
	return 0
}

func TestRunTwice(t *testing.T) {
	synctestRun(t, func(w *world) {
		a := w.add("a", nil)
		a.start()
		synctest.Wait()
		if err := a.el.Run(t.Context()); err == nil {
			t.Errorf("second Run: got nil, want error")
		}
	})
}

func TestOnNewLeaderOrder(t *testing.T) {
	synctestRun(t, func(w *world) {
		a := w.add("a", func(o *leaderelection.Options) { o.ReleaseOnCancel = true })
		b := w.add("b", func(o *leaderelection.Options) { o.ReleaseOnCancel = true })
		a.start()
		synctest.Wait()
		b.start()
		w.run(5 * time.Second)
		a.stop()
		w.until(retryPeriod+step, "b leads", func() bool { return b.el.IsLeader() })
		var got []string
		for _, e := range b.eventsOf("newLeader") {
			got = append(got, e.value)
		}
		// b sees a, maybe the released "" (if it polled in between), then itself.
		if strings.Join(got, ",") != "a,b" && strings.Join(got, ",") != "a,,b" {
			t.Errorf("OnNewLeader sequence: got %q, want a[,\"\"],b", got)
		}
	})
}

// TestChaos runs three candidates through random latency, errors, lost responses and
// partitions for an hour of virtual time; the election invariant is checked every 10 ms and at
// every callback.
func TestChaos(t *testing.T) {
	for seed := range uint64(3) {
		t.Run("seed="+string(rune('0'+seed)), func(t *testing.T) {
			synctestRun(t, func(w *world) {
				rng := rand.New(rand.NewPCG(seed, 42))
				cands := []*candidate{w.add("a", nil), w.add("b", nil), w.add("c", nil)}
				var mu sync.Mutex // guards rng and partitionedUntil
				partitionedUntil := make([]time.Time, len(cands))
				for i, c := range cands {
					i := i
					c.client.SetFault(func(op leasetest.Op, _ types.NamespacedName) leasetest.Fault {
						mu.Lock()
						defer mu.Unlock()
						if time.Now().Before(partitionedUntil[i]) {
							return leasetest.Fault{Hang: true}
						}
						switch r := rng.Float64(); {
						case r < 0.05:
							return leasetest.Fault{Err: errUnavailable}
						case r < 0.08 && op != leasetest.OpGet:
							return leasetest.Fault{Err: errUnavailable, Applied: true}
						case r < 0.20:
							return leasetest.Fault{Latency: time.Duration(rng.Int64N(int64(4 * time.Second)))}
						}
						return leasetest.Fault{}
					})
					c.start()
				}
				transitions := 0
				for range 120 { // 120 x 30 s = 1 h
					mu.Lock()
					if i := rng.IntN(6); i < len(cands) {
						partitionedUntil[i] = time.Now().Add(time.Duration(rng.Int64N(int64(40 * time.Second))))
					}
					mu.Unlock()
					w.run(30 * time.Second)
				}
				for _, c := range cands {
					transitions += len(c.eventsOf("started"))
				}
				if transitions < 5 {
					t.Errorf("got %d terms in an hour of chaos, want >= 5 (the test must exercise failover)", transitions)
				}
			})
		})
	}
}
