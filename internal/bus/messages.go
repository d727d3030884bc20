// Package bus defines the messages Courier's roles exchange and the subjects
// they travel on. Its subpackage natsbus is the only code that imports NATS.
// See docs/protocol.md for the wire formats.
package bus

import "encoding/json"

// Version is the protocol version carried in every message as "v".
const Version = 1

// Request kinds.
const (
	KindCompletion = "completion"
	KindChat       = "chat"
	// KindClassification scores Labels as continuations of each of Inputs
	// put into Template; it generates nothing. Its answer is one Chunk with
	// Scores per input, then a final chunk with usage.
	KindClassification = "classification"
	// KindEmbedding asks for the embedding of each of Inputs, or of each
	// token list of TokenInputs; it generates nothing. Its answer is one
	// Chunk with Embedding per input, then a final chunk with usage.
	KindEmbedding = "embedding"
)

// MaxChoices bounds the choices one request carries (Request.Choices):
// the gateway's limit on n (or best_of) times the prompts.
const MaxChoices = 64

// MaxEmbedInputs bounds the inputs of one embedding request (OpenAI's
// limit), checked by the gateway and again by the worker.
const MaxEmbedInputs = 2048

// Classification bounds, checked by the gateway and again by the worker.
const (
	MaxClassifyInputs = 256 // inputs of one classification request
	MaxClassifyLabels = 64  // labels of one classification request (the engine's MaxScoreContinuations)
)

// ChatMessage is one turn of a chat.
type ChatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
	Name    string `json:"name,omitempty"`
	// ToolCalls are an assistant turn's calls; ToolCallID is the call a
	// "tool" turn answers.
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

// ToolCall is one function call: Arguments is JSON text.
type ToolCall struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// ToolCallDelta is a piece of a streamed tool call: the first piece of call
// Index has ID and Name, and each piece may add to its Arguments (JSON text
// once all pieces are joined).
type ToolCallDelta struct {
	Index     int    `json:"index"`
	ID        string `json:"id,omitempty"`
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments,omitempty"`
}

// AddToolCallDeltas joins pieces onto calls (indexed by ToolCallDelta.Index)
// and returns the calls.
func AddToolCallDeltas(calls []ToolCall, pieces []ToolCallDelta) []ToolCall {
	for _, d := range pieces {
		if d.Index < 0 || d.Index > len(calls) {
			continue // out of order: a piece of a call never opened
		}
		if d.Index == len(calls) {
			calls = append(calls, ToolCall{})
		}
		c := &calls[d.Index]
		if d.ID != "" {
			c.ID = d.ID
		}
		if d.Name != "" {
			c.Name = d.Name
		}
		c.Arguments += d.Arguments
	}
	return calls
}

// Tool is a function a chat request offers the model: Parameters is its
// JSON Schema.
type Tool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

// Sampling carries the sampling parameters of a request.
type Sampling struct {
	Temperature       *float32 `json:"temperature,omitempty"`
	TopP              *float32 `json:"top_p,omitempty"`
	TopK              int      `json:"top_k,omitempty"`
	MinP              float32  `json:"min_p,omitempty"`
	RepetitionPenalty float32  `json:"repetition_penalty,omitempty"`
	FrequencyPenalty  float32  `json:"frequency_penalty,omitempty"`
	PresencePenalty   float32  `json:"presence_penalty,omitempty"`
	Seed              *uint64  `json:"seed,omitempty"`
	// IgnoreEOS keeps generating past end-of-generation tokens, up to
	// max_tokens (vLLM's ignore_eos: fixed-length outputs for benchmarks).
	IgnoreEOS bool `json:"ignore_eos,omitempty"`
	// LogitBias maps token ids to a bias in [-100, 100] added to their
	// logits (OpenAI's logit_bias); the worker checks the ids against its
	// vocabulary.
	LogitBias map[int32]float32 `json:"logit_bias,omitempty"`
}

// Constraint is a structured-output constraint: the output must be a JSON
// object (Type "json_object"), a JSON document valid against Schema
// ("json_schema"), a full match of the regular expression Pattern
// ("regex", RE2 syntax), exactly one of Choices ("choice"), or a sentence
// of the llama.cpp GBNF grammar Grammar ("gbnf").
type Constraint struct {
	Type    string          `json:"type"`
	Schema  json.RawMessage `json:"schema,omitempty"`
	Pattern string          `json:"pattern,omitempty"`
	Choices []string        `json:"choices,omitempty"`
	Grammar string          `json:"grammar,omitempty"`
}

