package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// AutoReplicas is the replica count JobStoreConfig.Replicas 0 picks on a
// cluster of at least that many servers.
const AutoReplicas = 3

// clusterServers counts the NATS servers conn knows: 1 outside a cluster,
// else the servers of the cluster's gossip (the URLs given plus those the
// servers advertised).
func clusterServers(nc *nats.Conn) int {
	if nc.ConnectedClusterName() == "" {
		return 1
	}
	return max(1, len(nc.Servers()))
}

// defaultReplicas is what Replicas 0 means on conn: AutoReplicas on a
// cluster of at least AutoReplicas servers, else 1.
func defaultReplicas(nc *nats.Conn) int {
	if clusterServers(nc) >= AutoReplicas {
		return AutoReplicas
	}
	return 1
}

// replicasFor is the replica count to create or update stream with: want,
// or more when it already has more (startup never lowers replicas: a
// gateway started with a smaller count, or on a smaller view of the
// cluster, must not undo an operator's choice).
func replicasFor(ctx context.Context, js jetstream.JetStream, stream string, want int, log *slog.Logger) (n, have int) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return want, 0
	}
	have = s.CachedInfo().Config.Replicas
	if have > want {
		log.Info("keeping a JetStream asset's replicas above the configured count", "stream", stream, "replicas", have, "configured", want)
		return have, have
	}
	return want, have
}

// ensure runs create (a CreateOrUpdate of stream's asset with replicas n)
// with the count replicasFor chose. When raising an existing asset's
// replicas fails (too few servers), it warns and keeps the asset as it is;
// when an automatic count cannot be placed, it falls back to 1.
func ensure[T any](ctx context.Context, js jetstream.JetStream, stream string, want int, auto bool, log *slog.Logger,
	createOnce func(ctx context.Context, replicas int) (T, error)) (T, error) {
	// A stream being moved or scaled (by another gateway's start) can
	// make an update wait: retry it as a store operation is.
	create := func(r int) (v T, err error) {
		err = retryWithin(ctx, startupRetryFor, 10*time.Second, func(ctx context.Context, _ bool) (err error) {
			v, err = createOnce(ctx, r)
			return err
		})
		return v, err
	}
	n, have := replicasFor(ctx, js, stream, want, log)
	v, err := create(n)
	if err == nil {
		if have > 0 && n > have {
			log.Info("raised a JetStream asset's replicas", "stream", stream, "from", have, "to", n)
		}
		return v, nil
	}
	if !placementError(err) {
		return v, err
	}
	fallback := have
	if fallback == 0 && auto {
		fallback = 1
	}
	if fallback == 0 || fallback == n {
		return v, err
	}
	log.Warn("cannot give a JetStream asset the replicas asked for; keeping fewer", "stream", stream,
		"asked", n, "kept", fallback, "err", err)
	return create(fallback)
}

// leaderReads turns off direct gets on a replicated stream, so that reads
// are answered by its leader: a direct get may be answered by any replica,
// including one still catching up (just raised, or lagging), which can
// answer "not found" for a record written a moment ago: a file uploaded,
// then a batch over it refused. It reports whether it changed the stream
// (handles bound before must be bound again).
func leaderReads(ctx context.Context, js jetstream.JetStream, stream string) (bool, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return false, err
	}
	cfg := s.CachedInfo().Config
	if cfg.Replicas <= 1 || !cfg.AllowDirect {
		return false, nil
	}
	cfg.AllowDirect = false
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return false, err
	}
	return true, nil
}

// placementError reports JetStream refusing a replica count it has no
// servers for.
func placementError(err error) bool {
	var ae *jetstream.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode {
	case 10005, // no suitable peers for placement
		10023, // insufficient resources
		10074: // replicas > 1 not supported in non-clustered mode
		return true
	}
	return false
}

// retryFor bounds how long one store operation retries through a
// JetStream leader change: an election after a lost leader takes a few
// seconds (nats-server waits 4–9 s of silence before electing).
const retryFor = 20 * time.Second

// startupRetryFor bounds the wait for a JetStream that is still electing
// its first leader (a cluster that started with the gateway).
const startupRetryFor = 30 * time.Second

