package reconcile

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/capstan-io/capstan/informer"
)

// DefaultExpectationsTimeout is how long an owner waits for the creates and
// deletes it expects before it proceeds anyway. It is kube-controller-manager's
// value: long enough for a busy informer to catch up, short enough that a
// lost event stalls an owner for minutes, not forever.
const DefaultExpectationsTimeout = 5 * time.Minute

// ExpectationsOptions configure NewExpectations. The zero value is valid.
type ExpectationsOptions[K comparable] struct {
	// Timeout bounds how long an owner waits for the events it expects;
	// after it Satisfied reports true and the owner proceeds on a cache that
	// may still lack some of its children. Default DefaultExpectationsTimeout.
	Timeout time.Duration
	// Clock tells the time; default the real clock. Tests pass a fake.
	Clock clock.PassiveClock
	// Registerer, if set, receives capstan_expectations_pending{name,
	// operation} (creates and deletes expected and not yet observed, over
	// all owners) and capstan_expectations_timeouts_total{name}. Name is
	// then required. Several Expectations with different Names may share a
	// registry.
	Registerer prometheus.Registerer
	// Name labels the metrics and the logs, typically the controller's
	// name.
	Name string
	// Logger receives the timeout warnings (V(0)) and transitions (V(4));
	// default discard.
	Logger logr.Logger
	// OnSatisfied, if set, is called with an owner when an observation
	// (CreateObserved or DeleteObserved) satisfies the last of its
	// expectations: set it to enqueue the owner, for example
	// func(r Request) { controller.Enqueue(r) }. The owner's own watch may
	// not wake it, because own-echo filtering drops the events of the
	// controller's own writes.
	//
	// It is called on the observer's goroutine (usually an informer
	// handler's) after the internal lock is released, at most once per
	// satisfied batch, and never for CreateFailed, DeleteFailed, Forget or a
	// timeout: failures happen inside a reconcile, which decides its own
	// requeue (an enqueue there would skip the error's backoff), and a
	// timeout is only noticed when someone asks. It must not block.
	OnSatisfied func(owner K)
}

