package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"

	"courier/internal/node"
)

// storySchema lets stories260K write a long string under a grammar (the
// kill test needs text to cut), then close the object.
const storySchema = `{"type":"object","properties":{"title":{"type":"string","maxLength":24},
	"story":{"type":"string","maxLength":600},"mood":{"enum":["happy","sad"]}},"required":["title","story","mood"],"additionalProperties":false}`

// jsonSchemaFormat is response_format json_schema with schema.
func jsonSchemaFormat(name, schema string) openai.ChatCompletionNewParamsResponseFormatUnion {
	return openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
		JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: name, Schema: json.RawMessage(schema), Strict: openai.Bool(true)},
	}}
}

// callIDs matches the request's id inside a tool call's id
// (call_<request>_<n>): two servers name their requests differently.
var callIDs = regexp.MustCompile(`call_.*?((-\d+)?_\d+)$`)

// chatAnswer is what a client gets of a chat completion, with the call
// ids' request part taken out.
func chatAnswer(r *openai.ChatCompletion) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage %d/%d", r.Usage.PromptTokens, r.Usage.CompletionTokens)
	for _, ch := range r.Choices {
		m := ch.Message
		fmt.Fprintf(&b, "; %d: content %q finish %q", ch.Index, m.Content, ch.FinishReason)
		for _, c := range m.ToolCalls {
			fmt.Fprintf(&b, " call[%s %q %q]", callIDs.ReplaceAllString(c.ID, "call_$1"), c.Function.Name, c.Function.Arguments)
		}
	}
	return b.String()
}

