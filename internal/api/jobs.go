package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"context"

	"github.com/prometheus/client_golang/prometheus"

	"courier/internal/jobs"
)

// NewWithJobs returns the gateway handler with the Files, Batches and Jobs
// endpoints served by m, and "Prefer: respond-async" accepted on every
// generation route; the returned Executor runs a batch line or job through
// the same handler as the synchronous route (give it to m.Start).
func NewWithJobs(cfg Config, d Dispatcher, m *jobs.Manager, reg prometheus.Registerer, log *slog.Logger) (http.Handler, jobs.Executor, error) {
	s, err := newServer(cfg, d, reg, log)
	if err != nil {
		return nil, nil, err
	}
	if m == nil {
		return nil, nil, errors.New("api: nil jobs manager")
	}
	s.jobs = m
	return s, s, nil
}

var _ jobs.Executor = (*server)(nil)

// Executable reports whether url is a POST route a batch line may name:
// a generation route (docs/jobs.md), not one that manages models.
func (s *server) Executable(url string) bool {
	rt, ok := s.routes[url]
	return ok && rt.method == http.MethodPost && !notExecutable[url]
}

// notExecutable are the POST routes that generate nothing: a batch line
// or an async job never pulls a model or describes one.
var notExecutable = map[string]bool{"/api/pull": true, "/api/show": true}

// Execute runs a POST of body to url through the route's handler, as the
// synchronous call would, and returns its status, request id and body.
func (s *server) Execute(ctx context.Context, url string, body []byte) (int, string, []byte) {
	rt, ok := s.routes[url]
	if !ok || rt.method != http.MethodPost {
		e := errorf(CodeNotFound, "url", "no generation route %s", url)
		b, _ := json.Marshal(e.body())
		return e.Code.Status(), "", b
	}
	start := time.Now()
	info := &reqInfo{id: s.newID(), route: rt.label}
	s.startTrace(ctx, info, start)
	ctx = context.WithValue(ctx, reqInfoKey{}, info)
	r, err := http.NewRequestWithContext(context.WithValue(ctx, backgroundKey{}, true), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		e := errorf(CodeInvalidValue, "url", "bad url %q", url)
		b, _ := json.Marshal(e.body())
		return e.Code.Status(), "", b
	}
	r.Header.Set("Content-Type", "application/json")
	w := &bufferWriter{header: http.Header{}}
	rt.handler(w, r)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	setRequestID(w, info.id) // a request that failed before generating has none yet
	total := time.Since(start)
	s.recordTimeline(info, w.status, start.Add(total))
	s.logRequest(ctx, info, w.status, total)
	return w.status, w.header.Get("X-Request-Id"), bytes.TrimSpace(w.buf.Bytes())
}

// backgroundKey marks the context of a request run by Execute: a batch
// line or an async job, dispatched as background work.
type backgroundKey struct{}

// bufferWriter is the http.ResponseWriter of an executed line.
type bufferWriter struct {
	header http.Header
	status int
	buf    bytes.Buffer
}

func (b *bufferWriter) Header() http.Header { return b.header }
func (b *bufferWriter) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}
func (b *bufferWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.buf.Write(p)
}

// owner names the caller for ownership: a hash of its API key, "" when no
// keys are configured.
func (s *server) owner(r *http.Request) string {
	if len(s.cfg.APIKeys) == 0 {
		return ""
	}
	key, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	sum := sha256.Sum256([]byte(strings.TrimSpace(key)))
	return hex.EncodeToString(sum[:12])
}

// tenant names the caller of r for fair queueing (bus.Request.Tenant):
// the first 16 hex digits of its owner, which are those of the SHA-256 of
// its API key, so the key never travels on the bus. A background request
// (a batch line or job run by Execute) is its batch's or job's owner's.
// "" without API keys.
func (s *server) tenant(r *http.Request, background bool) string {
	owner := s.owner(r)
	if background {
		owner = jobs.OwnerFromContext(r.Context())
	}
	return owner[:min(len(owner), 16)]
}

