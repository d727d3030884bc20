package bench

import (
	"context"
	"io"
	"net/http/httptest"
	"testing"

	"courier/internal/api"
	"courier/internal/bus"
)

// tokenStream yields n one-token chunks, the last one final.
type tokenStream struct{ i, n int }

func (s *tokenStream) Next(ctx context.Context) (*bus.Chunk, error) {
	if s.i >= s.n {
		return nil, io.EOF
	}
	s.i++
	c := &bus.Chunk{Seq: uint64(s.i), Text: " tok", Tokens: []int32{int32(s.i)}}
	if s.i == s.n {
		c.FinishReason, c.Usage = "length", &bus.Usage{PromptTokens: 7, CompletionTokens: s.n}
	}
	return c, nil
}

func (s *tokenStream) Close() error { return nil }

// fleet is an api.Dispatcher answering every request with MaxTokens tokens.
type fleet struct{}

func (fleet) Dispatch(ctx context.Context, req *bus.Request) (bus.Stream, error) {
	return &tokenStream{n: req.MaxTokens}, nil
}
func (fleet) Models() []string         { return []string{"m"} }
func (fleet) Workers() []bus.Heartbeat { return nil }

// TestAgainstGateway runs bench against Courier's own gateway handler, so
// that the parser follows the SSE the gateway really writes.
func TestAgainstGateway(t *testing.T) {
	h, err := api.New(api.Config{}, fleet{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, chat := range []bool{false, true} {
		for _, stream := range []bool{false, true} {
			rep, err := Run(context.Background(), Config{URL: srv.URL + "/v1", Model: "m", Chat: chat, Stream: stream, Requests: 6, MaxTokens: 5, Concurrency: []int{2}})
			if err != nil {
				t.Fatal(err)
			}
			l := rep.Levels[0]
			if l.Succeeded != 6 || len(l.Errors) != 0 || l.OutputTokens != 30 || (stream && (l.ITL == nil || l.ITL.N != 24)) {
				t.Errorf("chat=%v stream=%v: %+v itl=%+v", chat, stream, l, l.ITL)
			}
		}
	}
}