// chatChunks is a streamed chat completion chunk by chunk: each chunk's
// content, tool-call pieces and finish reason, choice by choice (the
// choices' chunks interleave as they were generated, which two servers
// need not share), then the usage.
func chatChunks(t *testing.T, c openai.Client, p openai.ChatCompletionNewParams) []string {
	t.Helper()
	p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	s := c.Chat.Completions.NewStreaming(testCtx(t), p)
	var byChoice [][]string
	var usage string
	for s.Next() {
		ch := s.Current()
		for _, x := range ch.Choices {
			var b strings.Builder
			fmt.Fprintf(&b, "%d %q %q", x.Index, x.Delta.Content, x.FinishReason)
			for _, tc := range x.Delta.ToolCalls {
				fmt.Fprintf(&b, " call[%d %s %q %q]", tc.Index, callIDs.ReplaceAllString(tc.ID, "call_$1"), tc.Function.Name, tc.Function.Arguments)
			}
			for int(x.Index) >= len(byChoice) {
				byChoice = append(byChoice, nil)
			}
			byChoice[x.Index] = append(byChoice[x.Index], b.String())
		}
		if ch.Usage.TotalTokens > 0 {
			usage = fmt.Sprintf("usage %d/%d", ch.Usage.PromptTokens, ch.Usage.CompletionTokens)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	return append(slices.Concat(byChoice...), usage)
}

// constrainedCase is a chat request of TestStagesEmitConstrained.
type constrainedCase struct {
	name string
	p    openai.ChatCompletionNewParams
}

// TestStagesEmitConstrained: grammar-constrained chat requests served by
// a 2-stage pipeline (`serve --stages 2`) get from the last stage, which
// compiles the grammar from the stream record's source and samples through
// it, the answer a whole-model worker gives — content, finish reason and
// usage, plain and streamed chunk for chunk — for response_format
// json_schema, greedy and seeded sampled; and the last stage announces it
// emitted those chunks (it would not, had the first stage's worker sent
// them).
func TestStagesEmitConstrained(t *testing.T) {
	cases := []constrainedCase{}
	person := openai.ChatCompletionNewParams{
		Model:          modelName,
		Messages:       []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Describe a person as JSON.")},
		MaxTokens:      openai.Int(300),
		Temperature:    openai.Float(0),
		ResponseFormat: jsonSchemaFormat("person", personSchema),
	}
	cases = append(cases, constrainedCase{"json_schema greedy", person})
	for _, seed := range []int64{3, 11} {
		p := person
		p.Temperature, p.Seed = openai.Float(1), openai.Int(seed)
		cases = append(cases, constrainedCase{fmt.Sprintf("json_schema seed %d", seed), p})
	}
	story := person
	story.ResponseFormat = jsonSchemaFormat("story", storySchema)
	story.Temperature, story.Seed, story.FrequencyPenalty = openai.Float(0.8), openai.Int(5), openai.Float(0.3)
	cases = append(cases, constrainedCase{"json_schema sampled with penalties", story})
	runConstrained(t, cases)
}

// TestStagesEmitToolCalls: chat requests offering tools, served by a
// 2-stage pipeline, get from the last stage — which reads the text as a
// tool-mode answer as the worker does, and samples a forced call through
// its grammar — the whole-model worker's answer: the same tool calls
// (ids, names, arguments), content, finish reason "tool_calls" and usage,
// plain and streamed delta for delta, for tool_choice "required" (seeded,
// greedy, two choices), a named function and "auto" (the model answers in
// text); and the last stage announces those chunks emitted.
func TestStagesEmitToolCalls(t *testing.T) {
	base := openai.ChatCompletionNewParams{
		Model:       modelName,
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is the weather in Paris?")},
		MaxTokens:   openai.Int(300),
		Temperature: openai.Float(1),
		Seed:        openai.Int(2),
		Tools:       []openai.ChatCompletionToolUnionParam{toolParam("get_weather", weatherParams), toolParam("get_time", timeParams)},
		ToolChoice:  openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")},
	}
	base.ParallelToolCalls = openai.Bool(false)
	greedyP := base
	greedyP.Temperature = openai.Float(0)
	two := base
	two.N = openai.Int(2)
	named := base
	named.Seed = openai.Int(4)
	named.ToolChoice = openai.ChatCompletionToolChoiceOptionUnionParam{OfFunctionToolChoice: &openai.ChatCompletionNamedToolChoiceParam{
		Function: openai.ChatCompletionNamedToolChoiceFunctionParam{Name: "get_time"}}}
	auto := base
	auto.MaxTokens = openai.Int(40)
	auto.ToolChoice = openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("auto")}
	runConstrained(t, []constrainedCase{
		{"required seeded", base}, {"required greedy", greedyP}, {"required, two choices", two},
		{"named", named}, {"auto", auto},
	})
}

// runConstrained serves cases from a whole-model node and a 2-stage one
// and compares them; the last stage must announce their chunks emitted.
func runConstrained(t *testing.T, cases []constrainedCase) {
	wn, sn := wholeAndStaged(t, 0, nil)
	clients := map[*node.Node]openai.Client{wn: client(t, wn.Addr()), sn: client(t, sn.Addr())}
	emitted := announcedEmitted(t, sn.NATSConnect, modelName, "st-stage-2-of-2")
	before := emitted(0)
	ctx := testCtx(t)
	var chunks uint64 // at least a chunk per token and a final one per answer
	for _, c := range cases {
		get := func(n *node.Node) (string, int64) {
			t.Helper()
			cl := clients[n]
			r, err := cl.Chat.Completions.New(ctx, c.p)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			return chatAnswer(r), r.Usage.CompletionTokens
		}
		want, tokens := get(wn)
		if got, _ := get(sn); got != want {
			t.Fatalf("%s, from 2 stages:\n%s\nwhole model:\n%s", c.name, got, want)
		}
		t.Logf("%s: %s", c.name, want)
		wantChunks := chatChunks(t, clients[wn], c.p)
		if got := chatChunks(t, clients[sn], c.p); !slices.Equal(got, wantChunks) {
			t.Fatalf("%s streamed, from 2 stages:\n%q\nwhole model:\n%q", c.name, got, wantChunks)
		}
		chunks += 2 * (uint64(tokens) + uint64(max(c.p.N.Value, 1)))
	}
	if got := emitted(before+chunks) - before; got < chunks {
		t.Fatalf("the last stage announced %d chunks emitted, want at least %d", got, chunks)
	}
}

// TestKillStageMidStreamConstrained SIGKILLs the last stage of a 2-stage
// pipeline of worker processes while it streams a greedy answer under a
// JSON Schema: the request resumes on the spare replica, which rebuilds
// the grammar's state from the resumed tokens, and the client's text
// equals the uninterrupted answer of a whole-model worker.
func TestKillStageMidStreamConstrained(t *testing.T) {
	path := modelPath(t)
	bin := courierBinary(t)
	p := openai.ChatCompletionNewParams{
		Model:          modelName,
		Messages:       []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me a story as JSON.")},
		MaxTokens:      openai.Int(400),
		Temperature:    openai.Float(0),
		ResponseFormat: jsonSchemaFormat("story", storySchema),
	}
	ctx := testCtx(t)
	wn := startNode(t, serveConfig(t))
	wc := client(t, wn.Addr())
	ref, err := wc.Chat.Completions.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	want := ref.Choices[0].Message.Content
	if len(want) < 200 || !json.Valid([]byte(want)) {
		t.Fatalf("the uninterrupted answer is too short to cut, or not JSON: %q", want)
	}

	srv := externalNATS(t)
	victim := startStageProcess(t, bin, srv.ClientURL(), "s2-a", modelName, path, "--stage", "2/2")
	startStageProcess(t, bin, srv.ClientURL(), "s1", modelName, path, "--stage", "1/2")
	gw := stageGateway(t, srv, modelName)
	spare := announced(t, srv, modelName, "s2-b")
	emittedA := lastStageEmitted(t, srv, modelName, "s2-a")
	emittedB := lastStageEmitted(t, srv, modelName, "s2-b")
	startStageProcess(t, bin, srv.ClientURL(), "s2-b", modelName, path, "--stage", "2/2")
	select {
	case <-spare:
	case <-ctx.Done():
		t.Fatal("the spare stage never announced itself")
	}
	gc := client(t, gw.Addr())
	s := gc.Chat.Completions.NewStreaming(ctx, p)
	var got strings.Builder
	killed := false
	for s.Next() {
		for _, ch := range s.Current().Choices {
			got.WriteString(ch.Delta.Content)
		}
		if !killed && got.Len() >= 80 {
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
	if got.String() != want {
		t.Fatalf("after killing stage s2-a the client got\n%q\nwant\n%q", got.String(), want)
	}
	// The spare last stage sent the chunks after the kill: it rebuilt the
	// grammar's state from the resumed tokens.
	emittedB(1)
}
