// Package upstream fronts an OpenAI-compatible server — vLLM, SGLang,
// llama.cpp's llama-server, Ollama, another Courier, a hosted API — as a
// worker.Backend, so that Courier's gateway (placement, fair queueing,
// batches, async jobs, resume) serves models that run elsewhere.
//
// A Backend turns a bus request into one streamed HTTP request to the
// upstream (POST /completions or /chat/completions with stream: true) and
// re-chunks its server-sent events as bus chunks, one per event with text,
// so the gateway cannot tell it from the built-in engine. It owns only the
// transport: admission, slots, cancellation and drain stay in package
// worker, which asks the backend's Room how many requests may start now.
//
// Promises:
//   - The bearer key is sent in the Authorization header and nowhere else:
//     never logged, never in errors or heartbeats.
//   - The upstream's 429 and 503 (and 502, 504, a refused or broken
//     connection) never fail a request at once: the backend backs off
//     (exponential, jittered, bounded; Retry-After honoured up to a bound),
//     reports no room meanwhile, and gives the request back to the gateway
//     (bus.CodeUnavailable), which places it again after what the client
//     already has. Other upstream errors become OpenAI errors carrying the
//     upstream's message.
//   - A resumed request continues: a completion from prompt + the text
//     already sent, a chat from an assistant message holding it (vLLM's
//     continue_final_message, which Courier's chat endpoint also accepts;
//     llama-server prefills a trailing assistant message). Text the client
//     has is never sent again.
//   - A probe goroutine, owned by the Backend and stopped by Close, checks
//     the upstream's health (GET /models) and, where it exposes one, its
//     load (Courier /v1/load, llama-server /slots, vLLM /metrics;
//     Ollama's /api/ps tells only which models are loaded, so an Ollama
//     upstream's room counts the worker's own requests alone, and
//     heartbeats say so: Backend.Load) every ProbeInterval (the worker's
//     heartbeat interval), and identifies its engine (engine.go), under whose names tools and
//     output constraints are sent; what an engine cannot enforce is a 400
//     naming it, never dropped. An answer with a constraint, tools or a
//     token-id prompt is not resumed (an upstream would restart its grammar
//     inside it): a lost one is an error.
//   - Classifications and completions with echo and logprobs go only to
//     engines that score prompts (Courier, vLLM), as non-streamed echoes
//     (classify.go).
package upstream
