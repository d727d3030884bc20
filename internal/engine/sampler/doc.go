// Package sampler turns the logits of one decoding step into the next token,
// reports log-probabilities, and cuts the generated text at stop strings. It
// is the engine's last stage and knows nothing of models, the bus or HTTP.
//
// # The chain
//
// Sample runs llama.cpp's default order (common_sampler's defaults, without
// the stages Courier does not offer: DRY, typical, XTC, mirostat):
//
//	penalties → top-k → top-p → min-p → temperature → draw
//
// The stages:
//
//   - penalties: for each token counted in the window, a repetition penalty
//     r divides a positive logit by r and multiplies a negative one by r;
//     then count·FrequencyPenalty + PresencePenalty is subtracted, count being
//     how often the token was generated in the window.
//   - top-k keeps the K best logits (partial selection with a heap, never a
//     full sort of the vocabulary).
//   - top-p keeps the shortest best-first prefix whose probability reaches P,
//     probabilities being the softmax of the surviving logits *before*
//     temperature (llama.cpp's order; vLLM applies temperature first, so
//     the same P keeps a different set when T != 1).
//   - min-p keeps the tokens whose probability is at least P times the best
//     one's.
//   - temperature divides the logits by T, and the token is drawn from their
//     softmax with the Sampler's own PCG generator.
//
// Temperature 0 is greedy: the penalties apply, then the argmax is taken,
// the lowest id winning a tie, exactly as llama.cpp's greedy sampler (the
// filters always keep the argmax, so they are skipped). TopK 1 gives the same
// token as greedy at any temperature.
//
// # What 0 means
//
//	Temperature       0 = greedy; otherwise > 0
//	TopK              0 = off (OpenAI has none; vLLM's -1 and llama.cpp's <= 0 map to 0)
//	TopP              0 or 1 = off; otherwise in (0, 1)
//	MinP              0 = off
//	RepeatPenalty     0 or 1 = off (llama.cpp repeat_penalty, vLLM repetition_penalty)
//	FrequencyPenalty  0 = off (OpenAI frequency_penalty, any finite value)
//	PresencePenalty   0 = off (OpenAI presence_penalty, any finite value)
//	RepeatLastN       0 = the whole history (vLLM); llama.cpp's default is 64,
//	                  and its -1 (the context) maps to 0
//	Seed              0 = a random seed (Sampler.Seed reports it), unless
//	                  ExplicitSeed: an API client's seed 0 is a fixed seed
//
// The gateway, not this package, maps API defaults (OpenAI's temperature 1,
// llama.cpp's top_k 40) onto Params; invalid values are errors that name the
// field and wrap ErrInvalidParams.
//
// # Which tokens the penalties see
//
// The engine calls AcceptPrompt with the prompt and Accept with every
// generated token (tokens resumed from an earlier attempt included). Both
// occupy the RepeatLastN window. The repetition penalty counts them all,
// as llama-server (which replays the prompt into its sampler) and vLLM (prompt
// and output tokens) do. Frequency and presence penalties count generated
// tokens only, following OpenAI's definition and vLLM; llama.cpp counts the
// prompt too, the one deliberate difference. With only RepeatPenalty set, a
// window equal to llama.cpp's and the prompt accepted, the penalties match
// llama.cpp exactly.
//
// # Log-probabilities
//
// LogSoftmaxTop reports the log-softmax of the raw logits over the whole
// vocabulary (llama-server's n_probs, vLLM's default raw logprobs). Sample
// modifies the logits while it works but restores them, so the engine calls
// Sample, then LogSoftmaxTop on the same slice, with no copy of the
// vocabulary.
//
// # Streaming text
//
// TextStream receives each token's bytes and releases text as soon as it is
// final: it holds back an incomplete UTF-8 sequence and any tail that could
// still begin a stop string, and on a match releases only the text before
// it. At the end, Flush releases what is held, an incomplete UTF-8 tail
// becoming U+FFFD.
//
// # Allocation
//
// Sample, Accept, LogSoftmaxTop (given its dst) and TextStream.Push allocate
// nothing per token in steady state; the tests prove it with
// testing.AllocsPerRun. Scratch is sized to the vocabulary at New and reused
// across Reset.
package sampler
