package natsbus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"courier/internal/bus"
	"courier/internal/jobs"
)

// ErrNoJetStream reports a NATS server without JetStream: jobs and batches
// are then unavailable.
var ErrNoJetStream = errors.New("natsbus: JetStream is not enabled on the server")

// JobStoreConfig configures OpenJobStore. The zero value works.
type JobStoreConfig struct {
	// AckWait is how long a fetched line may go without an ack or a
	// keep-alive before it is delivered again; 0 means 30 s.
	AckWait time.Duration
	// Replicas of every bucket and stream (a cluster); 0 means 1.
	Replicas int
}

// Names of the JetStream assets behind package jobs.
const (
	bucketFiles   = "courier_files"
	bucketBatches = "courier_batches"
	bucketJobs    = "courier_jobs"
	bucketResults = "courier_results"
	bucketIdem    = "courier_idempotency"
	objectFiles   = "courier_files"
	workStream    = "COURIER_WORK"
	workConsumer  = "courier-runners"
	workPrefix    = "courier.work."
)

// OpenJobStore creates (or opens) the key-value buckets, object store and
// work-queue stream that hold jobs and batches, on conn's JetStream.
func OpenJobStore(ctx context.Context, conn *Conn, cfg JobStoreConfig) (jobs.Store, error) {
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	js, err := jetstream.New(conn.nc)
	if err != nil {
		return jobs.Store{}, fmt.Errorf("natsbus: jetstream: %w", err)
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return jobs.Store{}, ErrNoJetStream
		}
		return jobs.Store{}, fmt.Errorf("natsbus: jetstream account: %w", err)
	}
	var st jobs.Store
	kvs := []struct {
		dst  *jobs.KV
		name string
	}{{&st.Files, bucketFiles}, {&st.Batches, bucketBatches}, {&st.Jobs, bucketJobs}, {&st.Results, bucketResults}}
	for _, b := range kvs {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: b.name, History: 1, Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
		})
		if err != nil {
			return jobs.Store{}, fmt.Errorf("natsbus: bucket %s: %w", b.name, err)
		}
		*b.dst = &kvStore{js: js, kv: kv, bucket: b.name}
	}
	// Idempotency-Key answers live 24 hours from their last write (the
	// bucket's TTL), per jobs.IdempotencyTTL.
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucketIdem, History: 1, Storage: jetstream.FileStorage, Replicas: cfg.Replicas, TTL: jobs.IdempotencyTTL,
	})
	if err != nil {
		return jobs.Store{}, fmt.Errorf("natsbus: bucket %s: %w", bucketIdem, err)
	}
	st.Idempotency = &kvStore{js: js, kv: kv, bucket: bucketIdem}
	obs, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: objectFiles, Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
	})
	if err != nil {
		return jobs.Store{}, fmt.Errorf("natsbus: object store: %w", err)
	}
	st.Blobs = &blobStore{obs: obs}
	q, err := openWorkQueue(ctx, js, cfg)
	if err != nil {
		return jobs.Store{}, err
	}
	st.Queue = q
	return st, nil
}

// mapErr turns JetStream errors into the jobs package's.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrObjectNotFound):
		return fmt.Errorf("natsbus: %w", jobs.ErrNotFound)
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return fmt.Errorf("natsbus: %w", jobs.ErrConflict)
	case errors.Is(err, nats.ErrMaxPayload):
		return fmt.Errorf("natsbus: %w: %v", jobs.ErrTooLarge, err)
	}
	return fmt.Errorf("natsbus: %w", err)
}

// kvStore is a jobs.KV on a JetStream key-value bucket.
type kvStore struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	bucket string
}

var _ jobs.KV = (*kvStore)(nil)

func (s *kvStore) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	e, err := s.kv.Get(ctx, key)
	if err != nil {
		return nil, 0, mapErr(err)
	}
	return e.Value(), e.Revision(), nil
}

func (s *kvStore) Create(ctx context.Context, key string, val []byte) (uint64, error) {
	rev, err := s.kv.Create(ctx, key, val)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("natsbus: %s: %w", key, jobs.ErrExists)
	}
	return rev, mapErr(err)
}

func (s *kvStore) Update(ctx context.Context, key string, val []byte, rev uint64) (uint64, error) {
	n, err := s.kv.Update(ctx, key, val, rev)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("natsbus: %s: %w", key, jobs.ErrConflict)
	}
	return n, mapErr(err)
}

func (s *kvStore) Delete(ctx context.Context, key string) error {
	err := s.kv.Delete(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return mapErr(err)
}

func (s *kvStore) Scan(ctx context.Context, filter string, fn func(key string, val []byte) error) error {
	if filter == "" {
		filter = ">"
	}
	w, err := s.kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return mapErr(err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok || e == nil {
				return nil // the initial values are done
			}
			if err := fn(e.Key(), e.Value()); err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("natsbus: scan %s: %w", s.bucket, ctx.Err())
		}
	}
}

func (s *kvStore) Purge(ctx context.Context, filter string) error {
	if filter == "" {
		filter = ">"
	}
	str, err := s.js.Stream(ctx, "KV_"+s.bucket)
	if err != nil {
		return mapErr(err)
	}
	return mapErr(str.Purge(ctx, jetstream.WithPurgeSubject("$KV."+s.bucket+"."+filter)))
}

// blobStore is jobs.Blobs on a JetStream object store.
type blobStore struct{ obs jetstream.ObjectStore }

var _ jobs.Blobs = (*blobStore)(nil)

func (b *blobStore) PutReader(ctx context.Context, name string, r io.Reader) (int64, error) {
	info, err := b.obs.Put(ctx, jetstream.ObjectMeta{Name: name}, r)
	if err != nil {
		return 0, mapErr(err)
	}
	return int64(info.Size), nil
}

func (b *blobStore) Put(ctx context.Context, name string, data []byte) error {
	_, err := b.obs.Put(ctx, jetstream.ObjectMeta{Name: name}, bytes.NewReader(data))
	return mapErr(err)
}

func (b *blobStore) Get(ctx context.Context, name string) ([]byte, error) {
	data, err := b.obs.GetBytes(ctx, name)
	return data, mapErr(err)
}

func (b *blobStore) Delete(ctx context.Context, name string) error {
	err := b.obs.Delete(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil
	}
	return mapErr(err)
}

// workSubject is the subject of the queued messages of group.
func workSubject(group string) string { return workPrefix + bus.Token(group) }
