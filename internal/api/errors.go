package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"courier/internal/bus"
)

// Code is a stable error code, the "code" field of OpenAI's error JSON. Each
// code has exactly one HTTP status and error type in the catalog.
type Code string

// The error catalog's codes. docs/api.md lists them with their statuses.
const (
	CodeInvalidJSON      Code = "invalid_json"               // 400: body is not a JSON object
	CodeInvalidType      Code = "invalid_type"               // 400: a field has the wrong JSON type
	CodeMissingParameter Code = "missing_required_parameter" // 400: a required field is absent
	CodeInvalidValue     Code = "invalid_value"              // 400: a field's value is out of range
	CodeUnsupported      Code = "unsupported_parameter"      // 400: a valid OpenAI parameter Courier does not support
	CodeInvalidAPIKey    Code = "invalid_api_key"            // 401: missing or wrong bearer key
	CodePermissionDenied Code = "permission_denied"          // 403: the key may not do this to the resource
	CodeNotFound         Code = "not_found"                  // 404: no such path
	CodeModelNotFound    Code = "model_not_found"            // 404: no live worker serves the model
	CodeMethodNotAllowed Code = "method_not_allowed"         // 405: wrong method for the path
	CodeBodyTooLarge     Code = "request_too_large"          // 413: body over the byte limit
	CodePromptTooLong    Code = "prompt_too_long"            // 413: prompt over the limit or the model's context
	CodeQuotaExceeded    Code = "storage_quota_exceeded"     // 413: the key's stored files would pass their limit
	CodeIdempotencyBusy  Code = "idempotency_key_in_use"     // 409: the first request under this Idempotency-Key still runs
	CodeIdempotencyReuse Code = "idempotency_key_reused"     // 422: an Idempotency-Key sent again with another request
	CodeQueueFull        Code = "queue_full"                 // 429: the model's queue is full; see Retry-After
	CodeTooManyUploads   Code = "too_many_uploads"           // 429: the gateway streams its most uploads already; see Retry-After
	CodeInternal         Code = "internal_error"             // 500: a worker or the gateway failed
	CodeWorkerLost       Code = "worker_lost"                // 502: the worker died and retry was impossible
	CodeNoWorkers        Code = "no_workers"                 // 503: no worker serves the model now
	CodeShuttingDown     Code = "server_shutting_down"       // 503: the gateway stopped while answering
	CodeDeadline         Code = "deadline_exceeded"          // 504: not placed or started before the deadline
)

// catalogEntry is the status and OpenAI error type of one code.
type catalogEntry struct {
	status int
	typ    string
}

var catalog = map[Code]catalogEntry{
	CodeInvalidJSON:      {http.StatusBadRequest, "invalid_request_error"},
	CodeInvalidType:      {http.StatusBadRequest, "invalid_request_error"},
	CodeMissingParameter: {http.StatusBadRequest, "invalid_request_error"},
	CodeInvalidValue:     {http.StatusBadRequest, "invalid_request_error"},
	CodeUnsupported:      {http.StatusBadRequest, "invalid_request_error"},
	CodeInvalidAPIKey:    {http.StatusUnauthorized, "authentication_error"},
	CodePermissionDenied: {http.StatusForbidden, "permission_error"},
	CodeNotFound:         {http.StatusNotFound, "invalid_request_error"},
	CodeModelNotFound:    {http.StatusNotFound, "invalid_request_error"},
	CodeMethodNotAllowed: {http.StatusMethodNotAllowed, "invalid_request_error"},
	CodeBodyTooLarge:     {http.StatusRequestEntityTooLarge, "invalid_request_error"},
	CodePromptTooLong:    {http.StatusRequestEntityTooLarge, "invalid_request_error"},
	CodeQuotaExceeded:    {http.StatusRequestEntityTooLarge, "invalid_request_error"},
	CodeIdempotencyBusy:  {http.StatusConflict, "invalid_request_error"},
	CodeIdempotencyReuse: {http.StatusUnprocessableEntity, "invalid_request_error"},
	CodeQueueFull:        {http.StatusTooManyRequests, "rate_limit_error"},
	CodeTooManyUploads:   {http.StatusTooManyRequests, "rate_limit_error"},
	CodeInternal:         {http.StatusInternalServerError, "server_error"},
	CodeWorkerLost:       {http.StatusBadGateway, "server_error"},
	CodeNoWorkers:        {http.StatusServiceUnavailable, "server_error"},
	CodeShuttingDown:     {http.StatusServiceUnavailable, "server_error"},
	CodeDeadline:         {http.StatusGatewayTimeout, "timeout_error"},
}

