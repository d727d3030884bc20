package natsbus

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"courier/internal/bus"
)

// chunkMessages subscribes to g's chunk subjects beside g and returns the
// channel of the raw messages, to count what the worker published.
func chunkMessages(t *testing.T, b *testBus, g *Gateway) chan *nats.Msg {
	t.Helper()
	return rawMessages(t, b, bus.ChunkSubjects(g.ID()))
}

// recv returns the next chunk message: accept frames (answers to offers)
// are skipped, and an accepting frame comes back as the frame it carries.
func recv(t *testing.T, ch chan *nats.Msg) *nats.Msg {
	t.Helper()
	for {
		select {
		case m := <-ch:
			if len(m.Data) > 0 && m.Data[0] == bus.AcceptMagic {
				continue
			}
			if bus.IsAccepting(m.Data) {
				_, _, frame, err := bus.ReadAcceptingPrefix(m.Data)
				if err != nil {
					t.Fatalf("%q: %v", m.Data, err)
				}
				m = &nats.Msg{Subject: m.Subject, Data: frame}
			}
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no chunk message in 10s")
			return nil
		}
	}
}

// TestFramesCoalesceWhenBehind: steps a worker marks More (its engine had
// the next token ready) travel in one frame; the gateway hands them out as
// the chunks they were, in order. The attempt's first chunk, which carries
// the worker's clock, and the final chunk are frames too (version 3).
func TestFramesCoalesceWhenBehind(t *testing.T) {
	b := startBus(t)
	gen := func(ctx context.Context, r *bus.Request, send func(*bus.Chunk)) {
		if r.ChunkFrames != bus.FrameVersion {
			send(&bus.Chunk{ID: r.ID, Seq: 1, Attempt: r.Attempt, Error: &bus.Error{Code: bus.CodeInternal, Message: "no frames asked"}})
			return
		}
		var c bus.Chunk // reused, as the worker does
		for i := range 10 {
			c = bus.Chunk{ID: r.ID, Seq: uint64(i + 1), Attempt: r.Attempt, Text: fmt.Sprint(i, " "), Tokens: []int32{int32(i)}, More: i < 9}
			send(&c)
		}
		send(&bus.Chunk{ID: r.ID, Seq: 11, Attempt: r.Attempt, FinishReason: "stop", Usage: &bus.Usage{CompletionTokens: 10}})
	}
	sw, h := newSlotWorker("m", 1, gen)
	t.Cleanup(sw.wg.Wait)
	b.host("w1", h, "m")
	g := b.gateway(GatewayConfig{HeartbeatTimeout: noLoss})
	msgs := chunkMessages(t, b, g)
	waitWorkers(t, g, "m", 1)
	s := dispatch(t, g, &bus.Request{ID: "r", Model: "m"})
	defer s.Close()
	got, last := readAll(t, s)
	if got != "0 1 2 3 4 5 6 7 8 9 " || last.FinishReason != "stop" {
		t.Fatalf("got %q, finish %q", got, last.FinishReason)
	}
	if last.At == 0 {
		t.Fatal("the final chunk lost the worker's clock")
	}
	frame, final := recv(t, msgs), recv(t, msgs)
	if n, seq := frameSteps(t, frame); n != 10 || seq != 1 {
		t.Fatalf("the frame holds %d steps from seq %d, want 10 from 1", n, seq)
	}
	if n, seq := frameSteps(t, final); n != 1 || seq != 11 {
		t.Fatalf("the final frame holds %d steps from seq %d, want 1 from 11", n, seq)
	}
}

// frameSteps returns the steps of frame message m and its first seq; a
// message that is not a frame fails t.
func frameSteps(t *testing.T, m *nats.Msg) (int, uint64) {
	t.Helper()
	h, steps, err := bus.ReadFrameHeader(m.Data)
	n := 0
	for ; err == nil && len(steps) > 0; n++ {
		steps, err = bus.ReadFrameStep(steps, new(bus.Chunk))
	}
	if err != nil {
		t.Fatalf("%q: %v", m.Data, err)
	}
	return n, h.Seq
}

