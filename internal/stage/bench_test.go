package stage

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cbus "courier/internal/bus"
	"courier/internal/bus/natsbus"
	"courier/internal/engine"
	"courier/internal/engine/gguf"
	"courier/internal/engine/model"
	"courier/internal/engine/synth"
	"courier/internal/testutil"
)

// benchModelPath writes (once; COURIER_BENCH_DIR keeps it) the 134M
// synthetic model: synth.Default, Q8_0, untied output.
func benchModelPath(b *testing.B) string {
	b.Helper()
	return testutil.BenchFile(b, "synth-134M-Q8_0.gguf", func(w io.Writer) error {
		c := synth.Default
		c.Type = gguf.TypeQ8_0
		return synth.Write(w, c)
	})
}

// benchEngineOpts: one kernel thread per stage (the stages of one step
// run one after another, so a whole-model engine with one thread is the
// fair reference), 16 slots.
var benchEngineOpts = engine.Options{ContextLength: 512, Slots: 16, BatchSize: 64, Threads: 1}

// loadBenchPipeline starts the later stages of an n-stage split of path,
// each on its own connection made by dial, and lanes first stages through
// them (slots shared out), each keeping up to depth steps in flight (0:
// the default, one per stage), and returns the first stages. The split
// is --stage's (engine.StageShares), or with even as many blocks a stage.
// With logits, the first stages sample from logits the last stage sends
// back (as before the last stage sampled), for comparison.
func loadBenchPipeline(b *testing.B, path string, n, lanes, depth int, logits, even bool, dial func(name string) *natsbus.Conn) []*engine.Engine {
	b.Helper()
	total, err := engine.LayerCount(path)
	if err != nil {
		b.Fatal(err)
	}
	split, err := engine.StageShares(path, n)
	if err != nil {
		b.Fatal(err)
	}
	share := func(i int) model.LayerRange {
		if even { // as many blocks each, the head on the last
			return model.LayerRange{First: (i - 1) * total / n, End: i * total / n, Total: total}
		}
		return split[i-1]
	}
	for i := n; i >= 2; i-- {
		st, err := engine.LoadStage(path, engine.StageOptions{Layers: share(i), ContextLength: 512, Threads: 1})
		if err != nil {
			b.Fatal(err)
		}
		id := fmt.Sprintf("b%d", i)
		s, err := NewServer(dial(id), st, ServerConfig{Instance: id, Model: "m", HeartbeatInterval: time.Second}, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close(); st.Close() })
	}
	var firsts []*engine.Engine
	for l := range lanes {
		id := fmt.Sprintf("first-%d", l)
		p, err := NewPipeline(dial(id), PipelineConfig{Instance: id, Model: "m", Layers: share(1), HeartbeatInterval: time.Second, Microbatches: depth}, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(p.Close)
		opts := benchEngineOpts
		opts.Layers, opts.Tail, opts.Slots = share(1), p, opts.Slots/lanes
		if logits {
			opts.Tail = logitsTail{p}
		}
		e, err := engine.Load(path, opts)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { e.Close() })
		p.SetContextLength(e.Info().ContextLength)
		for i := 0; i < 500 && !e.Ready(); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if !e.Ready() {
			b.Fatal("pipeline not ready")
		}
		firsts = append(firsts, e)
	}
	return firsts
}

// logitsTail is a Pipeline that is not an engine.SamplingTail: every
// logits row comes back to the first stage, which samples.
type logitsTail struct{ p *Pipeline }

func (t logitsTail) Depth() int                                  { return t.p.Depth() }
func (t logitsTail) Send(b *model.Batch, hidden []float32) error { return t.p.Send(b, hidden) }
func (t logitsTail) Answered() <-chan struct{}                   { return t.p.Answered() }
func (t logitsTail) Take() (engine.TailAnswer, bool)             { return t.p.Take() }
func (t logitsTail) Ready() bool                                 { return t.p.Ready() }

