package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// h1Transport is the http.RoundTripper of a plain-HTTP upstream (no TLS,
// no proxy): HTTP/1.1 over a pool of keep-alive connections, each request
// written and its response read on the caller's goroutine, with net/http's
// own request writer (http.Request.Write) and response reader
// (http.ReadResponse).
//
// Why not net/http's Transport: it hands each request to its connection's
// writing goroutine and the response back from a reading goroutine, and
// those hand-offs were a fifth of a loopback round trip here (221 against
// 181 µs p50 with the client and the server on a core each, 97 against
// 57 µs sharing two; BenchmarkRoundTrip measures it in one run). Why not
// fasthttp, which reads and writes on the caller's goroutine too: it
// cannot end a request in flight when its context ends, and a client gone
// away must stop its upstream's generation. TLS upstreams keep net/http's
// Transport, for HTTP/2.
type h1Transport struct {
	addr   string // host:port
	dialer net.Dialer
	max    int // idle connections kept

	mu     sync.Mutex
	idle   []*h1Conn // guarded by mu; the most recently used last
	closed bool      // guarded by mu

	drained func(kept bool) // tests: called when a drain ends
}

// h1Conn is one keep-alive connection.
type h1Conn struct {
	c    net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	used time.Time // when it went idle
}

// h1IdleTimeout is how long an idle connection is kept: below the
// keep-alive timeouts of common servers (uvicorn's 5 s is the shortest;
// a connection it closed is found by stale, not used).
const h1IdleTimeout = 90 * time.Second

func newH1Transport(addr string, maxIdle int) *h1Transport {
	return &h1Transport{addr: addr, max: maxIdle,
		dialer: net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}}
}

// get returns an idle connection that is still open, or a new one.
func (t *h1Transport) get(ctx context.Context) (*h1Conn, error) {
	for {
		t.mu.Lock()
		n := len(t.idle)
		if n == 0 {
			t.mu.Unlock()
			break
		}
		pc := t.idle[n-1]
		t.idle = t.idle[:n-1]
		t.mu.Unlock()
		if time.Since(pc.used) < h1IdleTimeout && !stale(pc.c) {
			return pc, nil
		}
		pc.c.Close()
	}
	c, err := t.dialer.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	return &h1Conn{c: c, br: bufio.NewReaderSize(c, 8<<10), bw: bufio.NewWriterSize(c, 8<<10)}, nil
}

// put keeps pc for the next request, or closes it.
func (t *h1Transport) put(pc *h1Conn) {
	pc.used = time.Now()
	t.mu.Lock()
	if t.closed || len(t.idle) >= t.max || pc.br.Buffered() > 0 {
		t.mu.Unlock()
		pc.c.Close()
		return
	}
	t.idle = append(t.idle, pc)
	t.mu.Unlock()
}

// CloseIdleConnections closes the idle connections (http.Client's
// CloseIdleConnections calls it).
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := slices.Clone(t.idle)
	t.idle = t.idle[:0]
	t.mu.Unlock()
	for _, pc := range idle {
		pc.c.Close()
	}
}

// close closes the idle connections and those that finish later.
func (t *h1Transport) close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.CloseIdleConnections()
}

// aLongTimeAgo is a deadline that ends a blocked read or write at once.
var aLongTimeAgo = time.Unix(1, 0)

