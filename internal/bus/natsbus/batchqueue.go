package natsbus

import (
	"context"
	"errors"
	"fmt"
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

func openWorkQueue(ctx context.Context, js jetstream.JetStream, cfg JobStoreConfig) (*workQueue, error) {
	str, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        workStream,
		Description: "Courier background work: batch lines and async jobs",
		Subjects:    []string{workPrefix + ">"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Duplicates:  2 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("natsbus: work stream: %w", err)
	}
	cons, err := str.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       workConsumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: 100_000,
		FilterSubject: workPrefix + ">",
	})
	if err != nil {
		return nil, fmt.Errorf("natsbus: work consumer: %w", err)
	}
	return &workQueue{js: js, str: str, cons: cons}, nil
}

// Publish publishes msgs asynchronously and waits for every ack.
func (q *workQueue) Publish(ctx context.Context, msgs []jobs.QueueMsg) error {
	futs := make([]jetstream.PubAckFuture, len(msgs))
	failed := map[int]error{}
	for i, m := range msgs {
		f, err := q.js.PublishAsync(workSubject(m.Group), m.Data, jetstream.WithMsgID(m.ID))
		if err != nil {
			failed[i] = mapErr(err)
			continue
		}
		futs[i] = f
	}
	for i, f := range futs {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
		case err := <-f.Err():
			failed[i] = mapErr(err)
		case <-ctx.Done():
			return fmt.Errorf("natsbus: publish work: %w", ctx.Err())
		}
	}
	if len(failed) > 0 {
		return &jobs.PublishError{Failed: failed}
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
	return mapErr(q.str.Purge(ctx, jetstream.WithPurgeSubject(workSubject(group))))
}

// Pending reports whether a message of group is still in the stream. On a
// work-queue stream a message is deleted when it is acked, so this is true
// from its publish until its ack, whether it waits or is being run.
func (q *workQueue) Pending(ctx context.Context, group string) (bool, error) {
	_, err := q.str.GetLastMsgForSubject(ctx, workSubject(group))
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

func (d delivery) Ack(ctx context.Context) error { return mapErr(d.m.DoubleAck(ctx)) }

func (d delivery) Nak(delay time.Duration) error {
	if delay > 0 {
		return mapErr(d.m.NakWithDelay(delay))
	}
	return mapErr(d.m.Nak())
}

func (d delivery) InProgress() error { return mapErr(d.m.InProgress()) }
