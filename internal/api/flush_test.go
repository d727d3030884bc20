package api

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"courier/internal/bus"
)

// gatedStream hands out its chunks in batches: Next returns the chunks
// released so far and waits for the next release; Ready says whether a
// released chunk waits (bus.Readier).
type gatedStream struct {
	mu       sync.Mutex
	chunks   []*bus.Chunk
	released int
	i        int
	more     chan struct{}
}

func (s *gatedStream) release(n int) {
	s.mu.Lock()
	s.released = min(s.released+n, len(s.chunks))
	s.mu.Unlock()
	// A signal, not a hand-off: Next may take the chunks before it waits
	// (a send that needed a receiver then hung the test).
	select {
	case s.more <- struct{}{}:
	default:
	}
}

func (s *gatedStream) Next(ctx context.Context) (*bus.Chunk, error) {
	for {
		s.mu.Lock()
		if s.i < s.released {
			c := s.chunks[s.i]
			s.i++
			s.mu.Unlock()
			return c, nil
		}
		done := s.i == len(s.chunks)
		s.mu.Unlock()
		if done {
			return nil, io.EOF
		}
		select {
		case <-s.more:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *gatedStream) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.i < s.released
}

func (s *gatedStream) Close() error { return nil }

// flushLog records what each flush sent the client.
type flushLog struct {
	*httptest.ResponseRecorder
	mu      sync.Mutex
	sent    int           // bytes of the body already flushed
	flushes []string      // the body each flush sent
	flushed chan struct{} // buffered: the server may flush once more when the handler ends
}

func (w *flushLog) Flush() {
	w.mu.Lock()
	body := w.Body.String()
	w.flushes = append(w.flushes, body[w.sent:])
	w.sent = len(body)
	w.mu.Unlock()
	w.flushed <- struct{}{}
}

// TestStreamWritesReadyChunksTogether: chunks that are already there when
// the relay has written one (a worker's coalesced frame) leave in one
// flush; a chunk is flushed before the relay waits for the next, so none
// is delayed by one that has not come (the test releases the next chunk
// only after it saw the last flushed).
func TestStreamWritesReadyChunksTogether(t *testing.T) {
	var chunks []*bus.Chunk
	for i, text := range []string{"a", "b", "c", "d", "e", ""} {
		c := &bus.Chunk{V: bus.Version, Seq: uint64(i + 1), Text: text, Tokens: []int32{int32(i)}}
		if text == "" { // the final chunk
			c.Tokens, c.FinishReason = nil, "length"
		}
		chunks = append(chunks, c)
	}
	st := &gatedStream{chunks: chunks, more: make(chan struct{}, 1)}
	d := &fakeDispatcher{dispatch: func(_ context.Context, req *bus.Request) (bus.Stream, error) {
		for _, c := range chunks {
			c.ID = req.ID
		}
		return st, nil
	}}
	h := newTestServer(t, Config{}, d)
	// The real clock: the first chunk's deadline is RequestTimeout after
	// the request's start, and newTestServer's fixed clock puts it in the
	// past, which failed the request (504) whenever the handler waited
	// for the first chunk before the test released it.
	h.now = time.Now
	w := &flushLog{ResponseRecorder: httptest.NewRecorder(), flushed: make(chan struct{}, 16)}
	r := httptest.NewRequest("POST", "/v1/completions", strings.NewReader(`{"model":"tiny","prompt":"x","stream":true}`))
	r.Header.Set("Content-Type", "application/json")
	served := make(chan struct{})
	go func() {
		defer close(served)
		h.ServeHTTP(w, r)
	}()
	// One chunk, then three that come together, then two.
	for _, n := range []int{1, 3, 2} {
		st.release(n)
		<-w.flushed
	}
	<-served
	want := [][]string{{`"a"`}, {`"b"`, `"c"`, `"d"`}, {`"e"`, `"length"`, "[DONE]"}}
	if len(w.flushes) != len(want) {
		t.Fatalf("%d flushes, want %d (one per batch of chunks that came together): %q", len(w.flushes), len(want), w.flushes)
	}
	for i, parts := range want {
		for _, p := range parts {
			if !strings.Contains(w.flushes[i], p) {
				t.Errorf("flush %d lacks %s: %q", i, p, w.flushes[i])
			}
		}
		if got := bytes.Count([]byte(w.flushes[i]), []byte("data: ")); got != len(parts) {
			t.Errorf("flush %d has %d events, want %d: %q", i, got, len(parts), w.flushes[i])
		}
	}
}

// TestOneFrameStreamHasLength: a stream whose first chunk is its final one
// goes out whole, with its Content-Length and no chunked framing (one
// write, no terminator after the bookkeeping); its events are those the
// stream would have sent. A stream of more chunks stays chunked.
func TestOneFrameStreamHasLength(t *testing.T) {
	for _, tc := range []struct {
		name   string
		chunks []*bus.Chunk
		whole  bool
	}{
		{"one frame", []*bus.Chunk{{V: bus.Version, Seq: 1, Text: "Hi", Tokens: []int32{7}, FinishReason: "length",
			Usage: &bus.Usage{PromptTokens: 3, CompletionTokens: 1}}}, true},
		{"two", []*bus.Chunk{{V: bus.Version, Seq: 1, Text: "Hi", Tokens: []int32{7}},
			{V: bus.Version, Seq: 2, FinishReason: "length", Usage: &bus.Usage{PromptTokens: 3, CompletionTokens: 1}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &fakeDispatcher{dispatch: func(_ context.Context, req *bus.Request) (bus.Stream, error) {
				for _, c := range tc.chunks {
					c.ID = req.ID
				}
				return newFakeStream(false, tc.chunks...), nil
			}}
			hs := httptest.NewServer(newTestServer(t, Config{}, d))
			defer hs.Close()
			resp, err := hs.Client().Post(hs.URL+"/v1/completions", "application/json",
				strings.NewReader(`{"model":"tiny","prompt":"x","stream":true,"stream_options":{"include_usage":true}}`))
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("status %d, %v", resp.StatusCode, err)
			}
			chunked := len(resp.TransferEncoding) == 1 && resp.TransferEncoding[0] == "chunked"
			if tc.whole && (resp.ContentLength != int64(len(body)) || chunked) {
				t.Fatalf("Content-Length %d for %d bytes, transfer encoding %v: want the length, not chunked", resp.ContentLength, len(body), resp.TransferEncoding)
			}
			if !tc.whole && (resp.ContentLength != -1 || !chunked) {
				t.Fatalf("Content-Length %d, transfer encoding %v: want chunked", resp.ContentLength, resp.TransferEncoding)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Fatalf("Content-Type %q", ct)
			}
			// The token, the finish, the usage and the end, in order.
			events := strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n")
			wants := []string{`"text":"Hi"`, `"finish_reason":"length"`, `"total_tokens":4`, "data: [DONE]"}
			if len(events) != len(wants) {
				t.Fatalf("%d events, want %d: %q", len(events), len(wants), body)
			}
			for i, w := range wants {
				if !strings.Contains(events[i], w) {
					t.Errorf("event %d lacks %s: %q", i, w, events[i])
				}
			}
		})
	}
}
