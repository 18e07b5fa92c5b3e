package reconcile

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/capstan-io/capstan/informer"
)

// Watch is one event source of a Controller: an informer, a rule mapping
// its objects to Requests, and predicates. Build one with For, Owns or
// Watches.
type Watch interface {
	// start registers the watch's handler with c; synced closes once the
	// handler has seen the informer's initial list; stop removes it.
	start(ctx context.Context, c *Controller) (synced <-chan struct{}, stop func(), err error)
	String() string
}

// MapFunc maps an object to the Requests it should trigger.
type MapFunc[T informer.Object] func(ctx context.Context, obj T) []Request

// WatchSpec is a Watch of objects of type T. Chain From to name the
// informer it reads.
type WatchSpec[T informer.Object] struct {
	kind    Trigger // TriggerSelf, TriggerOwned or TriggerWatched
	mapFn   MapFunc[T]
	preds   []Predicate[T]
	inf     *informer.SharedInformer[T]
	ownerGK schema.GroupKind // Owns: set by the controller from its For type
}

// For watches the controller's primary type: each event reconciles the
// object itself (TriggerSelf). Events pass only if every predicate agrees.
func For[T informer.Object](preds ...Predicate[T]) *WatchSpec[T] {
	return &WatchSpec[T]{kind: TriggerSelf, preds: preds}
}

// Owns watches a child type: each event reconciles the child's controller
// owner (the owner reference with controller=true) when that owner is of
// the kind given by OwnedBy, or by default of the controller's For type
// (TriggerOwned).
func Owns[T informer.Object](preds ...Predicate[T]) *WatchSpec[T] {
	return &WatchSpec[T]{kind: TriggerOwned, preds: preds}
}

// Watches watches any type and reconciles the Requests fn returns for each
// event (TriggerWatched). For an update, fn is called with the old and the
// new object and both results are queued, so moving an object from one
// owner to another reconciles both.
func Watches[T informer.Object](fn MapFunc[T], preds ...Predicate[T]) *WatchSpec[T] {
	return &WatchSpec[T]{kind: TriggerWatched, mapFn: fn, preds: preds}
}

// From sets the informer the watch reads. Without it the watch uses the
// shared informer for T, in every namespace, from the controller's
// Options.Informers (set by a Manager).
func (w *WatchSpec[T]) From(inf *informer.SharedInformer[T]) *WatchSpec[T] {
	w.inf = inf
	return w
}

// OwnedBy sets the owner kind an Owns watch maps to.
func (w *WatchSpec[T]) OwnedBy(gk schema.GroupKind) *WatchSpec[T] {
	w.ownerGK = gk
	return w
}

// String names the watch for logs and errors, e.g. "Owns(*v1.Secret)".
func (w *WatchSpec[T]) String() string {
	var zero T
	name := reflect.TypeOf(zero).String()
	switch w.kind {
	case TriggerSelf:
		return "For(" + name + ")"
	case TriggerOwned:
		return "Owns(" + name + ")"
	default:
		return "Watches(" + name + ")"
	}
}

func (w *WatchSpec[T]) start(ctx context.Context, c *Controller) (<-chan struct{}, func(), error) {
	inf := w.inf
	if inf == nil {
		if c.opts.Informers == nil {
			return nil, nil, errors.New("no informer: call From(informer), set Options.Informers, or build the controller through a Manager")
		}
		var err error
		if inf, err = informer.For[T](c.opts.Informers, informer.Scope{}); err != nil {
			return nil, nil, err
		}
	}
	var mapFn func(ctx context.Context, obj T) []Request
	switch w.kind {
	case TriggerSelf:
		mapFn = func(_ context.Context, obj T) []Request {
			return []Request{{Namespace: obj.GetNamespace(), Name: obj.GetName()}}
		}
	case TriggerOwned:
		if w.ownerGK.Empty() {
			return nil, nil, errors.New("owner kind unknown: call OwnedBy, or add a For watch to the controller")
		}
		mapFn = ownerMapper[T](w.ownerGK, c.ownerClusterScoped(w.ownerGK))
	default:
		if w.mapFn == nil {
			return nil, nil, errors.New("nil MapFunc")
		}
		mapFn = w.mapFn
	}
	h := &eventHandler[T]{ctx: ctx, c: c, cache: inf, kind: w.kind, mapFn: mapFn, preds: w.preds}
	reg, err := inf.AddHandler(h, informer.HandlerOptions{Name: c.opts.Name + "/" + w.String()})
	if err != nil {
		return nil, nil, err
	}
	stop := func() {
		if err := inf.RemoveHandler(reg); err != nil && !errors.Is(err, informer.ErrStopped) {
			c.log.Error(err, "removing handler", "watch", w.String())
		}
	}
	return reg.Done(), stop, nil
}

