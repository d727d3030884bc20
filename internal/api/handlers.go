package api

import (
	"net/http"
	"sync"
)

// completionBodies holds decoded completion bodies between requests (over
// a kilobyte each, most of it the refused parameters' fields): nothing
// keeps a body, or a pointer into it, after its handler returns.
var completionBodies = sync.Pool{New: func() any { return new(CompletionRequest) }}

// completions serves POST /v1/completions.
func (s *server) completions(w http.ResponseWriter, r *http.Request) {
	body := completionBodies.Get().(*CompletionRequest)
	defer func() {
		// Cleared before it goes back: nothing of this request's (its
		// pointers and slices, which the bus request may share) is reused.
		*body = CompletionRequest{}
		completionBodies.Put(body)
	}()
	if e := readJSON(r, s.cfg.MaxBodyBytes, body); e != nil {
		s.fail(w, e)
		return
	}
	req, e := completionToBus(s.cfg, body)
	if e != nil {
		s.fail(w, e)
		return
	}
	logprobs, stream, includeUsage := req.Logprobs, body.stream(), body.includeUsage()
	n, best := body.choicesPerPrompt(), body.candidatesPerPrompt()
	if best == 1 && len(body.prompts)+len(body.promptIDs) == 1 {
		s.generate(w, r, req, &completionFormat{logprobs: logprobs, stream: stream, includeUsage: includeUsage})
		return
	}
	newFormat := func(i int) format {
		return &completionFormat{index: i, logprobs: logprobs, stream: stream, includeUsage: includeUsage}
	}
	var pick func([]*choiceStream) []*choiceStream
	if best > n {
		// Candidates carry their tokens' logprobs, to be ranked by; the
		// answer shows them only when the client asked.
		req.Logprobs = true
		pick = func(cs []*choiceStream) []*choiceStream { return pickBest(cs, n, best) }
	}
	reqs := expandChoices(req, body.prompts, body.promptIDs, best)
	s.generateMulti(w, r, reqs, newFormat, pick)
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
	kept, e := s.storeRequest(r, &body)
	if e != nil {
		s.fail(w, e)
		return
	}
	newFormat := func(i int) format {
		f := &chatFormat{index: i, logprobs: req.Logprobs, stream: body.stream(), includeUsage: body.includeUsage(), kept: kept}
		if kept != nil {
			kept.register(f)
		}
		return f
	}
	if n := body.choicesPerPrompt(); n > 1 {
		s.generateMulti(w, r, expandChoices(req, nil, nil, n), newFormat, nil)
		return
	}
	s.generate(w, r, req, newFormat(0))
}

// fail writes e, with Retry-After when it is a 429.
func (s *server) fail(w http.ResponseWriter, e *Error) {
	writeError(w, e, s.cfg.retryAfterSeconds())
}
