package reconcile

import (
	"context"
	"errors"
	"time"

	"k8s.io/apimachinery/pkg/util/resourceversion"

	"github.com/capstan-io/capstan/informer"
)

// Stale-cache correctness, on by default for every controller:
//
//   - Read-your-writes: after a reconcile of K writes an object (through the
//     typed Client, or RecordWrite for other clients), the next reconcile of
//     K waits until the cache that holds the object has observed that
//     write's resourceVersion. The wait does not block a worker: K is set
//     aside and queued again the moment the cache catches up (or at
//     ReadYourWritesTimeout, with a warning). Other keys are never held up.
//   - Own-echo filtering: the watch event that merely reports our own write
//     (same object, same resourceVersion) does not cause another reconcile.
//     Any other event, including a foreign change landing at the same time,
//     has another resourceVersion and is never filtered.
//   - Conflicts: an update conflict is a quiet rate-limited requeue (V(1)
//     log, capstan_reconcile_conflicts_total), not an error log.
//
// ConsistencyOptions turn each part off per controller.

// ConsistencyOptions tune stale-cache correctness. The zero value turns
// everything on with the defaults.
type ConsistencyOptions struct {
	// DisableReadYourWrites lets a reconcile run on a cache that has not yet
	// seen the controller's own last writes for the key. Trade-off: no wait,
	// but decisions on stale state (duplicate creates, flapping status)
	// become possible again, as in controller-runtime by default.
	DisableReadYourWrites bool
	// ReadYourWritesTimeout bounds the wait for the cache; after it the
	// reconcile runs anyway and a warning is logged. Default 10s.
	ReadYourWritesTimeout time.Duration
	// DisableEchoFiltering lets the watch events of the controller's own
	// writes trigger reconciles. Trade-off: one extra, usually no-op,
	// reconcile per write.
	DisableEchoFiltering bool
}

const (
	defaultReadYourWritesTimeout = 10 * time.Second
	// echoTTL is how long an unseen echo is remembered; an event that never
	// comes (the object was replaced in a relist) must not pin memory.
	echoTTL = time.Minute
)

// ResourceVersionWaiter is a cache that can wait until it has observed a
// resourceVersion; informer.SharedInformer is one.
type ResourceVersionWaiter interface {
	WaitForResourceVersion(ctx context.Context, rv string) error
}

// reconcileScope is put in each reconcile's context so that writes made
// during it can be attributed to its key.
type reconcileScope struct {
	c   *Controller
	req Request
}

type scopeKey struct{}

// RecordWrite tells the controller running ctx's reconcile that it wrote
// namespace/name, which cache will observe at resourceVersion. The typed
// Client calls it for every write; call it yourself after writes made with
// other clients (client-go clientsets, say). Outside a reconcile it does
// nothing.
func RecordWrite(ctx context.Context, cache ResourceVersionWaiter, namespace, name, resourceVersion string) {
	s, _ := ctx.Value(scopeKey{}).(*reconcileScope)
	if s == nil || cache == nil || resourceVersion == "" {
		return
	}
	s.c.recordWrite(s.req, cache, informer.Key(namespace, name), resourceVersion)
}

// pendingWrite is the newest resourceVersion a key wrote to one cache.
type pendingWrite struct {
	cache ResourceVersionWaiter
	rv    string
	since time.Time
}

type echoKey struct {
	cache ResourceVersionWaiter
	obj   string // informer.Key of the object
}

type echo struct {
	rv string
	at time.Time
}

func (c *Controller) recordWrite(req Request, cache ResourceVersionWaiter, obj, rv string) {
	now := c.opts.Clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.opts.Consistency.DisableReadYourWrites {
		ws := c.pending[req]
		replaced := false
		for i := range ws {
			if ws[i].cache == cache {
				if newer(rv, ws[i].rv) {
					ws[i].rv = rv
				}
				replaced = true
			}
		}
		if !replaced {
			ws = append(ws, pendingWrite{cache: cache, rv: rv, since: now})
		}
		c.pending[req] = ws
	}
	if !c.opts.Consistency.DisableEchoFiltering {
		if len(c.echoes) > 1024 { // amortised sweep of echoes that never came
			for k, e := range c.echoes {
				if now.Sub(e.at) > echoTTL {
					delete(c.echoes, k)
				}
			}
		}
		c.echoes[echoKey{cache, obj}] = echo{rv: rv, at: now}
	}
}

// newer reports whether resourceVersion a is after b; unparsable versions
// count as newer, so the latest write wins.
func newer(a, b string) bool {
	cmp, err := resourceversion.CompareResourceVersion(a, b)
	return err != nil || cmp > 0
}