// TestLastTokenTravelsWithFinal: an answer's last token marked More (the
// engine ends the generation with it) and its final chunk go as one
// message; a gateway that reads version-2 frames gets the attempt's first
// chunk and the final one as JSON instead, with the worker's clock.
func TestLastTokenTravelsWithFinal(t *testing.T) {
	b := startBus(t)
	gen := func(ctx context.Context, r *bus.Request, send func(*bus.Chunk)) {
		send(&bus.Chunk{ID: r.ID, Seq: 1, Attempt: r.Attempt, Text: " once", Tokens: []int32{7}, More: true})
		send(&bus.Chunk{ID: r.ID, Seq: 2, Attempt: r.Attempt, FinishReason: "length", Usage: &bus.Usage{PromptTokens: 3, CompletionTokens: 1}})
	}
	sw, h := newSlotWorker("m", 1, gen)
	t.Cleanup(sw.wg.Wait)
	ho, _ := b.host("w1", h, "m")
	g := b.gateway(GatewayConfig{HeartbeatTimeout: noLoss})
	msgs := chunkMessages(t, b, g)
	waitWorkers(t, g, "m", 1)
	s := dispatch(t, g, &bus.Request{ID: "r", Model: "m"})
	defer s.Close()
	first, err := s.Next(waitCtx(t))
	if err != nil || first.Text != " once" || first.At == 0 || first.Final() {
		t.Fatalf("first chunk %+v, %v", first, err)
	}
	final, err := s.Next(waitCtx(t))
	if err != nil || final.FinishReason != "length" || final.Usage == nil || *final.Usage != (bus.Usage{PromptTokens: 3, CompletionTokens: 1}) ||
		final.At == 0 || final.Worker != "w1" || final.Seq != 2 {
		t.Fatalf("final chunk %+v, %v", final, err)
	}
	if n, seq := frameSteps(t, recv(t, msgs)); n != 2 || seq != 1 {
		t.Fatalf("one message with %d steps from seq %d, want 2 from 1", n, seq)
	}

	// A gateway from before version 3 asks for version 2.
	send := ho.sender(&bus.Request{ID: "old", ReplyTo: bus.ChunkSubject(g.ID(), "old"), ChunkFrames: 2})
	send(&bus.Chunk{ID: "old", Seq: 1, Attempt: 1, Text: "a", Tokens: []int32{1}})
	send(&bus.Chunk{ID: "old", Seq: 2, Attempt: 1, Text: "b", Tokens: []int32{2}})
	send(&bus.Chunk{ID: "old", Seq: 3, Attempt: 1, FinishReason: "stop", Usage: &bus.Usage{}})
	for i, frame := range []bool{false, true, false} {
		m := recv(t, msgs)
		if bus.IsFrame(m.Data) != frame {
			t.Fatalf("version 2, message %d: %q", i, m.Data)
		}
		if frame {
			if _, steps, err := bus.ReadFrameHeader(m.Data); err != nil || steps[0] != 0 {
				t.Fatalf("version 2 step with flags: % x, %v", steps, err)
			}
		} else if !strings.Contains(string(m.Data), `"at":`) {
			t.Fatalf("version 2, message %d without the clock: %s", i, m.Data)
		}
	}
}

