package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// BenchmarkFloorParts says what the floor under BenchmarkFabricOnly's
// one-token HTTP request is made of on this machine, each part timed in
// the same process, interleaved, at the Ps the benchmark runs with (-cpu):
//
//	handoff     one goroutine wakes another blocked on a channel and is
//	            woken back (two hand-offs: what each goroutine switch on
//	            the request's path costs at the least)
//	threadwake  the same with each goroutine locked to its own thread, so
//	            that every hand-off wakes a sleeping thread (futex): what a
//	            hand-off costs when the runtime wakes an idle P's thread
//	pipe        a 512-byte write through net.Pipe and a 512-byte answer
//	            (how an in-process NATS connection reaches its server)
//	tcp         400 bytes to an echo goroutine on a loopback TCP
//	            connection and 330 back (the kernel's loopback and Go's
//	            network poller, no HTTP)
//	hop         the raw NATS request-reply hop on an embedded server
//	floor-http  the same HTTP client's request to a trivial handler
//	            (floorServer), what no gateway on net/http goes below
//	http        the one-token completion through the gateway with an
//	            instant engine, its log line written as a node does
//
// Each reports its p50 and p99 per round trip, and handoff, tcp,
// floor-http and http the process's CPU time per round trip (cpu-µs):
// above the latency when a second P's thread spins looking for work.
func BenchmarkFloorParts(b *testing.B) {
	conns, gw := instantFabric(b)
	hs := instantGateway(b, gw, true)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	floor := floorServer(b)
	probe := hopProbe(b, conns["probe"])
	body := []byte(`{"model":"instant","prompt":"Once upon a time","max_tokens":1,"temperature":0}`)

	handoff, threadwake := handoffPair(b, false), handoffPair(b, true)
	pc, ps := net.Pipe()
	pipe := echoPair(b, pc, ps, 512, 512)
	tc, ts := tcpConns(b)
	tcp := echoPair(b, tc, ts, 400, 330)
	timed := func(f func()) func() time.Duration {
		return func() time.Duration { t0 := time.Now(); f(); return time.Since(t0) }
	}
	parts := []struct {
		name string
		f    func() time.Duration
		cpu  bool
	}{
		{"handoff", handoff, true},
		{"threadwake", threadwake, true},
		{"pipe", timed(pipe), false},
		{"tcp", timed(tcp), true},
		{"hop", func() time.Duration {
			d, err := probe.RoundTrip(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			return d
		}, false},
		{"floor-http", timed(func() { postCompletion(b, hc, floor.URL, body) }), true},
		{"http", timed(func() { postCompletion(b, hc, hs.URL, body) }), true},
	}
	for range 50 {
		for _, p := range parts {
			p.f()
		}
	}
	cpu := make([]float64, len(parts))
	for i, p := range parts {
		if p.cpu {
			cpu[i] = cpuPer(func() { p.f() }, 500)
		}
	}
	ds := make([][]time.Duration, len(parts))
	for i := range ds {
		ds[i] = make([]time.Duration, 0, b.N)
	}
	b.ResetTimer()
	for range b.N {
		for i, p := range parts {
			ds[i] = append(ds[i], p.f())
		}
	}
	b.StopTimer()
	for i, p := range parts {
		report(b, p.name, ds[i])
		if p.cpu {
			b.ReportMetric(cpu[i], p.name+"-cpu-µs")
		}
	}
}

// handoffPair returns a round trip between the caller and a goroutine
// blocked on an unbuffered channel: two goroutine hand-offs. With locked,
// both ends run on threads of their own (the caller's end on a goroutine
// of its own too), so each hand-off wakes a thread.
func handoffPair(b *testing.B, locked bool) func() time.Duration {
	ping, pong := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	echo := func(in, out chan struct{}) {
		if locked {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
		}
		for range in {
			out <- struct{}{}
		}
	}
	go func() { defer close(done); echo(ping, pong) }()
	if !locked {
		b.Cleanup(func() { close(ping); <-done })
		return func() time.Duration { t0 := time.Now(); ping <- struct{}{}; <-pong; return time.Since(t0) }
	}
	// The caller's end: a locked goroutine that times each round trip
	// itself (the hand-offs to it and back are not part of it).
	call, back := make(chan struct{}), make(chan time.Duration)
	relayed := make(chan struct{})
	go func() {
		defer close(relayed)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for range call {
			t0 := time.Now()
			ping <- struct{}{}
			<-pong
			back <- time.Since(t0)
		}
	}()
	b.Cleanup(func() { close(call); <-relayed; close(ping); <-done })
	return func() time.Duration { call <- struct{}{}; return <-back }
}

// tcpConns is the two ends of a loopback TCP connection.
func tcpConns(b *testing.B) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	return c, s
}

// echoPair returns a round trip over the connection pair: req bytes
// written to the first end, read whole by a goroutine on the second,
// which answers with resp bytes, read whole.
func echoPair(b *testing.B, c, s net.Conn, req, resp int) func() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		in, out := make([]byte, req), make([]byte, resp)
		for {
			if _, err := io.ReadFull(s, in); err != nil {
				return
			}
			if _, err := s.Write(out); err != nil {
				return
			}
		}
	}()
	b.Cleanup(func() { c.Close(); s.Close(); <-done })
	out, in := make([]byte, req), make([]byte, resp)
	return func() {
		if _, err := c.Write(out); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, in); err != nil {
			b.Fatal(err)
		}
	}
}