// isEcho reports whether an event for obj at rv, from cache, reports one of
// our own writes, and forgets the write once its event is seen (or passed).
func (c *Controller) isEcho(cache ResourceVersionWaiter, obj, rv string) bool {
	if c.opts.Consistency.DisableEchoFiltering {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := echoKey{cache, obj}
	e, ok := c.echoes[k]
	if !ok {
		return false
	}
	if e.rv == rv {
		delete(c.echoes, k)
		return true
	}
	if newer(rv, e.rv) {
		delete(c.echoes, k) // our write's event was passed over: never filter a newer one
	}
	return false
}

// cacheBehind returns a write of req that its cache has not observed yet,
// or nil; writes observed (or past their timeout) are dropped.
func (c *Controller) cacheBehind(req Request) *pendingWrite {
	if c.opts.Consistency.DisableReadYourWrites {
		return nil
	}
	c.mu.Lock()
	ws := c.pending[req]
	c.mu.Unlock()
	if len(ws) == 0 {
		return nil
	}
	done, cancel := context.WithCancel(context.Background())
	cancel() // only ask whether the cache is already there: never block
	var behind *pendingWrite
	var keep []pendingWrite
	for _, w := range ws {
		if w.cache.WaitForResourceVersion(done, w.rv) == nil {
			continue
		}
		keep = append(keep, w)
		if behind == nil {
			behind = &w
		}
	}
	c.mu.Lock()
	if len(keep) == 0 {
		delete(c.pending, req)
	} else {
		c.pending[req] = keep
	}
	c.mu.Unlock()
	return behind
}

// waitForCache sets req aside until w's cache observes w.rv (or the
// timeout passes), then queues it again. One waiter per key at a time.
func (c *Controller) waitForCache(rc *run, req Request, trig Trigger, w *pendingWrite) {
	c.mu.Lock()
	c.triggers[req] |= trig
	if c.waiting[req] {
		c.mu.Unlock()
		return
	}
	c.waiting[req] = true
	c.mu.Unlock()
	rc.wg.Go(func() {
		log := c.log.WithValues("namespace", req.Namespace, "name", req.Name)
		log.V(1).Info("waiting for the cache to observe our write", "resourceVersion", w.rv)
		remaining := c.opts.Consistency.ReadYourWritesTimeout - c.opts.Clock.Since(w.since)
		ctx, cancel := context.WithTimeout(rc.ctx, remaining)
		start := c.opts.Clock.Now()
		err := w.cache.WaitForResourceVersion(ctx, w.rv)
		cancel()
		if m := c.metrics; m != nil {
			m.cacheWait.Observe(c.opts.Clock.Since(start).Seconds())
		}
		c.mu.Lock()
		delete(c.waiting, req)
		if err != nil && rc.ctx.Err() == nil {
			// Timed out: give up on this write and proceed, as promised.
			var keep []pendingWrite
			for _, p := range c.pending[req] {
				if p.cache != w.cache {
					keep = append(keep, p)
				}
			}
			c.pending[req] = keep
		}
		c.mu.Unlock()
		if rc.ctx.Err() != nil {
			return
		}
		if errors.Is(err, context.DeadlineExceeded) {
			log.Info("cache did not observe our write in time; reconciling anyway", "resourceVersion", w.rv, "timeout", c.opts.Consistency.ReadYourWritesTimeout)
			if m := c.metrics; m != nil {
				m.cacheTimeouts.Inc()
			}
		}
		rc.q.Add(req)
	})
}

// withScope marks ctx as the reconcile of req, for RecordWrite.
func (c *Controller) withScope(ctx context.Context, req Request) context.Context {
	return context.WithValue(ctx, scopeKey{}, &reconcileScope{c: c, req: req})
}

// heldEvent is an event that arrived for a request while it was being
// reconciled, kept until the reconcile returns.
type heldEvent struct {
	trig  Trigger
	cache ResourceVersionWaiter // nil: never an echo (deletes, resyncs)
	obj   string
	rv    string
}

// beginReconcile marks req as being reconciled, so that events for it are
// held (see Controller.inflight).
func (c *Controller) beginReconcile(req Request) {
	if c.opts.Consistency.DisableEchoFiltering {
		return
	}
	c.mu.Lock()
	c.inflight[req] = nil
	c.mu.Unlock()
}

// holdEvent keeps ev for req if req is being reconciled and reports whether
// it did.
func (c *Controller) holdEvent(req Request, ev heldEvent) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	held, ok := c.inflight[req]
	if !ok {
		return false
	}
	c.inflight[req] = append(held, ev)
	return true
}

// settleHeld ends req's reconcile: each event held meanwhile is dropped if
// it reports one of the writes that reconcile made, else queued. Called
// after the reconciler returned, so every write it made is recorded.
func (c *Controller) settleHeld(req Request) {
	if c.opts.Consistency.DisableEchoFiltering {
		return
	}
	c.mu.Lock()
	held := c.inflight[req]
	delete(c.inflight, req)
	c.mu.Unlock()
	for _, ev := range held {
		if ev.cache != nil && c.isEcho(ev.cache, ev.obj, ev.rv) {
			if m := c.metrics; m != nil {
				m.echoes.Inc()
			}
			continue
		}
		c.enqueue(req, ev.trig)
	}
}
