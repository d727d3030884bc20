// Package synth writes GGUF models with random weights and a made-up
// SentencePiece vocabulary, so that tests and benchmarks can use models of
// any size without downloading one. The weights are seeded: the same Config
// writes the same file.
package synth

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"

	"courier/internal/engine/gguf"
	"courier/internal/engine/tensor"
)

// Config describes the model to write. Zero fields take the defaults of
// Default.
type Config struct {
	Arch    string    // "llama", "qwen2", "qwen3", "gemma3" or "phi3"
	Dim     int       // embedding length
	Layers  int       // transformer blocks
	Heads   int       // attention heads
	KVHeads int       // key/value heads (grouped-query attention)
	HeadDim int       // head size (0: Dim/Heads); qwen3 and gemma3 may differ
	FFN     int       // feed-forward hidden size
	Vocab   int       // tokens, at least 259 (3 control tokens and 256 bytes)
	Context int       // context length
	Type    gguf.Type // type of the 2-D weights; norms and biases stay F32
	Tied    bool      // no output.weight: the output reuses token_embd
	Seed    uint64
	// RopeBase is rope.freq_base (0: 10000).
	RopeBase float32
	// RopeFreqs (llama only) adds Llama 3.1's rope_freqs.weight: the
	// factors of its rope_scaling (factor 8, low 1, high 4, original
	// context 8192) for RopeBase, as convert_hf_to_gguf.py computes them.
	RopeFreqs bool
	// QuietBytes scales the output rows (token_embd's when tied) of the
	// control and byte tokens by 0.05, so that greedy decoding keeps to
	// word pieces: llama-server refuses to return text that is not valid
	// UTF-8, which lone byte tokens make.
	QuietBytes bool
	// RopeLongShort (phi3 only) adds Phi-3's rope_factors_long.weight and
	// rope_factors_short.weight (made-up factors rising from 1 to 4 and to
	// 1.5 over the pairs); RopeAttnFactor, when not 0, writes
	// rope.scaling.attn_factor.
	RopeLongShort  bool
	RopeAttnFactor float32
	// RopeScaling ("linear" or "yarn"), RopeFactor and RopeOrigCtx write
	// rope.scaling.type, .factor and .original_context_length.
	RopeScaling string
	RopeFactor  float32
	RopeOrigCtx int
	// SlidingWindow and SWAPattern (gemma3 only) write
	// attention.sliding_window and attention.sliding_window_pattern.
	SlidingWindow, SWAPattern int
	// NaN names tensors written as all NaN, as a corrupt file would hold
	// them: tests of the engine's guard against non-finite logits
	// (NaN: []string{"output.weight"}).
	NaN []string
}

// Default is a ~110M-parameter Llama-shaped model in Q8_0.
var Default = Config{
	Arch: "llama", Dim: 768, Layers: 12, Heads: 12, KVHeads: 12, FFN: 2048,
	Vocab: 32000, Context: 2048, Type: gguf.TypeQ8_0, Seed: 1,
}

// Archs are the architectures Write can produce.
var Archs = []string{"llama", "qwen2", "qwen3", "gemma3", "phi3"}

