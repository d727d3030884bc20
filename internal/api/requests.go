package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"courier/internal/bus"
	"courier/internal/jobs"
)

// TimelineStore keeps the timelines of finished requests (natsbus.Timelines
// on JetStream). Record must return at once (it runs as the request ends);
// Get returns bus.ErrTimelineNotFound for a timeline it does not keep.
type TimelineStore interface {
	Record(t *bus.Timeline)
	Get(ctx context.Context, tenant, id string) (*bus.Timeline, error)
	List(ctx context.Context, tenant string, f bus.TimelineFilter) ([]*bus.Timeline, error)
}

// Limits of GET /v1/requests.
const (
	defaultRequestsLimit = 20
	maxRequestsLimit     = 1000
)

// traced returns ctx carrying r's timeline trace, for Dispatch.
func traced(r *http.Request, ctx context.Context) context.Context {
	if i := infoOf(r); i != nil {
		return bus.WithTrace(ctx, i.trace)
	}
	return ctx
}

// startTrace gives info a timeline trace received at start when timelines
// are kept.
func (s *server) startTrace(ctx context.Context, info *reqInfo, start time.Time) {
	if s.cfg.Timelines == nil {
		return
	}
	info.trace = bus.NewTrace(start)
	info.work = jobs.WorkFromContext(ctx)
}

// recordTimeline hands a finished generation's timeline to the store: the
// trace's events, closed by PhaseFinished at end.
func (s *server) recordTimeline(info *reqInfo, status int, end time.Time) {
	if info.trace == nil || !info.generation {
		return
	}
	info.trace.Add(bus.TimelineEvent{Phase: bus.PhaseFinished, At: end.UnixMicro(), WorkerAt: info.finalWorkerAt})
	t := &bus.Timeline{
		V: bus.Version, ID: info.id, Tenant: info.tenant, Gateway: s.gatewayID, Route: info.route, Model: info.model,
		Status: timelineStatus(status), HTTPStatus: status, FinishReason: info.finish,
		Workers: info.workers, Attempts: info.attempts,
		PromptTokens: info.prompt, CompletionTokens: info.completion, Background: info.background,
		Batch: info.work.Batch, CustomID: info.work.CustomID, Job: info.work.Job,
		Events: info.trace.Events(),
	}
	s.cfg.Timelines.Record(t)
}

// timelineStatus names an HTTP status as a timeline status.
func timelineStatus(status int) string {
	switch {
	case status == statusClientClosed:
		return bus.StatusCancelled
	case status >= 200 && status < 300:
		return bus.StatusSucceeded
	}
	return bus.StatusFailed
}

// requestTimeline is a timeline as GET /v1/requests answers it.
type requestTimeline struct {
	Object string `json:"object"` // "request"
	*bus.Timeline
	// TotalMS is received → finished, in milliseconds.
	TotalMS float64 `json:"total_ms"`
}

func asRequest(t *bus.Timeline) requestTimeline {
	rt := requestTimeline{Object: "request", Timeline: t}
	if n := len(t.Events); n > 1 {
		rt.TotalMS = float64(t.Events[n-1].At-t.Events[0].At) / 1000
	}
	return rt
}

// timelinesOff answers the request endpoints of a gateway that keeps no
// timelines.
func timelinesOff(w http.ResponseWriter, s *server) {
	s.fail(w, errorf(CodeNotFound, "", "request timelines are not kept: the bus has no JetStream"))
}

// getRequest serves GET /v1/requests/{id}: the caller's own request only
// (another key's is 404, as a missing one).
func (s *server) getRequest(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Timelines == nil {
		timelinesOff(w, s)
		return
	}
	id := strings.TrimPrefix(r.URL.Path, "/v1/requests/")
	for _, p := range []string{"chatcmpl-", "cmpl-"} { // a response id names its request too
		id = strings.TrimPrefix(id, p)
	}
	if !validRequestID(id) {
		s.fail(w, errorf(CodeNotFound, "", "no request %q", id))
		return
	}
	t, err := s.cfg.Timelines.Get(r.Context(), s.tenant(r, false), id)
	if errors.Is(err, bus.ErrTimelineNotFound) {
		s.fail(w, errorf(CodeNotFound, "", "no request %q (timelines are kept for --timeline-ttl)", id))
		return
	}
	if err != nil {
		s.fail(w, errorf(CodeInternal, "", "reading the request's timeline failed"))
		return
	}
	writeJSON(w, http.StatusOK, asRequest(t))
}

// listRequests serves GET /v1/requests?model=&status=&since=&limit=: the
// caller's requests, newest first.
func (s *server) listRequests(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Timelines == nil {
		timelinesOff(w, s)
		return
	}
	f, e := parseRequestFilter(r)
	if e != nil {
		s.fail(w, e)
		return
	}
	list, err := s.cfg.Timelines.List(r.Context(), s.tenant(r, false), f)
	if err != nil {
		s.fail(w, errorf(CodeInternal, "", "listing request timelines failed"))
		return
	}
	data := make([]requestTimeline, len(list))
	for i, t := range list {
		data[i] = asRequest(t)
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// parseRequestFilter reads GET /v1/requests' query: since is RFC 3339 or
// Unix seconds, limit 1 to 1000 (default 20), status one of succeeded,
// failed, cancelled.
func parseRequestFilter(r *http.Request) (bus.TimelineFilter, *Error) {
	q := r.URL.Query()
	f := bus.TimelineFilter{Model: q.Get("model"), Status: q.Get("status"), Limit: defaultRequestsLimit}
	switch f.Status {
	case "", bus.StatusSucceeded, bus.StatusFailed, bus.StatusCancelled:
	default:
		return f, errorf(CodeInvalidValue, "status", "status %q: use succeeded, failed or cancelled", f.Status)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxRequestsLimit {
			return f, errorf(CodeInvalidValue, "limit", "limit %q: use 1 to %d", v, maxRequestsLimit)
		}
		f.Limit = n
	}
	if v := q.Get("since"); v != "" {
		if sec, err := strconv.ParseFloat(v, 64); err == nil && sec >= 0 && sec < 1e11 {
			f.Since = time.UnixMicro(int64(sec * 1e6))
		} else if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			f.Since = t
		} else {
			return f, errorf(CodeInvalidValue, "since", "since %q: use RFC 3339 or Unix seconds", v)
		}
	}
	return f, nil
}
