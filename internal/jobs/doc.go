// Package jobs runs work nobody waits for at the screen: OpenAI-style files
// and batches, and single requests sent with "Prefer: respond-async".
//
// It owns the records (files, batches, jobs), their state machines, the
// per-line result records, output and error file assembly, expiry and
// ownership, and the runner that executes queued lines. It knows neither
// NATS nor HTTP: storage is reached through the small interfaces of
// store.go (package natsbus implements them on JetStream key-value buckets,
// an object store and a work-queue stream), and a line is executed through
// an Executor (package api runs it through the same handler as the
// synchronous endpoint, so every POST /v1 generation route works as a batch
// line).
//
// Promises:
//
//   - Every input line is answered exactly once in the output or error file.
//     A line's result is a create-once record keyed by batch id and line
//     index; lines run at least once (a line is acked on the queue only after
//     its result is stored, so a crash redelivers it) and a second result for
//     the same line is dropped. Output and error files are assembled from
//     the result records when every line has one.
//   - An accepted async job is answered. Its record (holding the request
//     until it ends) is stored before its queue message is published; the
//     monitor's sweep publishes again the message of a job still queued
//     whose message is no longer on the queue (a crash between the two).
//   - A batch ends by its completion window: when it passes, lines without
//     an answer are batch_expired and the files are written as for a
//     finished batch (status expired).
//   - Counts shown while a batch runs (request_counts) are kept in the batch
//     record from in-memory deltas flushed every tick; after a crash they are
//     recounted from the result records, and completion is always decided by
//     a scan of those records, never by the counts alone.
//   - Background work runs behind interactive requests: the runner fetches a
//     line only when the Capacity it is given reports room (free slots beyond
//     a reserve and no interactive request waiting).
//   - Every record carries its owner; a lookup by another owner is
//     ErrNotFound. A line runs with its owner in the Executor's context
//     (OwnerFromContext), so the gateway queues it fairly among that
//     owner's other requests.
//   - Goroutines (runner, monitor, enqueuers) are started by the Manager and
//     waited for by Close.
//
// See docs/jobs.md.
package jobs