func (o ExpectationsOptions[K]) withDefaults() (ExpectationsOptions[K], error) {
	if o.Timeout < 0 {
		return o, fmt.Errorf("reconcile: ExpectationsOptions.Timeout is negative (%v)", o.Timeout)
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultExpectationsTimeout
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Registerer != nil && o.Name == "" {
		return o, errors.New("reconcile: ExpectationsOptions.Name is required with a Registerer")
	}
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
	if o.Name != "" {
		o.Logger = o.Logger.WithValues("expectations", o.Name)
	}
	return o, nil
}

// Expectations remember, per owner, the child creates and deletes a
// controller has made and its cache has not yet shown, so that the
// controller never decides on a cache that lacks its own recent writes:
// without them, a ReplicaSet-like controller that counts children in its
// cache right after creating some counts too few and creates them again.
// K is the owner's key, typically Request. One Expectations serves one
// controller: keys of owners of different kinds would collide.
//
// They complement read-your-writes (ConsistencyOptions), which makes the
// next reconcile wait for the writes the typed Client recorded, for up to
// ReadYourWritesTimeout: expectations also cover writes made with other
// clients and deletes, and hold for up to Timeout.
//
// The sequence a controller that creates or deletes children in batches
// follows (see ExampleExpectations):
//
//  1. Register ExpectationsHandler on the child informer (or call
//     CreateObserved and DeleteObserved from your own handler) before the
//     informer starts.
//  2. Reconcile: if the owner is gone, Forget it. If !Satisfied(owner),
//     make no create or delete decision from the cache (status may still
//     be written) and return RequeueAfter(Pending.TimeLeft) as a backstop
//     to OnSatisfied and the child events.
//  3. Otherwise compute the difference from the cache. Call
//     ExpectCreates(owner, n) before the first of n create calls, and
//     ExpectDeletes(owner, uids...) before the first delete call.
//  4. For each create call that fails, and each one skipped (for example
//     the rest of a slow-start batch after a failure), CreateFailed. For
//     each delete call that fails, DeleteFailed, except a NotFound (or a
//     UID-precondition conflict) while your cache still holds the child:
//     its delete event is on its way and will be observed.
//
// Guarantees:
//   - Satisfied is true exactly when the owner has no expectation pending:
//     every expected create was observed or reported failed, and every
//     expected delete (by UID) was observed or reported failed; or Timeout
//     has passed since the owner's last ExpectCreates or ExpectDeletes.
//     An owner that never expected anything is satisfied.
//   - An observation means the child is in the cache: informers update
//     their cache before they notify handlers. So when a batch is
//     satisfied without a timeout, the cache holds every child the batch
//     created and none it deleted (a deleted child may still be cached
//     while terminating, with its deletionTimestamp set), and a decision
//     from it creates or deletes nothing twice.
//   - Counts never go negative and never carry over between batches: a
//     create observed while none is expected (an adopted or foreign child,
//     an event that beat ExpectCreates, a create reported failed that
//     happened after all) is ignored, so it cannot pay for a later create
//     still in flight. Errors of that kind make an owner wait longer,
//     never act early.
//   - Deletes are tracked by UID, so the two observations of one graceful
//     delete (deletionTimestamp set, then gone) count once, and the delete
//     of an older object with the same name counts for nothing.
//   - Expecting again while a batch is pending adds to it (and restarts its
//     Timeout); expecting after a timeout starts afresh.
//   - A timeout is counted in capstan_expectations_timeouts_total and
//     logged at V(0) naming the owner, once per timed-out batch.
//   - Safe for concurrent use. No goroutines: timeouts are computed from
//     the clock when asked, and a batch timed out and never asked about is
//     swept by a later ExpectCreates, ExpectDeletes or Satisfied call, so
//     memory holds only owners with work pending in about the last two
//     Timeouts.
//
// Caveats:
//   - The timeout trades correctness for liveness, as in
//     kube-controller-manager: an owner whose events were lost must not
//     wait forever, so after Timeout it acts on what the cache shows and
//     may create or delete a second time, once per missing event. Timeouts
//     are rare (a create that returned success but whose event never came,
//     a forgotten CreateFailed), and each is logged and counted.
//   - Creates are counted, not identified (their names are often
//     generated by the server): any observed create for the owner counts.
//     A foreign child adopted while creates are pending satisfies one of
//     them early; this is safe, as the foreign child is in the cache and
//     makes up for the create still in flight when counting.
//   - Call ExpectCreates before the create call. After it, the child's
//     event may arrive first, be ignored, and leave the owner waiting for
//     the Timeout: never a double create, but a slow one.
//   - Expectations live in memory. After a restart there are none, which
//     is right: controllers start only once their caches have synced.
//   - Handlers registered after the informer started must not report
//     their initial list as creates (ExpectationsHandler does not): those
//     children were already counted.
type Expectations[K comparable] struct {
	timeout     time.Duration
	clock       clock.PassiveClock
	log         logr.Logger
	onSatisfied func(K)
	metrics     *expectationsMetrics // nil without a Registerer

	mu sync.Mutex
	// pending holds the owners with something pending: an entry whose
	// batch is satisfied is removed at once, so every entry has
	// creates > 0 or a non-empty deletes.
	pending map[K]*expectation
	// nextSweep is when the next ExpectCreates, ExpectDeletes or Satisfied
	// looks for timed-out entries of every owner.
	nextSweep time.Time
}

// expectation is one owner's pending batch.
type expectation struct {
	creates int                    // expected and not yet observed or failed; >= 0
	deletes map[types.UID]struct{} // expected and not yet observed or failed
	since   time.Time              // the last ExpectCreates or ExpectDeletes
}

func (x *expectation) done() bool { return x.creates <= 0 && len(x.deletes) == 0 }

// Pending is a snapshot of an owner's outstanding expectations.
type Pending struct {
	// Creates is the number of expected creates not yet observed.
	Creates int
	// Deletes is the number of expected deletes not yet observed.
	Deletes int
	// TimeLeft is the time until the batch times out, zero once it has:
	// RequeueAfter(TimeLeft) reconciles the owner when Satisfied turns
	// true by timeout.
	TimeLeft time.Duration
}

type expectationsMetrics struct {
	creates, deletes prometheus.Gauge
	timeouts         prometheus.Counter
}

// timedOut is a timed-out batch, logged after the lock is released.
type timedOut[K comparable] struct {
	owner            K
	creates, deletes int
}

// NewExpectations returns empty Expectations. It fails on invalid options
// or if the metrics cannot be registered.
func NewExpectations[K comparable](opts ExpectationsOptions[K]) (*Expectations[K], error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Expectations[K]{
		timeout:     o.Timeout,
		clock:       o.Clock,
		log:         o.Logger,
		onSatisfied: o.OnSatisfied,
		pending:     make(map[K]*expectation),
	}
	if o.Registerer != nil {
		pending := prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "capstan_expectations_pending",
			Help: "Child creates and deletes expected by controllers and not yet observed in their caches, per expectations name and operation (create, delete).",
		}, []string{"name", "operation"})
		timeouts := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capstan_expectations_timeouts_total",
			Help: "Batches of expected creates and deletes that were not all observed within the timeout, after which their owner proceeded anyway, per expectations name.",
		}, []string{"name"})
		if pending, err = registerOrReuse(o.Registerer, pending); err != nil {
			return nil, err
		}
		if timeouts, err = registerOrReuse(o.Registerer, timeouts); err != nil {
			return nil, err
		}
		e.metrics = &expectationsMetrics{
			creates:  pending.WithLabelValues(o.Name, "create"),
			deletes:  pending.WithLabelValues(o.Name, "delete"),
			timeouts: timeouts.WithLabelValues(o.Name),
		}
	}
	return e, nil
}

