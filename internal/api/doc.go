// Package api is Courier's OpenAI-compatible HTTP gateway: wire types, the
// error catalog, request validation, the handlers for /v1/models,
// /v1/completions and /v1/chat/completions (JSON and SSE),
// /v1/classifications (label probabilities from the model's log-likelihood
// of each label), OpenAI's stored chat completions (stored.go: "store":
// true, kept in a completions.Store), and the health and metrics endpoints.
//
// The gateway never runs a model. It validates and authenticates a request,
// turns it into a bus.Request, hands it to a Dispatcher and relays the
// dispatcher's chunk stream to the client. Promises:
//
//   - Every error the client sees is OpenAI's error JSON
//     ({"error":{"message","type","param","code"}}) with the status and stable
//     code from one catalog (errors.go); garbage input never yields a 5xx.
//   - A streaming response is committed (200 and SSE headers) only after the
//     first chunk arrived, so dispatch and worker errors keep their real
//     status. An error after that is sent as an SSE error event, then [DONE].
//   - When the client goes away the chunk stream is closed, which cancels the
//     request on its worker.
//
// Unknown JSON fields are ignored, as OpenAI does. See docs/api.md.
package api