// transient reports an error a JetStream leader change or a reconnect
// causes, after which the same operation can succeed.
func transient(err error) bool {
	if err == nil {
		return false
	}
	switch {
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, nats.ErrTimeout), errors.Is(err, jetstream.ErrAsyncPublishTimeout),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, jetstream.ErrConsumerLeadershipChanged):
		return true
	}
	var ae *jetstream.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode {
		case 10008, // JetStream system temporarily unavailable
			10009, // JetStream cluster can not handle request
			10118, // stream is offline
			10119, // consumer is offline
			10194: // stream is offline: reason
			return true
		}
	}
	return false
}

// attemptTimeout bounds one try of a small store operation: an answer lost
// with a dying leader (a publish acknowledged by nobody) would otherwise
// hold the caller until its own deadline.
const attemptTimeout = 5 * time.Second

// retry runs op until it succeeds, fails for good, ctx ends or retryFor
// passes, each try bounded by attemptTimeout (see retryWithin).
func retry(ctx context.Context, op func(ctx context.Context, retried bool) error) error {
	return retryWithin(ctx, retryFor, attemptTimeout, op)
}

// retryWithin runs op until it succeeds, fails for good, ctx ends or bound
// passes; each try gets at most attempt. retried is true from the second
// try on (an operation that is not idempotent checks whether its first
// try took effect). Each wait doubles from 50 ms up to 1 s.
func retryWithin(ctx context.Context, bound, attempt time.Duration, op func(ctx context.Context, retried bool) error) error {
	deadline := time.Now().Add(bound)
	wait := 50 * time.Millisecond
	for n := 0; ; n++ {
		actx, cancel := context.WithTimeout(ctx, attempt)
		err := op(actx, n > 0)
		cancel()
		if err == nil || !transient(err) || ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (retrying after: %v)", ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

// StoreAsset is one JetStream stream behind the job store (a KV bucket's
// KV_<bucket>, the object store's OBJ_<bucket>, COURIER_WORK) or its
// consumer, as the cluster reports it.
type StoreAsset struct {
	// Name is the stream's name, or "stream/consumer".
	Name string
	// Replicas is a stream's configured replica count; for the consumer,
	// the peers it is placed on (it follows its stream's count).
	Replicas int
	// Leader names the server leading it ("" when none is, or outside a
	// cluster).
	Leader string
}

// JobStoreAssets lists the streams (and the work queue's consumer) that
// OpenJobStore creates, with their replicas and leaders: for operators'
// checks and tests.
func JobStoreAssets(ctx context.Context, conn *Conn) ([]StoreAsset, error) {
	js, err := jetstream.New(conn.nc)
	if err != nil {
		return nil, fmt.Errorf("natsbus: jetstream: %w", err)
	}
	var out []StoreAsset
	lister := js.ListStreams(ctx)
	for info := range lister.Info() {
		n := info.Config.Name
		if !strings.HasPrefix(n, "KV_courier_") && !strings.HasPrefix(n, "OBJ_courier_") && n != workStream {
			continue
		}
		a := StoreAsset{Name: n, Replicas: info.Config.Replicas}
		if info.Cluster != nil {
			a.Leader = info.Cluster.Leader
		}
		out = append(out, a)
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("natsbus: list streams: %w", err)
	}
	ci, err := js.Consumer(ctx, workStream, workConsumer)
	if err == nil {
		info := ci.CachedInfo()
		a := StoreAsset{Name: workStream + "/" + workConsumer, Replicas: max(1, info.Config.Replicas)}
		if info.Cluster != nil {
			a.Leader = info.Cluster.Leader
			if a.Leader != "" {
				a.Replicas = 1 + len(info.Cluster.Replicas)
			}
		}
		out = append(out, a)
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("natsbus: work consumer: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// openJetStream returns conn's JetStream once its account answers: a
// server without JetStream answers nothing on the stream API, so the
// account is asked first (ErrNoJetStream), retried for startupRetryFor
// while a cluster that just started elects its JetStream leader.
func openJetStream(ctx context.Context, conn *Conn) (jetstream.JetStream, error) {
	js, err := jetstream.New(conn.nc)
	if err != nil {
		return nil, fmt.Errorf("natsbus: jetstream: %w", err)
	}
	err = retryWithin(ctx, startupRetryFor, attemptTimeout, func(ctx context.Context, _ bool) error {
		_, err := js.AccountInfo(ctx)
		return err
	})
	if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
		return nil, ErrNoJetStream
	}
	if err != nil {
		return nil, fmt.Errorf("natsbus: jetstream account: %w", err)
	}
	return js, nil
}
