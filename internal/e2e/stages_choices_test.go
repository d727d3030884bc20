package e2e

import (
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"courier/internal/bus"
	"courier/internal/node"
)

// choiceResult is what a client gets of one choice.
type choiceResult struct {
	Index  int64
	Text   string
	Finish string
	Tokens []string
	LPs    []float64
}

// TestStagesEmitChoices: a request of several choices served by a 2-stage
// pipeline (`serve --stages 2`, one bus request forked into a sequence per
// choice at the first stage) gets from the last stage the chunks a
// whole-model worker sends — each choice's text, tokens, log-probabilities
// and finish, and the usage, equal the whole model's for greedy choices,
// seeded sampled ones, a stop string and a streamed answer — and the last
// stage announces it emitted every one of those chunks.
func TestStagesEmitChoices(t *testing.T) {
	wn, sn := wholeAndStaged(t, 4, func(hb bus.Heartbeat) bool { return hb.Choices >= 3 })
	clients := map[*node.Node]openai.Client{wn: client(t, wn.Addr()), sn: client(t, sn.Addr())}
	emitted := announcedEmitted(t, sn.NATSConnect, modelName, "st-stage-2-of-2")
	before := emitted(0)
	ctx := testCtx(t)
	const prompt = "Once upon a time"
	stopAt := greedy(t, prompt, 32)
	stopAt = strings.TrimSpace(stopAt[len(stopAt)/2:])[:3]

	type tc struct {
		name string
		p    openai.CompletionNewParams
		opts []option.RequestOption
	}
	greedyP := completionParams(prompt, 24)
	greedyP.N, greedyP.Logprobs = openai.Int(3), openai.Int(2)
	sampled := completionParams(prompt, 24)
	sampled.N, sampled.Temperature, sampled.Seed, sampled.Logprobs = openai.Int(3), openai.Float(0.9), openai.Int(42), openai.Int(1)
	stopP := completionParams(prompt, 32)
	stopP.N, stopP.Temperature, stopP.Seed = openai.Int(2), openai.Float(0.8), openai.Int(7)
	stopP.Stop = openai.CompletionNewParamsStopUnion{OfString: openai.String(stopAt)}
	cases := []tc{
		{"greedy", greedyP, []option.RequestOption{option.WithJSONSet("ignore_eos", true)}},
		{"sampled", sampled, []option.RequestOption{option.WithJSONSet("ignore_eos", true)}},
		{"stop", stopP, nil},
	}
	get := func(n *node.Node, c tc) ([]choiceResult, openai.CompletionUsage) {
		t.Helper()
		cl := clients[n]
		r, err := cl.Completions.New(ctx, c.p, c.opts...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		out := make([]choiceResult, len(r.Choices))
		for i, ch := range r.Choices {
			out[i] = choiceResult{ch.Index, ch.Text, string(ch.FinishReason), ch.Logprobs.Tokens, ch.Logprobs.TokenLogprobs}
		}
		return out, r.Usage
	}
	var chunks uint64 // what the last stage sends: a chunk per token, a final one per choice
	for _, c := range cases {
		want, wantUsage := get(wn, c)
		got, gotUsage := get(sn, c)
		if len(got) != int(c.p.N.Value) || !slices.EqualFunc(got, want, func(a, b choiceResult) bool {
			return a.Index == b.Index && a.Text == b.Text && a.Finish == b.Finish && slices.Equal(a.Tokens, b.Tokens) && slices.Equal(a.LPs, b.LPs)
		}) || gotUsage.PromptTokens != wantUsage.PromptTokens || gotUsage.CompletionTokens != wantUsage.CompletionTokens {
			t.Fatalf("%s, from 2 stages:\n%+v %+v\nwhole model:\n%+v %+v", c.name, got, gotUsage, want, wantUsage)
		}
		chunks += uint64(wantUsage.CompletionTokens) + uint64(len(want))
		if c.name == "greedy" && (want[0].Text != want[1].Text || want[0].Text != greedy(t, prompt, 24)) {
			t.Fatalf("greedy choices %q, %q; want the greedy text %q", want[0].Text, want[1].Text, greedy(t, prompt, 24))
		}
		if c.name == "stop" && !slices.ContainsFunc(want, func(r choiceResult) bool { return r.Finish == "stop" }) {
			t.Fatalf("no choice ended at the stop string %q: %+v", stopAt, want)
		}
	}
	{
		c := cases[1]
		// Streamed: the choices' chunks interleave in one Seq order.
		stream := func(n *node.Node) []string {
			cl := clients[n]
			s := cl.Completions.NewStreaming(ctx, c.p, c.opts...)
			texts := make([]string, 3)
			for s.Next() {
				for _, ch := range s.Current().Choices {
					texts[ch.Index] += ch.Text
				}
			}
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			return texts
		}
		want, got := stream(wn), stream(sn)
		if !slices.Equal(got, want) {
			t.Fatalf("streamed from 2 stages: %q\nwhole model: %q", got, want)
		}
		chunks += 3*24 + 3
	}
	// The last stage sent them: the first stage's worker would have, had
	// it emitted the choices itself, and the count would not move.
	if got := emitted(before+chunks) - before; got < chunks {
		t.Fatalf("the last stage announced %d chunks emitted, want %d", got, chunks)
	}
}

// TestKillStageMidStreamChoices SIGKILLs the last stage of a 2-stage
// pipeline of worker processes while it streams a request of three greedy
// choices: the first stage gives the request back numbered past what the
// last stage may have sent, the gateway resumes every choice after the
// text its client has on the pipeline through the spare replica, and each
// choice's text equals the uninterrupted greedy run.
func TestKillStageMidStreamChoices(t *testing.T) {
	path := modelPath(t)
	bin := courierBinary(t)
	srv := externalNATS(t)
	victim := startStageProcess(t, bin, srv.ClientURL(), "s2-a", modelName, path, "--stage", "2/2")
	startStageProcess(t, bin, srv.ClientURL(), "s1", modelName, path, "--stage", "1/2", "--slots", "4")
	gw := stageGateway(t, srv, modelName)
	spare := announced(t, srv, modelName, "s2-b")
	emittedA := lastStageEmitted(t, srv, modelName, "s2-a")
	emittedB := lastStageEmitted(t, srv, modelName, "s2-b")
	startStageProcess(t, bin, srv.ClientURL(), "s2-b", modelName, path, "--stage", "2/2", "--slots", "4")
	ctx := testCtx(t)
	select {
	case <-spare:
	case <-ctx.Done():
		t.Fatal("the spare stage never announced itself")
	}

	const prompt, maxTokens = "Once upon a time", 300
	want := greedy(t, prompt, maxTokens)
	p := completionParams(prompt, maxTokens)
	p.N = openai.Int(3)
	c := client(t, gw.Addr())
	s := c.Completions.NewStreaming(ctx, p)
	texts := make([]string, 3)
	killed := false
	for s.Next() {
		for _, ch := range s.Current().Choices {
			texts[ch.Index] += ch.Text
		}
		if !killed && len(texts[0])+len(texts[1])+len(texts[2]) >= 200 {
			killed = true
			emittedA(1) // the victim emitted the chunks so far
			if err := victim.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if !killed {
		t.Fatal("the stream ended before the stage was killed")
	}
	for j, got := range texts {
		if got != want {
			t.Fatalf("after killing stage s2-a, choice %d got\n%q\nwant\n%q", j, got, want)
		}
	}
	// The spare last stage sent the chunks after the kill.
	emittedB(1)
}