// generateConcurrent runs conc greedy generations of n tokens, spread
// over the engines, and returns the tokens generated.
func generateConcurrent(b *testing.B, es []*engine.Engine, conc, n int) int {
	return generateEmitting(b, es, conc, n, false)
}

// benchRequests numbers the requests whose last stage emits the chunks.
var benchRequests atomic.Int64

// generateEmitting is generateConcurrent where, with emit, the last stage
// emits each generation's chunks (engine.Request.Out) to gateway "gw"'s
// subject.
func generateEmitting(b *testing.B, es []*engine.Engine, conc, n int, emit bool) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for i := range conc {
		wg.Go(func() {
			prompt := []int32{1, int32(300 + i), int32(400 + i), int32(500 + i)}
			req := engine.Request{Prompt: prompt, MaxTokens: n, IgnoreEOS: true}
			if emit {
				id := fmt.Sprintf("cmpl-%d", benchRequests.Add(1))
				req.Out = &engine.StreamOut{Subject: cbus.ChunkSubject("gw", id), ID: id, Worker: "first", Attempt: 1, Seq: 1, Frames: 3}
			}
			res, err := es[i%len(es)].Generate(context.Background(), req, func(engine.Token) error { return nil })
			if err != nil {
				b.Error(err)
			}
			mu.Lock()
			total += res.CompletionTokens
			mu.Unlock()
		})
	}
	wg.Wait()
	return total
}

