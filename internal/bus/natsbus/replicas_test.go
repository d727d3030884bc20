package natsbus

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestTransientErrors(t *testing.T) {
	for _, err := range []error{
		jetstream.ErrNoStreamResponse, nats.ErrNoResponders, nats.ErrTimeout, context.DeadlineExceeded,
		fmt.Errorf("wrapped: %w", jetstream.ErrNoStreamResponse),
		&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"},
		&jetstream.APIError{Code: 500, ErrorCode: 10118, Description: "stream is offline"},
	} {
		if !transient(err) {
			t.Errorf("%v: not transient", err)
		}
	}
	for _, err := range []error{
		nil, jetstream.ErrKeyNotFound, jetstream.ErrKeyExists, jetstream.ErrObjectNotFound, nats.ErrMaxPayload,
		&jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement"},
	} {
		if transient(err) {
			t.Errorf("%v: transient", err)
		}
	}
}

func TestRetry(t *testing.T) {
	ctx := context.Background()
	var calls, retried int
	err := retry(ctx, func(_ context.Context, r bool) error {
		calls++
		if r {
			retried++
		}
		if calls < 3 {
			return jetstream.ErrNoStreamResponse
		}
		return nil
	})
	if err != nil || calls != 3 || retried != 2 {
		t.Fatalf("transient twice: err %v, %d calls, %d retried", err, calls, retried)
	}
	calls = 0
	err = retry(ctx, func(context.Context, bool) error { calls++; return jetstream.ErrKeyNotFound })
	if !errors.Is(err, jetstream.ErrKeyNotFound) || calls != 1 {
		t.Fatalf("permanent: err %v, %d calls", err, calls)
	}
	cctx, cancel := context.WithCancel(ctx)
	calls = 0
	err = retry(cctx, func(context.Context, bool) error { calls++; cancel(); return nats.ErrNoResponders })
	if err == nil || calls != 1 {
		t.Fatalf("cancelled: err %v, %d calls", err, calls)
	}
}

// TestSingleServerReplicas: on one server the default is 1 replica, and an
// explicit 3 fails at once with JetStream's reason rather than being
// lowered in silence.
func TestSingleServerReplicas(t *testing.T) {
	srv, err := StartServer(ServerConfig{Name: "one", DataDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	c, err := srv.Connect("gateway")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	ctx := waitCtx(t)
	if _, err := OpenJobStore(ctx, c, JobStoreConfig{Replicas: 3}); err == nil {
		t.Fatal("3 replicas on one server: no error")
	}
	if _, err := OpenJobStore(ctx, c, JobStoreConfig{}); err != nil {
		t.Fatal(err)
	}
	as, err := JobStoreAssets(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) < 7 {
		t.Fatalf("assets %+v", as)
	}
	for _, a := range as {
		if a.Replicas != 1 {
			t.Errorf("%s: %d replicas", a.Name, a.Replicas)
		}
	}
}
