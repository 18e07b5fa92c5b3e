package leaderelection

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func TestFenceCheck(t *testing.T) {
	tests := []struct {
		name    string
		ops     func(f *Fence, clk *clocktesting.FakeClock) context.Context
		wantErr bool
	}{
		{name: "new fence is raised", ops: func(f *Fence, _ *clocktesting.FakeClock) context.Context {
			return context.Background()
		}, wantErr: true},
		{name: "lowered before deadline", ops: func(f *Fence, clk *clocktesting.FakeClock) context.Context {
			f.lower(context.Background(), t0.Add(10*time.Second))
			clk.Step(10*time.Second - time.Nanosecond)
			return context.Background()
		}},
		{name: "at the deadline", ops: func(f *Fence, clk *clocktesting.FakeClock) context.Context {
			f.lower(context.Background(), t0.Add(10*time.Second))
			clk.Step(10 * time.Second)
			return context.Background()
		}, wantErr: true},
		{name: "extended deadline", ops: func(f *Fence, clk *clocktesting.FakeClock) context.Context {
			_, term := f.lower(context.Background(), t0.Add(10*time.Second))
			clk.Step(5 * time.Second)
			if !f.extend(term, clk.Now().Add(10*time.Second)) {
				t.Fatalf("extend: got false, want true")
			}
			clk.Step(9 * time.Second)
			return context.Background()
		}},
		{name: "extend after the deadline fails", ops: func(f *Fence, clk *clocktesting.FakeClock) context.Context {
			_, term := f.lower(context.Background(), t0.Add(10*time.Second))
			clk.Step(10 * time.Second)
			if f.extend(term, clk.Now().Add(10*time.Second)) {
				t.Fatalf("extend after deadline: got true, want false")
			}
			return context.Background()
		}, wantErr: true},
		{name: "raised explicitly", ops: func(f *Fence, _ *clocktesting.FakeClock) context.Context {
			_, term := f.lower(context.Background(), t0.Add(10*time.Second))
			f.raise(term, false, nil)
			return context.Background()
		}, wantErr: true},
		{name: "ctx of an earlier term", ops: func(f *Fence, _ *clocktesting.FakeClock) context.Context {
			ctx1, term := f.lower(context.Background(), t0.Add(10*time.Second))
			f.raise(term, true, nil)
			f.lower(context.Background(), t0.Add(10*time.Second))
			return ctx1
		}, wantErr: true},
		{name: "ctx of the current term", ops: func(f *Fence, _ *clocktesting.FakeClock) context.Context {
			ctx, _ := f.lower(context.Background(), t0.Add(10*time.Second))
			return ctx
		}},
		{name: "unfenced ctx while raised", ops: func(f *Fence, _ *clocktesting.FakeClock) context.Context {
			return Unfenced(context.Background())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(t0)
			f := newFence(clk)
			ctx := tt.ops(f, clk)
			err := f.Check(ctx)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("Check: got %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrFenced) {
				t.Errorf("Check: got %v, want it to wrap ErrFenced", err)
			}
			if err == nil && ctx.Value(unfencedKey{}) == nil && f.Raised() {
				t.Errorf("Raised: got true while Check passes")
			}
		})
	}
}

func TestFenceLeaderContext(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	f := newFence(clk)
	type k struct{}
	parent, cancelParent := context.WithCancel(context.WithValue(context.Background(), k{}, "v"))
	ctx, term := f.lower(parent, t0.Add(time.Second))
	cancelParent()
	if ctx.Err() != nil {
		t.Fatalf("leader ctx: cancelled with its parent, want it to end only with the term")
	}
	if got := ctx.Value(k{}); got != "v" {
		t.Errorf("leader ctx value: got %v, want v", got)
	}
	cause := errors.New("lost")
	f.raise(term, true, cause)
	if got := context.Cause(ctx); got != cause {
		t.Errorf("leader ctx cause: got %v, want %v", got, cause)
	}
}

