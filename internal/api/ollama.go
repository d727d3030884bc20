package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"courier/internal/bus"
)

// Ollama's native API (https://github.com/ollama/ollama/blob/main/docs/api.md)
// on the same gateway: /api/chat and /api/generate are built into the same
// bus requests as /v1/chat/completions and /v1/completions (chatToBus,
// completionToBus) and go through the same dispatch, keys, metrics and
// relay; only the wire format differs (NDJSON streams, Ollama's field
// names, {"error": "..."} errors). docs/api.md lists what is supported.

// ModelInfo describes a served model for Ollama's /api/tags, /api/show and
// /api/ps. The node fills Config.ModelInfo for the models its own workers
// load; a gateway on its own knows only the names.
type ModelInfo struct {
	Size          int64     // bytes of the model file(s)
	Digest        string    // SHA-256 of the file, hex; "" when unknown
	ModifiedAt    time.Time // the file's modification time
	Family        string    // general.architecture
	ParameterSize string    // "260K", "1.1B"
	Quantization  string    // "Q8_0", "Q4_K_M"
	ContextLength int       // the context the engine runs with
	Template      string    // the GGUF chat template
	// Metadata holds the file's scalar GGUF metadata (Ollama's model_info).
	Metadata map[string]any
}

// addOllamaRoutes registers Ollama's endpoints.
func (s *server) addOllamaRoutes() {
	s.routes["/"] = route{http.MethodGet, "root", false, s.root}
	s.routes["/api/chat"] = route{http.MethodPost, "ollama_chat", true, s.ollamaChat}
	s.routes["/api/generate"] = route{http.MethodPost, "ollama_generate", true, s.ollamaGenerate}
	s.routes["/api/tags"] = route{http.MethodGet, "ollama_tags", true, s.ollamaTags}
	s.routes["/api/show"] = route{http.MethodPost, "ollama_show", true, s.ollamaShow}
	s.routes["/api/ps"] = route{http.MethodGet, "ollama_ps", true, s.ollamaPS}
	s.routes["/api/version"] = route{http.MethodGet, "ollama_version", true, s.ollamaVersion}
	s.routes["/api/embed"] = route{http.MethodPost, "ollama_embed", true, s.ollamaEmbed}
	s.addOllamaPullRoutes()
}

// ollamaError is Ollama's error body.
type ollamaError struct {
	Error string `json:"error"`
}

// ollamaMessage is one message of /api/chat, both ways.
type ollamaMessage struct {
	Role      string           `json:"role"`
	Content   string           `json:"content"`
	Images    []string         `json:"images,omitempty"`
	ToolCalls []ollamaToolCall `json:"tool_calls,omitempty"`
	// ToolName (Ollama) or ToolCallID names the call a "tool" message
	// answers; without an id it answers the oldest unanswered call.
	ToolName   string `json:"tool_name,omitempty"`
	ToolCallID string `json:"tool_call_id,omitempty"`
	Thinking   string `json:"thinking,omitempty"`
}

