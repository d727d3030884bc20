package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"courier/internal/jobs"
)

// workQueue is jobs.Queue on a JetStream work-queue stream with one durable
// pull consumer shared by every runner: each message goes to one runner,
// and is delivered again when it is not acked within AckWait.
type workQueue struct {
	js   jetstream.JetStream
	str  jetstream.Stream
	cons jetstream.Consumer
}

var _ jobs.Queue = (*workQueue)(nil)

func openWorkQueue(ctx context.Context, js jetstream.JetStream, cfg JobStoreConfig, auto bool, log *slog.Logger) (*workQueue, error) {
	str, err := ensure(ctx, js, workStream, cfg.Replicas, auto, log, func(ctx context.Context, r int) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        workStream,
			Description: "Courier background work: batch lines and async jobs",
			Subjects:    []string{workPrefix + ">"},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    r,
			Duplicates:  2 * time.Minute,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("natsbus: work stream: %w", err)
	}
	// The consumer has as many replicas as the stream (Replicas 0: a
	// work-queue stream's consumers follow its peers, also when it is
	// scaled up later), so the runners' place in the queue survives what
	// the stream survives.
	var cons jetstream.Consumer
	err = retryWithin(ctx, startupRetryFor, 10*time.Second, func(ctx context.Context, _ bool) (err error) {
		cons, err = str.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       workConsumer,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       cfg.AckWait,
			MaxDeliver:    -1,
			MaxAckPending: 100_000,
			FilterSubject: workPrefix + ">",
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("natsbus: work consumer: %w", err)
	}
	return &workQueue{js: js, str: str, cons: cons}, nil
}

// publishAttempt bounds one try of publishing up to a batch's 1,000
// messages and collecting their acks.
const publishAttempt = 30 * time.Second

// Publish publishes msgs asynchronously and waits for every ack. Messages
// refused for a transient reason (a leader change) are published again,
// within retry's bounds; their ids make a repeat harmless.
func (q *workQueue) Publish(ctx context.Context, msgs []jobs.QueueMsg) error {
	todo := make([]int, len(msgs))
	for i := range todo {
		todo[i] = i
	}
	failed := map[int]error{}
	err := retryWithin(ctx, retryFor, publishAttempt, func(ctx context.Context, _ bool) error {
		for _, i := range todo {
			delete(failed, i)
		}
		futs := make([]jetstream.PubAckFuture, len(todo))
		for k, i := range todo {
			f, err := q.js.PublishAsync(workSubject(msgs[i].Group), msgs[i].Data, jetstream.WithMsgID(msgs[i].ID))
			if err != nil {
				failed[i] = err
				continue
			}
			futs[k] = f
		}
		for k, f := range futs {
			if f == nil {
				continue
			}
			select {
			case <-f.Ok():
			case err := <-f.Err():
				failed[todo[k]] = err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		todo = todo[:0]
		var again error
		for i, err := range failed {
			if transient(err) {
				todo = append(todo, i)
				again = err
			}
		}
		slices.Sort(todo)
		return again
	})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("natsbus: publish work: %w", err)
	}
	if len(failed) > 0 {
		pe := &jobs.PublishError{Failed: map[int]error{}}
		for i, err := range failed {
			pe.Failed[i] = mapErr(err)
		}
		return pe
	}
	return nil
}

// Fetch pulls up to max messages, waiting at most wait for them.
func (q *workQueue) Fetch(ctx context.Context, max int, wait time.Duration) ([]jobs.Delivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := q.cons.Fetch(max, jetstream.FetchMaxWait(wait))
	if err != nil {
		return nil, mapErr(err)
	}
	var ds []jobs.Delivery
	for m := range b.Messages() {
		ds = append(ds, delivery{m})
	}
	if err := b.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
		return ds, mapErr(err)
	}
	return ds, nil
}

// Purge drops group's queued messages.
func (q *workQueue) Purge(ctx context.Context, group string) error {
	return mapErr(retry(ctx, func(ctx context.Context, _ bool) error {
		return q.str.Purge(ctx, jetstream.WithPurgeSubject(workSubject(group)))
	}))
}

// Pending reports whether a message of group is still in the stream. On a
// work-queue stream a message is deleted when it is acked, so this is true
// from its publish until its ack, whether it waits or is being run.
func (q *workQueue) Pending(ctx context.Context, group string) (bool, error) {
	err := retry(ctx, func(ctx context.Context, _ bool) error {
		_, err := q.str.GetLastMsgForSubject(ctx, workSubject(group))
		return err
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return false, nil
	}
	return false, mapErr(err)
}

// delivery is a jobs.Delivery over a JetStream message.
type delivery struct{ m jetstream.Msg }

func (d delivery) Data() []byte { return d.m.Data() }

func (d delivery) Attempt() int {
	md, err := d.m.Metadata()
	if err != nil {
		return 1
	}
	return int(md.NumDelivered)
}

// Ack is confirmed by the consumer's leader (a double ack), retried
// through a leader change: an ack lost there would run the line again
// after the ack wait.
func (d delivery) Ack(ctx context.Context) error {
	return mapErr(retry(ctx, func(ctx context.Context, _ bool) error { return d.m.DoubleAck(ctx) }))
}

func (d delivery) Nak(delay time.Duration) error {
	if delay > 0 {
		return mapErr(d.m.NakWithDelay(delay))
	}
	return mapErr(d.m.Nak())
}

func (d delivery) InProgress() error { return mapErr(d.m.InProgress()) }