func (c *Config) fill() {
	d := Default
	if c.Arch == "" {
		c.Arch = d.Arch
	}
	for _, f := range []struct {
		v   *int
		def int
	}{
		{&c.Dim, d.Dim}, {&c.Layers, d.Layers}, {&c.Heads, d.Heads}, {&c.FFN, d.FFN},
		{&c.Vocab, d.Vocab}, {&c.Context, d.Context},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	if c.HeadDim == 0 && c.Heads > 0 {
		c.HeadDim = c.Dim / c.Heads
	}
	if c.RopeBase == 0 {
		c.RopeBase = 10000
	}
	if c.Arch == "gemma3" && c.SlidingWindow > 0 && c.SWAPattern == 0 {
		c.SWAPattern = 6
	}
}

// Validate reports every problem with c (after defaults are filled).
func (c Config) Validate() error {
	c.fill()
	var errs []error
	if !slices.Contains(Archs, c.Arch) {
		errs = append(errs, fmt.Errorf("arch %q: want one of %v", c.Arch, Archs))
	}
	headsOK := c.Heads > 0 && c.KVHeads > 0 && c.Heads%c.KVHeads == 0 && c.HeadDim > 0 && c.HeadDim%2 == 0
	if !headsOK || (c.HeadDim*c.Heads != c.Dim && c.Arch != "qwen3" && c.Arch != "gemma3") {
		errs = append(errs, fmt.Errorf("dim %d, heads %d, kv heads %d, head dim %d: want dim = heads x even head size (qwen3 and gemma3 may set another head size) and heads a multiple of kv heads", c.Dim, c.Heads, c.KVHeads, c.HeadDim))
	}
	if c.Layers <= 0 || c.Context <= 0 || c.Vocab < 259 {
		errs = append(errs, fmt.Errorf("layers %d, context %d, vocab %d: want positive, vocab at least 259", c.Layers, c.Context, c.Vocab))
	}
	if c.RopeFreqs && c.Arch != "llama" {
		errs = append(errs, fmt.Errorf("rope_freqs: only llama uses them, not %s", c.Arch))
	}
	if c.RopeLongShort && c.Arch != "phi3" {
		errs = append(errs, fmt.Errorf("rope_factors_long/short: only phi3 uses them, not %s", c.Arch))
	}
	if c.RopeScaling != "" && (c.RopeScaling != "linear" && c.RopeScaling != "yarn" || c.RopeFactor <= 0) {
		errs = append(errs, fmt.Errorf("rope scaling %q factor %g: want linear or yarn and a positive factor", c.RopeScaling, c.RopeFactor))
	}
	if c.SlidingWindow < 0 || (c.SlidingWindow > 0 && (c.Arch != "gemma3" || c.SWAPattern < 1)) {
		errs = append(errs, fmt.Errorf("sliding window %d, pattern %d: gemma3 only, pattern at least 1", c.SlidingWindow, c.SWAPattern))
	}
	if !tensor.Supported(c.Type) {
		errs = append(errs, fmt.Errorf("type %s is not supported", c.Type))
	} else if bs := c.Type.BlockSize(); c.Dim%bs != 0 || c.FFN%bs != 0 || (c.Heads*c.HeadDim)%bs != 0 {
		errs = append(errs, fmt.Errorf("type %s needs dim %d, ffn %d and heads x head dim %d to be multiples of its block of %d", c.Type, c.Dim, c.FFN, c.Heads*c.HeadDim, bs))
	}
	return errors.Join(errs...)
}

// Params returns the number of weights the model will have.
func (c Config) Params() int64 {
	c.fill()
	var n int64
	for _, t := range c.tensors() {
		n += int64(t.rows) * int64(t.cols)
	}
	return n
}

// tensorSpec is one tensor Write adds: a weight matrix of N(0, std²)
// values, a norm near 1 (norm), or given F32 values (vals).
type tensorSpec struct {
	name       string
	rows, cols int
	std        float64
	norm       bool
	vals       []float32
	quiet      int // rows [0, quiet) are scaled by 0.05
}

// tensors lists the model's tensors in file order, as llama.cpp's
// converter names and shapes them for c.Arch.
func (c Config) tensors() []tensorSpec {
	kv, q := c.HeadDim*c.KVHeads, c.HeadDim*c.Heads
	sd, sf := 1/math.Sqrt(float64(c.Dim)), 1/math.Sqrt(float64(c.FFN))
	mat := func(name string, rows, cols int, std float64) tensorSpec {
		return tensorSpec{name: name, rows: rows, cols: cols, std: std}
	}
	norm := func(name string, n int) tensorSpec { return tensorSpec{name: name, rows: 1, cols: n, norm: true} }
	ts := []tensorSpec{mat("token_embd.weight", c.Vocab, c.Dim, 0.02*16), norm("output_norm.weight", c.Dim)}
	if !c.Tied {
		ts = append(ts, mat("output.weight", c.Vocab, c.Dim, 0.02*16))
	}
	if c.QuietBytes {
		ts[len(ts)-1].quiet = 3 + 256 // control and byte tokens
	}
	if c.RopeFreqs {
		ts = append(ts, tensorSpec{name: "rope_freqs.weight", rows: 1, cols: c.HeadDim / 2, vals: llama3RopeFactors(c.RopeBase, c.HeadDim)})
	}
	if c.RopeLongShort {
		n := c.HeadDim / 2
		long, short := make([]float32, n), make([]float32, n)
		for i := range n {
			long[i] = 1 + 3*float32(i)/float32(n)
			short[i] = 1 + 0.5*float32(i)/float32(n)
		}
		ts = append(ts, tensorSpec{name: "rope_factors_long.weight", rows: 1, cols: n, vals: long},
			tensorSpec{name: "rope_factors_short.weight", rows: 1, cols: n, vals: short})
	}
	for l := 0; l < c.Layers; l++ {
		p := "blk." + strconv.Itoa(l) + "."
		ts = append(ts, norm(p+"attn_norm.weight", c.Dim))
		if c.Arch == "phi3" {
			ts = append(ts, mat(p+"attn_qkv.weight", q+2*kv, c.Dim, 1.5*sd))
		} else {
			ts = append(ts,
				mat(p+"attn_q.weight", q, c.Dim, 1.5*sd),
				mat(p+"attn_k.weight", kv, c.Dim, 1.5*sd),
				mat(p+"attn_v.weight", kv, c.Dim, sd))
		}
		if c.Arch == "qwen2" {
			ts = append(ts,
				tensorSpec{name: p + "attn_q.bias", rows: 1, cols: q, std: 0.1},
				tensorSpec{name: p + "attn_k.bias", rows: 1, cols: kv, std: 0.1},
				tensorSpec{name: p + "attn_v.bias", rows: 1, cols: kv, std: 0.02})
		}
		if c.Arch == "qwen3" || c.Arch == "gemma3" {
			ts = append(ts, norm(p+"attn_q_norm.weight", c.HeadDim), norm(p+"attn_k_norm.weight", c.HeadDim))
		}
		ts = append(ts, mat(p+"attn_output.weight", c.Dim, q, 1/math.Sqrt(float64(q))))
		if c.Arch == "gemma3" {
			ts = append(ts, norm(p+"post_attention_norm.weight", c.Dim))
		}
		ts = append(ts, norm(p+"ffn_norm.weight", c.Dim))
		if c.Arch == "phi3" {
			ts = append(ts, mat(p+"ffn_up.weight", 2*c.FFN, c.Dim, sd))
		} else {
			ts = append(ts, mat(p+"ffn_gate.weight", c.FFN, c.Dim, sd), mat(p+"ffn_up.weight", c.FFN, c.Dim, sd))
		}
		ts = append(ts, mat(p+"ffn_down.weight", c.Dim, c.FFN, sf))
		if c.Arch == "gemma3" {
			ts = append(ts, norm(p+"post_ffw_norm.weight", c.Dim))
		}
	}
	return ts
}

// llama3RopeFactors computes Llama 3.1's RoPE frequency factors the way
// convert_hf_to_gguf.py does (in float64 here; the file stores float32).
func llama3RopeFactors(base float32, headDim int) []float32 {
	const factor, low, high, orig = 8.0, 1.0, 4.0, 8192.0
	lowWavelen, highWavelen := orig/low, orig/high
	out := make([]float32, headDim/2)
	for i := range out {
		freq := 1 / math.Pow(float64(base), float64(2*i)/float64(headDim))
		wavelen := 2 * math.Pi / freq
		switch {
		case wavelen < highWavelen:
			out[i] = 1
		case wavelen > lowWavelen:
			out[i] = factor
		default:
			smooth := (orig/wavelen - low) / (high - low)
			out[i] = float32(1 / ((1-smooth)/factor + smooth))
		}
	}
	return out
}

// Write writes the model to w. Weights are generated and quantized row by
// row while writing, so memory stays small whatever the model's size.
func Write(w io.Writer, c Config) error {
	c.fill()
	if err := c.Validate(); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	gw := gguf.NewWriter()
	if err := setMetadata(gw, c); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	var errs []error
	for _, t := range c.tensors() {
		if slices.Contains(c.NaN, t.name) {
			t.std = math.NaN()
		}
		switch {
		case t.vals != nil:
			errs = append(errs, addValues(gw, t.name, t.vals))
		case t.norm:
			errs = append(errs, addNorm(gw, c.Seed, t.name, t.cols))
		case t.rows == 1:
			errs = append(errs, addTensor(gw, c.Seed, t.name, 1, t.cols, t.std, gguf.TypeF32))
		default:
			errs = append(errs, addTensorQuiet(gw, c.Seed, t.name, t.rows, t.cols, t.std, c.Type, t.quiet))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	if _, err := gw.WriteTo(w); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}

func setMetadata(gw *gguf.Writer, c Config) error {
	a := c.Arch + "."
	type kv struct {
		k string
		v any
	}
	kvs := []kv{
		{"general.architecture", c.Arch},
		{"general.name", fmt.Sprintf("synth-%s-%dx%d-%s", c.Arch, c.Layers, c.Dim, c.Type)},
		{a + "context_length", uint32(c.Context)},
		{a + "embedding_length", uint32(c.Dim)},
		{a + "block_count", uint32(c.Layers)},
		{a + "feed_forward_length", uint32(c.FFN)},
		{a + "attention.head_count", uint32(c.Heads)},
		{a + "attention.head_count_kv", uint32(c.KVHeads)},
		{a + "attention.layer_norm_rms_epsilon", float32(1e-5)},
		{a + "rope.freq_base", c.RopeBase},
	}
	if c.HeadDim*c.Heads != c.Dim {
		kvs = append(kvs, kv{a + "attention.key_length", uint32(c.HeadDim)}, kv{a + "attention.value_length", uint32(c.HeadDim)})
	}
	if c.RopeScaling != "" {
		kvs = append(kvs, kv{a + "rope.scaling.type", c.RopeScaling}, kv{a + "rope.scaling.factor", c.RopeFactor})
	}
	if c.RopeOrigCtx > 0 {
		kvs = append(kvs, kv{a + "rope.scaling.original_context_length", uint32(c.RopeOrigCtx)})
	}
	if c.RopeAttnFactor != 0 {
		kvs = append(kvs, kv{a + "rope.scaling.attn_factor", c.RopeAttnFactor})
	}
	if c.SlidingWindow > 0 {
		kvs = append(kvs, kv{a + "attention.sliding_window", uint32(c.SlidingWindow)}, kv{a + "attention.sliding_window_pattern", uint32(c.SWAPattern)})
	}
	for _, kv := range kvs {
		if err := gw.SetKV(kv.k, kv.v); err != nil {
			return err
		}
	}
	return setVocab(gw, c.Vocab, c.Arch)
}

// setVocab writes a SentencePiece vocabulary: <unk>, <s>, </s>, the 256
// byte tokens, then made-up word pieces. For phi3 the last piece is the
// control token <|endoftext|>, as in Phi-3's vocabulary: llama.cpp looks
// it up in any model whose name says phi3.
func setVocab(gw *gguf.Writer, n int, arch string) error {
	tokens := make([]string, n)
	scores := make([]float32, n)
	types := make([]int32, n)
	tokens[0], tokens[1], tokens[2] = "<unk>", "<s>", "</s>"
	types[0], types[1], types[2] = 2, 3, 3 // unknown, control, control
	for b := 0; b < 256; b++ {
		tokens[3+b] = fmt.Sprintf("<0x%02X>", b)
		types[3+b] = 6 // byte
	}
	for i := 259; i < n; i++ {
		tokens[i] = "\u2581" + word(i-259)
		scores[i] = -float32(i)
		types[i] = 1 // normal
	}
	if arch == "phi3" {
		tokens[n-1], scores[n-1], types[n-1] = "<|endoftext|>", 0, 3
	}
	for _, kv := range []struct {
		k string
		v any
	}{
		{"tokenizer.ggml.model", "llama"},
		{"tokenizer.ggml.tokens", tokens},
		{"tokenizer.ggml.scores", scores},
		{"tokenizer.ggml.token_type", types},
		{"tokenizer.ggml.bos_token_id", uint32(1)},
		{"tokenizer.ggml.eos_token_id", uint32(2)},
		{"tokenizer.ggml.unknown_token_id", uint32(0)},
	} {
		if err := gw.SetKV(kv.k, kv.v); err != nil {
			return err
		}
	}
	return nil
}

// word spells i in base 26 with lowercase letters: a, b, ..., z, aa, ab, ...
func word(i int) string {
	var b []byte
	for {
		b = append([]byte{byte('a' + i%26)}, b...)
		i = i/26 - 1
		if i < 0 {
			return string(b)
		}
	}
}

// addTensor adds a [rows][cols] tensor of N(0, std²) values quantized to
// typ, generated while the file is written.
func addTensor(gw *gguf.Writer, seed uint64, name string, rows, cols int, std float64, typ gguf.Type) error {
	return addTensorQuiet(gw, seed, name, rows, cols, std, typ, 0)
}

// addTensorQuiet is addTensor with rows [0, quiet) scaled by 0.05.
func addTensorQuiet(gw *gguf.Writer, seed uint64, name string, rows, cols int, std float64, typ gguf.Type, quiet int) error {
	dims := []uint64{uint64(cols), uint64(rows)}
	if rows == 1 {
		dims = dims[:1]
	}
	rowBytes, err := typ.RowBytes(cols)
	if err != nil {
		return err
	}
	return gw.AddTensorFunc(name, typ, dims, func(w io.Writer) error {
		r := rand.New(rand.NewPCG(seed, hash(name)))
		x := make([]float32, cols)
		buf := make([]byte, rowBytes)
		for row := range rows {
			sd := std
			if row < quiet {
				sd *= 0.05
			}
			for i := range x {
				x[i] = float32(r.NormFloat64() * sd)
			}
			if err := tensor.QuantizeRow(typ, x, buf); err != nil {
				return err
			}
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
		return nil
	})
}

// addNorm adds an F32 norm weight of values near 1.
func addNorm(gw *gguf.Writer, seed uint64, name string, n int) error {
	return gw.AddTensorFunc(name, gguf.TypeF32, []uint64{uint64(n)}, func(w io.Writer) error {
		r := rand.New(rand.NewPCG(seed, hash(name)))
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(1 + 0.1*r.NormFloat64())
		}
		buf := make([]byte, 4*n)
		if err := tensor.QuantizeRow(gguf.TypeF32, x, buf); err != nil {
			return err
		}
		_, err := w.Write(buf)
		return err
	})
}

// addValues adds a 1-D F32 tensor holding vals.
func addValues(gw *gguf.Writer, name string, vals []float32) error {
	buf := make([]byte, 4*len(vals))
	if err := tensor.QuantizeRow(gguf.TypeF32, vals, buf); err != nil {
		return err
	}
	return gw.AddTensor(name, gguf.TypeF32, []uint64{uint64(len(vals))}, buf)
}

// hash is FNV-1a, to give every tensor its own random stream.
func hash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
