package api

import (
	"reflect"
	"runtime"
	"testing"

	"courier/internal/bus"
)

// TestPooledBuffersCarryNothingOver sends requests of different shapes,
// streamed and not, one after another through one server, whose decoded
// bodies, body buffers and event buffers come from pools: every answer
// and every bus request must be what a fresh server makes of the same
// body, so nothing of an earlier request (a parameter it set, its events)
// shows in a later one.
func TestPooledBuffersCarryNothingOver(t *testing.T) {
	bodies := []string{
		`{"model":"tiny","prompt":"Hello there, a longer prompt","max_tokens":7,"stop":["x","y"],"seed":3,"temperature":0.5,"top_p":0.9,"logprobs":2,"logit_bias":{"5":1},"user":"u"}`,
		`{"model":"tiny","prompt":"two"}`,
		`{"model":"tiny","prompt":"three","stream":true,"stream_options":{"include_usage":true},"max_tokens":3}`,
		`{"model":"tiny","prompt":"four","stream":true}`,
		`{"model":"tiny","prompt":[1,2,3],"echo":true}`,
		`{"model":"tiny","prompt":"six","max_tokens":"bad"}`,
	}
	type answer struct {
		code int
		body string
		req  *bus.Request
	}
	run := func(s *server, rec *recorder, body string) answer {
		n := len(rec.reqs)
		w := do(s, "POST", "/v1/completions", body)
		a := answer{code: w.Code, body: w.Body.String()}
		if len(rec.reqs) > n {
			r := *rec.last()
			r.Deadline = 0 // the request's own clock
			a.req = &r
		}
		return a
	}
	want := make([]answer, len(bodies))
	for i, b := range bodies {
		// Two collections empty the pools (a pooled item survives one),
		// so each of these requests starts from new buffers.
		runtime.GC()
		runtime.GC()
		d, rec := scripted(helloChunks()...)
		want[i] = run(newTestServer(t, Config{}, d), rec, b)
	}
	d, rec := scripted(helloChunks()...)
	s := newTestServer(t, Config{}, d)
	for round := range 10 {
		for i, b := range bodies {
			if got := run(s, rec, b); !reflect.DeepEqual(got, want[i]) {
				t.Fatalf("round %d, body %d: got %+v (request %+v), a fresh server %+v (request %+v)", round, i, got, got.req, want[i], want[i].req)
			}
		}
	}
}
