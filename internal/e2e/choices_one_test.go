package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"courier/internal/jobs"
)

// placements counts the placements in request id's timeline: one per bus
// request the gateway placed (and per resume).
func placements(t *testing.T, addr, id string) int {
	t.Helper()
	tl := requestTimeline(t, addr, "", id)
	n := 0
	events, _ := tl["events"].([]any)
	for _, e := range events {
		if m, _ := e.(map[string]any); m["phase"] == "placed" {
			n++
		}
	}
	return n
}

// TestChoicesAreOneRequest: n choices travel as one bus request to one
// worker, which forks them from one evaluated prompt — through the
// official client, completions and chat, streamed and not, with logprobs,
// a JSON schema and forced tool calls. Choice j is exactly what a request
// of one choice seeded seed+j gives; a streamed answer interleaves the
// choices by index as they are generated (a later choice's first token
// before an earlier one's last); the timeline shows one placement.
func TestChoicesAreOneRequest(t *testing.T) {
	n := startNode(t, serveConfig(t))
	c := client(t, n.Addr())
	ctx := testCtx(t)
	// Long enough that the choices' generations overlap in time: each
	// choice's tokens reach the bus from a goroutine of its own
	// (worker.runChoices), so which choice's come first is the worker's
	// scheduling. At 24 tokens the first choice sometimes finished before
	// the other two had begun on a loaded machine (a few ms of engine
	// time; Go preempts a goroutine only after 10 ms).
	const prompt, tokens = "Once upon a time", 128

	p := completionParams(prompt, tokens)
	p.Temperature, p.Seed, p.Logprobs, p.N = openai.Float(1), openai.Int(5), openai.Int(2), openai.Int(3)
	var resp *http.Response
	r, err := c.Completions.New(ctx, p, option.WithJSONSet("ignore_eos", true), option.WithResponseInto(&resp))
	if err != nil {
		t.Fatal(err)
	}
	if got := placements(t, n.Addr(), resp.Header.Get("X-Request-Id")); got != 1 {
		t.Fatalf("%d placements for n = 3, want one bus request", got)
	}
	for j, ch := range r.Choices {
		one := p
		one.N, one.Seed = openai.Int(1), openai.Int(5+int64(j))
		alone, err := c.Completions.New(ctx, one, option.WithJSONSet("ignore_eos", true))
		if err != nil {
			t.Fatal(err)
		}
		if ch.Index != int64(j) || ch.Text != alone.Choices[0].Text || len(ch.Logprobs.Tokens) != tokens ||
			!slices.Equal(ch.Logprobs.TokenLogprobs, alone.Choices[0].Logprobs.TokenLogprobs) {
			t.Fatalf("choice %d: %q (%d logprobs), alone with seed+%d: %q", j, ch.Text, len(ch.Logprobs.Tokens), j, alone.Choices[0].Text)
		}
	}
	if r.Choices[0].Text == r.Choices[1].Text {
		t.Fatalf("two choices alike at temperature 1: %q", r.Choices[0].Text)
	}
	s := c.Completions.NewStreaming(ctx, p, option.WithJSONSet("ignore_eos", true))
	texts := make([]string, 3)
	var order []int64 // the index of each event with text
	for s.Next() {
		for _, ch := range s.Current().Choices {
			texts[ch.Index] += ch.Text
			if ch.Text != "" {
				order = append(order, ch.Index)
			}
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	for j := range texts {
		if texts[j] != r.Choices[j].Text {
			t.Fatalf("streamed choice %d %q, want %q", j, texts[j], r.Choices[j].Text)
		}
	}
	// Some later choice's first token comes before an earlier one's last:
	// the stream does not hand the choices on one after another. Which
	// pair overlaps is the worker's scheduling (one choice may run ahead
	// of the others); a relay that held later choices back, or a worker
	// that ran them in turn, gives none.
	first, last := [3]int{-1, -1, -1}, [3]int{-1, -1, -1} // each choice's first and last event
	for k, x := range order {
		if first[x] < 0 {
			first[x] = k
		}
		last[x] = k
	}
	interleaved := false
	for i := range 3 {
		for j := i + 1; j < 3; j++ {
			interleaved = interleaved || (first[j] >= 0 && first[j] < last[i])
		}
	}
	if !interleaved {
		t.Fatalf("choices not interleaved: %v", order)
	}

	// One echo chunk opens every choice.
	ep := completionParams(prompt, 6)
	ep.Temperature, ep.Seed, ep.N, ep.Echo = openai.Float(1), openai.Int(5), openai.Int(2), openai.Bool(true)
	er, err := c.Completions.New(ctx, ep)
	if err != nil || len(er.Choices) != 2 {
		t.Fatalf("echo, n = 2: %v, %+v", err, er)
	}
	es := c.Completions.NewStreaming(ctx, ep)
	etexts := make([]string, 2)
	for es.Next() {
		for _, ch := range es.Current().Choices {
			etexts[ch.Index] += ch.Text
		}
	}
	if err := es.Err(); err != nil {
		t.Fatal(err)
	}
	_ = es.Close()
	for j, ch := range er.Choices {
		if !strings.HasPrefix(ch.Text, prompt) || ch.Text != prompt+r.Choices[j].Text[:len(ch.Text)-len(prompt)] || etexts[j] != ch.Text {
			t.Fatalf("echoed choice %d %q (streamed %q), want the prompt, then choice %d's start %q", j, ch.Text, etexts[j], j, r.Choices[j].Text)
		}
	}

	v := compileSchema(t, personSchema)
	chat := openai.ChatCompletionNewParams{
		Model:       modelName,
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Describe a person as JSON.")},
		MaxTokens:   openai.Int(400),
		Temperature: openai.Float(1),
		Seed:        openai.Int(3),
		N:           openai.Int(2),
		ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "person", Schema: json.RawMessage(personSchema), Strict: openai.Bool(true)},
		}},
	}
	cr, err := c.Chat.Completions.New(ctx, chat)
	if err != nil || len(cr.Choices) != 2 {
		t.Fatalf("json_schema, n = 2: %v, %+v", err, cr)
	}
	for _, ch := range cr.Choices {
		validates(t, v, ch.Message.Content)
	}
	checkStreamedChat(t, c, chat, cr)

	tools := chat
	tools.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{}
	tools.MaxTokens = openai.Int(300)
	tools.Tools = []openai.ChatCompletionToolUnionParam{toolParam("get_weather", weatherParams)}
	tools.ToolChoice = openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")}
	tools.ParallelToolCalls = openai.Bool(false)
	cr, err = c.Chat.Completions.New(ctx, tools)
	if err != nil || len(cr.Choices) != 2 {
		t.Fatalf("tools, n = 2: %v, %+v", err, cr)
	}
	wv := compileSchema(t, weatherParams)
	for j, ch := range cr.Choices {
		if ch.FinishReason != "tool_calls" || len(ch.Message.ToolCalls) != 1 {
			t.Fatalf("choice %d: finish %q, %+v", j, ch.FinishReason, ch.Message)
		}
		validates(t, wv, ch.Message.ToolCalls[0].Function.Arguments)
	}
	if cr.Choices[0].Message.ToolCalls[0].ID == cr.Choices[1].Message.ToolCalls[0].ID {
		t.Fatalf("two choices' calls share the id %q", cr.Choices[0].Message.ToolCalls[0].ID)
	}
	checkStreamedChat(t, c, tools, cr)
}

