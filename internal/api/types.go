package api

import "encoding/json"

// StreamOptions is OpenAI's stream_options.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// samplingParams are the request fields shared by completions and chat.
// Pointers distinguish "absent or null" from zero.
type samplingParams struct {
	Model             string          `json:"model"`
	MaxTokens         *int            `json:"max_tokens"`
	Temperature       *float64        `json:"temperature"`
	TopP              *float64        `json:"top_p"`
	N                 *int            `json:"n"`
	Stream            *bool           `json:"stream"`
	StreamOptions     *StreamOptions  `json:"stream_options"`
	Stop              json.RawMessage `json:"stop"`
	Seed              *int64          `json:"seed"`
	FrequencyPenalty  *float64        `json:"frequency_penalty"`
	PresencePenalty   *float64        `json:"presence_penalty"`
	User              *string         `json:"user"`
	TopK              *int            `json:"top_k"`
	MinP              *float64        `json:"min_p"`
	RepetitionPenalty *float64        `json:"repetition_penalty"`
	IgnoreEOS         *bool           `json:"ignore_eos"`
	// LogitBias maps token ids (as strings, OpenAI's shape) to a bias.
	LogitBias map[string]float64 `json:"logit_bias"`

	// Structured outputs: OpenAI's response_format, vLLM's guided_* and
	// structured_outputs, llama.cpp's json_schema and grammar.
	ResponseFormat    *ResponseFormat    `json:"response_format"`
	GuidedJSON        json.RawMessage    `json:"guided_json"`
	GuidedRegex       *string            `json:"guided_regex"`
	GuidedChoice      []string           `json:"guided_choice"`
	GuidedGrammar     *string            `json:"guided_grammar"`
	StructuredOutputs *StructuredOutputs `json:"structured_outputs"`
	JSONSchema        json.RawMessage    `json:"json_schema"`
	Grammar           *string            `json:"grammar"`

	refusedParams
}

// ResponseFormat is OpenAI's response_format.
type ResponseFormat struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Schema      json.RawMessage `json:"schema"`
		Strict      *bool           `json:"strict"`
	} `json:"json_schema"`
}

// StructuredOutputs is vLLM's structured_outputs object.
type StructuredOutputs struct {
	JSON       json.RawMessage `json:"json"`
	Regex      *string         `json:"regex"`
	Choice     []string        `json:"choice"`
	Grammar    *string         `json:"grammar"`
	JSONObject *bool           `json:"json_object"`
}

// CompletionRequest is the body of POST /v1/completions.
type CompletionRequest struct {
	samplingParams
	// Prompt is a string or an array holding one string.
	Prompt   json.RawMessage `json:"prompt"`
	Logprobs *int            `json:"logprobs"`
	Echo     *bool           `json:"echo"`
	BestOf   *int            `json:"best_of"`
	Suffix   *string         `json:"suffix"`

	// Set by completionToBus: the prompts (texts or token ids), one or
	// more, the first already in the bus request.
	prompts   []string
	promptIDs [][]int32
}

// ChatRequest is the body of POST /v1/chat/completions.
type ChatRequest struct {
	samplingParams
	Messages            []ChatMessage   `json:"messages"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Logprobs            *bool           `json:"logprobs"`
	TopLogprobs         *int            `json:"top_logprobs"`
	Tools               json.RawMessage `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls"`
	// ContinueFinalMessage continues the final (assistant) message instead
	// of opening a new turn (vLLM's continue_final_message); it needs
	// AddGenerationPrompt false or absent.
	ContinueFinalMessage *bool `json:"continue_final_message"`
	AddGenerationPrompt  *bool `json:"add_generation_prompt"`
	// ChatTemplateKwargs are extra variables for the model's chat template
	// (vLLM's and llama-server's chat_template_kwargs), e.g.
	// {"enable_thinking": false} for Qwen3.
	ChatTemplateKwargs map[string]json.RawMessage `json:"chat_template_kwargs"`
	// Store keeps the request and its answer for the stored-completions
	// endpoints (stored.go); Metadata (up to 16 string pairs) is kept
	// with it and filters lists.
	Store    *bool           `json:"store"`
	Metadata json.RawMessage `json:"metadata"`
}