// ollamaToolCall is one function call in Ollama's shape: arguments are a
// JSON object, not text.
type ollamaToolCall struct {
	ID       string `json:"id,omitempty"`
	Function struct {
		Index     *int            `json:"index,omitempty"`
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"function"`
}

// toolArguments turns Ollama's arguments (an object, or a string holding
// one) into the JSON text the bus carries.
func toolArguments(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	var text string
	if json.Unmarshal(raw, &text) == nil {
		return text
	}
	if len(raw) == 0 || string(raw) == "null" {
		return "{}"
	}
	return string(raw)
}

// ollamaCommon are the fields /api/chat and /api/generate share.
type ollamaCommon struct {
	Model     string          `json:"model"`
	Format    json.RawMessage `json:"format"`
	Options   json.RawMessage `json:"options"`
	Stream    *bool           `json:"stream"`
	KeepAlive json.RawMessage `json:"keep_alive"` // accepted; models stay loaded while served
	Think     json.RawMessage `json:"think"`
}

// ollamaChatRequest is the body of POST /api/chat.
type ollamaChatRequest struct {
	ollamaCommon
	Messages []ollamaMessage `json:"messages"`
	Tools    json.RawMessage `json:"tools"`
}

// ollamaGenerateRequest is the body of POST /api/generate.
type ollamaGenerateRequest struct {
	ollamaCommon
	Prompt   string          `json:"prompt"`
	Suffix   string          `json:"suffix"`
	System   string          `json:"system"`
	Template string          `json:"template"`
	Raw      bool            `json:"raw"`
	Images   []string        `json:"images"`
	Context  json.RawMessage `json:"context"`
}

// stream is Ollama's default: on unless "stream": false.
func (c *ollamaCommon) stream() bool { return c.Stream == nil || *c.Stream }

// present reports whether raw holds a value other than null, false, "",
// [] or {}.
func present(raw json.RawMessage) bool {
	switch string(bytes.TrimSpace(raw)) {
	case "", "null", "false", `""`, "[]", "{}":
		return false
	}
	return true
}

// check rejects the shared fields Courier does not implement.
func (c *ollamaCommon) check() *Error {
	if c.Model == "" {
		return errorf(CodeMissingParameter, "model", "model is required")
	}
	if present(c.Format) {
		var str string
		if json.Unmarshal(c.Format, &str) == nil && str != "json" {
			return errorf(CodeInvalidValue, "format", "format must be \"json\" or a JSON Schema object, got %q", str)
		}
	}
	if present(c.Think) {
		return errorf(CodeUnsupported, "think", "think is not supported")
	}
	return nil
}

// formatTo maps Ollama's format onto the structured-output parameters:
// "json" is response_format json_object, a schema is json_schema.
func (c *ollamaCommon) formatTo(sp *samplingParams) {
	if !present(c.Format) {
		return
	}
	if string(bytes.TrimSpace(c.Format)) == `"json"` {
		sp.ResponseFormat = &ResponseFormat{Type: "json_object"}
		return
	}
	sp.GuidedJSON = c.Format
}

// ollamaChat serves POST /api/chat.
func (s *server) ollamaChat(w http.ResponseWriter, r *http.Request) {
	var body ollamaChatRequest
	if e := readJSON(r, s.cfg.MaxBodyBytes, &body); e != nil {
		s.fail(w, e)
		return
	}
	body.Model = s.ollamaName(body.Model)
	if e := body.check(); e != nil {
		s.fail(w, e)
		return
	}
	if len(body.Messages) == 0 {
		s.ollamaLoad(w, body.Model, true)
		return
	}
	cr := ChatRequest{Messages: make([]ChatMessage, len(body.Messages)), Tools: body.Tools}
	var pending []string // ids of tool calls no tool message answered yet
	for i, m := range body.Messages {
		if len(m.Images) > 0 {
			s.fail(w, errorf(CodeUnsupported, "messages", "messages[%d].images: images are not supported", i))
			return
		}
		content, _ := json.Marshal(m.Content)
		cm := ChatMessage{Role: m.Role, Content: content}
		for j, c := range m.ToolCalls {
			var tc APIToolCall
			tc.ID, tc.Type = c.ID, "function"
			if tc.ID == "" {
				tc.ID = fmt.Sprintf("call_%d_%d", i, j)
			}
			tc.Function.Name, tc.Function.Arguments = c.Function.Name, toolArguments(c.Function.Arguments)
			cm.ToolCalls = append(cm.ToolCalls, tc)
			pending = append(pending, tc.ID)
		}
		if m.Role == "tool" {
			cm.ToolCallID, cm.Name = m.ToolCallID, m.ToolName
			if cm.ToolCallID == "" && len(pending) > 0 {
				cm.ToolCallID = pending[0]
			}
		}
		if k := slices.Index(pending, cm.ToolCallID); cm.ToolCallID != "" && k >= 0 {
			pending = slices.Delete(pending, k, k+1)
		}
		cr.Messages[i] = cm
	}
	cr.Model, cr.Stream = body.Model, ptr(false)
	if e := parseOllamaOptions(body.Options, &cr.samplingParams); e != nil {
		s.fail(w, e)
		return
	}
	body.formatTo(&cr.samplingParams)
	req, e := chatToBus(s.cfg, &cr)
	if e != nil {
		s.fail(w, ollamaParam(e))
		return
	}
	s.generate(w, r, req, &ollamaFormat{chat: true, stream: body.stream(), now: s.now, start: s.now()})
}

// ollamaGenerate serves POST /api/generate. Unless raw is set the prompt
// (and system) are rendered with the model's chat template as Ollama does,
// so the request is a chat on the bus; raw prompts are plain completions.
func (s *server) ollamaGenerate(w http.ResponseWriter, r *http.Request) {
	var body ollamaGenerateRequest
	if e := readJSON(r, s.cfg.MaxBodyBytes, &body); e != nil {
		s.fail(w, e)
		return
	}
	body.Model = s.ollamaName(body.Model)
	e := body.check()
	switch {
	case e != nil:
	case body.Suffix != "":
		e = errorf(CodeUnsupported, "suffix", "suffix (fill-in-the-middle) is not supported")
	case len(body.Images) > 0:
		e = errorf(CodeUnsupported, "images", "images are not supported")
	case body.Template != "":
		e = errorf(CodeUnsupported, "template", "template overrides are not supported; the model's own chat template is used (or raw: true)")
	case present(body.Context):
		e = errorf(CodeUnsupported, "context", "context (deprecated in Ollama) is not supported; send the conversation to /api/chat")
	case body.Raw && body.System != "":
		e = errorf(CodeInvalidValue, "system", "system cannot be combined with raw: true")
	}
	if e != nil {
		s.fail(w, e)
		return
	}
	if body.Prompt == "" && body.System == "" {
		s.ollamaLoad(w, body.Model, false)
		return
	}
	var sp samplingParams
	sp.Model, sp.Stream = body.Model, ptr(false)
	body.formatTo(&sp)
	if e := parseOllamaOptions(body.Options, &sp); e != nil {
		s.fail(w, e)
		return
	}
	var req *bus.Request
	if body.Raw {
		prompt, _ := json.Marshal(body.Prompt)
		req, e = completionToBus(s.cfg, &CompletionRequest{samplingParams: sp, Prompt: prompt})
	} else {
		cr := ChatRequest{samplingParams: sp}
		if body.System != "" {
			c, _ := json.Marshal(body.System)
			cr.Messages = append(cr.Messages, ChatMessage{Role: "system", Content: c})
		}
		c, _ := json.Marshal(body.Prompt)
		cr.Messages = append(cr.Messages, ChatMessage{Role: "user", Content: c})
		req, e = chatToBus(s.cfg, &cr)
	}
	if e != nil {
		s.fail(w, ollamaParam(e))
		return
	}
	s.generate(w, r, req, &ollamaFormat{stream: body.stream(), now: s.now, start: s.now()})
}

// ollamaName maps Ollama's implicit tag: "NAME:latest" is NAME when only
// NAME is served (Ollama clients add ":latest" to untagged names).
func (s *server) ollamaName(model string) string {
	base, ok := strings.CutSuffix(model, ":latest")
	if !ok {
		return model
	}
	served := s.d.Models()
	if !slices.Contains(served, model) && slices.Contains(served, base) {
		return base
	}
	return model
}

// root serves GET /: the dashboard to a browser (Accept: text/html),
// otherwise a plain answer that tools probing an Ollama server for life
// (status 200) accept.
func (s *server) root(w http.ResponseWriter, r *http.Request) {
	if wantsHTML(r) {
		s.dashboardIndex(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("Courier is running (OpenAI API at /v1, Ollama API at /api)\n"))
}

// ollamaLoad answers a request without prompt or messages as Ollama does
// (it loads the model): done at once with done_reason "load", once the model
// is known to be served.
func (s *server) ollamaLoad(w http.ResponseWriter, model string, chat bool) {
	if e := s.checkModel(model); e != nil {
		s.fail(w, e)
		return
	}
	resp := ollamaResponse{Model: model, CreatedAt: s.now().UTC(), Done: true, DoneReason: "load"}
	if chat {
		resp.Message = &ollamaMessage{Role: "assistant"}
	} else {
		resp.Response = ptr("")
	}
	writeJSON(w, http.StatusOK, resp)
}

// ollamaParam renames the OpenAI parameter an error names to the Ollama
// option it came from.
func ollamaParam(e *Error) *Error {
	name, ok := openAIToOllama[e.Param]
	if !ok {
		return e
	}
	return &Error{Code: e.Code, Param: name, Message: strings.Replace(e.Message, e.Param, name, 1)}
}

var openAIToOllama = map[string]string{
	"response_format":    "format",
	"guided_json":        "format",
	"max_tokens":         "options.num_predict",
	"temperature":        "options.temperature",
	"top_p":              "options.top_p",
	"top_k":              "options.top_k",
	"min_p":              "options.min_p",
	"repetition_penalty": "options.repeat_penalty",
	"frequency_penalty":  "options.frequency_penalty",
	"presence_penalty":   "options.presence_penalty",
	"stop":               "options.stop",
	"seed":               "options.seed",
}

// ollamaDetails is Ollama's model "details" object.
type ollamaDetails struct {
	ParentModel       string   `json:"parent_model"`
	Format            string   `json:"format"`
	Family            string   `json:"family"`
	Families          []string `json:"families"`
	ParameterSize     string   `json:"parameter_size"`
	QuantizationLevel string   `json:"quantization_level"`
}

// ollamaModel is one entry of /api/tags and /api/ps.
type ollamaModel struct {
	Name       string        `json:"name"`
	Model      string        `json:"model"`
	ModifiedAt *time.Time    `json:"modified_at,omitempty"`
	Size       int64         `json:"size"`
	Digest     string        `json:"digest"`
	Details    ollamaDetails `json:"details"`
	ExpiresAt  *time.Time    `json:"expires_at,omitempty"`
	SizeVRAM   *int64        `json:"size_vram,omitempty"`
	// ContextLength is /api/ps's context_length.
	ContextLength int `json:"context_length,omitempty"`
}

// servedModels returns the served model names, sorted and unique.
func (s *server) servedModels() []string {
	names := slices.Clone(s.d.Models())
	slices.Sort(names)
	return slices.Compact(names)
}

func (s *server) ollamaModel(name string) (ollamaModel, ModelInfo) {
	info, ok := s.cfg.ModelInfo[name]
	if !ok && s.cfg.Models != nil {
		info, _ = s.cfg.Models.Info(name) // a model /api/pull loaded
	}
	m := ollamaModel{Name: name, Model: name, Size: info.Size, Digest: info.Digest,
		Details: ollamaDetails{Format: "gguf", Family: info.Family, ParameterSize: info.ParameterSize, QuantizationLevel: info.Quantization}}
	if info.Family != "" {
		m.Details.Families = []string{info.Family}
	}
	return m, info
}

// ollamaTags serves GET /api/tags: the models some live worker serves.
func (s *server) ollamaTags(w http.ResponseWriter, r *http.Request) {
	list := struct {
		Models []ollamaModel `json:"models"`
	}{Models: []ollamaModel{}}
	for _, n := range s.servedModels() {
		m, info := s.ollamaModel(n)
		mod := info.ModifiedAt.UTC()
		m.ModifiedAt = &mod
		list.Models = append(list.Models, m)
	}
	writeJSON(w, http.StatusOK, list)
}

// ollamaPS serves GET /api/ps: the same models, as running (they stay
// loaded while served, so expires_at is far ahead).
func (s *server) ollamaPS(w http.ResponseWriter, r *http.Request) {
	list := struct {
		Models []ollamaModel `json:"models"`
	}{Models: []ollamaModel{}}
	never := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	var zero int64
	for _, n := range s.servedModels() {
		m, info := s.ollamaModel(n)
		m.ExpiresAt, m.SizeVRAM, m.ContextLength = &never, &zero, info.ContextLength
		list.Models = append(list.Models, m)
	}
	writeJSON(w, http.StatusOK, list)
}

// ollamaShow serves POST /api/show.
func (s *server) ollamaShow(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Model   string `json:"model"`
		Name    string `json:"name"` // older clients
		Verbose bool   `json:"verbose"`
	}
	if e := readJSON(r, s.cfg.MaxBodyBytes, &body); e != nil {
		s.fail(w, e)
		return
	}
	if body.Model == "" {
		body.Model = body.Name
	}
	body.Model = s.ollamaName(body.Model)
	if body.Model == "" {
		s.fail(w, errorf(CodeMissingParameter, "model", "model is required"))
		return
	}
	if e := s.checkModel(body.Model); e != nil {
		s.fail(w, e)
		return
	}
	m, info := s.ollamaModel(body.Model)
	mi := info.Metadata
	if mi == nil {
		mi = map[string]any{}
	}
	var mod *time.Time
	if !info.ModifiedAt.IsZero() {
		t := info.ModifiedAt.UTC()
		mod = &t
	}
	writeJSON(w, http.StatusOK, struct {
		License      string         `json:"license"`
		Modelfile    string         `json:"modelfile"`
		Parameters   string         `json:"parameters"`
		Template     string         `json:"template"`
		Details      ollamaDetails  `json:"details"`
		ModelInfo    map[string]any `json:"model_info"`
		Capabilities []string       `json:"capabilities"`
		ModifiedAt   *time.Time     `json:"modified_at,omitempty"`
	}{Template: info.Template, Details: m.Details, ModelInfo: mi, Capabilities: []string{"completion"}, ModifiedAt: mod})
}

// ollamaVersion serves GET /api/version: Courier's own build version
// ("0.0.0" for a development build).
func (s *server) ollamaVersion(w http.ResponseWriter, r *http.Request) {
	v := "0.0.0"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = strings.TrimPrefix(bi.Main.Version, "v")
	}
	writeJSON(w, http.StatusOK, map[string]string{"version": v})
}

// ollamaEmbedRequest is the body of POST /api/embed.
type ollamaEmbedRequest struct {
	Model string `json:"model"`
	// Input is a string or an array of strings (token-id arrays are
	// accepted too, as on /v1/embeddings).
	Input      json.RawMessage `json:"input"`
	Truncate   *bool           `json:"truncate"`
	Options    json.RawMessage `json:"options"`
	KeepAlive  json.RawMessage `json:"keep_alive"`
	Dimensions *int            `json:"dimensions"`
}

// ollamaEmbed serves POST /api/embed through the same bus request as
// /v1/embeddings. Courier never truncates an input: one longer than the
// context is a 413, whatever truncate says (docs/api.md).
func (s *server) ollamaEmbed(w http.ResponseWriter, r *http.Request) {
	var body ollamaEmbedRequest
	if e := readJSON(r, s.cfg.MaxBodyBytes, &body); e != nil {
		s.fail(w, e)
		return
	}
	body.Model = s.ollamaName(body.Model)
	var sp samplingParams // sampling does not apply to embeddings; the options are still checked
	if e := parseOllamaOptions(body.Options, &sp); e != nil {
		s.fail(w, e)
		return
	}
	req, _, e := embeddingToBus(s.cfg, &EmbeddingRequest{Model: body.Model, Input: body.Input, Dimensions: body.Dimensions})
	if e != nil {
		s.fail(w, e)
		return
	}
	s.generate(w, r, req, &ollamaEmbedFormat{embedFormat: embedFormat{inputs: len(req.Inputs) + len(req.TokenInputs)}, now: s.now, start: s.now()})
}
