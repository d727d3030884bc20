// Package stage runs one model as a pipeline of stage workers joined by
// the message bus: each stage holds a share of the model's layers, and a
// step's hidden-state rows travel between them as one binary message
// (wire.go, specified in docs/protocol.md, "Stage messages").
//
// The first stage is an ordinary worker whose engine (engine.Options.Tail)
// stops after its own layers: its scheduler decides everything — which
// rows each step evaluates, KV block allocation, prefix sharing,
// preemption — and a Pipeline (the engine's Tail) sends the step down the
// chain. Every later stage is a Server around an engine.Stage: it runs
// the step through its layers, keeping the K and V of those layers in a
// pool mirrored block for block from the first stage's, and passes the
// output rows on to the next stage named in the message's route. The last
// stage samples: the first stage keeps each generation's sampler state and
// sends with each row what its next draw needs (engine.RowSample), and the
// last stage answers with the token and the log-probabilities asked for
// (sample.go); logits travel back only for scoring rows and for the
// grammar-constrained rows of generations whose chunks the first stage's
// worker emits. For the generations whose worker asks it to
// (engine.Request.Out), the last stage also emits the chunks (emit.go):
// it keeps each stream's detokenizer, stop strings, counts, grammar
// (compiled from the source the stream record carries, sampled through;
// compiled ahead, off the step handler, when the prompt's first step asks:
// Message.Prepare)
// and tool-call reading, publishes the same token frames a worker sends
// to the gateway's subject under the first stage's worker name, and tells
// the first stage of a stop string (or a grammar that allows nothing
// more) in the pick; the first stage keeps the generation
// (scheduling, cancellation, max_tokens and end-of-generation), so
// gateways still see one worker.
//
// Ordering: a Server handles its subscription's messages one at a time in
// arrival order, and one publisher's messages on a subject arrive in the
// order sent, so every stage sees each pipeline's steps in the order its
// first stage sent them. That order is all exactness needs: a block's
// contents are written by the step that allocated it before any later
// step reads them, at every stage. A first stage keeps several steps in
// flight (micro-batches; Pipeline.Depth, by default as many as the route
// has stages): its scheduler sends a step, then builds and sends the next
// from other sequences while the later stages compute the first, so with
// enough sequences every stage works at once. A sequence has at most one
// step in flight (its next token depends on its last), and nothing frees,
// preempts or finishes it until that step's answer is back, so no block
// an in-flight step writes is handed to another sequence before it ran;
// a later step may read blocks an earlier one in flight writes (a shared
// prefix, a fork's source), which every stage computes first. The answers
// come back in the order sent (the last stage answers steps in the order
// it runs them) and are taken in that order. A Server also keeps each
// pipeline's K and V apart (engine.StageCache per first stage), so several
// first stages can share the later stages and their steps interleave.
// The last stage answers with the picks of the rows it sampled, then the
// logits (and embeddings) of the rows that want them, in parts that each
// fit the bus's payload limit; a step whose logits rows were all sampled
// is answered by its picks alone. The first stage takes the answer parts
// on the reply subscription's own goroutine, with no hop between it and
// the scheduler.
//
// Failures: stage servers announce themselves every heartbeat interval; a
// Pipeline assembles a route from live announcements and stamps it with a
// new epoch. A stage that stops answering or announcing breaks the route:
// every step in flight fails with engine.ErrUnavailable (the worker gives its requests
// back to the gateway, which resumes them elsewhere after the tokens
// already sent), the first stage forgets its prefix cache (the blocks'
// contents on a new replica are not there) and reports itself unready
// until a route can be assembled again. A route's first step opens its
// epoch on every server; a Server refuses steps of an epoch its pipeline
// did not open last, so late activations of a dead incarnation, and steps
// reaching a server restarted under the same name (its cache empty), are
// refused instead of computed.
package stage