// TestFramesNeverHoldAStepAlone: a step not marked More is published
// before send returns, and send(nil) publishes a held one; the worker
// waits for the message before it sends the next step, so a step held
// back would stop the test.
func TestFramesNeverHoldAStepAlone(t *testing.T) {
	b := startBus(t)
	var msgs chan *nats.Msg
	seen := make(chan struct{}, 16)
	gen := func(ctx context.Context, r *bus.Request, send func(*bus.Chunk)) {
		wait := func() bool {
			select {
			case <-seen:
				return true
			case <-ctx.Done():
				return false
			}
		}
		send(&bus.Chunk{ID: r.ID, Seq: 1, Attempt: r.Attempt, Text: "a", Tokens: []int32{1}})
		if !wait() {
			return
		}
		send(&bus.Chunk{ID: r.ID, Seq: 2, Attempt: r.Attempt, Text: "b", Tokens: []int32{2}, More: true})
		send(nil) // nothing came after all
		if !wait() {
			return
		}
		send(&bus.Chunk{ID: r.ID, Seq: 3, Attempt: r.Attempt, FinishReason: "stop"})
	}
	sw, h := newSlotWorker("m", 1, gen)
	t.Cleanup(sw.wg.Wait)
	b.host("w1", h, "m")
	g := b.gateway(GatewayConfig{HeartbeatTimeout: noLoss})
	msgs = chunkMessages(t, b, g)
	waitWorkers(t, g, "m", 1)
	s := dispatch(t, g, &bus.Request{ID: "r", Model: "m"})
	defer s.Close()
	for range 2 {
		if m := recv(t, msgs); !bus.IsFrame(m.Data) {
			t.Fatalf("a step as %q", m.Data)
		}
		seen <- struct{}{}
	}
	if got, last := readAll(t, s); got != "ab" || last.FinishReason != "stop" {
		t.Fatalf("got %q, finish %q", got, last.FinishReason)
	}
}

// TestFramesAndJSONCarryTheSameChunks: a gateway that reads frames and one
// that asks for JSON get the same chunks (text, ids, logprobs, worker,
// attempt) from the same worker, and the frames cross a re-dispatch.
func TestFramesAndJSONCarryTheSameChunks(t *testing.T) {
	gen := func(ctx context.Context, r *bus.Request, send func(*bus.Chunk)) {
		var c bus.Chunk
		for i := range 6 {
			c = bus.Chunk{ID: r.ID, Seq: uint64(i + 1), Attempt: r.Attempt, Text: strings.Repeat("é\"\\\n", i), Tokens: []int32{int32(i), -1},
				More: i%2 == 0}
			if i%3 == 1 {
				c.Logprobs = []bus.TokenLogprob{{Token: "é", ID: int32(i), Logprob: -0.25, Top: []bus.TokenLogprob{{Token: "x", ID: 9, Logprob: -2}}}}
			}
			if i >= 4 { // tool-call pieces (frames version 2)
				c.ToolCalls = []bus.ToolCallDelta{{Index: 0, Arguments: `{"a":"é`}}
				if i == 4 {
					c.ToolCalls[0].ID, c.ToolCalls[0].Name = "call_r_0", "f"
				}
			}
			send(&c)
		}
		send(&bus.Chunk{ID: r.ID, Seq: 7, Attempt: r.Attempt, FinishReason: "length", Usage: &bus.Usage{PromptTokens: 3, CompletionTokens: 6}})
	}
	read := func(cfg GatewayConfig) []bus.Chunk {
		b := startBus(t)
		sw, h := newSlotWorker("m", 1, gen)
		t.Cleanup(sw.wg.Wait)
		b.host("w1", h, "m")
		cfg.HeartbeatTimeout = noLoss
		g := b.gateway(cfg)
		waitWorkers(t, g, "m", 1)
		s := dispatch(t, g, &bus.Request{ID: "r", Model: "m"})
		defer s.Close()
		var out []bus.Chunk
		for range 20 {
			c, err := s.Next(waitCtx(t))
			if err != nil {
				break
			}
			cc := *c
			cc.At = 0 // the worker's clock, on the first and final chunks
			cc.Tokens = append([]int32(nil), c.Tokens...)
			cc.Logprobs = append([]bus.TokenLogprob(nil), c.Logprobs...)
			cc.ToolCalls = append([]bus.ToolCallDelta(nil), c.ToolCalls...)
			out = append(out, cc)
			s.(bus.Recycler).Recycle(c)
		}
		return out
	}
	frames, js := read(GatewayConfig{}), read(GatewayConfig{JSONChunks: true})
	if len(frames) != 7 || !reflect.DeepEqual(frames, js) {
		t.Fatalf("frames:\n%+v\njson:\n%+v", frames, js)
	}
}

