package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// openaiJSDir holds the pinned openai npm client (package.json and
// package-lock.json; node_modules is installed by npm ci and not committed).
const openaiJSDir = "testdata/openai-js"

// TestOpenAIJSToolCalls runs a tool-call round trip through the official
// openai npm client against a real node: a forced call (tool_choice
// required) not streamed, streamed piece by piece, and through the client's
// own stream helper, all the same call with arguments that validate; then
// the call and the tool's result (role "tool") go back through the template
// and the model answers.
func TestOpenAIJSToolCalls(t *testing.T) {
	nodeBin, npm := needNode(t)
	installNodeClient(t, npm, openaiJSDir, "openai")
	n := startNode(t, serveConfig(t))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, "client.mjs", "http://"+n.Addr(), modelName)
	cmd.Dir = openaiJSDir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client.mjs: %v\n%s", err, stderr.String())
	}
	type call struct {
		ID       string `json:"id"`
		Type     string `json:"type"`
		Function struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		} `json:"function"`
	}
	type calls struct {
		Finish string `json:"finish"`
		Calls  []call `json:"calls"`
	}
	var got struct {
		Call   calls `json:"call"`
		Stream struct {
			calls
			Pieces int `json:"pieces"`
			Heads  int `json:"heads"`
		} `json:"stream"`
		Helper calls `json:"helper"`
		Answer struct {
			Finish       string `json:"finish"`
			Content      string `json:"content"`
			Calls        []call `json:"calls"`
			PromptBefore int    `json:"promptBefore"`
			PromptAfter  int    `json:"promptAfter"`
		} `json:"answer"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("client output %s: %v", out, err)
	}
	v := compileSchema(t, `{"type":"object","properties":{"city":{"type":"string","maxLength":16},"unit":{"enum":["celsius","fahrenheit"]}},"required":["city","unit"],"additionalProperties":false}`)
	want := got.Call
	if want.Finish != "tool_calls" || len(want.Calls) != 1 || want.Calls[0].Function.Name != "get_weather" || want.Calls[0].Type != "function" {
		t.Fatalf("forced call: %s", out)
	}
	validates(t, v, want.Calls[0].Function.Arguments)
	for name, c := range map[string]calls{"streamed": got.Stream.calls, "stream helper": got.Helper} {
		if c.Finish != "tool_calls" || len(c.Calls) != 1 || c.Calls[0].ID == "" || c.Calls[0].Function != want.Calls[0].Function {
			t.Errorf("%s: %+v, want %+v", name, c, want)
		}
	}
	if got.Stream.Heads != 1 || got.Stream.Pieces < 4 {
		t.Errorf("the streamed call came in %d pieces (%d first pieces): not streamed piece by piece", got.Stream.Pieces, got.Stream.Heads)
	}
	t.Logf("streamed in %d pieces; answer after the result: %q (%s)", got.Stream.Pieces, got.Answer.Content, got.Answer.Finish)
	a := got.Answer
	if a.Finish != "stop" && a.Finish != "length" || len(a.Calls) != 0 || a.Content == "" || a.PromptAfter <= a.PromptBefore+4 {
		t.Errorf("the answer after the tool's result: %+v", a)
	}
}