// checkStreamedChat streams params and checks that every choice
// reassembles to want's: its content, or its tool calls (ids aside: they
// name the request).
func checkStreamedChat(t *testing.T, c openai.Client, params openai.ChatCompletionNewParams, want *openai.ChatCompletion) {
	t.Helper()
	s := c.Chat.Completions.NewStreaming(testCtx(t), params)
	var acc openai.ChatCompletionAccumulator
	for s.Next() {
		acc.AddChunk(s.Current())
	}
	if err := s.Err(); err != nil || len(acc.Choices) != len(want.Choices) {
		t.Fatalf("stream: %v, %d choices", err, len(acc.Choices))
	}
	_ = s.Close()
	for j, got := range acc.Choices {
		w := want.Choices[j].Message
		if got.Message.Content != w.Content || len(got.Message.ToolCalls) != len(w.ToolCalls) {
			t.Fatalf("streamed choice %d %+v, want %+v", j, got.Message, w)
		}
		for i, call := range got.Message.ToolCalls {
			if call.Function.Name != w.ToolCalls[i].Function.Name || call.Function.Arguments != w.ToolCalls[i].Function.Arguments {
				t.Fatalf("streamed choice %d call %d %+v, want %+v", j, i, call.Function, w.ToolCalls[i].Function)
			}
		}
	}
}

