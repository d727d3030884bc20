package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"courier/internal/engine/gguf"
	"courier/internal/engine/synth"
	"courier/internal/testutil"
)

// BenchmarkVsLlamaCpp measures Courier's engine and llama.cpp's llama-bench
// on the same synthetic model file (what `courier models synth --dim 768
// --layers 12 --heads 12 --ffn 2048 --vocab 32000 --type T` writes), one
// after the other in every iteration, and reports both rates and their
// ratio (Courier / llama.cpp) per type, thread count and test:
//
//	pp256         prompt of 256 tokens (one ubatch)
//	tg128         128 decoded tokens after a one-token prompt
//	tg128@d1024   128 decoded tokens after a 1024-token prompt
//
// LLAMA_BENCH names the llama-bench binary; without it only Courier's
// rates are reported (ratio 0), with a message. COURIER_VS_TYPES (default
// F16,BF16,Q8_0,Q4_0,Q4_K,Q5_K,Q6_K), COURIER_VS_THREADS (default 1,2)
// and COURIER_VS_TESTS (default pp256,tg128,tg128@d1024) narrow the run;
// COURIER_BENCH_DIR keeps the model files between runs. Each iteration is
// one interleaved pair, so -benchtime=3x gives three pairs (medians are
// reported, and best_ratio, the ratio of the two best rates). Run it alone: go test ./internal/engine/ -run XXX -bench
// VsLlamaCpp -benchtime=3x.
func BenchmarkVsLlamaCpp(b *testing.B) {
	llama := os.Getenv("LLAMA_BENCH")
	if llama == "" {
		b.Log("LLAMA_BENCH is not set (path of llama.cpp's llama-bench): reporting Courier's rates only")
	}
	types := envList("COURIER_VS_TYPES", "F16,BF16,Q8_0,Q4_0,Q4_K,Q5_K,Q6_K")
	threads := envList("COURIER_VS_THREADS", "1,2")
	tests := envList("COURIER_VS_TESTS", "pp256,tg128,tg128@d1024")
	for _, ts := range types {
		typ, err := gguf.ParseType(ts)
		if err != nil {
			b.Fatal(err)
		}
		for _, th := range threads {
			nt, err := strconv.Atoi(th)
			if err != nil {
				b.Fatal(err)
			}
			for _, test := range tests {
				b.Run(fmt.Sprintf("%v/t%d/%s", typ, nt, test), func(b *testing.B) {
					vsLlamaCpp(b, llama, synthFile(b, typ), nt, test)
				})
			}
		}
	}
}

func envList(name, def string) []string {
	v := os.Getenv(name)
	if v == "" {
		v = def
	}
	return strings.Split(v, ",")
}

// synthFile writes (once per COURIER_BENCH_DIR) the model of `courier
// models synth --dim 768 --layers 12 --heads 12 --ffn 2048 --vocab 32000
// --type typ`.
func synthFile(b *testing.B, typ gguf.Type) string {
	b.Helper()
	return testutil.BenchFile(b, fmt.Sprintf("synth-vs-%s.gguf", typ), func(w io.Writer) error {
		c := synth.Default
		c.Type = typ
		return synth.Write(w, c)
	})
}

// vsLlamaCpp runs one test ("pp256", "tg128", "tg128@d1024") b.N times on
// both engines, interleaved.
func vsLlamaCpp(b *testing.B, llama, path string, threads int, test string) {
	var pp, tg, depth int
	name, at, _ := strings.Cut(test, "@d")
	if at != "" {
		depth, _ = strconv.Atoi(at)
	}
	switch {
	case strings.HasPrefix(name, "pp"):
		pp, _ = strconv.Atoi(name[2:])
	case strings.HasPrefix(name, "tg"):
		tg, _ = strconv.Atoi(name[2:])
	}
	if pp+tg == 0 {
		b.Fatalf("bad test %q", test)
	}
	e, err := Load(path, Options{Threads: threads, ContextLength: 2048})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	seed := int32(0)
	courier := func() float64 {
		seed++
		// Distinct first tokens: no prefix-cache hits between runs.
		prompt := make([]int32, max(pp, depth, 1))
		for i := range prompt {
			prompt[i] = 259 + (seed*7919+int32(i)*7)%30000
		}
		res, err := e.Generate(context.Background(), Request{Prompt: prompt, MaxTokens: tg + 1, IgnoreEOS: true},
			func(Token) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
		if pp > 0 {
			return float64(pp) / res.Prefill.Seconds()
		}
		return float64(tg) / res.Decode.Seconds()
	}
	courier() // warm-up, as llama-bench's
	var cs, ls []float64
	for b.Loop() {
		cs = append(cs, courier())
		if llama != "" {
			ls = append(ls, llamaBench(b, llama, path, threads, pp, tg, depth))
		}
	}
	c := median(cs)
	b.ReportMetric(c, "tok/s")
	if len(ls) > 0 {
		l := median(ls)
		b.ReportMetric(l, "llama_tok/s")
		b.ReportMetric(c/l, "ratio")
		// On a shared machine the best of each side is the run least
		// disturbed by other work.
		b.ReportMetric(slices.Max(cs)/slices.Max(ls), "best_ratio")
	}
}

// llamaBench runs llama-bench once (one repetition after its warm-up) and
// returns its tokens/s.
func llamaBench(b *testing.B, bin, path string, threads, pp, tg, depth int) float64 {
	out, err := exec.Command(bin, "-m", path, "-t", strconv.Itoa(threads), "-p", strconv.Itoa(pp),
		"-n", strconv.Itoa(tg), "-d", strconv.Itoa(depth), "-r", "1", "-o", "json").Output()
	if err != nil {
		b.Fatalf("llama-bench: %v", err)
	}
	var rs []struct {
		AvgTS float64 `json:"avg_ts"`
	}
	if err := json.Unmarshal(out, &rs); err != nil || len(rs) != 1 {
		b.Fatalf("llama-bench output: %v: %.200s", err, out)
	}
	return rs[0].AvgTS
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
