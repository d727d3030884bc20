package natsbus

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func reportPercentiles(b *testing.B, name string, ds []time.Duration) {
	slices.Sort(ds)
	if len(ds) == 0 {
		return
	}
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds()), name+"-p50-µs")
	b.ReportMetric(float64(ds[(len(ds)-1)*99/100].Microseconds()), name+"-p99-µs")
}

// BenchmarkCoreRequestReply is the lane interactive requests take: core
// NATS request-reply over the in-process connection (512-byte request).
func BenchmarkCoreRequestReply(b *testing.B) {
	srv, err := StartServer(ServerConfig{Name: "bench"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	c, err := srv.Connect("bench")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(context.Background())
	p, err := NewHopProbe(c, 512)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	ds := make([]time.Duration, 0, b.N)
	for range b.N {
		d, err := p.RoundTrip(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		ds = append(ds, d)
	}
	reportPercentiles(b, "rtt", ds)
}

// BenchmarkJetStreamWorkQueue is the lane durable work would take: publish
// to a work-queue stream (file storage), a pull consumer fetches the
// message and acks it; timed from publish to the ack's confirmation.
func BenchmarkJetStreamWorkQueue(b *testing.B) {
	srv, err := StartServer(ServerConfig{Name: "bench", DataDir: b.TempDir()}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	c, err := srv.Connect("bench")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(context.Background())
	js, err := jetstream.New(c.nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "WORK", Subjects: []string{"work.>"}, Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage})
	if err != nil {
		b.Fatal(err)
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "w", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		b.Fatal(err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1))
	if err != nil {
		b.Fatal(err)
	}
	defer it.Stop()
	payload := make([]byte, 512)
	ds := make([]time.Duration, 0, b.N)
	for range b.N {
		t0 := time.Now()
		if _, err := js.Publish(ctx, "work.m", payload); err != nil {
			b.Fatal(err)
		}
		m, err := it.Next()
		if err != nil {
			b.Fatal(err)
		}
		if err := m.DoubleAck(ctx); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	reportPercentiles(b, "enqueue-to-ack", ds)
}
