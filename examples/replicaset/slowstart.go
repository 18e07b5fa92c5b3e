package replicaset

import "sync"

// slowStartInitialBatch is the first batch of slowStartBatch, as in
// kube-controller-manager (SlowStartInitialBatchSize).
const slowStartInitialBatch = 1

// slowStartBatch calls fn count times in batches of 1, 2, 4, ... (each
// batch concurrently, the batch size doubling while every call succeeds,
// never beyond what remains) and stops after the first batch with a
// failure. It returns how many calls succeeded and one of the errors of
// the failed batch. A hopeless create (a quota exceeded, a namespace being
// deleted) thus costs a handful of calls, not count. Every goroutine it
// starts has returned when it returns.
func slowStartBatch(count, initialBatchSize int, fn func() error) (int, error) {
	successes := 0
	remaining := count
	for batch := min(remaining, initialBatchSize); batch > 0; batch = min(2*batch, remaining) {
		errs := make(chan error, batch)
		var wg sync.WaitGroup
		for range batch {
			wg.Go(func() {
				if err := fn(); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		failed := len(errs)
		successes += batch - failed
		if failed > 0 {
			return successes, <-errs
		}
		remaining -= batch
	}
	return successes, nil
}
