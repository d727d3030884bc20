package bus

import (
	"context"
	"errors"
)

// Dispatch errors, matched with errors.Is; the gateway maps each to a status.
var (
	ErrNoWorkers  = errors.New("bus: no worker serves this model")        // 503
	ErrQueueFull  = errors.New("bus: queue for this model is full")       // 429
	ErrTooLarge   = errors.New("bus: request too large for the bus")      // 413
	ErrNotPlaced  = errors.New("bus: request not placed before deadline") // 504
	ErrWorkerLost = errors.New("bus: worker lost and no retry possible")  // 502
	ErrShutdown   = errors.New("bus: shutting down")                      // 503
	// ErrChoicesUnsupported: no live worker of the model runs as many
	// choices as one request (Request.Choices, Heartbeat.Choices), though
	// some serve it: the caller sends one request per choice instead.
	ErrChoicesUnsupported = errors.New("bus: no worker of this model runs several choices as one request")
)

// Stream yields the chunks of one dispatched request in Seq order, without
// duplicates. Next returns io.EOF after the final chunk. Close releases the
// stream and, if the request is still running, cancels it on its worker.
type Stream interface {
	Next(ctx context.Context) (*Chunk, error)
	Close() error
}

// Recycler is the optional capability of a Stream whose chunks may be
// handed back once read: Recycle(c) lets the stream reuse c (and its
// Tokens and Logprobs) for a later chunk, so a reader that recycles what
// it read keeps the per-token path free of allocations. After Recycle the
// caller must not touch c, its slices or its strings.
type Recycler interface {
	Recycle(c *Chunk)
}

// Readier is an optional Stream capability: Ready reports whether Next
// would return without waiting (a chunk, the end or an error is there),
// so a caller can skip arming a timer for a wait that will not happen.
type Readier interface {
	Ready() bool
}

// Stable error codes a worker puts in Chunk.Error.Code; the gateway's error
// catalog maps each to an HTTP status.
const (
	CodeInvalidRequest = "invalid_request_error" // 400: the worker rejected a parameter
	CodePromptTooLong  = "prompt_too_long"       // 413: prompt (+max_tokens) exceeds the context
	CodeModelNotFound  = "model_not_found"       // 404: the worker does not serve the model
	CodeDeadline       = "deadline_exceeded"     // 504: not started before its deadline
	CodeOverloaded     = "overloaded"            // 429: the worker has no room after all
	CodeInternal       = "internal_error"        // 500: the engine failed
	CodeNonFinite      = "non_finite_logits"     // 500: the model produced NaN or Inf (corrupt weights, a numerical blow-up)
	// CodeUnavailable ends an attempt its engine could not finish (an
	// upstream server answered 429/503, or went away mid-answer): the
	// gateway places the request again, resuming after what was delivered,
	// instead of failing it (at most its MaxAttempts dispatches).
	CodeUnavailable = "unavailable" // 503 once attempts run out
)
