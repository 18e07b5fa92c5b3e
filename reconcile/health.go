package reconcile

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// checks is a named set of probe checks, run in name order.
type checks struct {
	mu     sync.Mutex
	checks map[string]func(*http.Request) error
}

func newChecks() *checks { return &checks{checks: map[string]func(*http.Request) error{}} }

func (c *checks) add(name string, f func(*http.Request) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checks[name] = f
}

func (c *checks) addChecked(name string, f func(*http.Request) error) error {
	if name == "" || strings.ContainsAny(name, "/ ") || f == nil {
		return fmt.Errorf("reconcile: check %q: want a name without '/' or spaces and a non-nil func", name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.checks[name]; ok {
		return fmt.Errorf("reconcile: check %q already exists", name)
	}
	c.checks[name] = f
	return nil
}

// serve answers 200 "ok" when every check passes (or, for a path
// /healthz/NAME, the one named), else 500 listing each check.
func (c *checks) serve(w http.ResponseWriter, r *http.Request, only string) {
	c.mu.Lock()
	names := make([]string, 0, len(c.checks))
	for n := range c.checks {
		if only == "" || n == only {
			names = append(names, n)
		}
	}
	fns := make([]func(*http.Request) error, 0, len(names))
	slices.Sort(names)
	for _, n := range names {
		fns = append(fns, c.checks[n])
	}
	c.mu.Unlock()
	if only != "" && len(names) == 0 {
		http.Error(w, "no such check: "+only, http.StatusNotFound)
		return
	}
	var b strings.Builder
	var failed []error
	for i, n := range names {
		if err := fns[i](r); err != nil {
			failed = append(failed, err)
			fmt.Fprintf(&b, "[-]%s failed: %v\n", n, err)
		} else {
			fmt.Fprintf(&b, "[+]%s ok\n", n)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if err := errors.Join(failed...); err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		b.WriteString("check failed\n")
		_, _ = w.Write([]byte(b.String()))
		return
	}
	if r.URL.Query().Has("verbose") {
		b.WriteString("ok\n")
		_, _ = w.Write([]byte(b.String()))
		return
	}
	_, _ = w.Write([]byte("ok"))
}

// handler serves the "metrics" or the "health" endpoints.
func (m *Manager) handler(server string) http.Handler {
	mux := http.NewServeMux()
	if server == "metrics" {
		mux.Handle("/metrics", promhttp.HandlerFor(m.opts.Registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
		return mux
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { m.health.serve(w, r, "") })
	mux.HandleFunc("/healthz/{check}", func(w http.ResponseWriter, r *http.Request) { m.health.serve(w, r, r.PathValue("check")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) { m.ready.serve(w, r, "") })
	mux.HandleFunc("/readyz/{check}", func(w http.ResponseWriter, r *http.Request) { m.ready.serve(w, r, r.PathValue("check")) })
	return mux
}