// Request asks a worker of Model to generate. The gateway validates it; the
// worker renders chat templates and tokenizes, since only it has the model.
type Request struct {
	V      int    `json:"v"`
	ID     string `json:"id"`
	Model  string `json:"model"`
	Kind   string `json:"kind"`
	Prompt string `json:"prompt,omitempty"`
	// PromptIDs is a completion prompt given as token ids (instead of
	// Prompt); the worker checks them against its vocabulary.
	PromptIDs []int32       `json:"prompt_ids,omitempty"`
	Messages  []ChatMessage `json:"messages,omitempty"`
	// ChatTemplateKwargs are extra variables for a chat's template
	// (chat_template_kwargs), e.g. {"enable_thinking": false}.
	ChatTemplateKwargs map[string]any `json:"chat_template_kwargs,omitempty"`

	MaxTokens int `json:"max_tokens,omitempty"`
	// Echo makes a completion's answer begin with its prompt (one chunk
	// marked Echo; with logprobs, each prompt token's, the first one's
	// absent); with Echo, MaxTokens 0 generates nothing.
	Echo        bool     `json:"echo,omitempty"`
	Stop        []string `json:"stop,omitempty"`
	Logprobs    bool     `json:"logprobs,omitempty"`
	TopLogprobs int      `json:"top_logprobs,omitempty"`
	Sampling    Sampling `json:"sampling"`
	User        string   `json:"user,omitempty"`
	// Tools are the functions the model may call; ToolChoice is "auto"
	// (the model decides; its output is parsed for calls), "required" (at
	// least one call, enforced by the grammar) or a function's name (that
	// call, enforced); ParallelToolCalls allows several calls.
	Tools             []Tool `json:"tools,omitempty"`
	ToolChoice        string `json:"tool_choice,omitempty"`
	ParallelToolCalls bool   `json:"parallel_tool_calls,omitempty"`
	// Share names the choices of one client request (n > 1) sent as
	// separate requests (to workers without Heartbeat.Choices): on one
	// worker, a choice with the same prompt as a running one forks that
	// one's evaluated prompt instead of evaluating it again.
	Share string `json:"share,omitempty"`
	// Choices, when above 1, is the number of choices this one request
	// asks for (n, or best_of): the worker evaluates the prompt once and
	// runs Choices sequences forked from it, choice j sampling with
	// Sampling.Seed+j (when a seed is set), and tags every chunk with its
	// Chunk.Choice. Only workers whose heartbeat offers as many
	// (Heartbeat.Choices) are sent one.
	Choices int `json:"choices,omitempty"`
	// Constraint restricts the output to a grammar (structured outputs);
	// nil: free text.
	Constraint *Constraint `json:"constraint,omitempty"`

	// Inputs, Labels and Template are the classification's (Kind
	// KindClassification): each input is put into Template in place of
	// "{input}" ("" takes the worker's default template) and every label,
	// after a space, is scored as the continuation of that prompt.
	Inputs   []string `json:"inputs,omitempty"`
	Labels   []string `json:"labels,omitempty"`
	Template string   `json:"template,omitempty"`

	// TokenInputs are an embedding's inputs given as token ids (used as
	// given: no BOS is added), instead of Inputs. Dimensions, when not 0,
	// is the vector length the client asked for: the worker refuses it
	// unless it is the model's.
	TokenInputs [][]int32 `json:"token_inputs,omitempty"`
	Dimensions  int       `json:"dimensions,omitempty"`

	// Deadline is the Unix time in milliseconds after which the request
	// must not start; 0 means none.
	Deadline int64 `json:"deadline,omitempty"`
	// ReplyTo is the subject the worker publishes Chunks to.
	ReplyTo string `json:"reply_to"`
	// Resume holds token ids the client already received from an earlier
	// attempt; the worker continues after them and numbers its chunks from
	// ResumeSeq.
	Resume    []int32 `json:"resume,omitempty"`
	ResumeSeq uint64  `json:"resume_seq,omitempty"`
	// ResumeChoices is Resume for a request of several Choices: entry j
	// is choice j's progress (its tokens delivered, or Done once its
	// final chunk was). It has Choices entries, or none on a first
	// attempt.
	ResumeChoices []ChoiceResume `json:"resume_choices,omitempty"`
	// ResumeText is the text the client already received from earlier
	// attempts, for workers that cannot use token ids (upstream engines:
	// a completion continues from Prompt+ResumeText, a chat from an
	// assistant message holding it). When Resume is absent but ResumeText
	// is not, some of that text came from such a worker and has no ids.
	ResumeText string `json:"resume_text,omitempty"`
	// ContinueFinal makes a chat whose last message is the assistant's
	// continue that message instead of opening a new turn (vLLM's
	// continue_final_message): the rendered prompt ends with its content.
	ContinueFinal bool `json:"continue_final,omitempty"`
	// Background marks work nobody waits for (batch lines, async jobs):
	// workers run it only while no interactive request needs the engine.
	Background bool `json:"background,omitempty"`
	// Attempt counts dispatches of this request, starting at 1.
	Attempt int `json:"attempt,omitempty"`
	// Tenant names who sent the request, for fair queueing between
	// callers: 16 hex digits of the SHA-256 of the API key it was
	// authenticated with (never the key itself); "" without API keys.
	// Requests of one model wait in round-robin order between tenants.
	Tenant string `json:"tenant,omitempty"`
	// ChunkFrames is the token-frame version the gateway reads (see
	// FrameVersion): a worker that knows it sends step chunks as binary
	// frames, coalescing steps that are ready at once. 0: JSON only.
	ChunkFrames int `json:"chunk_frames,omitempty"`
	// Whole says the client takes the answer whole (it does not stream):
	// no chunk reaches it before the final one, so a worker may produce
	// the text in fewer, larger chunks. An upstream worker asks its
	// server for a short answer unstreamed (package upstream).
	Whole bool `json:"whole,omitempty"`
}