// ExpectCreates records that owner is about to make n create calls. Call it
// before the first one. If a batch is pending, n is added to it and its
// Timeout restarts; if the pending batch has timed out, it is dropped
// (counted as a timeout) and a new one starts. n <= 0 does nothing.
func (e *Expectations[K]) ExpectCreates(owner K, n int) {
	if n <= 0 {
		return
	}
	e.expect(owner, n, nil)
}

// ExpectDeletes records that owner is about to delete the children with
// these UIDs. Call it before the first delete call. UIDs join a pending
// batch as ExpectCreates's counts do; duplicates and empty UIDs are
// ignored.
func (e *Expectations[K]) ExpectDeletes(owner K, children ...types.UID) {
	e.expect(owner, 0, children)
}

func (e *Expectations[K]) expect(owner K, creates int, deletes []types.UID) {
	e.mu.Lock()
	now := e.clock.Now()
	var expired []timedOut[K]
	if x, ok := e.pending[owner]; ok && e.expiredLocked(x, now) {
		expired = append(expired, e.timeOutLocked(owner, x))
	}
	expired = e.sweepLocked(now, expired)
	x, ok := e.pending[owner]
	if !ok {
		x = &expectation{}
	}
	x.creates += creates
	added := 0
	for _, uid := range deletes {
		if uid == "" {
			continue
		}
		if x.deletes == nil {
			x.deletes = make(map[types.UID]struct{}, len(deletes))
		}
		if _, dup := x.deletes[uid]; !dup {
			x.deletes[uid] = struct{}{}
			added++
		}
	}
	if creates > 0 || added > 0 {
		// New work restarts the batch's Timeout: the caller waits anew.
		x.since = now
		e.pending[owner] = x
	}
	e.addLocked(creates, added)
	pc, pd := x.creates, len(x.deletes)
	e.mu.Unlock()
	e.logTimeouts(expired)
	if creates > 0 || added > 0 {
		e.log.V(4).Info("expecting children", "owner", owner, "creates", creates, "deletes", added,
			"pendingCreates", pc, "pendingDeletes", pd)
	}
}

// CreateObserved records that the cache now holds a new child of owner:
// call it from the child informer's add handler (ExpectationsHandler does).
// It pays for one expected create; with none expected it does nothing. If
// it satisfies the owner, OnSatisfied is called.
func (e *Expectations[K]) CreateObserved(owner K) { e.lowerCreates(owner, 1, true) }

