package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"courier/internal/engine/gguf"
	"courier/internal/engine/synth"
	"courier/internal/engine/tensor"
)

// benchModels caches the ~100M-parameter synthetic models across
// benchmarks of one run (writing one takes seconds).
var benchModels = struct {
	sync.Mutex
	dir   string
	paths map[string]string
}{paths: map[string]string{}}

// benchModel returns the path of a synthetic model of type typ: the
// Default shape (dim 768, 12 layers, ffn 2048, vocab 32000, ~110M weights
// with a tied output). COURIER_BENCH_DIR keeps them between runs.
func benchModel(b *testing.B, typ gguf.Type) string {
	c := synth.Default
	c.Type, c.Tied = typ, true
	return benchModelOf(b, fmt.Sprintf("synth-110M-%s", typ), c)
}

// benchArchModel is benchModel's shape in architecture arch (Q8_0):
// "llama3" is llama with rope_freqs (base 500000), gemma3 has Gemma 3's
// sliding window of 512 on 5 layers of 6, phi3 fuses QKV and gate/up.
func benchArchModel(b *testing.B, arch string) string {
	c := synth.Default
	c.Type, c.Tied, c.Arch = gguf.TypeQ8_0, true, arch
	switch arch {
	case "llama3":
		c.Arch, c.RopeFreqs, c.RopeBase = "llama", true, 500000
	case "gemma3":
		c.SlidingWindow, c.SWAPattern = 512, 6
	}
	return benchModelOf(b, "synth-110M-Q8_0-"+arch, c)
}

func benchModelOf(b *testing.B, name string, c synth.Config) string {
	b.Helper()
	benchModels.Lock()
	defer benchModels.Unlock()
	if p, ok := benchModels.paths[name]; ok {
		return p
	}
	dir := os.Getenv("COURIER_BENCH_DIR")
	if dir == "" {
		if benchModels.dir == "" {
			d, err := os.MkdirTemp("", "courier-bench-")
			if err != nil {
				b.Fatal(err)
			}
			benchModels.dir = d
		}
		dir = benchModels.dir
	}
	path := filepath.Join(dir, name+".gguf")
	if _, err := os.Stat(path); err != nil {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := synth.Write(f, c); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
	benchModels.paths[name] = path
	return path
}

// bandwidth is measured once per run: the reference that decode speed is
// reported against.
var bandwidth = sync.OnceValue(func() float64 { return tensor.MeasureReadBandwidth(1<<30, 0) })

var benchTypes = []gguf.Type{gguf.TypeF32, gguf.TypeQ8_0, gguf.TypeQ4_0, gguf.TypeQ4_K,
	gguf.TypeQ6_K, gguf.TypeBF16, gguf.TypeQ5_K}

// weightBytes is the bytes one decode step reads: every tensor once (the
// tied embedding matrix is read as the output).
func weightBytes(e *Engine) float64 {
	var n uint64
	for i := range e.file.Tensors {
		n += e.file.Tensors[i].Size
	}
	return float64(n)
}

// BenchmarkDecode reports single-stream decode tokens/s, the weight bytes
// per second that implies, and its ratio to the machine's read bandwidth
// measured in the same run.
func BenchmarkDecode(b *testing.B) {
	for _, typ := range benchTypes {
		b.Run(typ.String(), func(b *testing.B) { benchDecode(b, benchModel(b, typ)) })
	}
}

// BenchmarkPrefill reports single-stream prompt tokens/s for a 256-token
// prompt.
func BenchmarkPrefill(b *testing.B) {
	for _, typ := range benchTypes {
		b.Run(typ.String(), func(b *testing.B) { benchPrefill(b, benchModel(b, typ)) })
	}
}

// benchArchs are the architectures BenchmarkArchs compares with llama.
var benchArchs = []string{"llama", "llama3", "qwen2", "qwen3", "gemma3", "phi3"}

// BenchmarkArchs reports decode (with its ratio to the read bandwidth) and
// 256-token prefill tokens/s of every architecture at the ~110M Q8_0
// shape, llama first as the reference of the same run.
func BenchmarkArchs(b *testing.B) {
	for _, arch := range benchArchs {
		b.Run("decode/"+arch, func(b *testing.B) { benchDecode(b, benchArchModel(b, arch)) })
		b.Run("prefill/"+arch, func(b *testing.B) { benchPrefill(b, benchArchModel(b, arch)) })
	}
}

func benchDecode(b *testing.B, path string) {
	e, err := Load(path, Options{ContextLength: 1024})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	bw := bandwidth()
	prompt := []int32{1, 300, 301, 302}
	b.ReportAllocs()
	b.ResetTimer()
	tokens := 0
	for b.Loop() {
		res, err := e.Generate(context.Background(), Request{Prompt: prompt, MaxTokens: 32, IgnoreEOS: true},
			func(Token) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
		tokens += res.CompletionTokens - 1
	}
	sec := b.Elapsed().Seconds()
	tps := float64(tokens) / sec
	b.ReportMetric(tps, "tok/s")
	b.ReportMetric(tps*weightBytes(e)/1e9, "weightGB/s")
	b.ReportMetric(bw/1e9, "bandwidthGB/s")
	b.ReportMetric(tps*weightBytes(e)/bw, "ratio")
}

func benchPrefill(b *testing.B, path string) {
	benchPrefillOf(b, path, 256, 0)
}

// BenchmarkPrefillStep reports prompt tokens/s for one 512-token prompt
// read in steps of 32 to 256 rows (--batch-size): how big a step must be
// for the matrix kernels to run at their prompt rate (the scheduler ends a
// step at a completed prompt only once it holds firstTokenRows rows).
func BenchmarkPrefillStep(b *testing.B) {
	path := benchModel(b, gguf.TypeQ8_0)
	for _, rows := range []int{32, 64, 128, 256} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) { benchPrefillOf(b, path, 512, rows) })
	}
}

