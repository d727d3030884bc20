package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"courier/internal/bus"
	"courier/internal/jobs"
)

// maxRequestIDLen bounds a client-sent X-Request-Id.
const maxRequestIDLen = 64

// validRequestID reports whether a client-sent X-Request-Id is kept: 1 to
// 64 characters of [A-Za-z0-9._-] (safe in logs and headers).
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// reqInfo is what one HTTP request's log line says; ServeHTTP (or Execute)
// creates it and logs it when the request is done, the generation code
// fills in what it learns. Only the goroutine serving the request touches
// it.
type reqInfo struct {
	id     string // X-Request-Id
	client bool   // id was sent by the client
	route  string

	generation  bool // filled by generate or generateMulti
	model       string
	tenant      string
	workers     []string // in the order they answered
	attempts    int
	finish      string
	prompt      int
	completion  int
	queueWait   time.Duration // from dispatch to placement on a worker
	ttft        time.Duration
	hasFirst    bool
	background  bool
	choiceCount int

	// trace collects the request's timeline (nil: timelines are off);
	// finalWorkerAt is the worker's clock on the last final chunk.
	trace         *bus.Trace
	finalWorkerAt int64
	work          jobs.Work // the batch line or job it runs, if any
}

type reqInfoKey struct{}

// infoOf returns r's reqInfo, or nil when it has none.
func infoOf(r *http.Request) *reqInfo {
	i, _ := r.Context().Value(reqInfoKey{}).(*reqInfo)
	return i
}

// requestIDAttr names a request in a diagnostic log line by the same
// request_id as its request line (the bus id when it has no other).
func requestIDAttr(ctx context.Context, busID string) slog.Attr {
	if i, _ := ctx.Value(reqInfoKey{}).(*reqInfo); i != nil {
		return slog.String("request_id", i.id)
	}
	return slog.String("request_id", busID)
}

// busID is the bus id for a generation of r: the request id when the
// gateway made it (so the response id and X-Request-Id match), a fresh one
// when the client sent it (a client's id need not be unique, and bus ids
// go into NATS subjects).
func (s *server) busID(r *http.Request) string {
	if i := infoOf(r); i != nil && !i.client {
		return i.id
	}
	return s.newID()
}

// setRequestID sets X-Request-Id to id unless ServeHTTP already set it.
func setRequestID(w http.ResponseWriter, id string) {
	if w.Header().Get("X-Request-Id") == "" {
		w.Header().Set("X-Request-Id", id)
	}
}

// addWorker notes the worker and attempt of a chunk; it allocates only
// when the worker changes (a resume), never per token.
func (res *result) addWorker(c *bus.Chunk) {
	if c.Attempt > res.attempts {
		res.attempts = c.Attempt
	}
	if c.Worker != "" && (len(res.workers) == 0 || res.workers[len(res.workers)-1] != c.Worker) {
		res.workers = append(res.workers, c.Worker)
	}
}

// noteResult copies a finished (or failed) generation's facts into r's
// reqInfo.
func noteResult(r *http.Request, res *result, start, placed time.Time, tenant string, bg bool) {
	i := infoOf(r)
	if i == nil {
		return
	}
	i.generation, i.model, i.tenant, i.background = true, res.model, tenant, bg
	if !placed.IsZero() {
		i.queueWait = placed.Sub(start)
	}
	for _, w := range res.workers {
		if len(i.workers) == 0 || i.workers[len(i.workers)-1] != w {
			i.workers = append(i.workers, w)
		}
	}
	i.attempts = max(i.attempts, res.attempts)
	if i.finish == "" {
		i.finish = res.finish
	}
	u := res.apiUsage()
	i.prompt += u.PromptTokens
	i.completion += u.CompletionTokens
	if res.gotFirst && (!i.hasFirst || res.firstAt.Sub(start) < i.ttft) {
		i.hasFirst, i.ttft = true, res.firstAt.Sub(start)
	}
	if res.gotFirst && i.trace != nil {
		e := bus.TimelineEvent{Phase: bus.PhaseFirstToken, At: res.firstAt.UnixMicro(), WorkerAt: res.firstWorkerAt}
		if len(res.workers) > 0 {
			e.Worker = res.workers[0]
		}
		i.trace.Add(e)
	}
	i.finalWorkerAt = max(i.finalWorkerAt, res.finalWorkerAt)
	i.choiceCount++
}

// logRequest writes the one line a finished request gets: at info level,
// "request" with its id, route, status and total time, the model a
// generation route asked for (even when it failed), and for generations
// that were dispatched the tenant hash, workers, attempts, finish reason,
// token counts, queue wait and time to first token.
func (s *server) logRequest(ctx context.Context, i *reqInfo, status int, total time.Duration) {
	if !s.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	attrs := make([]slog.Attr, 0, 16)
	attrs = append(attrs,
		slog.String("request_id", i.id),
		slog.String("route", i.route),
		slog.Int("status", status),
		slog.Float64("total_ms", ms(total)),
	)
	if i.model != "" {
		attrs = append(attrs, slog.String("model", i.model))
	}
	if i.generation {
		attrs = append(attrs,
			slog.String("tenant", i.tenant),
			slog.Any("workers", i.workers),
			slog.Int("attempts", i.attempts),
			slog.String("finish_reason", i.finish),
			slog.Int("prompt_tokens", i.prompt),
			slog.Int("completion_tokens", i.completion),
			slog.Float64("queue_wait_ms", ms(i.queueWait)),
		)
		if i.hasFirst {
			attrs = append(attrs, slog.Float64("ttft_ms", ms(i.ttft)))
		}
		if i.choiceCount > 1 {
			attrs = append(attrs, slog.Int("choices", i.choiceCount))
		}
		if i.background {
			attrs = append(attrs, slog.Bool("background", true))
		}
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
}

// quietRoute reports routes that are not logged per request (probes,
// scrapes and the dashboard's polls, which would drown the log).
func quietRoute(label string) bool {
	switch label {
	case "healthz", "readyz", "metrics", "load", "status", "requests", "dashboard":
		return true
	}
	return false
}

// ms is d in milliseconds, rounded to microseconds.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