// Status returns the HTTP status of c; unknown codes are 500.
func (c Code) Status() int {
	if e, ok := catalog[c]; ok {
		return e.status
	}
	return http.StatusInternalServerError
}

// Error is a client-visible failure: a catalog code, the offending parameter
// (empty when none) and a message for humans.
type Error struct {
	Code    Code
	Param   string
	Message string
}

// Error implements error.
func (e *Error) Error() string {
	if e.Param != "" {
		return fmt.Sprintf("api: %s (%s): %s", e.Code, e.Param, e.Message)
	}
	return fmt.Sprintf("api: %s: %s", e.Code, e.Message)
}

// errorf builds an *Error with a formatted message.
func errorf(code Code, param, format string, args ...any) *Error {
	return &Error{Code: code, Param: param, Message: fmt.Sprintf(format, args...)}
}

// errorBody is OpenAI's error JSON.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    Code    `json:"code"`
}

// body returns e as OpenAI's error JSON.
func (e *Error) body() errorBody {
	entry, ok := catalog[e.Code]
	if !ok {
		entry = catalog[CodeInternal]
	}
	d := errorDetail{Message: e.Message, Type: entry.typ, Code: e.Code}
	if e.Param != "" {
		p := e.Param
		d.Param = &p
	}
	return errorBody{Error: d}
}

// toAPIError maps any error on the request path to a catalog error: dispatch
// errors by errors.Is, deadlines to 504, everything unknown to 500.
func toAPIError(err error) *Error {
	var ae *Error
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, bus.ErrNoWorkers):
		return errorf(CodeNoWorkers, "model", "no worker serves this model right now; retry later")
	case errors.Is(err, bus.ErrQueueFull):
		return errorf(CodeQueueFull, "", "the model's queue is full; retry after the Retry-After interval")
	case errors.Is(err, bus.ErrTooLarge):
		return errorf(CodeBodyTooLarge, "", "the request is too large to dispatch")
	case errors.Is(err, bus.ErrNotPlaced), errors.Is(err, context.DeadlineExceeded):
		return errorf(CodeDeadline, "", "the request could not be started before its deadline")
	case errors.Is(err, bus.ErrWorkerLost):
		return errorf(CodeWorkerLost, "", "the worker running this request was lost")
	case errors.Is(err, errShuttingDown):
		return errorf(CodeShuttingDown, "", "the server is shutting down; retry the request on another gateway")
	case errors.Is(err, bus.ErrShutdown):
		return errorf(CodeNoWorkers, "", "the server is shutting down; retry on another one")
	default:
		return errorf(CodeInternal, "", "internal error")
	}
}

// workerCodes maps the bus's worker error codes to catalog codes.
var workerCodes = map[string]Code{
	bus.CodeInvalidRequest: CodeInvalidValue,
	bus.CodePromptTooLong:  CodePromptTooLong,
	bus.CodeModelNotFound:  CodeModelNotFound,
	bus.CodeDeadline:       CodeDeadline,
	bus.CodeOverloaded:     CodeQueueFull,
	bus.CodeInternal:       CodeInternal,
	bus.CodeUnavailable:    CodeNoWorkers,
	bus.CodeNonFinite:      CodeInternal,
}

// fromWorker maps an error a worker reported in a chunk to a catalog error,
// keeping the worker's message; unknown codes become internal errors.
func fromWorker(e *bus.Error) *Error {
	code, ok := workerCodes[e.Code]
	if !ok {
		code = CodeInternal
	}
	msg := e.Message
	if msg == "" {
		msg = string(code)
	}
	return &Error{Code: code, Param: e.Param, Message: msg}
}

// writeError writes e as OpenAI's error JSON with its catalog status (on
// Ollama's /api/ routes as Ollama's {"error": message}); a queue full error
// carries Retry-After (whole seconds, at least 1).
func writeError(w http.ResponseWriter, e *Error, retryAfterSec int) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if e.Code == CodeQueueFull || e.Code == CodeTooManyUploads {
		h.Set("Retry-After", fmt.Sprint(max(retryAfterSec, 1)))
	}
	w.WriteHeader(e.Code.Status())
	var b []byte
	if rec, ok := w.(*statusRecorder); ok && rec.ollama {
		b, _ = json.Marshal(ollamaError{Error: e.Message}) // Ollama's shape on /api/
	} else {
		b, _ = json.Marshal(e.body()) // plain structs of strings: cannot fail
	}
	w.Write(append(b, '\n'))
}