// Slots is the number of worker slots r takes: one per choice it still
// runs — a resumed request's finished choices (ResumeChoices Done) take
// none — and at least one. Gateways and workers count a request by it.
func (r *Request) Slots() int {
	n := max(r.Choices, 1)
	if r.Choices > 1 && len(r.ResumeChoices) == r.Choices {
		for _, c := range r.ResumeChoices {
			if c.Done {
				n--
			}
		}
	}
	return max(n, 1)
}

// ChoiceResume is one choice's progress when a request of several choices
// is resumed: the token ids its client already received, or Done when its
// final chunk was delivered (the worker does not run it again).
type ChoiceResume struct {
	Tokens []int32 `json:"tokens,omitempty"`
	Done   bool    `json:"done,omitempty"`
}

// TokenLogprob is a token's log-probability and its top alternatives.
type TokenLogprob struct {
	Token   string         `json:"token"`
	ID      int32          `json:"id"`
	Logprob float32        `json:"logprob"`
	Top     []TokenLogprob `json:"top,omitempty"`
	// None marks a token without a log-probability: an echoed prompt's
	// first token, which nothing precedes (Logprob and Top are empty).
	None bool `json:"none,omitempty"`
}

// Usage counts the tokens of a request.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// Error is a failure reported by a worker; Code is a stable error code from
// the error catalog (e.g. "context_length_exceeded").
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Param names the request field at fault, when one is.
	Param string `json:"param,omitempty"`
}