// CreateFailed records that n expected creates will never be observed: the
// create calls failed, or were skipped. Without it the owner would wait for
// the Timeout. It never calls OnSatisfied.
func (e *Expectations[K]) CreateFailed(owner K, n int) {
	if n > 0 {
		e.lowerCreates(owner, n, false)
	}
}

func (e *Expectations[K]) lowerCreates(owner K, n int, observed bool) {
	e.mu.Lock()
	x, ok := e.pending[owner]
	if !ok || x.creates == 0 {
		e.mu.Unlock()
		return
	}
	n = min(n, x.creates)
	x.creates -= n
	e.addLocked(-n, 0)
	satisfied := e.settleLocked(owner, x)
	e.mu.Unlock()
	e.satisfied(owner, satisfied, observed)
}

// DeleteObserved records that the child with this UID is gone from owner's
// cache or marked for deletion there (deletionTimestamp set): call it from
// the child informer's delete handler and from its update handler when
// the deletionTimestamp appears (ExpectationsHandler does). A UID not
// expected does nothing, so the two observations of a graceful delete
// count once. If it satisfies the owner, OnSatisfied is called.
func (e *Expectations[K]) DeleteObserved(owner K, child types.UID) { e.lowerDelete(owner, child, true) }

// DeleteFailed records that the expected delete of child will never be
// observed because the delete call failed. After a NotFound, call it only
// if your cache no longer holds the child (its delete was observed before
// it was expected); if the cache still holds it, its delete event is on
// its way. It never calls OnSatisfied.
func (e *Expectations[K]) DeleteFailed(owner K, child types.UID) { e.lowerDelete(owner, child, false) }

func (e *Expectations[K]) lowerDelete(owner K, child types.UID, observed bool) {
	e.mu.Lock()
	x, ok := e.pending[owner]
	if !ok {
		e.mu.Unlock()
		return
	}
	if _, ok := x.deletes[child]; !ok {
		e.mu.Unlock()
		return
	}
	delete(x.deletes, child)
	e.addLocked(0, -1)
	satisfied := e.settleLocked(owner, x)
	e.mu.Unlock()
	e.satisfied(owner, satisfied, observed)
}

// Satisfied reports whether owner may decide creates and deletes from its
// cache: nothing it expects is pending, or its pending batch has timed out.
// A timed-out batch is counted, logged once at V(0) and dropped.
func (e *Expectations[K]) Satisfied(owner K) bool {
	e.mu.Lock()
	now := e.clock.Now()
	var expired []timedOut[K]
	x, ok := e.pending[owner]
	if ok && e.expiredLocked(x, now) {
		expired = append(expired, e.timeOutLocked(owner, x))
		ok = false
	}
	expired = e.sweepLocked(now, expired)
	e.mu.Unlock()
	e.logTimeouts(expired)
	return !ok
}

// Pending returns a snapshot of what owner still expects, and false if
// nothing is pending. It changes nothing: a timed-out batch is reported
// with TimeLeft zero until Satisfied drops it.
func (e *Expectations[K]) Pending(owner K) (Pending, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.pending[owner]
	if !ok {
		return Pending{}, false
	}
	left := max(x.since.Add(e.timeout).Sub(e.clock.Now()), 0)
	return Pending{Creates: x.creates, Deletes: len(x.deletes), TimeLeft: left}, true
}

// Forget drops everything owner expects. Call it when the owner is gone
// (its reconcile finds it deleted), so that an owner re-created under the
// same key starts clean. It never calls OnSatisfied.
func (e *Expectations[K]) Forget(owner K) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.pending[owner]; ok {
		e.removeLocked(owner, x)
	}
}

// Len returns the number of owners with expectations pending, timed-out
// ones not yet dropped included.
func (e *Expectations[K]) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.pending)
}

// expiredLocked: a batch times out Timeout after its last expect, so that
// RequeueAfter(Pending.TimeLeft) lands exactly on it.
func (e *Expectations[K]) expiredLocked(x *expectation, now time.Time) bool {
	return !now.Before(x.since.Add(e.timeout))
}