// TestHostSendAllocatesNothingPerToken: the worker side of a streamed
// token — a step chunk framed and published on a real NATS connection —
// allocates nothing, coalesced or not, text or a tool call's piece.
func TestHostSendAllocatesNothingPerToken(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under -race; scripts/test runs this without it")
	}
	b := startBus(t)
	ho, _ := b.host("w1", &fakeWorker{hb: func() bus.Heartbeat { return bus.Heartbeat{Models: []string{"m"}} }}, "m")
	for _, calls := range []bool{false, true} {
		for _, more := range []bool{false, true} {
			send := ho.sender(&bus.Request{ID: "cmpl-abc", ReplyTo: bus.ChunkSubject("gw", "cmpl-abc"), ChunkFrames: bus.FrameVersion})
			tok := [1]int32{}
			piece := [1]bus.ToolCallDelta{{Index: 0, Arguments: "ris"}} // a call's arguments, streamed
			var c bus.Chunk
			seq := uint64(1)
			step := func() {
				tok[0] = int32(seq)
				c = bus.Chunk{ID: "cmpl-abc", Seq: seq, Attempt: 1, Text: " once", Tokens: tok[:], More: more && seq%8 != 0}
				if calls {
					c.Text, c.ToolCalls = "", piece[:]
				}
				send(&c)
				seq++
			}
			step() // takes the frame buffer
			if n := testing.AllocsPerRun(1000, step); n != 0 {
				t.Fatalf("more=%v, tool calls %v: %v allocations per token", more, calls, n)
			}
		}
	}
}

// TestGatewayChunkAllocatesNothingPerToken: the gateway side — a frame
// decoded into a recycled chunk, ordered by its stream and read with Next
// — allocates nothing per token, a text step or a tool-call piece (the stream's record of delivered tokens
// and text, kept for resume, grows by doubling: amortized to zero).
func TestGatewayChunkAllocatesNothingPerToken(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under -race; scripts/test runs this without it")
	}
	b := startBus(t)
	g := b.gateway(GatewayConfig{})
	st := newStream(g, bus.Request{ID: "cmpl-abc", Model: "m"})
	st.attempt = 1
	g.mu.Lock()
	g.streams["cmpl-abc"] = st
	g.mu.Unlock()
	defer st.Close()
	const runs = 2000
	msgs := make([]*nats.Msg, runs+2) // built beforehand: NATS's own message, not ours
	for i := range msgs {
		f := bus.AppendFrameHeader(nil, "cmpl-abc", "w1", 1, uint64(i+1))
		c := &bus.Chunk{Text: " once", Tokens: []int32{int32(i)}}
		if i%2 == 1 { // a tool call's arguments, streamed
			c.Text, c.ToolCalls = "", []bus.ToolCallDelta{{Index: 0, Arguments: "ris"}}
		}
		f, _ = bus.AppendFrameStep(f, c)
		msgs[i] = &nats.Msg{Subject: "courier.chunk.gw.cmpl-abc", Data: f}
	}
	ctx := context.Background()
	i := 0
	step := func() {
		g.onChunk(msgs[i])
		i++
		c, err := st.Next(ctx)
		if err != nil || c.Seq != uint64(i) || (c.Text != " once" && (len(c.ToolCalls) != 1 || c.ToolCalls[0].Arguments != "ris")) {
			t.Fatalf("chunk %d: %+v, %v", i, c, err)
		}
		st.Recycle(c)
	}
	step()
	if n := testing.AllocsPerRun(runs, step); n != 0 {
		t.Fatalf("%v allocations per token", n)
	}
}
