package workqueue

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	clientgo "k8s.io/client-go/util/workqueue"
)

// offsetLimiter adds a per-call offset (set by the fuzz harness) to another
// limiter's delay. The harness makes every deadline distinct this way, so
// items never become due at the same instant, where the two queues' heaps
// may legitimately order them differently.
type offsetLimiter[L interface {
	When(int) time.Duration
	Forget(int)
	NumRequeues(int) int
}] struct {
	inner  L
	offset *time.Duration
}

func (l offsetLimiter[L]) When(item int) time.Duration { return l.inner.When(item) + *l.offset }
func (l offsetLimiter[L]) Forget(item int)             { l.inner.Forget(item) }
func (l offsetLimiter[L]) NumRequeues(item int) int    { return l.inner.NumRequeues(item) }

// FuzzDifferential drives a capstan Queue and client-go's
// TypedRateLimitingQueue with the same operations and requires the same
// observable results: what Get returns (item and shutdown), Len,
// ShuttingDown and NumRequeues after every operation (but adds through the
// intake, see below). Time is synctest's fake clock, so both queues' timers
// fire deterministically.
//
// Each operation takes two bytes: an opcode and an argument.
func FuzzDifferential(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 1, 0, 0, 1, 2, 0, 1, 0, 2, 0})
	f.Add([]byte{3, 0x41, 3, 0x12, 6, 20, 1, 0, 1, 0, 2, 0, 2, 0})
	f.Add([]byte{4, 1, 4, 1, 6, 3, 6, 10, 7, 1, 5, 1, 7, 1, 1, 0})
	f.Add([]byte{0, 3, 1, 0, 8, 1, 0, 4, 1, 0, 2, 0, 1, 0, 1, 0})
	f.Add([]byte{10, 1, 10, 2, 1, 0, 10, 1, 10, 3, 2, 0, 1, 0, 1, 0, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 2000 {
			return
		}
		synctest.Test(t, func(t *testing.T) {
			runDifferential(t, data)
		})
	})
}

func runDifferential(t *testing.T, data []byte) {
	var offset time.Duration
	ours, err := New(Options[int]{
		RateLimiter: offsetLimiter[*MaxOfRateLimiter[int]]{DefaultControllerRateLimiter[int](nil), &offset},
	})
	if err != nil {
		t.Fatal(err)
	}
	theirs := clientgo.NewTypedRateLimitingQueue[int](
		offsetLimiter[clientgo.TypedRateLimiter[int]]{clientgo.DefaultTypedControllerRateLimiter[int](), &offset})
	defer func() {
		ours.ShutDown()
		theirs.ShutDown()
	}()

	var held []int // items got and not yet Done (from both queues)
	var trace []string
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("after ops %v: %s", trace, fmt.Sprintf(format, args...))
	}
	for i := 0; i+1 < len(data); i += 2 {
		op, arg := data[i]%16, data[i+1]
		key := int(arg % 8)
		// Distinct per operation and below 1 ms; time only advances in
		// whole milliseconds, so every deadline is distinct.
		offset = time.Duration(i/2+1) * time.Nanosecond
		switch op {
		case 0, 9:
			trace = append(trace, fmt.Sprintf("Add(%d)", key))
			ours.Add(key)
			theirs.Add(key)
		case 10:
			// An Add that finds the mutex held goes to the intake (when it
			// accepts); the Len check below is skipped after it, so that
			// intake adds pile up and the next operation applies them.
			trace = append(trace, fmt.Sprintf("Add(%d) via the intake", key))
			if !ours.intakeAdd(key) {
				ours.Add(key)
			}
			theirs.Add(key)
			continue
		case 1, 11:
			trace = append(trace, "Get")
			if ours.Len() == 0 && !ours.ShuttingDown() {
				continue // would block
			}
			a, aShut := ours.Get()
			b, bShut := theirs.Get()
			if a != b || aShut != bShut {
				fail("Get got (%d, %v), client-go (%d, %v)", a, aShut, b, bShut)
			}
			if !aShut {
				held = append(held, a)
			}
		case 2, 12:
			if len(held) == 0 {
				continue
			}
			j := int(arg) % len(held)
			item := held[j]
			held = append(held[:j], held[j+1:]...)
			trace = append(trace, fmt.Sprintf("Done(%d)", item))
			ours.Done(item)
			theirs.Done(item)
		case 3, 13:
			d := time.Duration(int(arg>>3)%8-1)*10*time.Millisecond + offset
			trace = append(trace, fmt.Sprintf("AddAfter(%d, %v)", key, d))
			ours.AddAfter(key, d)
			theirs.AddAfter(key, d)
		case 4:
			trace = append(trace, fmt.Sprintf("AddRateLimited(%d)", key))
			ours.AddRateLimited(key)
			theirs.AddRateLimited(key)
		case 5:
			trace = append(trace, fmt.Sprintf("Forget(%d)", key))
			ours.Forget(key)
			theirs.Forget(key)
		case 6, 14, 15:
			d := time.Duration(arg%64) * 5 * time.Millisecond
			trace = append(trace, fmt.Sprintf("Sleep(%v)", d))
			time.Sleep(d)
		case 7:
			trace = append(trace, fmt.Sprintf("NumRequeues(%d)", key))
			if a, b := ours.NumRequeues(key), theirs.NumRequeues(key); a != b {
				fail("NumRequeues(%d) got %d, client-go %d", key, a, b)
			}
		case 8:
			switch {
			case arg < 16:
				trace = append(trace, "ShutDown")
				ours.ShutDown()
				theirs.ShutDown()
			case arg < 32 && len(held) == 0:
				// With nothing held the drain returns at once.
				trace = append(trace, "ShutDownWithDrain")
				ours.ShutDownWithDrain()
				theirs.ShutDownWithDrain()
			}
		}
		synctest.Wait() // let client-go's delaying goroutine catch up
		if a, b := ours.Len(), theirs.Len(); a != b {
			fail("Len got %d, client-go %d", a, b)
		}
		if a, b := ours.ShuttingDown(), theirs.ShuttingDown(); a != b {
			fail("ShuttingDown got %v, client-go %v", a, b)
		}
	}
	// Finally hand out everything that is waiting: same items, same order.
	for ours.Len() > 0 {
		a, _ := ours.Get()
		b, _ := theirs.Get()
		if a != b {
			fail("final Get got %d, client-go %d", a, b)
		}
	}
	if b := theirs.Len(); b != 0 {
		fail("client-go has %d items left, capstan none", b)
	}
}
