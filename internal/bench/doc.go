// Package bench is Courier's load generator for OpenAI-compatible servers:
// it sends completion or chat requests at a sweep of concurrency levels and
// reports time to first token, inter-token latency and end-to-end latency
// (p50/p90/p99), output tokens/s, requests/s and errors by kind.
//
// It only talks to loopback hosts (CheckURL): a benchmark is a load test,
// and pointing one at someone else's server by mistake must be impossible.
// Each level runs Requests requests with Concurrency of them in flight; the
// levels run one after another. Timings are measured on the client:
// TTFT is the arrival of the first SSE event carrying text, inter-token
// latency the gaps between later text events (streaming only; without
// streaming only end-to-end latency is known).
package bench