// forGroupKind is implemented by For watches, so a controller can tell its
// Owns watches which owner kind to look for.
func (w *WatchSpec[T]) forGroupKind(c *Controller) (schema.GroupKind, bool, error) {
	if w.kind != TriggerSelf {
		return schema.GroupKind{}, false, nil
	}
	if c == nil { // only asking whether w is a For watch
		return schema.GroupKind{}, true, nil
	}
	// The scheme needs a non-nil object of the type; this runs once, at start.
	var zero T
	obj, ok := reflect.New(reflect.TypeOf(zero).Elem()).Interface().(T)
	if !ok {
		return schema.GroupKind{}, true, fmt.Errorf("%s: type parameter must be a pointer to a struct", w)
	}
	gvks, _, err := c.opts.Scheme.ObjectKinds(obj)
	if err != nil || len(gvks) == 0 {
		return schema.GroupKind{}, true, fmt.Errorf("finding the kind of %s in the scheme (register its type, or use OwnedBy): %w", w, err)
	}
	return gvks[0].GroupKind(), true, nil
}

// needsOwner reports whether w is an Owns watch without an owner kind.
func (w *WatchSpec[T]) needsOwner() bool { return w.kind == TriggerOwned && w.ownerGK.Empty() }

// setOwner is implemented by Owns watches.
func (w *WatchSpec[T]) setOwner(gk schema.GroupKind) {
	if w.needsOwner() {
		w.ownerGK = gk
	}
}

// ownerAware is what resolveOwners needs of a Watch.
type ownerAware interface {
	forGroupKind(c *Controller) (schema.GroupKind, bool, error)
	needsOwner() bool
	setOwner(gk schema.GroupKind)
}

// resolveOwners gives Owns watches without OwnedBy the kind of the
// controller's For watch.
func (c *Controller) resolveOwners(watches []Watch) error {
	var needy []ownerAware
	var forWatch ownerAware
	for _, w := range watches {
		oa, ok := w.(ownerAware)
		if !ok {
			continue
		}
		if oa.needsOwner() {
			needy = append(needy, oa)
		}
		if _, isFor, _ := oa.forGroupKind(nil); isFor && forWatch == nil {
			forWatch = oa
		}
	}
	if len(needy) == 0 || forWatch == nil {
		return nil
	}
	gk, _, err := forWatch.forGroupKind(c)
	if err != nil {
		return err
	}
	for _, oa := range needy {
		oa.setOwner(gk)
	}
	return nil
}

// ownerClusterScoped reports whether objects of gk are cluster-scoped,
// according to the RESTMapper; without one, owners are taken as namespaced.
func (c *Controller) ownerClusterScoped(gk schema.GroupKind) bool {
	if c.opts.RESTMapper == nil {
		return false
	}
	m, err := c.opts.RESTMapper.RESTMapping(gk)
	if err != nil {
		return false
	}
	return m.Scope.Name() == "root"
}

