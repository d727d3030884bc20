// Package natsbus carries Courier's bus messages over NATS. It is the only
// package that imports NATS.
//
// It owns four things:
//
//   - Server: an embedded nats-server (in-process connections only unless
//     Listen is set; JetStream file storage under DataDir; optional cluster
//     routes) and its clean shutdown. When it listens, clients authenticate
//     as NATS users (ServerAuth: passwords, or a nats-server config's users
//     and nkeys) with per-role permissions (a worker only takes requests and
//     answers them), optionally over TLS; Dial's ClientAuth is the client's
//     side (creds, token or user:password, nkey, TLS).
//   - Gateway: the gateway side. It learns every worker's free slots from
//     heartbeats (interactive and background slots apart), sends each
//     request to one worker that can start it now (core NATS request-reply;
//     the worker answers with an Accept), preferring the worker that last
//     ran a long prefix of the request's text (prefix affinity,
//     affinity.go), queues requests per model when no worker has room, in
//     round-robin order between tenants and arrival order within one
//     (fair.go; bounded: a full queue is bus.ErrQueueFull at once),
//     takes a worker whose engine stopped making progress out of rotation
//     (stall detection), and relays the worker's chunks through a
//     Stream that reorders and drops duplicates by Seq. When a worker is lost
//     (heartbeats stop, or it stops listing a request it held) the gateway
//     sends the request to another worker with Resume set to the tokens
//     already delivered, so the stream continues without gap or duplicate.
//   - Host: the worker side. It serves a Handler (package worker) on the
//     worker's request subjects, forwards cancels, and publishes heartbeats.
//   - OpenJobStore: package jobs' storage on JetStream — key-value buckets
//     for file, batch, job and line-result records, an object store for
//     file contents, and the COURIER_WORK work-queue stream for batch lines
//     and async jobs (jobstore.go, batchqueue.go; docs/jobs.md). Every
//     asset gets JobStoreConfig.Replicas (3 on a cluster of three servers
//     by default; never lowered), and every store operation retries through
//     a JetStream leader change (replicas.go).
//
// Ordering and ownership: every goroutine is started by the type that owns
// it and is waited for by its Close. Chunks of one request are published by
// one worker connection and so arrive in order on one server, but the Stream
// does not rely on it. Subjects and message formats are in docs/protocol.md;
// the reasoning behind core NATS for interactive traffic is in
// docs/fabric.md.
package natsbus
