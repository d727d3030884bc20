package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"courier/internal/bus"
	"courier/internal/bus/natsbus"
	"courier/internal/completions"
)

// storedServer is a gateway over the scripted generation of chunks (the
// hello generation when none) with a completion store on a real embedded
// NATS server (JetStream under dir), on loopback; keys k1 and k2.
func storedServer(t testing.TB, dir string, cfg Config, chunks ...bus.Chunk) (*server, string) {
	t.Helper()
	srv, err := natsbus.StartServer(natsbus.ServerConfig{Name: "t", DataDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close(context.Background())
		_ = srv.Shutdown(context.Background())
	})
	kv, err := natsbus.OpenCompletionStore(t.Context(), conn, natsbus.CompletionStoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if chunks == nil {
		chunks = helloChunks()
	}
	d, _ := scripted(chunks...)
	cfg.APIKeys = []string{"k1", "k2"}
	s := newTestServer(t, cfg, d)
	var n atomic.Int64
	s.newID = func() string { return fmt.Sprintf("req%04d", n.Add(1)) }
	SetCompletionStore(s, completions.New(kv))
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return s, hs.URL
}

func keyClient(t *testing.T, url, key string) openai.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return openai.NewClient(option.WithBaseURL(url+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0),
		option.WithHTTPClient(&http.Client{Transport: tr}))
}

// apiStatus is the HTTP status and code of an OpenAI client error.
func apiStatus(err error) (int, string, string) {
	var e *openai.Error
	if errors.As(err, &e) {
		return e.StatusCode, e.Code, e.Param
	}
	return 0, "", ""
}

func chatParams(store bool, md map[string]string) openai.ChatCompletionNewParams {
	p := openai.ChatCompletionNewParams{
		Model:    "tiny",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage("hi")},
		Store:    openai.Bool(store),
	}
	if md != nil {
		p.Metadata = shared.Metadata(md)
	}
	return p
}