// ownerMapper maps an object to its controller owner of kind gk.
func ownerMapper[T informer.Object](gk schema.GroupKind, clusterScoped bool) func(context.Context, T) []Request {
	return func(_ context.Context, obj T) []Request {
		for _, ref := range obj.GetOwnerReferences() {
			if ref.Controller == nil || !*ref.Controller || ref.Kind != gk.Kind {
				continue
			}
			gv, err := schema.ParseGroupVersion(ref.APIVersion)
			if err != nil || gv.Group != gk.Group {
				continue
			}
			ns := obj.GetNamespace()
			if clusterScoped {
				ns = ""
			}
			return []Request{{Namespace: ns, Name: ref.Name}}
		}
		return nil
	}
}

// eventHandler turns informer events into queued Requests.
type eventHandler[T informer.Object] struct {
	ctx   context.Context // the controller's; handed to MapFuncs
	c     *Controller
	cache ResourceVersionWaiter // the informer, as RecordWrite names it
	kind  Trigger
	mapFn func(ctx context.Context, obj T) []Request
	preds []Predicate[T]
}

func (h *eventHandler[T]) allow(ev Event[T]) bool {
	for _, p := range h.preds {
		if !p(ev) {
			return false
		}
	}
	return true
}

// echo reports (and counts) an event that only reports our own write.
func (h *eventHandler[T]) echo(obj T) bool {
	if !h.c.isEcho(h.cache, informer.KeyOf(obj), obj.GetResourceVersion()) {
		return false
	}
	if m := h.c.metrics; m != nil {
		m.echoes.Inc()
	}
	return true
}

func (h *eventHandler[T]) OnAdd(obj T, isInInitialList bool) {
	if !isInInitialList && h.echo(obj) {
		return
	}
	if !h.allow(Event[T]{Type: EventCreate, Object: obj, InInitialList: isInInitialList}) {
		return
	}
	t := h.kind
	if isInInitialList {
		t = TriggerInitialList
		h.queue(h.mapFn(h.ctx, obj), t, heldEvent{})
		return
	}
	h.queue(h.mapFn(h.ctx, obj), t, h.heldFor(obj))
}

// heldFor describes an event for obj to hold while its request is being
// reconciled, to be checked as an echo then.
func (h *eventHandler[T]) heldFor(obj T) heldEvent {
	return heldEvent{cache: h.cache, obj: informer.KeyOf(obj), rv: obj.GetResourceVersion()}
}

func (h *eventHandler[T]) OnUpdate(oldObj, newObj T) {
	if oldObj.GetResourceVersion() != newObj.GetResourceVersion() && h.echo(newObj) {
		return
	}
	if !h.allow(Event[T]{Type: EventUpdate, Object: newObj, Old: oldObj}) {
		return
	}
	t := h.kind
	held := h.heldFor(newObj)
	if oldObj.GetResourceVersion() == newObj.GetResourceVersion() {
		t = TriggerResync
		held = heldEvent{}
	}
	reqs := h.mapFn(h.ctx, newObj)
	if h.kind != TriggerSelf {
		// The old object may map elsewhere (an owner or label changed):
		// both sides need to hear of it.
		reqs = append(reqs, h.mapFn(h.ctx, oldObj)...)
	}
	h.queue(reqs, t, held)
}

func (h *eventHandler[T]) OnDelete(obj T, finalStateUnknown bool) {
	if !h.allow(Event[T]{Type: EventDelete, Object: obj, FinalStateUnknown: finalStateUnknown}) {
		return
	}
	h.queue(h.mapFn(h.ctx, obj), h.kind, heldEvent{})
}

// queue queues reqs for trigger t. A request being reconciled gets the
// event held instead, to be settled when its reconcile returns (held.cache
// nil: the event can't be an echo and is queued then).
func (h *eventHandler[T]) queue(reqs []Request, t Trigger, held heldEvent) {
	held.trig = t
	for i, r := range reqs {
		if i > 0 && r == reqs[i-1] {
			continue
		}
		if h.c.holdEvent(r, held) {
			continue
		}
		h.c.enqueue(r, t)
	}
}
