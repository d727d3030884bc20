package jobs

import (
	"context"
	"errors"
	"io"
	"time"
)

// Store errors; implementations wrap them so that errors.Is matches.
var (
	ErrNotFound = errors.New("jobs: not found")              // no such key, object or record (or not the caller's)
	ErrExists   = errors.New("jobs: already exists")         // Create on an existing key
	ErrConflict = errors.New("jobs: revision conflict")      // Update lost a race
	ErrTooLarge = errors.New("jobs: too large")              // a value or message over the store's limit
	ErrQuota    = errors.New("jobs: storage quota exceeded") // an owner's stored files over MaxStoredBytesPerOwner
	ErrBusy     = errors.New("jobs: too many uploads")       // MaxConcurrentUploads running already
)

// KV is one key-value bucket. Keys are dot-separated tokens of
// [-_=A-Za-z0-9]. Implementations are safe for concurrent use.
type KV interface {
	// Get returns the value of key and its revision, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, uint64, error)
	// Create stores key only if it does not exist (ErrExists otherwise).
	Create(ctx context.Context, key string, val []byte) (uint64, error)
	// Update stores key only if its revision is still rev (ErrConflict).
	Update(ctx context.Context, key string, val []byte, rev uint64) (uint64, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Scan calls fn for every live key matching filter ("" or ">" for all,
	// "a.>" for keys under a), in no particular order.
	Scan(ctx context.Context, filter string, fn func(key string, val []byte) error) error
	// Purge removes every key matching filter at once.
	Purge(ctx context.Context, filter string) error
}

// Blobs stores whole files by name.
type Blobs interface {
	Put(ctx context.Context, name string, data []byte) error
	// PutReader stores what r yields until io.EOF, holding at most a chunk
	// in memory, and returns its size; when r fails, nothing is stored and
	// r's error is returned.
	PutReader(ctx context.Context, name string, r io.Reader) (int64, error)
	// Get returns the content of name, or ErrNotFound.
	Get(ctx context.Context, name string) ([]byte, error)
	// Delete removes name; a missing name is not an error.
	Delete(ctx context.Context, name string) error
}

// QueueMsg is one message to put on the work queue.
type QueueMsg struct {
	// Group is a token naming the batch or job; Purge removes a group.
	Group string
	// ID deduplicates: a message whose ID was published recently is
	// dropped by the queue.
	ID   string
	Data []byte
}

// Queue is the durable work queue for background lines, separate from the
// interactive path.
type Queue interface {
	// Publish stores msgs durably (returning when all are stored); the
	// error of a message too large for the queue wraps ErrTooLarge and
	// names its index through a *PublishError.
	Publish(ctx context.Context, msgs []QueueMsg) error
	// Fetch returns up to max messages, waiting at most wait for the first.
	Fetch(ctx context.Context, max int, wait time.Duration) ([]Delivery, error)
	// Purge drops every queued message of group.
	Purge(ctx context.Context, group string) error
	// Pending reports whether a message of group is still on the queue:
	// stored and not yet acked (waiting, or fetched and running).
	Pending(ctx context.Context, group string) (bool, error)
}

// PublishError reports the messages a Publish could not store.
type PublishError struct {
	Failed map[int]error // by index in the msgs given to Publish
}

func (e *PublishError) Error() string {
	for _, err := range e.Failed {
		return "jobs: publish: " + err.Error()
	}
	return "jobs: publish failed"
}

// Delivery is one fetched message; its outcome is an ack verb.
type Delivery interface {
	Data() []byte
	// Attempt is 1 on the first delivery, +1 on each redelivery.
	Attempt() int
	// Ack removes the message for good (waits for the queue's confirmation).
	Ack(ctx context.Context) error
	// Nak asks for a redelivery after delay.
	Nak(delay time.Duration) error
	// InProgress extends the ack deadline.
	InProgress() error
}

// Store is everything the Manager keeps.
type Store struct {
	Files   KV    // file records by id
	Batches KV    // batch records by id
	Jobs    KV    // async job records by id
	Results KV    // line results by "<batch>.<index>"
	Blobs   Blobs // file contents by file id
	Queue   Queue // batch lines and async jobs
	// Idempotency holds the first answer to each Idempotency-Key, kept
	// IdempotencyTTL after its last write; nil: the header is ignored.
	Idempotency KV
	// Quota holds each owner's bytes reserved by uploads (and batch
	// outputs) in flight on any gateway, changed only by compare-and-set,
	// so MaxStoredBytesPerOwner is exact across gateways (quota.go); an
	// entry lasts QuotaTTL after its last change. nil: each manager counts
	// only its own uploads in flight.
	Quota KV
}

// QuotaTTL is how long an owner's reservation outlives its last change:
// what a gateway that died mid-upload had reserved is given back then.
const QuotaTTL = time.Hour

// IdempotencyTTL is how long an Idempotency-Key's first answer is kept.
const IdempotencyTTL = 24 * time.Hour

// Executor runs one request the way its synchronous endpoint would.
type Executor interface {
	// Execute runs a POST of body to url and returns the status, the
	// request id and the response body the synchronous call returns. ctx
	// carries the owner of the batch or job the line belongs to
	// (OwnerFromContext).
	Execute(ctx context.Context, url string, body []byte) (status int, requestID string, resp []byte)
	// Executable reports whether url names a route Execute can run.
	Executable(url string) bool
}

// Capacity tells the runner how many more background requests may start
// now without delaying interactive ones.
type Capacity interface {
	Room() int
}

// ownerKey is the context key of a line's owner.
type ownerKey struct{}

// ContextWithOwner returns ctx carrying owner, the owner of the batch or
// job whose line runs under it.
func ContextWithOwner(ctx context.Context, owner string) context.Context {
	return context.WithValue(ctx, ownerKey{}, owner)
}

// OwnerFromContext returns the owner ContextWithOwner put in ctx; "" when
// none (no API keys, or a line queued before owners were carried).
func OwnerFromContext(ctx context.Context) string {
	o, _ := ctx.Value(ownerKey{}).(string)
	return o
}

// Work names the batch line or async job an Executor runs, for the
// request's timeline.
type Work struct {
	Batch    string // the batch id of a batch line
	CustomID string // the line's custom_id
	Job      string // the id of an async job
}

type workKey struct{}

// ContextWithWork returns ctx carrying w, for Executor.Execute.
func ContextWithWork(ctx context.Context, w Work) context.Context {
	return context.WithValue(ctx, workKey{}, w)
}

// WorkFromContext returns the Work ContextWithWork put in ctx (zero when
// none).
func WorkFromContext(ctx context.Context) Work {
	w, _ := ctx.Value(workKey{}).(Work)
	return w
}
