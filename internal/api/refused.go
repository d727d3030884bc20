package api

import (
	"bytes"
	"encoding/json"
)

// refusedParams are OpenAI and vLLM request fields Courier does not
// implement. Each is read so that a value that would change the answer is
// a 400 naming it rather than silently unused; its default (or off) value
// is accepted, so clients that always send it keep working. Fields that
// change nothing Courier does (service_tier, priority,
// guided_decoding_backend, parallel_tool_calls, …) are simply not read;
// docs/api.md lists them.
type refusedParams struct {
	Functions          json.RawMessage `json:"functions"`
	FunctionCall       json.RawMessage `json:"function_call"`
	ToolChoice         json.RawMessage `json:"tool_choice"`
	Prediction         json.RawMessage `json:"prediction"`
	Audio              json.RawMessage `json:"audio"`
	Modalities         json.RawMessage `json:"modalities"`
	WebSearchOptions   json.RawMessage `json:"web_search_options"`
	ReasoningEffort    json.RawMessage `json:"reasoning_effort"`
	UseBeamSearch      json.RawMessage `json:"use_beam_search"`
	LengthPenalty      json.RawMessage `json:"length_penalty"`
	StopTokenIDs       json.RawMessage `json:"stop_token_ids"`
	IncludeStopStr     json.RawMessage `json:"include_stop_str_in_output"`
	SkipSpecialTokens  json.RawMessage `json:"skip_special_tokens"`
	SpacesBetween      json.RawMessage `json:"spaces_between_special_tokens"`
	MinTokens          json.RawMessage `json:"min_tokens"`
	TruncatePrompt     json.RawMessage `json:"truncate_prompt_tokens"`
	PromptLogprobs     json.RawMessage `json:"prompt_logprobs"`
	AllowedTokenIDs    json.RawMessage `json:"allowed_token_ids"`
	BadWords           json.RawMessage `json:"bad_words"`
	GuidedWhitespace   json.RawMessage `json:"guided_whitespace_pattern"`
	LogitsProcessors   json.RawMessage `json:"logits_processors"`
	ReturnTokensAsIDs  json.RawMessage `json:"return_tokens_as_token_ids"`
	ChatTemplate       json.RawMessage `json:"chat_template"`
	MMProcessorKwargs  json.RawMessage `json:"mm_processor_kwargs"`
	Documents          json.RawMessage `json:"documents"`
	AddSpecialTokens   json.RawMessage `json:"add_special_tokens"`
	RepetitionPenaltyN json.RawMessage `json:"repetition_penalty_range"`
	// Echo is chat's (vLLM's chat echo); completions' own Echo field,
	// shallower, shadows it there.
	Echo json.RawMessage `json:"echo"`
}

// refusedField is one refused field: how to read it, the values accepted
// besides null, and why others are refused.
type refusedField struct {
	name string
	raw  func(*refusedParams) json.RawMessage
	ok   []string
	why  string
}

