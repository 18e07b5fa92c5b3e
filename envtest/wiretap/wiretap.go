// Package wiretap observes and perturbs the traffic between a client and
// the API server, for tests: it counts requests by verb and resource, and it
// can delay watch streams so that a controller's cache lags the server, the
// condition under which stale-cache bugs (double creates, lost updates) show.
//
//	tap := wiretap.New()
//	cfg := tap.Wrap(env.Config())             // give cfg to the code under test
//	tap.SetWatchDelay("pods", 2*time.Second) // its pod cache now lags by 2s
//	...
//	if n := tap.Count("create", "pods"); n != 50 { t.Errorf("created %d pods, want 50", n) }
//
// Guarantees:
//   - A delayed watch delivers every byte, in order, no sooner than the delay
//     after it arrived: frames are never split differently or reordered, so
//     any decoder (JSON, protobuf) works unchanged.
//   - Counting happens when a request is sent, whatever its outcome.
//   - A Tap is safe for concurrent use; Wrap may be called for many configs.
//
// Caveats:
//   - Only requests through a wrapped config are seen.
//   - SetWatchDelay applies to watches opened after the call.
package wiretap

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
)

// Tap counts and delays requests made through the configs it wrapped.
type Tap struct {
	mu     sync.Mutex
	counts map[call]int             // guarded by mu
	delays map[string]time.Duration // resource -> watch delay; guarded by mu
}

type call struct{ verb, resource string }

// New returns a Tap with no delays.
func New() *Tap {
	return &Tap{counts: map[call]int{}, delays: map[string]time.Duration{}}
}

// Wrap returns a copy of cfg whose requests go through the tap. cfg itself
// is not changed.
func (t *Tap) Wrap(cfg *rest.Config) *rest.Config {
	out := rest.CopyConfig(cfg)
	out.Wrap(func(next http.RoundTripper) http.RoundTripper { return &transport{tap: t, next: next} })
	return out
}

// SetWatchDelay delays every watch of resource (plural, "pods") opened from
// now on by d; d <= 0 removes the delay.
func (t *Tap) SetWatchDelay(resource string, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d <= 0 {
		delete(t.delays, resource)
		return
	}
	t.delays[resource] = d
}

// Count returns how many requests with verb (the API's verbs: "get",
// "list", "watch", "create", "update", "patch", "delete",
// "deletecollection") on resource were sent. resource is the plural name,
// with "/subresource" for a subresource ("pods/status", "deployments/scale").
func (t *Tap) Count(verb, resource string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counts[call{verb, resource}]
}

// Writes returns how many create, update, patch, delete and
// deletecollection requests were sent, on any resource.
func (t *Tap) Writes() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for c, v := range t.counts {
		switch c.verb {
		case "create", "update", "patch", "delete", "deletecollection":
			n += v
		}
	}
	return n
}

// Reset sets every count to zero. Delays stay.
func (t *Tap) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.counts)
}

type transport struct {
	tap  *Tap
	next http.RoundTripper
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	verb, resource := Classify(req)
	tr.tap.mu.Lock()
	tr.tap.counts[call{verb, resource}]++
	delay := tr.tap.delays[resource]
	tr.tap.mu.Unlock()
	resp, err := tr.next.RoundTrip(req)
	if err != nil || verb != "watch" || delay <= 0 || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	resp.Body = newDelayedBody(resp.Body, delay)
	return resp, nil
}

// Classify returns the API verb and the resource (with "/subresource") of a
// request to the API server, as the tap counts it. Paths outside /api and
// /apis give resource "".
func Classify(req *http.Request) (verb, resource string) {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	var rest []string
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		rest = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		rest = parts[3:]
	}
	// namespaces/<ns>/<resource>... addresses a namespaced resource;
	// namespaces or namespaces/<ns>[/status] addresses namespaces themselves.
	if len(rest) >= 3 && rest[0] == "namespaces" && !(len(rest) == 3 && (rest[2] == "status" || rest[2] == "finalize")) {
		rest = rest[2:]
	}
	named := len(rest) >= 2
	if len(rest) > 0 {
		resource = rest[0]
		if len(rest) >= 3 {
			resource += "/" + rest[2]
		}
	}
	q := req.URL.Query()
	switch req.Method {
	case http.MethodPost:
		verb = "create"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodDelete:
		verb = "delete"
		if !named {
			verb = "deletecollection"
		}
	default:
		switch w := q.Get("watch"); {
		case w == "true" || w == "1":
			verb = "watch"
		case named:
			verb = "get"
		default:
			verb = "list"
		}
	}
	return verb, resource
}

// delayedBody hands out what body yields no sooner than delay after it was
// read from the network.
type delayedBody struct {
	body  io.ReadCloser
	delay time.Duration
	ch    chan chunk
	stop  chan struct{}
	once  sync.Once
	cur   []byte // what is left of the chunk being handed out
	err   error  // the body's final error, once its chunks are all out
}

type chunk struct {
	data []byte
	at   time.Time
	err  error
}

func newDelayedBody(body io.ReadCloser, delay time.Duration) *delayedBody {
	d := &delayedBody{body: body, delay: delay, ch: make(chan chunk, 4096), stop: make(chan struct{})}
	go d.pump()
	return d
}

// pump reads the network as fast as it comes, so that the server sees a
// live client and delays do not add up.
func (d *delayedBody) pump() {
	defer close(d.ch)
	for {
		buf := make([]byte, 32<<10)
		n, err := d.body.Read(buf)
		c := chunk{data: buf[:n], at: time.Now().Add(d.delay), err: err}
		if n > 0 || err != nil {
			select {
			case d.ch <- c:
			case <-d.stop:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (d *delayedBody) Read(p []byte) (int, error) {
	for len(d.cur) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		select {
		case c, ok := <-d.ch:
			if !ok {
				return 0, io.ErrUnexpectedEOF
			}
			if wait := time.Until(c.at); wait > 0 {
				timer := time.NewTimer(wait)
				select {
				case <-timer.C:
				case <-d.stop:
					timer.Stop()
					return 0, io.ErrClosedPipe
				}
			}
			d.cur, d.err = c.data, c.err
		case <-d.stop:
			return 0, io.ErrClosedPipe
		}
	}
	n := copy(p, d.cur)
	d.cur = d.cur[n:]
	return n, nil
}

// Close ends the stream at once, delayed bytes included.
func (d *delayedBody) Close() error {
	d.once.Do(func() { close(d.stop) })
	return d.body.Close()
}