// TestStoredCompletionsOpenAIClient stores a plain, a streamed and an n=2
// chat completion, leaves out one with store: false, and then lists
// (filters, pages, both orders), retrieves, reads the messages of,
// updates and deletes them with the official client, as their key; the
// other key sees none of it.
func TestStoredCompletionsOpenAIClient(t *testing.T) {
	_, url := storedServer(t, t.TempDir(), Config{})
	c1, c2 := keyClient(t, url, "k1"), keyClient(t, url, "k2")
	ctx := t.Context()

	plain, err := c1.Chat.Completions.New(ctx, chatParams(true, map[string]string{"topic": "a"}))
	if err != nil {
		t.Fatal(err)
	}
	st := c1.Chat.Completions.NewStreaming(ctx, chatParams(true, map[string]string{"topic": "b"}))
	var streamedID string
	for st.Next() {
		streamedID = st.Current().ID
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	two := chatParams(true, nil)
	two.N = openai.Int(2)
	multi, err := c1.Chat.Completions.New(ctx, two)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Chat.Completions.New(ctx, chatParams(false, nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Chat.Completions.New(ctx, chatParams(true, map[string]string{"topic": "a"})); err != nil {
		t.Fatal(err)
	}

	page, err := c1.Chat.Completions.List(ctx, openai.ChatCompletionListParams{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, cc := range page.Data {
		got = append(got, cc.ID)
	}
	want := []string{plain.ID, streamedID, multi.ID}
	if strings.Join(got, ",") != strings.Join(want, ",") || page.HasMore {
		t.Fatalf("list: %v (more %v), want %v", got, page.HasMore, want)
	}
	streamed := page.Data[1]
	if len(streamed.Choices) != 1 || streamed.Choices[0].Message.Content != "Hello, world" || streamed.Choices[0].FinishReason != "stop" ||
		streamed.Usage.TotalTokens != 8 || streamed.Object != "chat.completion" || streamed.Model != "tiny" {
		t.Errorf("the streamed completion as stored: %s", streamed.RawJSON())
	}
	if m := page.Data[2]; len(m.Choices) != 2 || m.Choices[1].Index != 1 || m.Choices[1].Message.Content != "Hello, world" {
		t.Errorf("the n=2 completion as stored: %s", m.RawJSON())
	}

	var auto []string
	pager := c1.Chat.Completions.ListAutoPaging(ctx, openai.ChatCompletionListParams{Limit: openai.Int(1), Order: "desc"})
	for pager.Next() {
		auto = append(auto, pager.Current().ID)
	}
	if err := pager.Err(); err != nil || strings.Join(auto, ",") != strings.Join([]string{multi.ID, streamedID, plain.ID}, ",") {
		t.Errorf("pages of one, descending: %v %v", auto, err)
	}
	page, err = c1.Chat.Completions.List(ctx, openai.ChatCompletionListParams{Metadata: shared.Metadata{"topic": "b"}})
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != streamedID {
		t.Errorf("metadata[topic]=b: %+v %v", page, err)
	}
	page, err = c1.Chat.Completions.List(ctx, openai.ChatCompletionListParams{Model: openai.String("other")})
	if err != nil || len(page.Data) != 0 {
		t.Errorf("model=other: %+v %v", page, err)
	}

	cc, err := c1.Chat.Completions.Get(ctx, plain.ID)
	if err != nil || cc.ID != plain.ID || cc.Choices[0].Message.Content != plain.Choices[0].Message.Content ||
		!strings.Contains(cc.RawJSON(), `"metadata":{"topic":"a"}`) {
		t.Errorf("retrieve: %v %v", cc, err)
	}
	msgs, err := c1.Chat.Completions.Messages.List(ctx, plain.ID, openai.ChatCompletionMessageListParams{})
	if err != nil || len(msgs.Data) != 2 || msgs.Data[0].ID != plain.ID+"-0" || msgs.Data[1].Content != "hi" ||
		!strings.Contains(msgs.Data[0].RawJSON(), `"role":"system"`) || !strings.Contains(msgs.Data[1].RawJSON(), `"role":"user"`) {
		t.Errorf("messages: %+v %v", msgs, err)
	}
	msgs, err = c1.Chat.Completions.Messages.List(ctx, plain.ID, openai.ChatCompletionMessageListParams{Limit: openai.Int(1), After: openai.String(plain.ID + "-0")})
	if err != nil || len(msgs.Data) != 1 || msgs.Data[0].Content != "hi" || msgs.HasMore {
		t.Errorf("messages after the first: %+v %v", msgs, err)
	}
	cc, err = c1.Chat.Completions.Update(ctx, plain.ID, openai.ChatCompletionUpdateParams{Metadata: shared.Metadata{"topic": "c", "x": "y"}})
	if err != nil || !strings.Contains(cc.RawJSON(), `"x":"y"`) {
		t.Errorf("update: %v %v", cc, err)
	}
	page, err = c1.Chat.Completions.List(ctx, openai.ChatCompletionListParams{Metadata: shared.Metadata{"topic": "c"}})
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != plain.ID {
		t.Errorf("metadata[topic]=c after the update: %+v %v", page, err)
	}

	// The other key: its own completion only; ours are 404.
	page, err = c2.Chat.Completions.List(ctx, openai.ChatCompletionListParams{})
	if err != nil || len(page.Data) != 1 || page.Data[0].ID == plain.ID {
		t.Errorf("k2's list: %+v %v", page, err)
	}
	_, err = c2.Chat.Completions.Get(ctx, plain.ID)
	if st, code, _ := apiStatus(err); st != 404 || code != "not_found" {
		t.Errorf("k2's retrieve: %v", err)
	}
	_, err = c2.Chat.Completions.Messages.List(ctx, plain.ID, openai.ChatCompletionMessageListParams{})
	if st, _, _ := apiStatus(err); st != 404 {
		t.Errorf("k2's messages: %v", err)
	}
	_, err = c2.Chat.Completions.Update(ctx, plain.ID, openai.ChatCompletionUpdateParams{Metadata: shared.Metadata{"a": "b"}})
	if st, _, _ := apiStatus(err); st != 404 {
		t.Errorf("k2's update: %v", err)
	}
	_, err = c2.Chat.Completions.Delete(ctx, plain.ID)
	if st, _, _ := apiStatus(err); st != 404 {
		t.Errorf("k2's delete: %v", err)
	}

	del, err := c1.Chat.Completions.Delete(ctx, plain.ID)
	if err != nil || !del.Deleted || del.ID != plain.ID || del.Object != "chat.completion.deleted" {
		t.Errorf("delete: %+v %v", del, err)
	}
	_, err = c1.Chat.Completions.Get(ctx, plain.ID)
	if st, _, _ := apiStatus(err); st != 404 {
		t.Errorf("retrieve after delete: %v", err)
	}
}

// TestStoredCompletionsBadInput: every malformed store, metadata, list or
// update parameter is an OpenAI error naming it.
func TestStoredCompletionsBadInput(t *testing.T) {
	s, _ := storedServer(t, t.TempDir(), Config{})
	many := make([]string, 17)
	for i := range many {
		many[i] = fmt.Sprintf(`"k%d":"v"`, i)
	}
	auth := []string{"Authorization", "Bearer k1"}
	chat := func(extra string) string {
		return `{"model":"tiny","messages":[{"role":"user","content":"hi"}]` + extra + `}`
	}
	for _, tc := range []struct {
		method, path, body string
		status             int
		code, param        string
	}{
		{"POST", "/v1/chat/completions", chat(`,"store":true,"metadata":{` + strings.Join(many, ",") + `}`), 400, "invalid_value", "metadata"},
		{"POST", "/v1/chat/completions", chat(`,"metadata":{"k":1}`), 400, "invalid_type", "metadata"},
		{"POST", "/v1/chat/completions", chat(`,"metadata":{"` + strings.Repeat("k", 65) + `":"v"}`), 400, "invalid_value", "metadata"},
		{"POST", "/v1/chat/completions", chat(`,"metadata":{"k":"` + strings.Repeat("v", 513) + `"}`), 400, "invalid_value", "metadata"},
		{"POST", "/v1/chat/completions", chat(`,"store":"yes"`), 400, "invalid_type", "store"},
		{"GET", "/v1/chat/completions?order=sideways", "", 400, "invalid_value", "order"},
		{"GET", "/v1/chat/completions?limit=0", "", 400, "invalid_value", "limit"},
		{"GET", "/v1/chat/completions?after=chatcmpl-nope", "", 400, "invalid_value", "after"},
		{"GET", "/v1/chat/completions/chatcmpl-nope", "", 404, "not_found", ""},
		{"GET", "/v1/chat/completions/chatcmpl-nope/messages", "", 404, "not_found", ""},
		{"POST", "/v1/chat/completions/chatcmpl-nope", `{"metadata":{"a":"b"}}`, 404, "not_found", ""},
		{"POST", "/v1/chat/completions/chatcmpl-nope", `{}`, 400, "missing_required_parameter", "metadata"},
		{"POST", "/v1/chat/completions/chatcmpl-nope", `{"metadata":"x"}`, 400, "invalid_type", "metadata"},
		{"DELETE", "/v1/chat/completions/chatcmpl-nope", "", 404, "not_found", ""},
		{"PUT", "/v1/chat/completions/chatcmpl-nope", "", 405, "method_not_allowed", ""},
		{"DELETE", "/v1/chat/completions", "", 405, "method_not_allowed", ""},
	} {
		w := do(s, tc.method, tc.path, tc.body, auth...)
		body := w.Body.String()
		if w.Code != tc.status || !strings.Contains(body, `"code":"`+tc.code+`"`) ||
			(tc.param != "" && !strings.Contains(body, `"param":"`+tc.param+`"`)) {
			t.Errorf("%s %s %.60s: %d %s; want %d %s %s", tc.method, tc.path, tc.body, w.Code, body, tc.status, tc.code, tc.param)
		}
	}
	if w := do(s, "PUT", "/v1/chat/completions/x", "", auth...); w.Header().Get("Allow") != "GET, POST, DELETE" {
		t.Errorf("Allow: %q", w.Header().Get("Allow"))
	}
	if w := do(s, "GET", "/v1/chat/completions", ""); w.Code != 401 {
		t.Errorf("list without a key: %d", w.Code)
	}
	// Nothing was stored by the refused requests.
	if w := do(s, "GET", "/v1/chat/completions", "", auth...); w.Code != 200 || !strings.Contains(w.Body.String(), `"data":[]`) {
		t.Errorf("list: %d %s", w.Code, w.Body)
	}
}

// TestStoreAll keeps a chat completion sent without store; a gateway
// without a completion store refuses store: true.
func TestStoreAll(t *testing.T) {
	s, _ := storedServer(t, t.TempDir(), Config{StoreAll: true})
	auth := []string{"Authorization", "Bearer k1"}
	if w := do(s, "POST", "/v1/chat/completions", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"store":false}`, auth...); w.Code != 200 {
		t.Fatalf("chat: %d %s", w.Code, w.Body)
	}
	if w := do(s, "GET", "/v1/chat/completions", "", auth...); w.Code != 200 || strings.Count(w.Body.String(), `"object":"chat.completion"`) != 1 {
		t.Errorf("list with --store-all: %d %s", w.Code, w.Body)
	}

	d, _ := scripted(helloChunks()...)
	plain := newTestServer(t, Config{}, d)
	w := do(plain, "POST", "/v1/chat/completions", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"store":true}`)
	if w.Code != 400 || !strings.Contains(w.Body.String(), `"param":"store"`) {
		t.Errorf("store: true without a store: %d %s", w.Code, w.Body)
	}
	if w := do(plain, "GET", "/v1/chat/completions", ""); w.Code != 405 {
		t.Errorf("list without a store: %d", w.Code)
	}
}

// TestStoredStreamedToolCallsAndChoices: a streamed answer of two choices
// whose tool calls arrive piece by piece is stored as the non-streamed
// answer would be (every choice, the calls joined, usage), and a message
// whose content was an array of parts keeps its parts.
func TestStoredStreamedToolCallsAndChoices(t *testing.T) {
	s, _ := storedServer(t, t.TempDir(), Config{},
		bus.Chunk{Text: "Let me check.", Tokens: []int32{1}},
		bus.Chunk{Tokens: []int32{2}, ToolCalls: []bus.ToolCallDelta{{Index: 0, ID: "call_a", Name: "get_weather"}}},
		bus.Chunk{Tokens: []int32{3}, ToolCalls: []bus.ToolCallDelta{{Index: 0, Arguments: `{"city":`}}},
		bus.Chunk{Tokens: []int32{4}, ToolCalls: []bus.ToolCallDelta{{Index: 0, Arguments: `"Oslo"}`}}},
		bus.Chunk{FinishReason: "tool_calls", Usage: &bus.Usage{PromptTokens: 3, CompletionTokens: 4}},
	)
	auth := []string{"Authorization", "Bearer k1"}
	body := `{"model":"tiny","stream":true,"n":2,"store":true,"metadata":{"run":"7"},
		"tools":[{"type":"function","function":{"name":"get_weather"}}],
		"messages":[{"role":"user","content":[{"type":"text","text":"Weather"},{"type":"text","text":"in Oslo?"}]}]}`
	w := do(s, "POST", "/v1/chat/completions", body, auth...)
	if w.Code != 200 || !strings.HasSuffix(w.Body.String(), "data: [DONE]\n\n") {
		t.Fatalf("stream: %d %s", w.Code, w.Body)
	}
	id := "chatcmpl-" + w.Header().Get("X-Request-Id")
	var got storedCompletion
	if w := do(s, "GET", "/v1/chat/completions/"+id, "", auth...); w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &got) != nil {
		t.Fatalf("retrieve %s: %d %s", id, w.Code, w.Body)
	}
	if len(got.Choices) != 2 || got.Metadata["run"] != "7" || got.Usage.CompletionTokens != 8 || got.Object != "chat.completion" {
		t.Fatalf("stored %+v", got)
	}
	for i, c := range got.Choices {
		tc := c.Message.ToolCalls
		if c.Index != i || c.FinishReason != "tool_calls" || c.Message.Content != "Let me check." || len(tc) != 1 ||
			tc[0].ID != "call_a" || tc[0].Function.Name != "get_weather" || tc[0].Function.Arguments != `{"city":"Oslo"}` {
			t.Errorf("stored choice %d: %+v", i, c)
		}
	}
	w = do(s, "GET", "/v1/chat/completions/"+id+"/messages", "", auth...)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"content":null`) ||
		!strings.Contains(w.Body.String(), `"content_parts":[{"type":"text","text":"Weather"},{"type":"text","text":"in Oslo?"}]`) {
		t.Errorf("messages: %d %s", w.Code, w.Body)
	}
}
