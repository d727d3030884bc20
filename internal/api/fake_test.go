package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"courier/internal/bus"
)

// fakeDispatcher is a Dispatcher made of function fields.
type fakeDispatcher struct {
	dispatch func(ctx context.Context, req *bus.Request) (bus.Stream, error)
	models   func() []string
	workers  func() []bus.Heartbeat
}

func (f *fakeDispatcher) Dispatch(ctx context.Context, req *bus.Request) (bus.Stream, error) {
	return f.dispatch(ctx, req)
}

func (f *fakeDispatcher) Models() []string {
	if f.models == nil {
		return []string{"tiny"}
	}
	return f.models()
}

func (f *fakeDispatcher) Workers() []bus.Heartbeat {
	if f.workers == nil {
		return []bus.Heartbeat{{V: 1, Worker: "w1", Models: []string{"tiny"}, Slots: 4, FreeSlots: 3}}
	}
	return f.workers()
}

// fakeStream yields chunks, then io.EOF, or blocks until ctx ends when hang
// is set. Close is recorded, and so is the first time Next blocks.
type fakeStream struct {
	chunks []*bus.Chunk
	hang   bool

	mu       sync.Mutex
	i        int
	closed   chan struct{}
	once     sync.Once
	waiting  chan struct{} // closed when Next first blocks (hang, every chunk taken)
	waitOnce sync.Once
}

func newFakeStream(hang bool, chunks ...*bus.Chunk) *fakeStream {
	return &fakeStream{chunks: chunks, hang: hang, closed: make(chan struct{}), waiting: make(chan struct{})}
}

func (s *fakeStream) Next(ctx context.Context) (*bus.Chunk, error) {
	s.mu.Lock()
	if s.i < len(s.chunks) {
		c := s.chunks[s.i]
		s.i++
		s.mu.Unlock()
		return c, nil
	}
	s.mu.Unlock()
	if s.hang {
		s.waitOnce.Do(func() { close(s.waiting) })
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.closed:
			return nil, io.EOF
		}
	}
	return nil, io.EOF
}

func (s *fakeStream) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

// wasClosed reports whether Close was called within d (0: by now).
func (s *fakeStream) wasClosed(d time.Duration) bool {
	if d == 0 {
		select {
		case <-s.closed:
			return true
		default:
			return false
		}
	}
	select {
	case <-s.closed:
		return true
	case <-time.After(d):
		return false
	}
}

// recorder captures the requests a scripted dispatcher received.
type recorder struct {
	mu   sync.Mutex
	reqs []*bus.Request
}

func (r *recorder) last() *bus.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		return nil
	}
	return r.reqs[len(r.reqs)-1]
}

// scripted returns a dispatcher answering every request with a fresh
// stream over chunks (ids filled in), and the recorder of its requests. A
// request of several choices gets each chunk once per choice, interleaved
// (an echo chunk once), as a worker that runs them as one sends them.
func scripted(chunks ...bus.Chunk) (*fakeDispatcher, *recorder) {
	return scriptedChoices(false, chunks...)
}

// scriptedChoices is scripted; with split it refuses requests of several
// choices (bus.ErrChoicesUnsupported, unrecorded), as a fleet of workers
// that run one choice per request does.
func scriptedChoices(split bool, chunks ...bus.Chunk) (*fakeDispatcher, *recorder) {
	rec := &recorder{}
	d := &fakeDispatcher{dispatch: func(ctx context.Context, req *bus.Request) (bus.Stream, error) {
		if split && req.Choices > 1 {
			return nil, bus.ErrChoicesUnsupported
		}
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, req)
		rec.mu.Unlock()
		var cs []*bus.Chunk
		for i := range chunks {
			for j := range max(req.Choices, 1) {
				if chunks[i].Echo && j > 0 {
					break
				}
				c := chunks[i]
				c.ID, c.Seq, c.V, c.Choice = req.ID, uint64(len(cs)+1), bus.Version, j
				cs = append(cs, &c)
			}
		}
		return newFakeStream(false, cs...), nil
	}}
	return d, rec
}

// helloChunks is a three-token generation "Hello, world" with logprobs.
func helloChunks() []bus.Chunk {
	lp := func(tok string, id int32, p float32) []bus.TokenLogprob {
		return []bus.TokenLogprob{{Token: tok, ID: id, Logprob: p, Top: []bus.TokenLogprob{
			{Token: tok, ID: id, Logprob: p}, {Token: "x", ID: 9, Logprob: -3},
		}}}
	}
	return []bus.Chunk{
		{Text: "Hello", Tokens: []int32{1}, Logprobs: lp("Hello", 1, -0.5)},
		{Text: ",", Tokens: []int32{2}, Logprobs: lp(",", 2, -0.25)},
		{Text: " world", Tokens: []int32{3}, Logprobs: lp(" world", 3, -1), FinishReason: "stop",
			Usage: &bus.Usage{PromptTokens: 5, CompletionTokens: 3}},
	}
}

// newTestServer builds a server with stable ids and times.
func newTestServer(t testing.TB, cfg Config, d Dispatcher) *server {
	t.Helper()
	s, err := newServer(cfg, d, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("newServer: %v", err)
	}
	s.now = func() time.Time { return time.Unix(1700000000, 0) }
	s.newID = func() string { return "test0001" }
	return s
}

// do runs one request through h and returns the recorded response.
func do(h http.Handler, method, path, body string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}
