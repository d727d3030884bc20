package natsbus

import (
	"context"
	"testing"
	"time"

	"courier/internal/jobs"
)

// Pending follows a message from its publish to its ack: true while it
// waits and while it is fetched but not acked, false once acked or purged.
func TestWorkQueuePending(t *testing.T) {
	srv, err := StartServer(ServerConfig{Name: "t", DataDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	defer func() { _ = srv.Shutdown(ctx) }()
	conn, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	st, err := OpenJobStore(ctx, conn, JobStoreConfig{AckWait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	q := st.Queue
	pending := func(group string, want bool, when string) {
		t.Helper()
		got, err := q.Pending(ctx, group)
		if err != nil || got != want {
			t.Fatalf("%s: Pending(%s) = %v, %v; want %v", when, group, got, err, want)
		}
	}
	pending("job_a", false, "never published")
	if err := q.Publish(ctx, []jobs.QueueMsg{{Group: "job_a", ID: "job_a", Data: []byte(`{}`)}, {Group: "batch_b", ID: "batch_b.0", Data: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	pending("job_a", true, "published")
	ds, err := q.Fetch(ctx, 1, time.Second)
	if err != nil || len(ds) != 1 {
		t.Fatalf("fetch: %d, %v", len(ds), err)
	}
	pending("job_a", true, "fetched, not acked")
	if err := ds[0].Ack(ctx); err != nil {
		t.Fatal(err)
	}
	pending("job_a", false, "acked")
	pending("batch_b", true, "another group")
	if err := q.Purge(ctx, "batch_b"); err != nil {
		t.Fatal(err)
	}
	pending("batch_b", false, "purged")
}
