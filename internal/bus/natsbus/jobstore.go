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
	// Replicas of every bucket, object store and stream (a cluster); 0
	// means AutoReplicas when the connection sees at least that many
	// servers in its cluster, else 1. An asset that already has more keeps
	// them; one with fewer is raised (a warning when the cluster cannot).
	Replicas int
}

// Names of the JetStream assets behind package jobs.
const (
	bucketFiles   = "courier_files"
	bucketBatches = "courier_batches"
	bucketJobs    = "courier_jobs"
	bucketResults = "courier_results"
	bucketIdem    = "courier_idempotency"
	bucketQuota   = "courier_quota"
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
	auto := cfg.Replicas <= 0
	if auto {
		cfg.Replicas = defaultReplicas(conn.nc)
	}
	log := conn.log
	js, err := openJetStream(ctx, conn)
	if err != nil {
		return jobs.Store{}, err
	}
	var st jobs.Store
	kvs := []struct {
		dst  *jobs.KV
		name string
	}{{&st.Files, bucketFiles}, {&st.Batches, bucketBatches}, {&st.Jobs, bucketJobs}, {&st.Results, bucketResults}}
	for _, b := range kvs {
		kv, err := ensure(ctx, js, "KV_"+b.name, cfg.Replicas, auto, log, func(ctx context.Context, r int) (jetstream.KeyValue, error) {
			return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket: b.name, History: 1, Storage: jetstream.FileStorage, Replicas: r,
			})
		})
		if err != nil {
			return jobs.Store{}, fmt.Errorf("natsbus: bucket %s: %w", b.name, err)
		}
		if changed, err := leaderReads(ctx, js, "KV_"+b.name); err != nil {
			return jobs.Store{}, fmt.Errorf("natsbus: bucket %s: %w", b.name, err)
		} else if changed {
			if kv, err = js.KeyValue(ctx, b.name); err != nil {
				return jobs.Store{}, fmt.Errorf("natsbus: bucket %s: %w", b.name, err)
			}
		}
		*b.dst = &kvStore{js: js, kv: kv, bucket: b.name}
	}
	// Idempotency-Key answers live 24 hours from their last write (the
	// bucket's TTL), per jobs.IdempotencyTTL; upload reservations
	// jobs.QuotaTTL.
	for _, b := range []struct {
		dst  *jobs.KV
		name string
		ttl  time.Duration
	}{{&st.Idempotency, bucketIdem, jobs.IdempotencyTTL}, {&st.Quota, bucketQuota, jobs.QuotaTTL}} {
		kv, err := ensure(ctx, js, "KV_"+b.name, cfg.Replicas, auto, log, func(ctx context.Context, r int) (jetstream.KeyValue, error) {
			return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket: b.name, History: 1, Storage: jetstream.FileStorage, Replicas: r, TTL: b.ttl,
			})
		})
		if err != nil {
			return jobs.Store{}, fmt.Errorf("natsbus: bucket %s: %w", b.name, err)
		}
		if changed, err := leaderReads(ctx, js, "KV_"+b.name); err != nil {
			return jobs.Store{}, fmt.Errorf("natsbus: bucket %s: %w", b.name, err)
		} else if changed {
			if kv, err = js.KeyValue(ctx, b.name); err != nil {
				return jobs.Store{}, fmt.Errorf("natsbus: bucket %s: %w", b.name, err)
			}
		}
		*b.dst = &kvStore{js: js, kv: kv, bucket: b.name}
	}
	obs, err := ensure(ctx, js, "OBJ_"+objectFiles, cfg.Replicas, auto, log, func(ctx context.Context, r int) (jetstream.ObjectStore, error) {
		return js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket: objectFiles, Storage: jetstream.FileStorage, Replicas: r,
		})
	})
	if err != nil {
		return jobs.Store{}, fmt.Errorf("natsbus: object store: %w", err)
	}
	if changed, err := leaderReads(ctx, js, "OBJ_"+objectFiles); err != nil {
		return jobs.Store{}, fmt.Errorf("natsbus: object store: %w", err)
	} else if changed {
		if obs, err = js.ObjectStore(ctx, objectFiles); err != nil {
			return jobs.Store{}, fmt.Errorf("natsbus: object store: %w", err)
		}
	}
	st.Blobs = &blobStore{obs: obs}
	q, err := openWorkQueue(ctx, js, cfg, auto, log)
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

// Every operation retries through a JetStream leader change (retry), so
// the API answers late rather than failing while a cluster elects a new
// leader.

func (s *kvStore) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	var e jetstream.KeyValueEntry
	err := retry(ctx, func(ctx context.Context, _ bool) (err error) { e, err = s.kv.Get(ctx, key); return err })
	if err != nil {
		return nil, 0, mapErr(err)
	}
	return e.Value(), e.Revision(), nil
}