// Chunk carries one step of a generation back to the gateway. Seq numbers
// the chunks of one request from 1; the gateway reorders and drops
// duplicates by Seq. The last chunk has FinishReason or Error set, and Usage.
type Chunk struct {
	V      int    `json:"v"`
	ID     string `json:"id"`
	Seq    uint64 `json:"seq"`
	Worker string `json:"worker,omitempty"`
	// Choice is the choice this chunk belongs to, in a request of
	// several (Request.Choices; 0 otherwise). Each choice ends with a
	// chunk with FinishReason (Final); the request ends when every choice
	// has, or with the first Error. An Echo chunk of such a request
	// echoes the prompt for every choice.
	Choice   int            `json:"choice,omitempty"`
	Text     string         `json:"text,omitempty"`
	Tokens   []int32        `json:"tokens,omitempty"`
	Logprobs []TokenLogprob `json:"logprobs,omitempty"`
	// Echo marks the chunk that echoes a completion's prompt (Request.Echo):
	// its Text and Logprobs are the prompt's, not generated.
	Echo         bool   `json:"echo,omitempty"`
	FinishReason string `json:"finish_reason,omitempty"`
	// ToolCalls are pieces of the tool calls the model is making, streamed
	// as they are generated (OpenAI's delta.tool_calls): the first piece of
	// a call carries its Index, ID and Name, later ones fragments of its
	// Arguments. A request whose calls were made ends with FinishReason
	// "tool_calls".
	ToolCalls []ToolCallDelta `json:"tool_calls,omitempty"`
	Usage     *Usage          `json:"usage,omitempty"`
	Error     *Error          `json:"error,omitempty"`
	// Scores answers one input of a classification request.
	Scores *Scores `json:"scores,omitempty"`
	// Embedding answers one input of an embedding request.
	Embedding *Embedding `json:"embedding,omitempty"`
	// Attempt is the Request.Attempt this chunk answers; the gateway
	// ignores chunks of attempts it has given up on.
	Attempt int `json:"attempt,omitempty"`
	// At is the worker's clock when it sent the chunk, in Unix
	// microseconds, on an attempt's first chunk and on the final one (0
	// on the others), for request timelines.
	At int64 `json:"at,omitempty"`
	// More, never on the wire, tells the transport that the worker has
	// the request's next chunk ready now: it may hold this one and send
	// both in one message. A worker that marks a chunk More calls send
	// again without waiting on anything, with the next chunk or with nil
	// (nothing followed after all: send what is held).
	More bool `json:"-"`
}

// Scores is a classification's answer for one input. Chunk Seq k carries
// input k-1 (Seq 1 is input 0), so a resumed attempt starts at input
// ResumeSeq-1 and never answers an input twice.
type Scores struct {
	// Index is the input's position in Request.Inputs.
	Index int `json:"index"`
	// Logprobs holds each label's log-likelihood after the prompt, in the
	// order of Request.Labels: the sum of its tokens' log-probabilities.
	Logprobs []float64 `json:"logprobs"`
	// Tokens counts the tokens evaluated for this input: the prompt once
	// and every label's continuation tokens.
	Tokens int `json:"tokens"`
}

// Embedding is an embedding request's answer for one input. As with
// Scores, chunk Seq k carries input k-1.
type Embedding struct {
	// Index is the input's position in Request.Inputs or TokenInputs.
	Index int `json:"index"`
	// Vector is the pooled, L2-normalised embedding.
	Vector []float32 `json:"vector"`
	// Tokens counts the input's tokens.
	Tokens int `json:"tokens"`
}

// Final reports whether c is the last chunk of its request, or, in a
// request of several choices, of its choice (an Error ends them all).
func (c *Chunk) Final() bool { return c.FinishReason != "" || c.Error != nil }

// Accept is a worker's immediate reply to a Request: Error is nil when the
// worker took the request (its chunks follow on ReplyTo), or says why not
// (CodeOverloaded: no free slot; CodeDeadline: the deadline passed;
// CodeModelNotFound: the worker does not serve the model).
type Accept struct {
	V       int    `json:"v"`
	ID      string `json:"id"`
	Worker  string `json:"worker"`
	Attempt int    `json:"attempt,omitempty"`
	Error   *Error `json:"error,omitempty"`
	// HeartbeatSeq is the Seq of the worker's latest heartbeat when it
	// admitted the request: heartbeats numbered above it were taken after
	// the admission and list the request while it runs. 0: not reported.
	HeartbeatSeq uint64 `json:"heartbeat_seq,omitempty"`
	// At is the worker's clock when it answered, in Unix microseconds (0:
	// not reported), for request timelines.
	At int64 `json:"at,omitempty"`
}

// Cancel tells the worker holding request ID to stop it.
type Cancel struct {
	V  int    `json:"v"`
	ID string `json:"id"`
	// Attempt, when not 0, limits the cancel to that attempt.
	Attempt int `json:"attempt,omitempty"`
}