// TestChoicesInBatchesAndJobs: batch lines and async jobs with n > 1 run
// as the interactive request does (one bus request of n choices, in a
// background slot) and store the same choices.
func TestChoicesInBatchesAndJobs(t *testing.T) {
	n := startNode(t, serveConfig(t))
	c := client(t, n.Addr())
	ctx := testCtx(t)
	body := fmt.Sprintf(`{"model":%q,"prompt":"Once upon a time","max_tokens":12,"temperature":1,"seed":9,"n":3}`, modelName)
	want, _, err := choicesRaw(ctx, n.Addr(), body, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want[0] == want[1] {
		t.Fatalf("two choices alike at temperature 1: %q", want)
	}
	texts := func(raw []byte) []string {
		var cmpl openai.Completion
		if err := json.Unmarshal(raw, &cmpl); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		out := make([]string, len(cmpl.Choices))
		for _, ch := range cmpl.Choices {
			out[ch.Index] = ch.Text
		}
		return out
	}

	var lines bytes.Buffer
	for i := range 2 {
		fmt.Fprintf(&lines, `{"custom_id":"c%d","method":"POST","url":"/v1/completions","body":%s}`+"\n", i, body)
	}
	f, err := c.Files.New(ctx, openai.FileNewParams{File: openai.File(&lines, "in.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1Completions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	if err != nil {
		t.Fatal(err)
	}
	for b.Status != openai.BatchStatusCompleted {
		if b.Status == openai.BatchStatusFailed || b.Status == openai.BatchStatusCancelled || ctx.Err() != nil {
			t.Fatalf("batch %s: %+v", b.Status, b.Errors)
		}
		time.Sleep(20 * time.Millisecond)
		if b, err = c.Batches.Get(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
	}
	out, err := c.Files.Content(ctx, b.OutputFileID)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(out.Body)
	out.Body.Close()
	got := outputLines(t, data)
	if len(got) != 2 {
		t.Fatalf("%d output lines: %s", len(got), data)
	}
	for _, l := range got {
		if g := texts(l.Response.Body); !slices.Equal(g, want) {
			t.Fatalf("batch line %s: %q, want %q", l.CustomID, g, want)
		}
	}

	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.Addr()+"/v1/completions", strings.NewReader(body))
	req.Header.Set("Prefer", "respond-async")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var j jobs.Job
	err = json.NewDecoder(resp.Body).Decode(&j)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("async: %d, %v", resp.StatusCode, err)
	}
	for j.Status != jobs.JobCompleted {
		if j.Status == jobs.JobFailed || ctx.Err() != nil {
			t.Fatalf("job %+v", j)
		}
		time.Sleep(20 * time.Millisecond)
		resp, err := http.Get("http://" + n.Addr() + "/v1/jobs/" + j.ID)
		if err != nil {
			t.Fatal(err)
		}
		j = jobs.Job{}
		_ = json.NewDecoder(resp.Body).Decode(&j)
		resp.Body.Close()
	}
	if g := texts(j.Response.Body); !slices.Equal(g, want) {
		t.Fatalf("async job: %q, want %q", g, want)
	}
}