// roundTripFunc adapts a func to http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestFencedRoundTripper(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		leading  bool
		unfenced bool
		wantSent bool
	}{
		{name: "get while fenced", method: http.MethodGet, wantSent: true},
		{name: "post while fenced", method: http.MethodPost},
		{name: "put while fenced", method: http.MethodPut},
		{name: "patch while fenced", method: http.MethodPatch},
		{name: "delete while fenced", method: http.MethodDelete},
		{name: "unfenced post while fenced", method: http.MethodPost, unfenced: true, wantSent: true},
		{name: "post while leading", method: http.MethodPost, leading: true, wantSent: true},
		{name: "delete while leading", method: http.MethodDelete, leading: true, wantSent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(t0)
			f := newFence(clk)
			if tt.leading {
				f.lower(context.Background(), t0.Add(10*time.Second))
			}
			var sent atomic.Int32
			var gotDeadline time.Time
			rt := f.Wrap(roundTripFunc(func(r *http.Request) (*http.Response, error) {
				sent.Add(1)
				gotDeadline, _ = r.Context().Deadline()
				return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("ok"))}, nil
			}))
			ctx := context.Background()
			if tt.unfenced {
				ctx = Unfenced(ctx)
			}
			req, _ := http.NewRequestWithContext(ctx, tt.method, "https://apiserver/api/v1/namespaces/x/configmaps", strings.NewReader("{}"))
			resp, err := rt.RoundTrip(req)
			if got := sent.Load() == 1; got != tt.wantSent {
				t.Fatalf("request sent: got %v, want %v (err %v)", got, tt.wantSent, err)
			}
			if !tt.wantSent {
				var fe *FencedError
				if !errors.As(err, &fe) || !errors.Is(err, ErrFenced) || fe.Method != tt.method {
					t.Fatalf("error: got %v, want a *FencedError for %s matching ErrFenced", err, tt.method)
				}
				return
			}
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			_ = resp.Body.Close()
			if tt.leading {
				// Leader-only writes carry a deadline no later than the fence's.
				if gotDeadline.IsZero() || gotDeadline.After(time.Now().Add(10*time.Second)) {
					t.Errorf("write deadline: got %v, want set and <= now+10s", gotDeadline)
				}
			}
		})
	}
}

func TestFencedWriteAbortedOnLoss(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	f := newFence(clk)
	_, term := f.lower(context.Background(), t0.Add(10*time.Second))
	inServer := make(chan struct{})
	rt := f.Wrap(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		close(inServer)
		<-r.Context().Done() // a write stuck on the wire
		return nil, r.Context().Err()
	}))
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPut, "https://apiserver/x", nil)
		_, err := rt.RoundTrip(req)
		errc <- err
	}()
	<-inServer
	idleCtx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := f.waitIdle(idleCtx); err == nil {
		t.Fatalf("waitIdle with a write in flight: got nil, want timeout")
	}
	f.raise(term, true, ErrRenewDeadline)
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("in-flight write after loss: got %v, want context.Canceled", err)
	}
	if err := f.waitIdle(context.Background()); err != nil {
		t.Fatalf("waitIdle after the write ended: %v", err)
	}
}

func TestWrapConfig(t *testing.T) {
	var writes atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			writes.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	clk := clocktesting.NewFakeClock(t0)
	f := newFence(clk)
	cfg := f.WrapConfig(&rest.Config{Host: srv.URL})
	rc, err := rest.UnversionedRESTClientFor(withCodec(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Post().AbsPath("/x").Body([]byte("{}")).Do(context.Background()).Error(); !errors.Is(err, ErrFenced) {
		t.Fatalf("POST through fenced config: got %v, want ErrFenced", err)
	}
	if err := rc.Get().AbsPath("/x").Do(context.Background()).Error(); err != nil {
		t.Fatalf("GET through fenced config: %v", err)
	}
	f.lower(context.Background(), t0.Add(time.Minute))
	if err := rc.Post().AbsPath("/x").Body([]byte("{}")).Do(context.Background()).Error(); err != nil {
		t.Fatalf("POST while leading: %v", err)
	}
	if got := writes.Load(); got != 1 {
		t.Errorf("writes at the server: got %d, want 1", got)
	}
}

func withCodec(cfg *rest.Config) *rest.Config {
	cfg.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	return cfg
}
