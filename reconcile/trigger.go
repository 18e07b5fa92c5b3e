package reconcile

import (
	"math/bits"
	"strings"
)

// Trigger is the set of reasons a reconcile runs. Events for one Request
// that arrive while it waits coalesce into one reconcile; their triggers
// are united. Triggers appear in logs (key "trigger") and in the metric
// capstan_reconcile_triggers_total, never in the queue key.
type Trigger uint8

const (
	// TriggerSelf: the reconciled object itself changed.
	TriggerSelf Trigger = 1 << iota
	// TriggerOwned: an object it controls (an owner reference) changed.
	TriggerOwned
	// TriggerWatched: a watched object mapped to it changed.
	TriggerWatched
	// TriggerRequeue: a previous reconcile failed or asked to requeue.
	TriggerRequeue
	// TriggerResync: a periodic resync re-delivered an object.
	TriggerResync
	// TriggerInitialList: the object was in an informer's initial list. Such
	// requests are queued at low priority so that fresh changes overtake a
	// cold-start backlog (see workqueue's aging bound).
	TriggerInitialList
	// TriggerManual: queued by a call to Controller.Enqueue.
	TriggerManual

	triggerCount = iota
)

var triggerNames = [triggerCount]string{"self", "owned", "watched", "requeue", "resync", "initialList", "manual"}

// Has reports whether every reason in o is in t.
func (t Trigger) Has(o Trigger) bool { return t&o == o && o != 0 }

// String lists the reasons joined by "+", e.g. "self+owned".
func (t Trigger) String() string {
	if t == 0 {
		return "none"
	}
	var b strings.Builder
	for rest := t; rest != 0; rest &= rest - 1 {
		i := bits.TrailingZeros8(uint8(rest))
		if b.Len() > 0 {
			b.WriteByte('+')
		}
		if i < triggerCount {
			b.WriteString(triggerNames[i])
		} else {
			b.WriteString("unknown")
		}
	}
	return b.String()
}

// each calls f with each single reason in t.
func (t Trigger) each(f func(Trigger)) {
	for rest := t; rest != 0; rest &= rest - 1 {
		f(Trigger(1) << bits.TrailingZeros8(uint8(rest)))
	}
}
