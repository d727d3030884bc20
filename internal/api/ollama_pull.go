package api

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

// ModelManager pulls models into the serving process and deletes stored
// ones: Ollama's /api/pull and /api/delete. The node provides it for
// `courier serve --allow-pull`; without it those routes answer 404 with a
// message that names the flag.
type ModelManager interface {
	// Pull makes name served: downloads it into the model store unless it
	// is there, loads it and waits until the gateway can route to it.
	// owner is the caller (its API key's hash, "" without API keys); the
	// owner of the Pull that loads the model is the one that may delete it.
	// progress is called from Pull's goroutine.
	Pull(ctx context.Context, name, owner string, progress func(PullProgress)) error
	// Delete removes name from the model store for owner. It fails with
	// ErrNotOwner unless owner's Pull loaded it (with API keys, a model
	// pulled by another key or not through Pull at all is not the
	// caller's), ErrModelNotFound when the store does not hold it and
	// ErrModelInUse when this process serves it from its command line.
	Delete(name, owner string) error
	// Info describes a model Pull loaded; false for others.
	Info(name string) (ModelInfo, bool)
}

// PullProgress is one line of /api/pull's stream, in Ollama's shape.
type PullProgress struct {
	Status    string `json:"status"`
	Digest    string `json:"digest,omitempty"`
	Total     int64  `json:"total,omitempty"`
	Completed int64  `json:"completed,omitempty"`
}

// Errors a ModelManager returns, matched with errors.Is.
var (
	ErrModelNotFound = errors.New("model not found")
	ErrModelInUse    = errors.New("model is being served")
	// ErrNotOwner: the caller may not delete the model (ModelManager.Delete).
	ErrNotOwner = errors.New("model not pulled by this API key")
	// ErrBadModelName: the name is not one Pull can fetch (the message
	// says what is).
	ErrBadModelName = errors.New("bad model name")
)

// addOllamaPullRoutes registers /api/pull and /api/delete.
func (s *server) addOllamaPullRoutes() {
	s.routes["/api/pull"] = route{http.MethodPost, "ollama_pull", true, s.ollamaPull}
	s.routes["/api/delete"] = route{http.MethodDelete, "ollama_delete", true, s.ollamaDelete}
}

// pullOff answers when no ModelManager is configured.
func (s *server) pullOff(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.Models != nil {
		return false
	}
	s.fail(w, errorf(CodeNotFound, "", "%s is off on this server: models are managed with courier pull and courier models (courier serve --allow-pull lets API clients pull and delete them)", r.URL.Path))
	return true
}

// ollamaPull serves POST /api/pull: {"model": NAME, "stream": true}
// streams progress lines and ends with {"status":"success"} (or
// {"error": ...}); "stream": false answers once, when done.
func (s *server) ollamaPull(w http.ResponseWriter, r *http.Request) {
	if s.pullOff(w, r) {
		return
	}
	var body struct {
		Model    string `json:"model"`
		Name     string `json:"name"` // older clients
		Stream   *bool  `json:"stream"`
		Insecure bool   `json:"insecure"` // accepted; the Hub is reached over HTTPS as configured
	}
	if e := readJSON(r, s.cfg.MaxBodyBytes, &body); e != nil {
		s.fail(w, e)
		return
	}
	if body.Model == "" {
		body.Model = body.Name
	}
	if body.Model == "" {
		s.fail(w, errorf(CodeMissingParameter, "model", "model is required"))
		return
	}
	if body.Stream != nil && !*body.Stream {
		if err := s.cfg.Models.Pull(r.Context(), body.Model, s.owner(r), func(PullProgress) {}); err != nil {
			s.fail(w, pullError(err))
			return
		}
		writeJSON(w, http.StatusOK, PullProgress{Status: "success"})
		return
	}
	// Streamed: the status is sent with the first line; a failure after
	// it is an {"error": ...} line, as Ollama sends it.
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	var mu sync.Mutex // progress may come while the last line is written
	var last time.Time
	send := func(p PullProgress, force bool) {
		mu.Lock()
		defer mu.Unlock()
		// Downloads report every chunk; a line per 100 ms is plenty.
		if now := time.Now(); force || now.Sub(last) >= 100*time.Millisecond || p.Completed == p.Total {
			last = now
			w.Write(append(mustJSON(p), '\n'))
			_ = rc.Flush()
		}
	}
	send(PullProgress{Status: "pulling manifest"}, true)
	if err := s.cfg.Models.Pull(r.Context(), body.Model, s.owner(r), func(p PullProgress) { send(p, p.Total == 0) }); err != nil {
		mu.Lock()
		w.Write(append(mustJSON(ollamaError{Error: pullError(err).Message}), '\n'))
		mu.Unlock()
		return
	}
	send(PullProgress{Status: "success"}, true)
}

// pullError maps a ModelManager's error to the API's.
func pullError(err error) *Error {
	switch {
	case errors.Is(err, ErrModelNotFound):
		return errorf(CodeModelNotFound, "model", "%v", err)
	case errors.Is(err, ErrNotOwner):
		return errorf(CodePermissionDenied, "model", "%v", err)
	case errors.Is(err, ErrBadModelName), errors.Is(err, ErrModelInUse):
		return errorf(CodeInvalidValue, "model", "%v", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return errorf(CodeDeadline, "", "%v", err)
	}
	return errorf(CodeInternal, "", "%v", err)
}

// ollamaDelete serves DELETE /api/delete: {"model": NAME} removes a
// stored model that this process does not serve from its command line,
// unloading it first when /api/pull loaded it. With API keys, only the key
// whose pull loaded the model may delete it (403 otherwise): another
// tenant could stop a model everyone uses, and models the operator stored
// are deleted with courier models rm.
func (s *server) ollamaDelete(w http.ResponseWriter, r *http.Request) {
	if s.pullOff(w, r) {
		return
	}
	var body struct {
		Model string `json:"model"`
		Name  string `json:"name"`
	}
	if e := readJSON(r, s.cfg.MaxBodyBytes, &body); e != nil {
		s.fail(w, e)
		return
	}
	if body.Model == "" {
		body.Model = body.Name
	}
	if body.Model == "" {
		s.fail(w, errorf(CodeMissingParameter, "model", "model is required"))
		return
	}
	if err := s.cfg.Models.Delete(body.Model, s.owner(r)); err != nil {
		s.fail(w, pullError(err))
		return
	}
	w.WriteHeader(http.StatusOK)
}