// written reports whether key holds val: after a retry, whether the run
// whose answer was lost stored it.
func (s *kvStore) written(ctx context.Context, key string, val []byte) (uint64, bool) {
	e, err := s.kv.Get(ctx, key)
	if err != nil || !bytes.Equal(e.Value(), val) {
		return 0, false
	}
	return e.Revision(), true
}

func (s *kvStore) Create(ctx context.Context, key string, val []byte) (uint64, error) {
	var rev uint64
	err := retry(ctx, func(ctx context.Context, retried bool) (err error) {
		rev, err = s.kv.Create(ctx, key, val)
		if retried && errors.Is(err, jetstream.ErrKeyExists) {
			if r, ok := s.written(ctx, key, val); ok {
				rev, err = r, nil
			}
		}
		return err
	})
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("natsbus: %s: %w", key, jobs.ErrExists)
	}
	return rev, mapErr(err)
}

func (s *kvStore) Update(ctx context.Context, key string, val []byte, rev uint64) (uint64, error) {
	var n uint64
	err := retry(ctx, func(ctx context.Context, retried bool) (err error) {
		n, err = s.kv.Update(ctx, key, val, rev)
		if retried && errors.Is(err, jetstream.ErrKeyExists) {
			if r, ok := s.written(ctx, key, val); ok && r > rev {
				n, err = r, nil
			}
		}
		return err
	})
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("natsbus: %s: %w", key, jobs.ErrConflict)
	}
	return n, mapErr(err)
}

func (s *kvStore) Delete(ctx context.Context, key string) error {
	err := retry(ctx, func(ctx context.Context, _ bool) error { return s.kv.Delete(ctx, key) })
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return mapErr(err)
}

func (s *kvStore) Scan(ctx context.Context, filter string, fn func(key string, val []byte) error) error {
	if filter == "" {
		filter = ">"
	}
	var w jetstream.KeyWatcher
	err := retry(ctx, func(context.Context, bool) (err error) {
		// The watcher lives as long as the context it is made with: the
		// scan's, not the try's.
		w, err = s.kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
		return err
	})
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
	return mapErr(retry(ctx, func(ctx context.Context, _ bool) error {
		str, err := s.js.Stream(ctx, "KV_"+s.bucket)
		if err != nil {
			return err
		}
		return str.Purge(ctx, jetstream.WithPurgeSubject("$KV."+s.bucket+"."+filter))
	}))
}

// blobStore is jobs.Blobs on a JetStream object store.
type blobStore struct{ obs jetstream.ObjectStore }

var _ jobs.Blobs = (*blobStore)(nil)

// PutReader streams r into the store in one try: a reader cannot be read
// again, so a leader change during an upload fails it (the client retries;
// with an Idempotency-Key that is safe).
func (b *blobStore) PutReader(ctx context.Context, name string, r io.Reader) (int64, error) {
	info, err := b.obs.Put(ctx, jetstream.ObjectMeta{Name: name}, r)
	if err != nil {
		return 0, mapErr(err)
	}
	return int64(info.Size), nil
}

// blobAttempt bounds one try of an object store operation on size bytes:
// attemptTimeout plus a second per 4 MiB (a slow disk), so that a try whose
// acks went down with a leader is given up in seconds, not minutes.
func blobAttempt(size uint64) time.Duration {
	return attemptTimeout + time.Duration(size>>22)*time.Second
}

func (b *blobStore) Put(ctx context.Context, name string, data []byte) error {
	return mapErr(retryWithin(ctx, retryFor, blobAttempt(uint64(len(data))), func(ctx context.Context, _ bool) error {
		_, err := b.obs.Put(ctx, jetstream.ObjectMeta{Name: name}, bytes.NewReader(data))
		return err
	}))
}

func (b *blobStore) Get(ctx context.Context, name string) ([]byte, error) {
	var info *jetstream.ObjectInfo
	err := retry(ctx, func(ctx context.Context, _ bool) (err error) { info, err = b.obs.GetInfo(ctx, name); return err })
	if err != nil {
		return nil, mapErr(err)
	}
	var data []byte
	err = retryWithin(ctx, retryFor, blobAttempt(info.Size), func(ctx context.Context, _ bool) (err error) {
		data, err = b.obs.GetBytes(ctx, name)
		return err
	})
	return data, mapErr(err)
}

func (b *blobStore) Delete(ctx context.Context, name string) error {
	err := retry(ctx, func(ctx context.Context, _ bool) error { return b.obs.Delete(ctx, name) })
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil
	}
	return mapErr(err)
}

// workSubject is the subject of the queued messages of group.
func workSubject(group string) string { return workPrefix + bus.Token(group) }