// settleLocked drops x if its batch is done and reports whether it did.
func (e *Expectations[K]) settleLocked(owner K, x *expectation) bool {
	if !x.done() {
		return false
	}
	delete(e.pending, owner)
	return true
}

func (e *Expectations[K]) removeLocked(owner K, x *expectation) {
	e.addLocked(-x.creates, -len(x.deletes))
	delete(e.pending, owner)
}

func (e *Expectations[K]) timeOutLocked(owner K, x *expectation) timedOut[K] {
	t := timedOut[K]{owner: owner, creates: x.creates, deletes: len(x.deletes)}
	e.removeLocked(owner, x)
	if e.metrics != nil {
		e.metrics.timeouts.Inc()
	}
	return t
}

// sweepLocked times out every expired batch, at most once per Timeout, so
// that owners nobody asks about again (deleted without Forget) do not stay
// in memory.
func (e *Expectations[K]) sweepLocked(now time.Time, expired []timedOut[K]) []timedOut[K] {
	if now.Before(e.nextSweep) {
		return expired
	}
	e.nextSweep = now.Add(e.timeout)
	for owner, x := range e.pending {
		if e.expiredLocked(x, now) {
			expired = append(expired, e.timeOutLocked(owner, x))
		}
	}
	return expired
}

func (e *Expectations[K]) addLocked(creates, deletes int) {
	if e.metrics == nil {
		return
	}
	if creates != 0 {
		e.metrics.creates.Add(float64(creates))
	}
	if deletes != 0 {
		e.metrics.deletes.Add(float64(deletes))
	}
}

func (e *Expectations[K]) logTimeouts(expired []timedOut[K]) {
	for _, t := range expired {
		e.log.Info("expectations timed out; proceeding on a cache that may lack some of the owner's children",
			"owner", t.owner, "pendingCreates", t.creates, "pendingDeletes", t.deletes, "timeout", e.timeout)
	}
}

// satisfied runs after the lock is released.
func (e *Expectations[K]) satisfied(owner K, satisfied, observed bool) {
	if !satisfied {
		return
	}
	e.log.V(4).Info("expectations satisfied", "owner", owner, "byObservation", observed)
	if observed && e.onSatisfied != nil {
		e.onSatisfied(owner)
	}
}

// ExpectationsHandler returns an informer handler that reports a child
// informer's events to exp. ownerOf names the owner of a child (typically
// from its controller reference) and reports false for children of no
// owner of exp's controller. Register it before the informer starts.
//
//   - OnAdd: CreateObserved, or DeleteObserved if the child is already
//     marked for deletion. Adds of the initial list (or of a handler added
//     late) are not creates anyone waits for and are ignored.
//   - OnUpdate: DeleteObserved once the child is marked for deletion: a
//     terminating child no longer counts, and controllers replace it
//     without waiting for it to go.
//   - OnDelete: DeleteObserved, also when the final state is unknown.
//
// It panics if exp or ownerOf is nil.
func ExpectationsHandler[T informer.Object, K comparable](exp *Expectations[K], ownerOf func(child T) (K, bool)) informer.Handler[T] {
	if exp == nil || ownerOf == nil {
		panic("reconcile: ExpectationsHandler: exp and ownerOf must not be nil")
	}
	return informer.HandlerFuncs[T]{
		AddFunc: func(obj T, isInInitialList bool) {
			if isInInitialList {
				return
			}
			owner, ok := ownerOf(obj)
			if !ok {
				return
			}
			if obj.GetDeletionTimestamp() != nil {
				exp.DeleteObserved(owner, obj.GetUID())
				return
			}
			exp.CreateObserved(owner)
		},
		UpdateFunc: func(_, obj T) {
			if obj.GetDeletionTimestamp() == nil {
				return
			}
			if owner, ok := ownerOf(obj); ok {
				exp.DeleteObserved(owner, obj.GetUID())
			}
		},
		DeleteFunc: func(obj T, _ bool) {
			if owner, ok := ownerOf(obj); ok {
				exp.DeleteObserved(owner, obj.GetUID())
			}
		},
	}
}