// ChatMessage is one message of a chat request. Content is a string, null,
// or an array of {"type":"text","text":...} parts.
type ChatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	Name       string          `json:"name,omitempty"`
	ToolCalls  []APIToolCall   `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
}

// Usage is OpenAI's token accounting.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// ModelList is the body of GET /v1/models.
type ModelList struct {
	Object string  `json:"object"`
	Data   []Model `json:"data"`
}

// Model is one entry of ModelList.
type Model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// Completion is a non-streaming /v1/completions response.
type Completion struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []CompletionChoice `json:"choices"`
	Usage   Usage              `json:"usage"`
}

// CompletionChunk is one SSE event of a streaming completion.
type CompletionChunk struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []CompletionChoice `json:"choices"`
	// Usage is as in ChatChunk.
	Usage json.RawMessage `json:"usage,omitempty"`
}

// CompletionChoice is one choice of a Completion.
type CompletionChoice struct {
	Text         string              `json:"text"`
	Index        int                 `json:"index"`
	Logprobs     *CompletionLogprobs `json:"logprobs"`
	FinishReason *string             `json:"finish_reason"`
}

// CompletionLogprobs is the legacy completions logprobs object.
type CompletionLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []*float32           `json:"token_logprobs"` // null: an echoed prompt's first token
	TopLogprobs   []map[string]float32 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

// ChatCompletion is a non-streaming /v1/chat/completions response.
type ChatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []ChatChoice `json:"choices"`
	Usage   Usage        `json:"usage"`
}

// ChatChoice is one choice of a ChatCompletion.
type ChatChoice struct {
	Index        int           `json:"index"`
	Message      ChatReply     `json:"message"`
	Logprobs     *ChatLogprobs `json:"logprobs"`
	FinishReason string        `json:"finish_reason"`
}

// ChatReply is the assistant message of a ChatChoice.
type ChatReply struct {
	Role      string        `json:"role"`
	Content   string        `json:"content"`
	Refusal   *string       `json:"refusal"`
	ToolCalls []APIToolCall `json:"tool_calls,omitempty"`
}

// ChatLogprobs is the chat logprobs object.
type ChatLogprobs struct {
	Content []ChatTokenLogprob `json:"content"`
	Refusal *string            `json:"refusal"`
}

// ChatTokenLogprob is one token's logprob with its top alternatives.
type ChatTokenLogprob struct {
	Token       string           `json:"token"`
	Logprob     float32          `json:"logprob"`
	Bytes       []int            `json:"bytes"`
	TopLogprobs []ChatTopLogprob `json:"top_logprobs"`
}

// ChatTopLogprob is one alternative in ChatTokenLogprob.TopLogprobs.
type ChatTopLogprob struct {
	Token   string  `json:"token"`
	Logprob float32 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

// ChatChunk is one SSE event of a streaming chat completion.
type ChatChunk struct {
	ID      string            `json:"id"`
	Object  string            `json:"object"`
	Created int64             `json:"created"`
	Model   string            `json:"model"`
	Choices []ChatChunkChoice `json:"choices"`
	// Usage is null on every chunk but the last when include_usage is set,
	// and absent otherwise, as OpenAI does.
	Usage json.RawMessage `json:"usage,omitempty"`
}

// ChatChunkChoice is the one choice of a ChatChunk.
type ChatChunkChoice struct {
	Index        int           `json:"index"`
	Delta        ChatDelta     `json:"delta"`
	Logprobs     *ChatLogprobs `json:"logprobs"`
	FinishReason *string       `json:"finish_reason"`
}

// ChatDelta is the increment a ChatChunk carries.
type ChatDelta struct {
	Role      string             `json:"role,omitempty"`
	Content   *string            `json:"content,omitempty"`
	ToolCalls []APIToolCallDelta `json:"tool_calls,omitempty"`
}
