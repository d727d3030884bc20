// Package worker drives one model engine for the bus: it admits a request
// only when it has a free slot of the request's kind (so the gateway never
// over-fills it; batch lines and async jobs have background slots of their
// own, so a batch never takes an interactive slot), turns
// the request into an engine call (chat template, tokens, sampling), streams
// every generated token back as a numbered bus.Chunk and ends with one final
// chunk (finish reason and usage, or an error code). A classification
// request (bus.KindClassification) generates nothing: each input's labels
// are scored with the engine's Score (up to eight inputs at once) and sent
// as one Scores chunk per input, in order, Seq k for input k-1
// (classify.go); an embedding request (bus.KindEmbedding) likewise sends one
// Embedding chunk per input, from the engine's Embed (embed.go).
//
// Promises:
//   - Admit never blocks on generation; a full worker answers
//     bus.CodeOverloaded at once.
//   - Chunks of one request are sent in Seq order from one goroutine,
//     numbered from Request.ResumeSeq (or 1); a resumed request continues
//     after Request.Resume and does not send those tokens again.
//   - Cancel stops a generation within one engine step; a cancelled or
//     force-stopped generation sends no final chunk (the gateway re-dispatches
//     or has gone).
//   - Drain stops admitting, lets held requests finish, and cancels them only
//     when its context ends. Every generation goroutine is owned and waited
//     for.
//
// What runs an admitted request is a Backend (backend.go): the built-in
// engine (New), or another server's (NewBackend; package upstream fronts
// OpenAI-compatible servers). A Backend that is a Roomer lowers the slots
// the worker admits into and reports (an upstream's load, its 429 back-off,
// its health); a final chunk coded bus.CodeUnavailable gives the request
// back to the gateway, and the worker calls Config.OnChange first so the
// gateway hears of the lowered room before it places the request again.
// After Admit refused a request for want of a slot, the next slot freed
// calls Config.OnChange too (a heartbeat at once): the gateway refused
// offers it again then, not on its next sweep.
//
// The package knows nothing of NATS: natsbus.Host serves a Worker on the bus.
package worker