// benchPrefillOf evaluates an n-token prompt per iteration in steps of
// batch rows (0: the default). Each iteration's prompt begins with another
// token, so the prefix cache shares none of it.
func benchPrefillOf(b *testing.B, path string, n, batch int) {
	e, err := Load(path, Options{ContextLength: 1024, BatchSize: batch})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	prompt := make([]int32, n)
	for i := range prompt {
		prompt[i] = int32(259 + i*7%30000)
	}
	b.ReportAllocs()
	iter := 0
	for b.Loop() {
		prompt[0] = int32(259 + iter%30000) // a fresh prompt: nothing cached
		iter++
		if _, err := e.Generate(context.Background(), Request{Prompt: prompt, MaxTokens: 1, IgnoreEOS: true},
			func(Token) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	if p := e.Capacity().PrefixPositions; p != 0 {
		b.Fatalf("%d prompt positions came from the prefix cache: not a prefill", p)
	}
	b.ReportMetric(float64(b.N*len(prompt))/b.Elapsed().Seconds(), "tok/s")
}

// BenchmarkBatchedDecode reports aggregate decode tokens/s with 1, 4, 8, 16
// and 32 sequences generating at once, beside the single-stream rate
// measured in the same run (the speedup metric).
func BenchmarkBatchedDecode(b *testing.B) {
	for _, typ := range []gguf.Type{gguf.TypeF16, gguf.TypeQ8_0} {
		b.Run(typ.String(), func(b *testing.B) {
			e, err := Load(benchModel(b, typ), Options{ContextLength: 512, Slots: 32, BatchSize: 64})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			var single float64
			for _, conc := range []int{1, 4, 8, 16, 32} {
				b.Run(fmt.Sprintf("seqs=%d", conc), func(b *testing.B) {
					tokens := 0
					for b.Loop() {
						tokens += runConcurrent(b, e, conc, 16)
					}
					tps := float64(tokens) / b.Elapsed().Seconds()
					if conc == 1 {
						single = tps
					}
					b.ReportMetric(tps, "tok/s")
					if single > 0 {
						b.ReportMetric(tps/single, "x_single")
					}
				})
			}
		})
	}
}

// runConcurrent starts conc requests generating n tokens each and returns
// the tokens generated.
func runConcurrent(b *testing.B, e *Engine, conc, n int) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for i := range conc {
		wg.Go(func() {
			prompt := []int32{1, int32(300 + i), int32(400 + i), int32(500 + i)}
			res, err := e.Generate(context.Background(), Request{Prompt: prompt, MaxTokens: n, IgnoreEOS: true},
				func(Token) error { return nil })
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

// BenchmarkPrefixCacheTTFT reports time to first token for prompts that
// share a 448-token prefix, with the prefix cache warm and cold, and for a
// 442-token prompt sent twice (repeat).
func BenchmarkPrefixCacheTTFT(b *testing.B) {
	e, err := Load(benchModel(b, gguf.TypeQ8_0), Options{ContextLength: 1024, Slots: 4})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	shared := make([]int32, 448)
	for i := range shared {
		shared[i] = int32(259 + i*13%30000)
	}
	prompt := func(i int) []int32 { return append(append([]int32{}, shared...), int32(1000+i), int32(2000+i)) }
	ttft := func(p []int32) time.Duration {
		res, err := e.Generate(context.Background(), Request{Prompt: p, MaxTokens: 1, IgnoreEOS: true}, func(Token) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
		return res.Prefill
	}
	for _, name := range []string{"cold", "warm", "repeat"} {
		b.Run(name, func(b *testing.B) {
			var total time.Duration
			i := 0
			for b.Loop() {
				i++
				switch name {
				case "cold":
					shared[0] = int32(259 + i) // a new prefix every time: nothing to share
				case "warm":
					ttft(prompt(-1)) // make sure the prefix is cached
				case "repeat":
					// A prompt of 27 blocks and 10 positions, sent before:
					// its partly filled last block is copied too, and only
					// its last token is evaluated.
					ttft(shared[:442])
					total += ttft(shared[:442])
					continue
				}
				total += ttft(prompt(i))
			}
			b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ttft_ms")
		})
	}
}

// waveLens are the prompt rows of a wave of eight fresh requests as a
// serving benchmark's first wave at 16 streams gives them to the engine
// (`courier bench --first-prompt 4000`'s prompts less the prefix cache's
// share, docs/engine.md "TTFT at 16 fresh streams").
var waveLens = []int{68, 51, 60, 60, 65, 68, 68, 70}

// BenchmarkWaveFirstTokens reports when each first token of a wave of
// eight fresh prompts arriving together comes, on the serving shape (the
// 134M synthetic model, 8 slots): the first request alone, the other seven
// a millisecond later, as they reach a server. first_ms, 4th_ms and
// 8th_ms are the first, fourth and last first token after the first
// request's start, averaged over the iterations (a serving benchmark's
// TTFT p50 at 8 streams is about a wave's fourth, at 16 streams its last);
// mean_ms is the mean of all eight.
func BenchmarkWaveFirstTokens(b *testing.B) {
	for _, typ := range []gguf.Type{gguf.TypeF16, gguf.TypeQ8_0} {
		b.Run(typ.String(), func(b *testing.B) {
			c := synth.Default
			c.Type = typ
			e, err := Load(benchModelOf(b, fmt.Sprintf("synth-134M-%s", typ), c), Options{ContextLength: 2048, Slots: len(waveLens)})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			var sum [8]float64
			iter := 0
			for b.Loop() {
				firsts := runWave(b, e, iter)
				iter++
				for i, d := range firsts {
					sum[i] += d.Seconds() * 1e3
				}
			}
			n := float64(b.N)
			mean := 0.0
			for _, s := range sum {
				mean += s / n / float64(len(sum))
			}
			b.ReportMetric(sum[0]/n, "first_ms")
			b.ReportMetric(sum[3]/n, "4th_ms")
			b.ReportMetric(sum[7]/n, "8th_ms")
			b.ReportMetric(mean, "mean_ms")
		})
	}
}

// runWave runs one wave (waveLens; fresh prompts: iter picks their first
// tokens) and returns its first tokens' times after the first request's
// start, in order.
func runWave(b *testing.B, e *Engine, iter int) []time.Duration {
	firsts := make([]time.Duration, len(waveLens))
	var wg sync.WaitGroup
	start := time.Now()
	for i, n := range waveLens {
		if i == 1 {
			time.Sleep(time.Millisecond) // the others reach the engine during the first one's step
		}
		prompt := make([]int32, n)
		for j := range prompt {
			prompt[j] = int32(259 + (iter*len(waveLens)+i)*977%30000 + j*7%1000)
		}
		wg.Go(func() {
			first := true
			_, err := e.Generate(context.Background(), Request{Prompt: prompt, MaxTokens: 4, IgnoreEOS: true}, func(Token) error {
				if first {
					firsts[i], first = time.Since(start), false
				}
				return nil
			})
			if err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	slices.Sort(firsts)
	return firsts
}