// jobRoute matches the Files, Batches and Jobs paths (nil manager: none).
func (s *server) jobRoute(r *http.Request) (route, bool) {
	if s.jobs == nil {
		return route{}, false
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1/"), "/")
	one := func(method, label string, h http.HandlerFunc) (route, bool) {
		return route{method, label, true, h}, true
	}
	either := func(label string, get, post http.HandlerFunc) (route, bool) {
		if r.Method == http.MethodPost {
			return one(http.MethodPost, label, post)
		}
		return one(http.MethodGet, label, get)
	}
	switch {
	case len(parts) == 1 && parts[0] == "files":
		return either("files", s.listFiles, s.uploadFile)
	case len(parts) == 2 && parts[0] == "files" && parts[1] != "":
		if r.Method == http.MethodDelete {
			return one(http.MethodDelete, "files", s.deleteFile)
		}
		return one(http.MethodGet, "files", s.getFile)
	case len(parts) == 3 && parts[0] == "files" && parts[2] == "content":
		return one(http.MethodGet, "files", s.fileContent)
	case len(parts) == 1 && parts[0] == "batches":
		return either("batches", s.listBatches, s.createBatch)
	case len(parts) == 2 && parts[0] == "batches" && parts[1] != "":
		return one(http.MethodGet, "batches", s.getBatch)
	case len(parts) == 3 && parts[0] == "batches" && parts[2] == "cancel":
		return one(http.MethodPost, "batches", s.cancelBatch)
	case len(parts) == 1 && parts[0] == "jobs":
		return one(http.MethodGet, "jobs", s.listJobs)
	case len(parts) == 2 && parts[0] == "jobs" && parts[1] != "":
		return one(http.MethodGet, "jobs", s.getJob)
	}
	return route{}, false
}

// pathID is the id segment of /v1/KIND/ID[/...].
func pathID(r *http.Request) string {
	parts := strings.Split(r.URL.Path, "/")
	if len(parts) < 4 {
		return ""
	}
	return parts[3]
}

// jobsError maps a jobs error to the catalog.
func jobsError(err error, what string) *Error {
	var inv *jobs.InvalidError
	switch {
	case errors.As(err, &inv):
		return errorf(CodeInvalidValue, inv.Param, "%s", inv.Message)
	case errors.Is(err, jobs.ErrNotFound):
		return errorf(CodeNotFound, "", "no such %s", what)
	case errors.Is(err, jobs.ErrTooLarge):
		return errorf(CodeBodyTooLarge, "", "%v", err)
	case errors.Is(err, jobs.ErrQuota):
		return errorf(CodeQuotaExceeded, "file", "%v", err)
	case errors.Is(err, jobs.ErrBusy):
		return errorf(CodeTooManyUploads, "", "%v", err)
	}
	return errorf(CodeInternal, "", "%s store: %v", what, err)
}

// wantsAsync reports whether r asks for an asynchronous answer (RFC 7240).
func wantsAsync(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		for p := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "respond-async") {
				return true
			}
		}
	}
	return false
}

// respondAsync answers a generation call that carries "Prefer:
// respond-async" with 202 and a queued job; false when r is not one.
func (s *server) respondAsync(w http.ResponseWriter, r *http.Request) bool {
	if s.jobs == nil || r.Method != http.MethodPost || !s.Executable(r.URL.Path) || !wantsAsync(r) {
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		s.fail(w, errorf(CodeBodyTooLarge, "", "request body exceeds %d bytes", s.cfg.MaxBodyBytes))
		return true
	}
	var head struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
	}
	if e := decodeJSON(body, &head); e != nil {
		s.fail(w, e)
		return true
	}
	if head.Stream {
		s.fail(w, errorf(CodeUnsupported, "stream", "stream cannot be combined with Prefer: respond-async"))
		return true
	}
	j, err := s.jobs.Submit(r.Context(), s.owner(r), r.URL.Path, head.Model, bytes.TrimSpace(body))
	if err != nil {
		s.fail(w, jobsError(err, "job"))
		return true
	}
	w.Header().Set("Location", "/v1/jobs/"+j.ID)
	w.Header().Set("Preference-Applied", "respond-async")
	writeJSON(w, http.StatusAccepted, j)
	return true
}

// getJob serves GET /v1/jobs/{id}.
func (s *server) getJob(w http.ResponseWriter, r *http.Request) {
	j, err := s.jobs.Job(r.Context(), s.owner(r), pathID(r))
	if err != nil {
		s.fail(w, jobsError(err, "job"))
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// listJobs serves GET /v1/jobs?status=&model=&after=&limit=.
func (s *server) listJobs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, e := listLimit(q.Get("limit"))
	if e != nil {
		s.fail(w, e)
		return
	}
	f := jobs.JobFilter{Status: q.Get("status"), Model: q.Get("model"), After: q.Get("after"), Limit: limit}
	list, more, err := s.jobs.Jobs(r.Context(), s.owner(r), f)
	if err != nil {
		s.fail(w, jobsError(err, "job"))
		return
	}
	if list == nil {
		list = []jobs.Job{}
	}
	page := listPage[jobs.Job]{Object: "list", Data: list, HasMore: more}
	if len(list) > 0 {
		page.FirstID, page.LastID = list[0].ID, list[len(list)-1].ID
	}
	writeJSON(w, http.StatusOK, page)
}

// listPage is OpenAI's cursor page.
type listPage[T any] struct {
	Object  string `json:"object"`
	Data    []T    `json:"data"`
	FirstID string `json:"first_id,omitempty"`
	LastID  string `json:"last_id,omitempty"`
	HasMore bool   `json:"has_more"`
}

// listLimit reads a limit query parameter: 1…100, default 20.
func listLimit(s string) (int, *Error) {
	if s == "" {
		return 20, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 100 {
		return 0, errorf(CodeInvalidValue, "limit", "limit must be an integer from 1 to 100, got %q", s)
	}
	return n, nil
}

// deleted is the answer of a DELETE.
type deleted struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Deleted bool   `json:"deleted"`
}
