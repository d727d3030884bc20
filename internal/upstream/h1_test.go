package upstream

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// h1Server is a loopback server that counts the connections it accepted
// and reports each one it closed.
func h1Server(t testing.TB, h http.HandlerFunc) (srv *httptest.Server, conns *atomic.Int64, closed chan struct{}) {
	conns = new(atomic.Int64)
	closed = make(chan struct{}, 64)
	srv = httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			closed <- struct{}{}
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, conns, closed
}

// answer writes a whole answer, or with ?stream an event stream (chunked).
func answer(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	if r.URL.Query().Has("stream") {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, s := range []string{"data: a\n\n", "data: b\n\n", "data: [DONE]\n\n"} {
			_, _ = io.WriteString(w, s)
			w.(http.Flusher).Flush()
		}
		return
	}
	_, _ = io.WriteString(w, `{"ok":true}`)
}

func h1Client(t testing.TB, srv *httptest.Server) *http.Client {
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(u, 4)
	if _, ok := c.Transport.(*h1Transport); !ok {
		t.Fatalf("a plain-HTTP loopback upstream got %T, not the h1 transport", c.Transport)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func h1Post(t testing.TB, c *http.Client, url string) string {
	resp, err := c.Post(url, "application/json", strings.NewReader(`{"x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %q %v", resp.StatusCode, data, err)
	}
	return string(data)
}

// TestH1ReusesConnections: sequential requests, whole and streamed
// (chunked), are answered on one keep-alive connection.
func TestH1ReusesConnections(t *testing.T) {
	srv, conns, _ := h1Server(t, answer)
	c := h1Client(t, srv)
	for i := range 6 {
		u := srv.URL + "/v1/completions"
		want := `{"ok":true}`
		if i%2 == 1 {
			u += "?stream"
			want = "data: a\n\ndata: b\n\ndata: [DONE]\n\n"
		}
		if got := h1Post(t, c, u); got != want {
			t.Fatalf("request %d: %q, want %q", i, got, want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 6 sequential requests, want 1", n)
	}
}

// TestH1StaleConnection: a keep-alive connection the server closed while
// idle is not used; the request goes on a new one.
func TestH1StaleConnection(t *testing.T) {
	srv, conns, closed := h1Server(t, answer)
	c := h1Client(t, srv)
	h1Post(t, c, srv.URL)
	srv.CloseClientConnections()
	<-closed
	for range 3 {
		h1Post(t, c, srv.URL)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the closed one, then one new)", n)
	}
}

// TestH1ConnectionClose: an answer that closes its connection is read
// whole, and the next request dials anew.
func TestH1ConnectionClose(t *testing.T) {
	srv, conns, _ := h1Server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		answer(w, r)
	})
	c := h1Client(t, srv)
	for range 3 {
		if got := h1Post(t, c, srv.URL); got != `{"ok":true}` {
			t.Fatalf("%q", got)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections for 3 requests answered with Connection: close, want 3", n)
	}
}

// TestH1CancelEndsTheRequest: ending the request's context while its body
// is read ends the read with the context's error and closes the
// connection, so the server sees its request gone (an upstream stops
// generating); the next request gets a new connection.
func TestH1CancelEndsTheRequest(t *testing.T) {
	gone := make(chan struct{})
	srv, conns, _ := h1Server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			_, _ = io.WriteString(w, "data: a\n\n")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			close(gone)
			return
		}
		answer(w, r)
	})
	c := h1Client(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/slow", strings.NewReader("{}"))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); line != "data: a\n" || err != nil {
		t.Fatalf("first line %q %v", line, err)
	}
	cancel()
	_, err = io.ReadAll(br)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel: %v, want context.Canceled", err)
	}
	resp.Body.Close()
	<-gone
	h1Post(t, c, srv.URL)
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the cancelled request's is not reused)", n)
	}
}

// TestH1BodyClosedEarly: a body closed before its end while its server
// keeps writing is read on no further than h1DrainBytes and then closed
// (its unread rest would be read as the next answer): the server sees its
// request gone, and the next request gets its own answer on a new
// connection.
func TestH1BodyClosedEarly(t *testing.T) {
	gone := make(chan struct{})
	srv, conns, _ := h1Server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/endless" {
			answer(w, r)
			return
		}
		defer close(gone)
		event := []byte("data: " + strings.Repeat("x", 100) + "\n\n")
		for r.Context().Err() == nil {
			if _, err := w.Write(event); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	})
	c := h1Client(t, srv)
	drained := make(chan bool, 1)
	c.Transport.(*h1Transport).drained = func(kept bool) { drained <- kept }
	resp, err := c.Post(srv.URL+"/endless", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	var b [3]byte
	if _, err := io.ReadFull(resp.Body, b[:]); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if <-drained {
		t.Fatal("an endless body's connection was kept")
	}
	<-gone
	if got := h1Post(t, c, srv.URL); got != `{"ok":true}` {
		t.Fatalf("%q", got)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestH1StreamClosedAtDone: a streamed answer whose reader stops at its
// [DONE] event, before the chunked body's terminator (as the relay
// does), keeps its connection: the next requests reuse it.
func TestH1StreamClosedAtDone(t *testing.T) {
	closedAtDone := make(chan struct{}, 1) // never waits: a handler whose client left is gone
	srv, conns, closed := h1Server(t, func(w http.ResponseWriter, r *http.Request) {
		answer(w, r)
		if r.URL.Query().Has("stream") {
			select { // the terminator follows once the client closed the body
			case <-closedAtDone:
			case <-r.Context().Done(): // the client closed the connection
			}
		}
	})
	c := h1Client(t, srv)
	drained := make(chan bool, 1)
	c.Transport.(*h1Transport).drained = func(kept bool) { drained <- kept }
	for range 3 {
		resp, err := c.Post(srv.URL+"?stream", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%q %v", line, err)
			}
			if line == "data: [DONE]\n" {
				break
			}
		}
		resp.Body.Close()
		closedAtDone <- struct{}{}
		select {
		case kept := <-drained:
			if !kept {
				t.Fatal("the connection of a stream read to its [DONE] was closed after reading on")
			}
		case <-closed:
			t.Fatal("the connection of a stream read to its [DONE] was closed")
		}
	}
	if got := h1Post(t, c, srv.URL); got != `{"ok":true}` {
		t.Fatalf("%q", got)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 4 sequential requests, want 1", n)
	}
}

// TestH1Refused: a refused connection is a dial error (what marks the
// upstream down).
func TestH1Refused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	u, _ := url.Parse("http://" + addr + "/v1")
	_, err = newClient(u, 1).Post(u.String()+"/completions", "application/json", strings.NewReader("{}"))
	if !refused(err) {
		t.Errorf("refused(%v) = false", err)
	}
}

// BenchmarkRoundTrip measures one loopback request with a whole JSON
// answer through the h1 transport against net/http's Transport (as
// newClient configures it for TLS upstreams), interleaved, and reports
// each one's p50 and the h1 transport's as a fraction of net/http's.
func BenchmarkRoundTrip(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":" there","index":0,"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}`)
	}))
	b.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	h1 := newClient(u, 4)
	std := newClient(&url.URL{Scheme: "https", Host: u.Host}, 4) // the Transport newClient gives TLS upstreams
	std.Transport.(*http.Transport).ForceAttemptHTTP2 = false
	b.Cleanup(h1.CloseIdleConnections)
	b.Cleanup(std.CloseIdleConnections)
	body := `{"model":"m","prompt":"Once upon a time","max_tokens":1,"stream":false}`
	one := func(c *http.Client) time.Duration {
		t0 := time.Now()
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL+"/v1/completions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(t0)
	}
	for range 100 {
		one(h1)
		one(std)
	}
	var hs, ss []time.Duration
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			hs, ss = append(hs, one(h1)), append(ss, one(std))
		} else {
			ss, hs = append(ss, one(std)), append(hs, one(h1))
		}
	}
	b.StopTimer()
	slices.Sort(hs)
	slices.Sort(ss)
	h, s := hs[len(hs)/2], ss[len(ss)/2]
	b.ReportMetric(float64(h.Nanoseconds())/1000, "h1-p50-µs")
	b.ReportMetric(float64(s.Nanoseconds())/1000, "net/http-p50-µs")
	b.ReportMetric(100*float64(h)/float64(s), "h1/net/http-%")
}

// TestH1AnswerBeforeTheWholeRequest: a server that answers 413 before it
// has read a large request's body, and closes, is heard: the client gets
// the 413 (an upstream's "prompt too long"), not a broken connection.
func TestH1AnswerBeforeTheWholeRequest(t *testing.T) {
	srv, _, _ := h1Server(t, func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<10)); err != nil {
			http.Error(w, `{"error":{"message":"too long"}}`, http.StatusRequestEntityTooLarge)
			return
		}
		answer(w, r)
	})
	c := h1Client(t, srv)
	resp, err := c.Post(srv.URL, "application/json", strings.NewReader(strings.Repeat("x", 64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(data), "too long") {
		t.Fatalf("%d %q, want the server's 413", resp.StatusCode, data)
	}
	if got := h1Post(t, c, srv.URL); got != `{"ok":true}` {
		t.Fatalf("next request: %q", got)
	}
}