// refusedFields is the table check walks; built once, so a request's
// check allocates nothing.
var refusedFields = []refusedField{
	{"functions", func(r *refusedParams) json.RawMessage { return r.Functions }, []string{"[]"}, "the legacy functions are not supported"},
	{"function_call", func(r *refusedParams) json.RawMessage { return r.FunctionCall }, []string{`"none"`, `"auto"`}, "the legacy function_call is not supported"},
	{"tool_choice", func(r *refusedParams) json.RawMessage { return r.ToolChoice }, []string{`"none"`, `"auto"`}, "tool_choice is for chat"},
	{"prediction", func(r *refusedParams) json.RawMessage { return r.Prediction }, nil, "predicted outputs are not supported"},
	{"audio", func(r *refusedParams) json.RawMessage { return r.Audio }, nil, "audio output is not supported"},
	{"modalities", func(r *refusedParams) json.RawMessage { return r.Modalities }, []string{`["text"]`, "[]"}, "only text output is supported"},
	{"web_search_options", func(r *refusedParams) json.RawMessage { return r.WebSearchOptions }, nil, "web search is not supported"},
	{"reasoning_effort", func(r *refusedParams) json.RawMessage { return r.ReasoningEffort }, nil, "reasoning_effort is not supported"},
	{"use_beam_search", func(r *refusedParams) json.RawMessage { return r.UseBeamSearch }, []string{"false"}, "beam search is not supported"},
	{"length_penalty", func(r *refusedParams) json.RawMessage { return r.LengthPenalty }, []string{"1", "1.0"}, "length_penalty (beam search) is not supported"},
	{"stop_token_ids", func(r *refusedParams) json.RawMessage { return r.StopTokenIDs }, []string{"[]"}, "stop_token_ids is not supported; use stop strings"},
	{"include_stop_str_in_output", func(r *refusedParams) json.RawMessage { return r.IncludeStopStr }, []string{"false"}, "the stop string is never included in the output"},
	{"skip_special_tokens", func(r *refusedParams) json.RawMessage { return r.SkipSpecialTokens }, []string{"true"}, "special tokens are always left out of the text"},
	{"spaces_between_special_tokens", func(r *refusedParams) json.RawMessage { return r.SpacesBetween }, []string{"true"}, "spaces_between_special_tokens false is not supported"},
	{"min_tokens", func(r *refusedParams) json.RawMessage { return r.MinTokens }, []string{"0"}, "min_tokens is not supported"},
	{"truncate_prompt_tokens", func(r *refusedParams) json.RawMessage { return r.TruncatePrompt }, nil, "prompt truncation is not supported; a prompt over the context is a 413"},
	{"prompt_logprobs", func(r *refusedParams) json.RawMessage { return r.PromptLogprobs }, []string{"0"}, "prompt_logprobs is not supported"},
	{"allowed_token_ids", func(r *refusedParams) json.RawMessage { return r.AllowedTokenIDs }, []string{"[]"}, "allowed_token_ids is not supported; use logit_bias or guided_choice"},
	{"bad_words", func(r *refusedParams) json.RawMessage { return r.BadWords }, []string{"[]"}, "bad_words is not supported; use logit_bias"},
	{"guided_whitespace_pattern", func(r *refusedParams) json.RawMessage { return r.GuidedWhitespace }, nil, "guided_whitespace_pattern is not supported"},
	{"logits_processors", func(r *refusedParams) json.RawMessage { return r.LogitsProcessors }, []string{"[]"}, "logits_processors are not supported"},
	{"return_tokens_as_token_ids", func(r *refusedParams) json.RawMessage { return r.ReturnTokensAsIDs }, []string{"false"}, "return_tokens_as_token_ids is not supported"},
	{"chat_template", func(r *refusedParams) json.RawMessage { return r.ChatTemplate }, []string{`""`}, "a request's own chat_template is not supported; the model's template is used"},
	{"mm_processor_kwargs", func(r *refusedParams) json.RawMessage { return r.MMProcessorKwargs }, []string{"{}"}, "multimodal inputs are not supported"},
	{"documents", func(r *refusedParams) json.RawMessage { return r.Documents }, []string{"[]"}, "documents (RAG templates) are not supported"},
	{"add_special_tokens", func(r *refusedParams) json.RawMessage { return r.AddSpecialTokens }, nil, "add_special_tokens is not supported; BOS is added as the model asks"},
	{"repetition_penalty_range", func(r *refusedParams) json.RawMessage { return r.RepetitionPenaltyN }, nil, "repetition_penalty_range is not supported"},
	{"echo", func(r *refusedParams) json.RawMessage { return r.Echo }, []string{"false"}, "echo is not supported"},
}

// check reports the first refused field set to something other than its
// default.
func (r *refusedParams) check() *Error {
	for i := range refusedFields {
		f := &refusedFields[i]
		v := bytes.TrimSpace(f.raw(r))
		if len(v) == 0 || string(v) == "null" {
			continue
		}
		accepted := false
		for _, ok := range f.ok {
			if string(v) == ok {
				accepted = true
			}
		}
		if !accepted {
			return errorf(CodeUnsupported, f.name, "%s: %s", f.name, f.why)
		}
	}
	return nil
}
