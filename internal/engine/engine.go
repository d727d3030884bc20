// Package engine is Courier's built-in inference engine: it loads a GGUF
// Llama-family model and generates tokens. It knows nothing of the bus or
// HTTP; the worker drives it through Generate.
package engine

import (
	"time"

	"courier/internal/engine/grammar"
	"courier/internal/engine/sampler"
)

// Request is one generation: a tokenized prompt and how to continue it.
type Request struct {
	// Prompt holds the token ids to evaluate, BOS included when wanted.
	Prompt []int32
	// Resume holds tokens already generated (and delivered) by an earlier
	// attempt: they are evaluated after Prompt, count toward MaxTokens and
	// feed the penalties, and are not emitted again.
	Resume []int32
	// MaxTokens bounds the generated tokens (Resume included); 0 means up to
	// the context length.
	MaxTokens int
	// Sampling selects the next token.
	Sampling sampler.Params
	// Stop strings end generation; the text of a match is not emitted.
	Stop []string
	// TopLogprobs asks for that many alternatives per token (0 = none);
	// Logprobs asks for the chosen token's log-probability.
	Logprobs    bool
	TopLogprobs int
	// IgnoreEOS keeps generating past end-of-generation tokens.
	IgnoreEOS bool
	// Share, when not empty, names a group of requests with one prompt
	// (the n choices of a client's request). A request of the group that
	// starts while another runs forks that one's evaluated prompt (its KV
	// blocks shared, a partial last block copied) instead of evaluating it
	// again, and evaluates only the prompt's last row for its own logits
	// (a resumed one, only its Resume tokens); one that starts while the
	// group's first is still evaluating the prompt waits for it. Results
	// are those of the request alone.
	Share string
	// Grammar, when set, constrains the output (structured outputs): each
	// step only tokens that keep the text a prefix of a sentence of the
	// grammar may be drawn, end-of-generation only where it is complete,
	// which ends the generation even with IgnoreEOS.
	Grammar *grammar.Grammar
	// Background marks work nobody waits for (batch lines): its rows are
	// left out of every step that has a foreground sequence to run.
	Background bool
	// Out, when set, has a pipeline's last stage emit the generation's
	// chunks (StreamOut): Generate's emit still sees every token, with no
	// text. It needs a tail that samples (Engine.TailEmits), and a Grammar,
	// if any, that records its Source: the last stage's stream then keeps
	// the grammar and samples with it.
	Out *StreamOut
}

// TokenLogprob is a token with its log-probability.
type TokenLogprob struct {
	ID      int32
	Text    string
	Logprob float32
}

// Token is one generated token as handed to the caller. Text is the text
// this step releases: it may be empty while bytes of an incomplete UTF-8
// sequence or a possible stop string are held back, and may hold text of
// earlier tokens once released. Text and Top are valid only during the
// callback (they reuse the engine's buffers, so decoding allocates nothing).
type Token struct {
	ID      int32
	Text    []byte
	Logprob float32
	Top     []TokenLogprob // valid only during the callback
	// More reports that the next token of this generation is already
	// computed and waits behind this one: the caller is behind the
	// engine, and may send both together instead of this one alone.
	More bool
	// Last reports that this is the generation's last event: Generate
	// returns its Result right after this callback, without computing
	// anything more, so the caller may send the token together with the
	// answer's end.
	Last bool
}

// Finish reasons, as OpenAI names them.
const (
	FinishStop   = "stop"   // end-of-generation token or stop string
	FinishLength = "length" // MaxTokens or the context length reached
)

// Result summarises a finished generation.
type Result struct {
	PromptTokens     int
	CompletionTokens int // Resume included
	FinishReason     string
	Prefill          time.Duration
	Decode           time.Duration
}