// BenchmarkPipeline measures the 134M synthetic model (Q8_0) as one
// engine, as 2 stages joined by an in-process NATS server (with one step
// in flight, and with the default two micro-batches) and by NATS over TCP
// on loopback, as 3 stages (in-process; one step in flight, and three
// micro-batches), and as 2 stages with two first stages (one step in
// flight each) sharing the second, 2 stages whose first stage samples
// from the logits sent back (-logits), and 2 and 3 stages split into as
// many blocks each (-even) instead of --stage's compute-weighted shares,
// and 2 stages (in-process and TCP) whose last stage emits the chunks
// (-emit, engine.Request.Out, to a gateway's connection on the bus),
// every setup loaded at once
// and measured in turn within each round (so a busy moment of the machine
// hits them alike): aggregate decode tokens/s at 1, 4, 8 and 16 streams,
// (32 tokens a stream; 96 at 1 stream), as a ratio to the whole model's (x_whole_<setup>_s<streams>), and at 1
// stream the time each stage boundary adds per token
// (ms_per_boundary_<setup>). The tokens/s of every setup are logged. Run
// it alone:
//
//	flock -x /tmp/courier-cpu.lock go test ./internal/stage/ -run XXX -bench Pipeline -benchtime 5x -v
//
// COURIER_BENCH_DIR keeps the model between runs; COURIER_BENCH_SETUPS
// (comma-separated names, as in the metrics) runs only those setups
// beside the whole model.
func BenchmarkPipeline(b *testing.B) {
	path := benchModelPath(b)
	inproc := func(b *testing.B) func(string) *natsbus.Conn {
		srv, err := natsbus.StartServer(natsbus.ServerConfig{Name: "b", DataDir: b.TempDir(), MaxPayload: 8 << 20}, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
		return func(name string) *natsbus.Conn {
			c, err := srv.Connect(name)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { closeConn(c) })
			return c
		}
	}
	tcp := func(b *testing.B) func(string) *natsbus.Conn {
		srv, err := natsbus.StartServer(natsbus.ServerConfig{Name: "b", DataDir: b.TempDir(), Listen: "127.0.0.1:0", MaxPayload: 8 << 20}, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
		return func(name string) *natsbus.Conn {
			c, err := natsbus.Dial(srv.ClientURL(), name, natsbus.ClientAuth{}, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { closeConn(c) })
			return c
		}
	}
	type setup struct {
		name   string
		stages int
		load   func() []*engine.Engine
		emit   bool // the last stage emits the chunks (to a gateway's connection that drops them)
		e      []*engine.Engine
		secs   map[int]float64 // streams -> seconds spent
		toks   map[int]int     // streams -> tokens generated
	}
	whole, err := engine.Load(path, benchEngineOpts)
	if err != nil {
		b.Fatal(err)
	}
	defer whole.Close()
	pipe := func(n, lanes, depth int, logits bool, dial func(*testing.B) func(string) *natsbus.Conn) func() []*engine.Engine {
		return func() []*engine.Engine { return loadBenchPipeline(b, path, n, lanes, depth, logits, false, dial(b)) }
	}
	// emitting is pipe with a gateway's connection on the bus that takes
	// the chunks the last stage emits.
	emitting := func(n int, dial func(*testing.B) func(string) *natsbus.Conn) func() []*engine.Engine {
		return func() []*engine.Engine {
			d := dial(b)
			es := loadBenchPipeline(b, path, n, 1, 0, false, false, d)
			stop, err := d("gw").Subscribe("courier.chunk.gw.*", func([]byte) {})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(stop)
			return es
		}
	}
	even := func(n int) func() []*engine.Engine {
		return func() []*engine.Engine { return loadBenchPipeline(b, path, n, 1, 0, false, true, inproc(b)) }
	}
	all := []*setup{
		{name: "whole", stages: 1, load: func() []*engine.Engine { return []*engine.Engine{whole} }},
		{name: "2stages-inproc-1inflight", stages: 2, load: pipe(2, 1, 1, false, inproc)},
		{name: "2stages-inproc", stages: 2, load: pipe(2, 1, 0, false, inproc)},
		{name: "2stages-tcp", stages: 2, load: pipe(2, 1, 0, false, tcp)},
		// The last stage emits the chunks (engine.Request.Out), as a
		// worker has it do for plain completions and chats.
		{name: "2stages-inproc-emit", stages: 2, load: emitting(2, inproc), emit: true},
		{name: "2stages-tcp-emit", stages: 2, load: emitting(2, tcp), emit: true},
		{name: "3stages-inproc-1inflight", stages: 3, load: pipe(3, 1, 1, false, inproc)},
		{name: "3stages-inproc", stages: 3, load: pipe(3, 1, 0, false, inproc)},
		// Two first stages (8 slots each, one step in flight each)
		// through one second stage.
		{name: "2stages-2firsts-inproc", stages: 2, load: pipe(2, 2, 1, false, inproc)},
		// The first stage samples from the logits sent back: the cost of
		// the logits path (before the last stage sampled), in the same run.
		{name: "2stages-inproc-logits", stages: 2, load: pipe(2, 1, 0, true, inproc)},
		{name: "2stages-tcp-logits", stages: 2, load: pipe(2, 1, 0, true, tcp)},
		// As many blocks a stage (the split before --stage weighed the
		// output head), default micro-batches.
		{name: "2stages-inproc-even", stages: 2, load: even(2)},
		{name: "3stages-inproc-even", stages: 3, load: even(3)},
	}
	// COURIER_BENCH_SETUPS names the setups to run, comma-separated (the
	// whole model always runs: it is the reference); empty: all.
	var setups []*setup
	only := strings.Split(os.Getenv("COURIER_BENCH_SETUPS"), ",")
	for _, s := range all {
		if s.stages == 1 || only[0] == "" || slices.Contains(only, s.name) {
			s.e = s.load()
			setups = append(setups, s)
		}
	}
	streams := []int{1, 4, 8, 16}
	for _, s := range setups {
		s.secs, s.toks = map[int]float64{}, map[int]int{}
		generateConcurrent(b, s.e, 1, 4) // warm: pages of the weights touched
	}
	for b.Loop() {
		for _, conc := range streams {
			tokens := 32
			if conc == 1 {
				tokens = 96 // the latency figure: a longer run
			}
			for _, s := range setups {
				t0 := time.Now()
				s.toks[conc] += generateEmitting(b, s.e, conc, tokens, s.emit)
				s.secs[conc] += time.Since(t0).Seconds()
			}
		}
	}
	tps := func(s *setup, conc int) float64 { return float64(s.toks[conc]) / s.secs[conc] }
	for _, s := range setups {
		line := s.name + ":"
		for _, conc := range streams {
			line += fmt.Sprintf(" %d streams %.1f tok/s;", conc, tps(s, conc))
			if s.stages > 1 {
				b.ReportMetric(tps(s, conc)/tps(setups[0], conc), fmt.Sprintf("x_whole_%s_s%d", s.name, conc))
			}
		}
		if s.stages > 1 {
			added := (1/tps(s, 1) - 1/tps(setups[0], 1)) * 1e3 / float64(s.stages-1)
			b.ReportMetric(added, "ms_per_boundary_"+s.name)
		}
		b.Log(line)
	}
}

// benchBus starts a NATS server for a benchmark, in-process ("inproc")
// or listening on loopback TCP ("tcp"; "tcp-wt": connections that write
// through, natsbus.WriteThrough, but for "gw", a gateway's), and returns
// how to connect to it by name; b's cleanups close the connections, then
// the server.
func benchBus(b *testing.B, bus string) func(name string) *natsbus.Conn {
	cfg := natsbus.ServerConfig{Name: "b", DataDir: b.TempDir(), MaxPayload: 8 << 20}
	var opts []natsbus.DialOption
	if bus == "tcp-wt" {
		opts = append(opts, natsbus.WriteThrough())
	}
	if bus != "inproc" {
		cfg.Listen = "127.0.0.1:0"
	}
	srv, err := natsbus.StartServer(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return func(name string) *natsbus.Conn {
		var c *natsbus.Conn
		var err error
		if bus != "inproc" {
			o := opts
			if name == "gw" {
				o = nil // a gateway dials as before
			}
			c, err = natsbus.Dial(srv.ClientURL(), name, natsbus.ClientAuth{}, nil, o...)
		} else {
			c, err = srv.Connect(name)
		}
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { closeConn(c) })
		return c
	}
}

// BenchmarkBusRoundTrip measures the floor under a stage boundary: a bare
// NATS round trip between two connections of one process, a 3 KB message
// out (one decode row of the 134M model's hidden state) and 100 bytes
// back, over an in-process server and over TCP on loopback (tcp-wt:
// connections that write through, natsbus.WriteThrough), hot (round
// trips back to back) and after a 3 ms pause before each (as between the
// steps of one stream, when the threads of the bus's goroutines park).
// It reports the median microseconds per round trip (us_rtt_<bus>_<hot|idle>):
//
//	flock -x /tmp/courier-cpu.lock go test ./internal/stage/ -run XXX -bench BusRoundTrip -benchtime 300x
func BenchmarkBusRoundTrip(b *testing.B) {
	for _, bus := range []string{"inproc", "tcp", "tcp-wt"} {
		dial := benchBus(b, bus)
		a, z := dial("a"), dial("z")
		back := make(chan struct{}, 1)
		stopZ, err := z.Subscribe("out", func(d []byte) {
			if err := z.Publish("back", d[:100]); err != nil {
				b.Error(err)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		stopA, err := a.Subscribe("back", func([]byte) { back <- struct{}{} })
		if err != nil {
			b.Fatal(err)
		}
		flushConns(b, a, z)
		msg := make([]byte, 3*1024)
		for _, gap := range []time.Duration{0, 3 * time.Millisecond} {
			var us []float64
			for range b.N {
				time.Sleep(gap)
				t0 := time.Now()
				if err := a.Publish("out", msg); err != nil {
					b.Fatal(err)
				}
				select {
				case <-back:
				case <-time.After(10 * time.Second):
					b.Fatal("no answer within 10s")
				}
				us = append(us, float64(time.Since(t0).Nanoseconds())/1e3)
			}
			slices.Sort(us)
			name := "hot"
			if gap > 0 {
				name = "idle"
			}
			b.ReportMetric(us[len(us)/2], "us_rtt_"+bus+"_"+name)
		}
		stopA()
		stopZ()
	}
}

// BenchmarkBoundary measures one stage boundary directly, and who emits
// the chunks (docs/architecture.md, "Who emits the chunks"): one stream
// through 2 stages of the 134M model (Q8_0, --stage's split) over an
// in-process NATS server and over TCP on loopback (tcp; tcp-wt with
// connections that write through, natsbus.WriteThrough, as stage workers
// dial), each request run twice
// in turn: with the first stage emitting (its caller publishes each
// token's chunk frame on the first stage's connection, then the final
// one, as a worker does: -first) and with the last stage emitting
// (engine.Request.Out: -last). A third connection stands for the gateway
// and takes the frames. Per token it takes, at the first stage, the time
// from handing a step to the Pipeline to taking its answer, less the last
// stage's own work on it (its layers, the head and the sampling; with
// -last the chunk frames it makes count in): what the boundary adds, both ways
// (us_boundary_<bus>_<who>); and the time from the last stage's sample
// of a token to its chunk reaching the gateway (us_sample_to_gw_<bus>_<who>).
// Per request: the time to the first chunk at the gateway
// (us_ttft_<bus>_<who>) and between chunks (us_gap_<bus>_<who>, the
// median), and the time per token to the final chunk
// (us_per_token_<bus>_<who>). Medians over every token (or request):
//
//	flock -x /tmp/courier-cpu.lock go test ./internal/stage/ -run XXX -bench Boundary -benchtime 3x
func BenchmarkBoundary(b *testing.B) {
	const tokens = 96
	path := benchModelPath(b)
	split, err := engine.StageShares(path, 2)
	if err != nil {
		b.Fatal(err)
	}
	median := func(v []float64) float64 {
		if len(v) == 0 {
			return 0
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	for _, bus := range []string{"inproc", "tcp", "tcp-wt"} {
		dial := benchBus(b, bus)
		st, err := engine.LoadStage(path, engine.StageOptions{Layers: split[1], ContextLength: 512, Threads: 1})
		if err != nil {
			b.Fatal(err)
		}
		s, err := NewServer(dial("last"), st, ServerConfig{Instance: "last", Model: "m", HeartbeatInterval: time.Second}, nil)
		if err != nil {
			b.Fatal(err)
		}
		firstConn := dial("first")
		p, err := NewPipeline(firstConn, PipelineConfig{Instance: "first", Model: "m", Layers: split[0], HeartbeatInterval: time.Second}, nil)
		if err != nil {
			b.Fatal(err)
		}
		// The times of each step's events, in step order (one stream: one
		// step at a time, each sampling one token), and of each chunk
		// frame's arrival at the gateway.
		var mu sync.Mutex
		var sending, computing, sampled, taken, arrived []time.Time
		final := make(chan struct{}, 1)
		at := func(ts *[]time.Time) func() {
			return func() {
				now := time.Now()
				mu.Lock()
				*ts = append(*ts, now)
				mu.Unlock()
			}
		}
		p.sending, s.computing, s.picked, p.taken = at(&sending), at(&computing), at(&sampled), at(&taken)
		gw := dial("gw")
		stopGW, err := gw.Subscribe("courier.chunk.gw.*", func(data []byte) {
			now := time.Now()
			_, steps, err := cbus.ReadFrameHeader(data)
			var c cbus.Chunk
			for err == nil && len(steps) > 0 {
				if steps, err = cbus.ReadFrameStep(steps, &c); err == nil && len(c.Tokens) > 0 {
					mu.Lock()
					arrived = append(arrived, now)
					mu.Unlock()
				}
				if err == nil && c.Final() {
					final <- struct{}{}
				}
			}
			if err != nil {
				b.Error(err)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		flushConns(b, firstConn, gw)
		opts := benchEngineOpts
		opts.Layers, opts.Tail = split[0], p
		e, err := engine.Load(path, opts)
		if err != nil {
			b.Fatal(err)
		}
		p.SetContextLength(e.Info().ContextLength)
		for i := 0; i < 500 && !e.Ready(); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		generateConcurrent(b, []*engine.Engine{e}, 1, 4) // warm
		type figures struct{ boundary, toGW, ttft, gap, perToken []float64 }
		fig := map[string]*figures{"first": {}, "last": {}}
		var frame []byte
		n := 0
		for range b.N {
			for _, who := range []string{"first", "last"} {
				n++
				id := fmt.Sprintf("cmpl-%d", n)
				subject := cbus.ChunkSubject("gw", id)
				req := engine.Request{Prompt: []int32{1, 300, 400, 500}, MaxTokens: tokens, IgnoreEOS: true}
				var emit func(engine.Token) error
				seq := uint64(1)
				// As a worker's chunk sender: a frame per token, the final
				// chunk after.
				publish := func(c *cbus.Chunk) {
					frame = cbus.AppendFrameHeader(frame[:0], id, "first", 1, seq)
					if frame, err = cbus.AppendFrameStep(frame, c); err != nil {
						b.Fatal(err)
					}
					seq++
					if err := firstConn.Publish(subject, frame); err != nil {
						b.Fatal(err)
					}
				}
				var tok [1]int32
				if who == "first" {
					emit = func(t engine.Token) error {
						tok[0] = t.ID
						publish(&cbus.Chunk{Text: cbus.AliasString(t.Text), Tokens: tok[:]})
						return nil
					}
				} else {
					req.Out = &engine.StreamOut{Subject: subject, ID: id, Worker: "first", Attempt: 1, Seq: 1, Frames: 3}
					emit = func(engine.Token) error { return nil }
				}
				mu.Lock()
				sending, computing, sampled, taken, arrived = sending[:0], computing[:0], sampled[:0], taken[:0], arrived[:0]
				mu.Unlock()
				t0 := time.Now()
				res, err := e.Generate(context.Background(), req, emit)
				if err != nil {
					b.Fatal(err)
				}
				if who == "first" {
					publish(&cbus.Chunk{FinishReason: res.FinishReason, Usage: &cbus.Usage{PromptTokens: res.PromptTokens, CompletionTokens: res.CompletionTokens}})
				}
				select {
				case <-final:
				case <-time.After(10 * time.Second):
					b.Fatalf("%s, %s emits: no final chunk within 10s", bus, who)
				}
				end := time.Now()
				mu.Lock()
				if len(sending) != tokens || len(computing) != tokens || len(sampled) != tokens || len(taken) != tokens || len(arrived) != tokens {
					b.Fatalf("%s, %s emits: %d %d %d %d steps sent, computed, sampled, taken, %d chunks arrived; want %d",
						bus, who, len(sending), len(computing), len(sampled), len(taken), len(arrived), tokens)
				}
				f := fig[who]
				for i := range tokens {
					f.boundary = append(f.boundary, us(taken[i].Sub(sending[i])-sampled[i].Sub(computing[i])))
					f.toGW = append(f.toGW, us(arrived[i].Sub(sampled[i])))
					if i > 0 {
						f.gap = append(f.gap, us(arrived[i].Sub(arrived[i-1])))
					}
				}
				f.ttft = append(f.ttft, us(arrived[0].Sub(t0)))
				f.perToken = append(f.perToken, us(end.Sub(t0))/tokens)
				mu.Unlock()
			}
		}
		for _, who := range []string{"first", "last"} {
			f := fig[who]
			b.ReportMetric(median(f.boundary), "us_boundary_"+bus+"_"+who)
			b.ReportMetric(median(f.toGW), "us_sample_to_gw_"+bus+"_"+who)
			b.ReportMetric(median(f.ttft), "us_ttft_"+bus+"_"+who)
			b.ReportMetric(median(f.gap), "us_gap_"+bus+"_"+who)
			b.ReportMetric(median(f.perToken), "us_per_token_"+bus+"_"+who)
		}
		stopGW()
		e.Close()
		p.Close()
		s.Close()
		st.Close()
	}
}

// flushConns waits until the server has every subscription each of conns
// made, so a benchmark's first message finds them.
func flushConns(b *testing.B, conns ...*natsbus.Conn) {
	b.Helper()
	for _, c := range conns {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := c.Flush(ctx)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
	}
}