// RoundTrip implements http.RoundTripper. The request's context ends it at
// any point, the response body's reads included: the connection's
// deadline is set in the past and the connection is not used again.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if req.URL.Scheme != "http" {
		closeBody(req)
		return nil, fmt.Errorf("upstream: %s URL on the plain-HTTP transport", req.URL.Scheme)
	}
	pc, err := t.get(ctx)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = pc.c.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		pc.c.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, err
	}
	// Write closes req.Body.
	werr := req.Write(pc.bw)
	if werr == nil {
		werr = pc.bw.Flush()
	}
	if werr != nil && ctx.Err() == nil {
		// A server may answer before it has read the whole request (a
		// 413 for a body over its limit) and close: its answer is the
		// one to give, when it came.
		_ = pc.c.SetReadDeadline(time.Now().Add(time.Second))
	}
	resp, err := http.ReadResponse(pc.br, req)
	if err != nil {
		if werr != nil {
			err = werr
		}
		return fail(err)
	}
	// Only a body with a known end leaves the connection ready for the
	// next request; one read to the close is read to the close, and one
	// whose request was not all written is closed.
	reuse := werr == nil && !resp.Close && (resp.ContentLength >= 0 || slices.Contains(resp.TransferEncoding, "chunked"))
	resp.Body = &h1Body{t: t, pc: pc, body: resp.Body, stop: stop, ctx: ctx, reuse: reuse}
	return resp, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// h1Body is a response's body: read to its end, it gives its connection
// back to the pool.
type h1Body struct {
	t     *h1Transport
	pc    *h1Conn
	body  io.ReadCloser
	stop  func() bool
	ctx   context.Context
	reuse bool

	once sync.Once
	mu   sync.Mutex // serializes Read with the connection's release
	done bool       // guarded by mu
}

func (b *h1Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, io.EOF
	}
	n, err := b.body.Read(p)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		b.release(true)
	default:
		if b.ctx.Err() != nil {
			err = b.ctx.Err()
		}
		b.release(false)
	}
	return n, err
}

// Close releases the connection: to the pool when the body was read to
// its end; closed when its request's context ended; otherwise the rest is
// read on in the background (drain) and the connection kept if it ends
// soon. A streamed answer's reader stops at its "[DONE]" event, before
// the chunked body's terminator, which the server writes after it: closing
// such a connection cost every streamed request a new connection to the
// upstream (a dial here, an accept there).
func (b *h1Body) Close() error {
	if !b.mu.TryLock() {
		// A Read is under way: end it by closing the connection (should
		// it finish first and give the connection back, the pool finds
		// it closed: stale).
		b.pc.c.Close()
		b.mu.Lock()
	}
	defer b.mu.Unlock()
	if b.body == http.NoBody || !b.reuse || b.ctx.Err() != nil {
		b.release(b.body == http.NoBody) // an empty body is at its end unread
		return nil
	}
	b.once.Do(func() {
		b.done = true
		if !b.stop() { // the context ended after all: the connection may have a past deadline
			b.pc.c.Close()
			return
		}
		go b.t.drain(b.pc, b.body)
	})
	return nil
}

// A body closed before its end is read on for at most h1DrainBytes and
// h1DrainTimeout: the rest of a finished answer (a chunked body's
// terminator) is a few bytes already sent; anything longer is an answer
// abandoned, whose connection is closed.
const (
	h1DrainBytes   = 4 << 10
	h1DrainTimeout = 100 * time.Millisecond
)

// drain reads the rest of a closed body and gives its connection back
// when the body ends within the bounds above; else it closes it. It owns
// pc; the read deadline bounds it.
func (t *h1Transport) drain(pc *h1Conn, body io.Reader) {
	if err := pc.c.SetReadDeadline(time.Now().Add(h1DrainTimeout)); err != nil {
		pc.c.Close()
		return
	}
	n, err := io.Copy(io.Discard, io.LimitReader(body, h1DrainBytes+1))
	kept := err == nil && n <= h1DrainBytes && pc.c.SetReadDeadline(time.Time{}) == nil
	if kept {
		t.put(pc)
	} else {
		pc.c.Close()
	}
	if t.drained != nil {
		t.drained(kept)
	}
}

// release gives the connection back (clean: the body was read to its end)
// or closes it; mu is held.
func (b *h1Body) release(clean bool) {
	b.once.Do(func() {
		b.done = true
		if b.stop() && clean && b.reuse {
			b.t.put(b.pc)
			return
		}
		b.pc.c.Close()
	})
}
