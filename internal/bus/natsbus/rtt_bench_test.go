package natsbus

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// BenchmarkRoundTripTCP measures what nats.go's options and the Go
// runtime's parked threads do to a stage boundary's bus round trip over
// TCP on loopback (docs/architecture.md, "Where a boundary's time goes"):
// a 3 KB message out and 100 bytes back between two connections of one
// process, the answering side also sending 100 bytes on to a third (as a
// last stage answers with its picks and sends a chunk to the gateway),
// hot (back to back) and after a 3 ms pause before each (as between the
// steps of one stream), for
//
//	default  the connections as Dial makes them
//	wt       WriteThrough on all three: the publisher writes the socket
//	         itself instead of waking nats.go's flusher goroutine
//	spin     the waiting side spins (runtime.Gosched) instead of blocking
//	         on the answer, keeping a thread running through the round
//	         trip (with GOMAXPROCS 1 it starves the network poller: tens
//	         of milliseconds)
//
// It reports the median microseconds per round trip
// (us_rtt_<variant>_<hot|idle>) and to the third connection
// (us_side_<variant>_<hot|idle>):
//
//	flock -x /tmp/courier-cpu.lock go test ./internal/bus/natsbus/ -run XXX -bench RoundTripTCP -benchtime 300x
func BenchmarkRoundTripTCP(b *testing.B) {
	srv, err := StartServer(ServerConfig{Name: "rtt", Listen: "127.0.0.1:0", DataDir: b.TempDir(), MaxPayload: 8 << 20}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = srv.Shutdown(context.Background()) }()
	for _, v := range []struct {
		name     string
		wt, spin bool
	}{{"default", false, false}, {"wt", true, false}, {"spin", false, true}} {
		var extra []nats.Option
		if v.wt {
			WriteThrough()(&extra)
		}
		dial := func(name string) *Conn {
			c, err := connect(srv.ClientURL(), name, nil, extra...)
			if err != nil {
				b.Fatal(err)
			}
			return c
		}
		a, z, y := dial("a-"+v.name), dial("z-"+v.name), dial("y-"+v.name)
		back, side := make(chan struct{}, 1), make(chan time.Time, 1)
		stopZ, err := z.Subscribe("out."+v.name, func(d []byte) {
			if err := z.Publish("back."+v.name, d[:100]); err != nil {
				b.Error(err)
			}
			// And on to a third connection, as a last stage's picks go
			// back and its chunk to the gateway.
			if err := z.Publish("side."+v.name, d[:100]); err != nil {
				b.Error(err)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		stopY, err := y.Subscribe("side."+v.name, func([]byte) { side <- time.Now() })
		if err != nil {
			b.Fatal(err)
		}
		stopA, err := a.Subscribe("back."+v.name, func([]byte) { back <- struct{}{} })
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range []*Conn{a, z, y} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := c.Flush(ctx)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
		}
		msg := make([]byte, 3*1024)
		for _, gap := range []time.Duration{0, 3 * time.Millisecond} {
			var us, sideUS []float64
			for range b.N {
				time.Sleep(gap)
				t0 := time.Now()
				if err := a.Publish("out."+v.name, msg); err != nil {
					b.Fatal(err)
				}
				if v.spin {
					for got := false; !got; {
						select {
						case <-back:
							got = true
						default:
							if time.Since(t0) > 10*time.Second {
								b.Fatal("no answer within 10s")
							}
							runtime.Gosched()
						}
					}
				} else {
					select {
					case <-back:
					case <-time.After(10 * time.Second):
						b.Fatal("no answer within 10s")
					}
				}
				us = append(us, float64(time.Since(t0).Nanoseconds())/1e3)
				select {
				case at := <-side:
					sideUS = append(sideUS, float64(at.Sub(t0).Nanoseconds())/1e3)
				case <-time.After(10 * time.Second):
					b.Fatal("nothing on the side within 10s")
				}
			}
			slices.Sort(us)
			slices.Sort(sideUS)
			name := "hot"
			if gap > 0 {
				name = "idle"
			}
			b.ReportMetric(us[len(us)/2], "us_rtt_"+v.name+"_"+name)
			b.ReportMetric(sideUS[len(sideUS)/2], "us_side_"+v.name+"_"+name)
		}
		stopA()
		stopZ()
		stopY()
		for _, c := range []*Conn{a, z, y} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = c.Close(ctx)
			cancel()
		}
	}
}
