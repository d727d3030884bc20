package bus

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// Timeline phases, in the order a request normally passes them.
const (
	// PhaseReceived: the gateway began reading the HTTP request (or a batch
	// line or async job began to run).
	PhaseReceived = "received"
	// PhaseQueued: the gateway began placing the request; it waits in the
	// model's queue while no worker has a free slot of its kind.
	PhaseQueued = "queued"
	// PhasePlaced: a worker admitted an attempt (Worker, Attempt, Reason;
	// WorkerAt is the worker's clock at admission, or at the attempt's
	// first chunk when that was handled before the worker's accept).
	PhasePlaced = "placed"
	// PhaseFirstToken: the gateway received the first chunk (WorkerAt: the
	// worker sent it).
	PhaseFirstToken = "first_token"
	// PhaseResumed: the gateway gave up on an attempt (its worker was
	// lost, stalled or gave it back) and places the request again, after
	// what the client already received.
	PhaseResumed = "resumed"
	// PhaseFinished: the gateway wrote the last byte of the answer
	// (WorkerAt: the worker sent the final chunk).
	PhaseFinished = "finished"
)

// Placement reasons of a PhasePlaced event.
const (
	ReasonAffinity    = "affinity"     // the worker holding the longest shared prefix
	ReasonLeastLoaded = "least_loaded" // the worker with the most free slots
	ReasonResumed     = "resumed"      // a later attempt after a resume
)

// Timeline statuses.
const (
	StatusSucceeded = "succeeded" // answered with 2xx
	StatusFailed    = "failed"    // answered with an error status
	StatusCancelled = "cancelled" // the client left before the answer ended
)

// ErrTimelineNotFound reports a timeline that is not kept: never recorded,
// expired, or another tenant's.
var ErrTimelineNotFound = errors.New("bus: no such request timeline")

// TimelineEvent is one phase of a request. Times are Unix microseconds: At
// on the gateway's clock, WorkerAt (0: not known) on the worker's.
type TimelineEvent struct {
	Phase    string `json:"phase"`
	At       int64  `json:"at"`
	WorkerAt int64  `json:"worker_at,omitempty"`
	Worker   string `json:"worker,omitempty"`
	Attempt  int    `json:"attempt,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// Timeline is the record of one finished request the gateway keeps in
// JetStream (GET /v1/requests/{id}); see docs/api.md.
type Timeline struct {
	V  int    `json:"v"`
	ID string `json:"id"` // the request's X-Request-Id
	// Tenant is the owner's hash (Request.Tenant); "" without API keys.
	Tenant  string `json:"tenant,omitempty"`
	Gateway string `json:"gateway,omitempty"`
	Route   string `json:"route"`
	Model   string `json:"model,omitempty"`
	// Status is StatusSucceeded, StatusFailed or StatusCancelled;
	// HTTPStatus the status the client got (499: it left).
	Status       string `json:"status"`
	HTTPStatus   int    `json:"http_status"`
	FinishReason string `json:"finish_reason,omitempty"`
	// Workers that answered, in order, and the highest attempt.
	Workers          []string `json:"workers,omitempty"`
	Attempts         int      `json:"attempts,omitempty"`
	PromptTokens     int      `json:"prompt_tokens,omitempty"`
	CompletionTokens int      `json:"completion_tokens,omitempty"`
	Background       bool     `json:"background,omitempty"`
	// Batch and Job link a batch line's or async job's request to its
	// batch or job.
	Batch    string          `json:"batch_id,omitempty"`
	CustomID string          `json:"custom_id,omitempty"`
	Job      string          `json:"job_id,omitempty"`
	Events   []TimelineEvent `json:"events"`
}

// TimelineFilter selects timelines to list: every non-zero field must
// match; Limit bounds the answer (newest first).
type TimelineFilter struct {
	Model  string
	Status string
	Since  time.Time // received at or after
	Limit  int
}

// Match reports whether t passes f's model, status and since.
func (f TimelineFilter) Match(t *Timeline) bool {
	if f.Model != "" && t.Model != f.Model {
		return false
	}
	if f.Status != "" && t.Status != f.Status {
		return false
	}
	if !f.Since.IsZero() && (len(t.Events) == 0 || t.Events[0].At < f.Since.UnixMicro()) {
		return false
	}
	return true
}

// Trace collects the events of one request while it runs: the gateway's
// HTTP side and its dispatcher add to it from their goroutines (a resume
// is placed by the dispatcher's own). It is safe for concurrent use; a nil
// *Trace records nothing.
type Trace struct {
	mu     sync.Mutex
	events []TimelineEvent // guarded by mu
}

// NewTrace returns a trace whose first event is PhaseReceived at t.
func NewTrace(t time.Time) *Trace {
	tr := &Trace{events: make([]TimelineEvent, 1, 8)}
	tr.events[0] = TimelineEvent{Phase: PhaseReceived, At: t.UnixMicro()}
	return tr
}

// Add records e.
func (t *Trace) Add(e TimelineEvent) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.events = append(t.events, e)
	t.mu.Unlock()
}

// Events returns the events recorded so far, ordered by At (stable).
func (t *Trace) Events() []TimelineEvent {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	ev := slices.Clone(t.events)
	t.mu.Unlock()
	slices.SortStableFunc(ev, func(a, b TimelineEvent) int {
		switch {
		case a.At < b.At:
			return -1
		case a.At > b.At:
			return 1
		}
		return 0
	})
	return ev
}

type traceKey struct{}

// WithTrace returns ctx carrying t, for Dispatch: the dispatcher records
// queueing, placements and resumes into it.
func WithTrace(ctx context.Context, t *Trace) context.Context {
	if t == nil {
		return ctx
	}
	return context.WithValue(ctx, traceKey{}, t)
}

// TraceFrom returns the Trace in ctx, nil when it has none.
func TraceFrom(ctx context.Context) *Trace {
	t, _ := ctx.Value(traceKey{}).(*Trace)
	return t
}