// Heartbeat is a worker's periodic statement of its capacity.
type Heartbeat struct {
	V         int      `json:"v"`
	Worker    string   `json:"worker"`
	Models    []string `json:"models"`
	FreeSlots int      `json:"free_slots"`
	Slots     int      `json:"slots"`
	Draining  bool     `json:"draining,omitempty"`
	// Active lists the ids of the requests the worker holds.
	Active []string `json:"active,omitempty"`
	// ActiveSlots gives, for the requests of Active that hold more than
	// one slot (a request of several choices holds one per choice), how
	// many they hold; the others hold one. A gateway counts other
	// gateways' requests by it.
	ActiveSlots map[string]int `json:"active_slots,omitempty"`
	// BackgroundSlots, when positive, are slots for background requests
	// only (batch lines, async jobs), besides Slots, which are then for
	// interactive requests only; FreeBackgroundSlots of them are free, and
	// Background lists the ids of Active that hold them. Absent (0): the
	// worker runs both kinds in Slots.
	BackgroundSlots     int      `json:"background_slots,omitempty"`
	FreeBackgroundSlots int      `json:"free_background_slots,omitempty"`
	Background          []string `json:"background,omitempty"`
	// IntervalMS is the period of the worker's heartbeats in milliseconds.
	IntervalMS int64 `json:"interval_ms,omitempty"`
	// Stopped marks the worker's last heartbeat: it holds nothing and
	// takes nothing more.
	Stopped bool `json:"stopped,omitempty"`
	// KV cache and prefix cache of a built-in engine (absent for engines
	// without them): blocks in all and free now, and the prefix cache's
	// block lookups and hits since the worker started.
	KVBlocks      int   `json:"kv_blocks,omitempty"`
	FreeKVBlocks  int   `json:"free_kv_blocks,omitempty"`
	PrefixLookups int64 `json:"prefix_lookups,omitempty"`
	PrefixHits    int64 `json:"prefix_hits,omitempty"`
	// Preemptions counts the sequences the engine preempted to free KV
	// blocks (they recompute later) since the worker started.
	Preemptions int64 `json:"preemptions,omitempty"`
	// PrefixPositions counts the prompt positions the engine took from
	// its prefix cache instead of evaluating them since the worker
	// started: whole blocks shared, and PrefixCopiedPositions, the
	// matching rows of a partly matching block copied.
	PrefixPositions       int64 `json:"prefix_positions,omitempty"`
	PrefixCopiedPositions int64 `json:"prefix_copied_positions,omitempty"`
	// ForkedPositions counts the prompt positions choices of one request
	// (Request.Share) took from another choice's KV cache instead of
	// evaluating them, since the worker started.
	ForkedPositions int64 `json:"forked_positions,omitempty"`
	// Progress grows while the worker's engine makes progress: its forward
	// passes (when the engine counts them) plus the chunks the worker sent.
	// Only its changes mean something; it starts at 1, so 0 (absent) marks
	// a worker that does not report it, which is never declared stalled.
	// A gateway that sees Active non-empty while Progress stands still for
	// its stall timeout treats the worker as stuck.
	Progress int64 `json:"progress,omitempty"`
	// Choices is the most choices the worker runs as one request
	// (Request.Choices), forking one evaluated prompt; 0: one choice per
	// request, so a gateway sends it n requests for n choices.
	Choices int `json:"choices,omitempty"`
	// Seq numbers the worker's heartbeats, from 1 (see
	// Accept.HeartbeatSeq); 0: not reported.
	Seq uint64 `json:"seq,omitempty"`
	// Unready marks a worker whose engine cannot take work now (an
	// upstream server that does not answer): it reports no free room, so
	// requests wait for it or go elsewhere, and /readyz does not count it.
	Unready bool `json:"unready,omitempty"`
	// Upstream is the base URL of the upstream engine an upstream worker
	// fronts (absent for the built-in engine), without credentials.
	Upstream string `json:"upstream,omitempty"`
	// UpstreamRefusals counts the upstream's 429/503 answers since the
	// worker started (each paused the worker's room for a while).
	UpstreamRefusals int64 `json:"upstream_refusals,omitempty"`
	// UpstreamLoad names where an upstream worker's Slots come from: the
	// upstream's own load report ("courier /v1/load", "llama-server
	// /slots", "vllm /metrics": requests of other clients lower the room),
	// or only the worker's
	// --slots less its own requests ("slots": the upstream tells no load;
	// "ollama /api/ps": Ollama tells which models are loaded, not how many
	// requests it runs, so other clients' requests are not seen).
	UpstreamLoad string `json:"upstream_load,omitempty"`
	// UpstreamUnloaded lists the worker's models that the upstream reports
	// as not loaded (Ollama's /api/ps): a request for one waits while the
	// upstream loads it. Placement does not use it.
	UpstreamUnloaded []string `json:"upstream_unloaded,omitempty"`
}
