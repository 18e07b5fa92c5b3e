package leaderelection_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	cgle "k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"

	"github.com/capstan-io/capstan/envtest"
	"github.com/capstan-io/capstan/leaderelection"
)

// runCandidate starts one candidate of an implementation; onStart is called when it starts
// leading. The returned channel closes when it has stopped after ctx ended.
type runCandidate func(ctx context.Context, cs kubernetes.Interface, lease, id string, release bool, onStart func()) <-chan struct{}

func runCapstan(ctx context.Context, cs kubernetes.Interface, lease, id string, release bool, onStart func()) <-chan struct{} {
	el, err := leaderelection.New(leaderelection.Options{
		Namespace: "default", Name: lease, Client: cs.CoordinationV1(), Identity: id,
		LeaseDuration: itLease, RenewDeadline: itRenew, RetryPeriod: itRetry,
		ReleaseOnCancel:  release,
		OnStartedLeading: func(context.Context) { onStart() },
	})
	if err != nil {
		panic(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = el.Run(ctx)
	}()
	return done
}

func runClientGo(ctx context.Context, cs kubernetes.Interface, lease, id string, release bool, onStart func()) <-chan struct{} {
	le, err := cgle.NewLeaderElector(cgle.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: "default", Name: lease},
			Client:     cs.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: id},
		},
		LeaseDuration: itLease, RenewDeadline: itRenew, RetryPeriod: itRetry,
		ReleaseOnCancel: release,
		Callbacks: cgle.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { onStart() },
			OnStoppedLeading: func() {},
		},
		Name: id,
	})
	if err != nil {
		panic(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		le.Run(ctx)
	}()
	return done
}

// BenchmarkFailover measures, per iteration, the time from the leader's cancellation to a
// successor starting to lead, for capstan and client-go with the same durations (LeaseDuration
// 3s, RenewDeadline 2s, RetryPeriod 500ms), three candidates, on a real API server. The leader
// is cancelled at a different phase of its renew cycle in each iteration (same phases for
// both implementations). ns/op is the failover time; failover-ms/max-ms summarise it.
func BenchmarkFailover(b *testing.B) {
	klog.SetLogger(logr.Discard()) // client-go's elector logs through klog
	env := envtest.StartForTest(b, envOptions())
	cs, err := kubernetes.NewForConfig(env.Config())
	if err != nil {
		b.Fatal(err)
	}
	impls := []struct {
		name string
		run  runCandidate
	}{{"capstan", runCapstan}, {"clientgo", runClientGo}}
	kinds := []struct {
		name    string
		release bool
	}{{"graceful", true}, {"crash", false}}
	seq := 0
	for _, kind := range kinds {
		for _, impl := range impls {
			b.Run("kind="+kind.name+"/impl="+impl.name, func(b *testing.B) {
				var times []time.Duration
				i := 0
				for b.Loop() {
					b.StopTimer()
					seq++
					lease := fmt.Sprintf("bench-%s-%s-%d", kind.name, impl.name, seq)
					started := make(chan string, 3)
					var cancels []context.CancelFunc
					var dones []<-chan struct{}
					start := func(id string) {
						ctx, cancel := context.WithCancel(context.Background())
						cancels = append(cancels, cancel)
						var once sync.Once
						dones = append(dones, impl.run(ctx, cs, lease, id, kind.release, func() { once.Do(func() { started <- id }) }))
					}
					start("leader")
					if id := <-started; id != "leader" {
						b.Fatalf("first leader: got %s", id)
					}
					start("f1")
					start("f2")
					// Let the followers observe a few renewals, then cancel at phase i/5 of
					// the renew cycle.
					time.Sleep(4*itRetry + time.Duration(i%5)*itRetry/5)
					i++
					b.StartTimer()
					t0 := time.Now()
					cancels[0]()
					select {
					case <-started:
					case <-time.After(4 * itLease):
						b.Fatalf("no failover within %v", 4*itLease)
					}
					d := time.Since(t0)
					b.StopTimer()
					times = append(times, d)
					for j, c := range cancels {
						c()
						<-dones[j]
					}
					b.StartTimer()
				}
				slices.Sort(times)
				var sum time.Duration
				for _, d := range times {
					sum += d
				}
				b.ReportMetric(float64(sum.Milliseconds())/float64(len(times)), "failover-ms")
				b.ReportMetric(float64(times[len(times)-1].Milliseconds()), "max-ms")
			})
		}
	}
}
