package leaderelection_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// tcpProxy forwards TCP connections to target. While dropping, it reads and discards every
// byte in both directions (a black hole: requests hang, nothing reaches the server); when
// healed it closes the connections it corrupted so clients reconnect.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu       sync.Mutex
	dropping bool
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(s, c) })
		p.wg.Go(func() { p.pipe(c, s) })
	}
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer func() {
		_ = dst.Close()
		_ = src.Close()
		p.mu.Lock()
		delete(p.conns, dst)
		delete(p.conns, src)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			drop := p.dropping
			p.mu.Unlock()
			if !drop {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// setDropping starts or stops the black hole. Healing closes every existing connection.
func (p *tcpProxy) setDropping(drop bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	was := p.dropping
	p.dropping = drop
	if was && !drop {
		for c := range p.conns {
			_ = c.Close()
		}
	}
}

func (p *tcpProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// proxiedConfig returns cfg pointed at the proxy, with its own transport (client-go caches
// transports per host, so each proxy gets its own connections).
func proxiedConfig(cfg *rest.Config, addr string) *rest.Config {
	out := rest.CopyConfig(cfg)
	out.Host = "https://" + addr
	return out
}

// writeCounter is an HTTP reverse proxy to the API server that records when each write
// request reached it. Clients talk plain HTTP to it; it adds the admin credentials.
type writeCounter struct {
	srv *httptest.Server

	mu     sync.Mutex
	writes []time.Time // arrival instants of non-GET requests
}

func newWriteCounter(t *testing.T, admin *rest.Config) *writeCounter {
	t.Helper()
	target, err := url.Parse(admin.Host)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := rest.TransportFor(admin)
	if err != nil {
		t.Fatal(err)
	}
	w := &writeCounter{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = rt
	rp.ErrorLog = nil
	rp.ErrorHandler = func(rw http.ResponseWriter, r *http.Request, err error) { rw.WriteHeader(http.StatusBadGateway) }
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.mu.Lock()
			w.writes = append(w.writes, time.Now())
			w.mu.Unlock()
		}
		rp.ServeHTTP(rw, r)
	}))
	t.Cleanup(w.srv.Close)
	return w
}

// config is a client config that reaches the API server through the counter.
func (w *writeCounter) config() *rest.Config {
	return &rest.Config{Host: w.srv.URL, QPS: -1}
}

// writesAfter counts writes that arrived after t.
func (w *writeCounter) writesAfter(t time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, a := range w.writes {
		if a.After(t) {
			n++
		}
	}
	return n
}
