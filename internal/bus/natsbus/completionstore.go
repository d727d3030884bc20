package natsbus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"courier/internal/jobs"
)

// bucketCompletions holds stored chat completions (package completions).
const bucketCompletions = "courier_chat_completions"

// CompletionStoreConfig configures OpenCompletionStore.
type CompletionStoreConfig struct {
	// TTL is how long a stored completion is kept after its last write
	// (the bucket's max age); 0 means 30 days.
	TTL time.Duration
	// Replicas as in JobStoreConfig.
	Replicas int
}

// DefaultCompletionTTL is how long stored chat completions are kept when
// CompletionStoreConfig.TTL is 0 (OpenAI keeps them 30 days).
const DefaultCompletionTTL = 30 * 24 * time.Hour

// OpenCompletionStore creates (or opens, setting its TTL) the key-value
// bucket that holds stored chat completions. A bus without JetStream is
// ErrNoJetStream.
func OpenCompletionStore(ctx context.Context, conn *Conn, cfg CompletionStoreConfig) (jobs.KV, error) {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultCompletionTTL
	}
	auto := cfg.Replicas <= 0
	if auto {
		cfg.Replicas = defaultReplicas(conn.nc)
	}
	js, err := openJetStream(ctx, conn)
	if err != nil {
		return nil, err
	}
	kv, err := ensure(ctx, js, "KV_"+bucketCompletions, cfg.Replicas, auto, conn.log, func(ctx context.Context, r int) (jetstream.KeyValue, error) {
		return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: bucketCompletions, History: 1, Storage: jetstream.FileStorage, Replicas: r, TTL: cfg.TTL,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("natsbus: bucket %s: %w", bucketCompletions, err)
	}
	if changed, err := leaderReads(ctx, js, "KV_"+bucketCompletions); err != nil {
		return nil, fmt.Errorf("natsbus: bucket %s: %w", bucketCompletions, err)
	} else if changed {
		if kv, err = js.KeyValue(ctx, bucketCompletions); err != nil {
			return nil, fmt.Errorf("natsbus: bucket %s: %w", bucketCompletions, err)
		}
	}
	return &kvStore{js: js, kv: kv, bucket: bucketCompletions}, nil
}
