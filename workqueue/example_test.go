package workqueue_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/capstan-io/capstan/workqueue"
)

// The common controller loop: Get, defer Done, reconcile, then Forget on
// success or AddRateLimited on failure.
func Example() {
	q, err := workqueue.New(workqueue.Options[string]{
		Name:        "example",
		RateLimiter: workqueue.NewExponentialRateLimiter[string](time.Millisecond, time.Second),
	})
	if err != nil {
		panic(err)
	}
	attempts := map[string]int{}
	reconcile := func(_ context.Context, key string) error {
		attempts[key]++
		if key == "default/flaky" && attempts[key] < 3 {
			return errors.New("transient")
		}
		fmt.Printf("reconciled %s after %d attempt(s)\n", key, attempts[key])
		return nil
	}

	q.Add("default/web")
	q.Add("default/flaky")
	q.Add("default/web") // deduplicated: already waiting

	var worker sync.WaitGroup
	worker.Go(func() { // one worker, so the output is deterministic
		for {
			key, shutdown := q.Get()
			if shutdown {
				return
			}
			func() {
				defer q.Done(key)
				if err := reconcile(context.Background(), key); err != nil {
					q.AddRateLimited(key) // retry with backoff
					return
				}
				q.Forget(key) // success: reset the backoff
				if key == "default/flaky" {
					q.ShutDown() // the example is over
				}
			}()
		}
	})
	worker.Wait()
	// Output:
	// reconciled default/web after 1 attempt(s)
	// reconciled default/flaky after 3 attempt(s)
}

// Priorities: the initial-list backlog goes in at low priority, so fresh
// changes overtake it; aging still bounds how long the backlog waits.
func ExampleQueue_AddWithOptions() {
	q, err := workqueue.New(workqueue.Options[string]{})
	if err != nil {
		panic(err)
	}
	defer q.ShutDown()
	for _, key := range []string{"ns/a", "ns/b", "ns/c"} {
		q.AddWithOptions(key, workqueue.AddOptions{Priority: -100}) // cold-start backlog
	}
	q.Add("ns/changed")                                         // a fresh change, priority 0
	q.AddWithOptions("ns/c", workqueue.AddOptions{Priority: 0}) // raised
	for q.Len() > 0 {
		key, _ := q.Get()
		fmt.Println(key)
		q.Done(key)
	}
	// Output:
	// ns/changed
	// ns/c
	// ns/a
	// ns/b
}

// Rate limiters compose: the default controller limiter is the larger of a
// per-item exponential backoff and an overall token bucket.
func ExampleNewExponentialRateLimiter() {
	rl := workqueue.NewExponentialRateLimiter[string](5*time.Millisecond, 40*time.Millisecond)
	for range 5 {
		fmt.Print(rl.When("key"), " ")
	}
	fmt.Println("requeues:", rl.NumRequeues("key"))
	rl.Forget("key")
	fmt.Println("after Forget:", rl.When("key"))
	// Output:
	// 5ms 10ms 20ms 40ms 40ms requeues: 5
	// after Forget: 5ms
}
