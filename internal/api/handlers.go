package api

import (
	"net/http"
)

// completions serves POST /v1/completions.
func (s *server) completions(w http.ResponseWriter, r *http.Request) {
	var body CompletionRequest
	if e := readJSON(r, s.cfg.MaxBodyBytes, &body); e != nil {
		s.fail(w, e)
		return
	}
	req, e := completionToBus(s.cfg, &body)
	if e != nil {
		s.fail(w, e)
		return
	}
	s.generate(w, r, req, &completionFormat{
		logprobs:     req.Logprobs,
		stream:       body.stream(),
		includeUsage: body.includeUsage(),
	})
}

// chatCompletions serves POST /v1/chat/completions.
func (s *server) chatCompletions(w http.ResponseWriter, r *http.Request) {
	var body ChatRequest
	if e := readJSON(r, s.cfg.MaxBodyBytes, &body); e != nil {
		s.fail(w, e)
		return
	}
	req, e := chatToBus(s.cfg, &body)
	if e != nil {
		s.fail(w, e)
		return
	}
	s.generate(w, r, req, &chatFormat{
		logprobs:     req.Logprobs,
		stream:       body.stream(),
		includeUsage: body.includeUsage(),
	})
}

// fail writes e, with Retry-After when it is a 429.
func (s *server) fail(w http.ResponseWriter, e *Error) {
	writeError(w, e, s.cfg.retryAfterSeconds())
}
