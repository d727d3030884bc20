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
// output rows on to the next stage named in the message's route; the last
// stage sends the logits back to the first, which samples and emits chunks
// as any worker does, so gateways see one worker.
//
// Ordering: a Server handles its subscription's messages one at a time in
// arrival order, and a first stage sends a step only after the last one
// came back, so every stage sees each pipeline's steps in its first
// stage's order (a block's contents are written by the step that
// allocated it before any later step reads them). A Server keeps each
// pipeline's K and V apart (engine.StageCache per first stage), so several
// first stages share the later stages and their steps interleave: that is
// how several steps are in flight. The last stage answers with the logits
// (and embeddings) of the rows that want them, in parts that each fit the
// bus's payload limit.
//
// Failures: stage servers announce themselves every heartbeat interval; a
// Pipeline assembles a route from live announcements and stamps it with a
// new epoch. A stage that stops answering or announcing breaks the route:
// the step fails with engine.ErrUnavailable (the worker gives its requests
// back to the gateway, which resumes them elsewhere after the tokens
// already sent), the first stage forgets its prefix cache (the blocks'
// contents on a new replica are not there) and reports itself unready
// until a route can be assembled again. A route's first step opens its
// epoch on every server; a Server refuses steps of an epoch its pipeline
// did not open last, so late activations of a dead incarnation, and steps
// reaching a server restarted under the same name (its cache empty), are
// refused instead of computed.
package stage
