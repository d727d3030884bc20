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
	"strconv"

	"courier/internal/engine/gguf"
	"courier/internal/engine/tensor"
)

// Config describes the model to write. Zero fields take the defaults of
// Default.
type Config struct {
	Arch    string    // "llama" or "qwen2"
	Dim     int       // embedding length
	Layers  int       // transformer blocks
	Heads   int       // attention heads
	KVHeads int       // key/value heads (grouped-query attention)
	FFN     int       // feed-forward hidden size
	Vocab   int       // tokens, at least 259 (3 control tokens and 256 bytes)
	Context int       // context length
	Type    gguf.Type // type of the 2-D weights; norms and biases stay F32
	Tied    bool      // no output.weight: the output reuses token_embd
	Seed    uint64
}

// Default is a ~110M-parameter Llama-shaped model in Q8_0.
var Default = Config{
	Arch: "llama", Dim: 768, Layers: 12, Heads: 12, KVHeads: 12, FFN: 2048,
	Vocab: 32000, Context: 2048, Type: gguf.TypeQ8_0, Seed: 1,
}

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
}

// Validate reports every problem with c (after defaults are filled).
func (c Config) Validate() error {
	c.fill()
	var errs []error
	if c.Arch != "llama" && c.Arch != "qwen2" {
		errs = append(errs, fmt.Errorf("arch %q: want llama or qwen2", c.Arch))
	}
	if c.Heads <= 0 || c.KVHeads <= 0 || c.Heads%c.KVHeads != 0 || c.Dim%c.Heads != 0 || (c.Dim/c.Heads)%2 != 0 {
		errs = append(errs, fmt.Errorf("dim %d, heads %d, kv heads %d: want dim = heads x even head size and heads a multiple of kv heads", c.Dim, c.Heads, c.KVHeads))
	}
	if c.Layers <= 0 || c.Context <= 0 || c.Vocab < 259 {
		errs = append(errs, fmt.Errorf("layers %d, context %d, vocab %d: want positive, vocab at least 259", c.Layers, c.Context, c.Vocab))
	}
	if !tensor.Supported(c.Type) {
		errs = append(errs, fmt.Errorf("type %s is not supported", c.Type))
	} else if bs := c.Type.BlockSize(); c.Dim%bs != 0 || c.FFN%bs != 0 {
		errs = append(errs, fmt.Errorf("type %s needs dim %d and ffn %d to be multiples of its block of %d", c.Type, c.Dim, c.FFN, bs))
	}
	return errors.Join(errs...)
}

// Params returns the number of weights the model will have.
func (c Config) Params() int64 {
	c.fill()
	kv := int64(c.Dim / c.Heads * c.KVHeads)
	d, f := int64(c.Dim), int64(c.FFN)
	per := 2*d*d + 2*d*kv + 3*d*f + 2*d
	n := int64(c.Layers)*per + int64(c.Vocab)*d + d
	if !c.Tied {
		n += int64(c.Vocab) * d
	}
	return n
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
	kv := c.Dim / c.Heads * c.KVHeads
	add := func(name string, rows, cols int, std float64, typ gguf.Type) error {
		return addTensor(gw, c.Seed, name, rows, cols, std, typ)
	}
	sd, sf := 1/math.Sqrt(float64(c.Dim)), 1/math.Sqrt(float64(c.FFN))
	errs := []error{
		add("token_embd.weight", c.Vocab, c.Dim, 0.02*16, c.Type),
		addNorm(gw, c.Seed, "output_norm.weight", c.Dim),
	}
	if !c.Tied {
		errs = append(errs, add("output.weight", c.Vocab, c.Dim, 0.02*16, c.Type))
	}
	for l := 0; l < c.Layers; l++ {
		p := "blk." + strconv.Itoa(l) + "."
		errs = append(errs,
			addNorm(gw, c.Seed, p+"attn_norm.weight", c.Dim),
			add(p+"attn_q.weight", c.Dim, c.Dim, 1.5*sd, c.Type),
			add(p+"attn_k.weight", kv, c.Dim, 1.5*sd, c.Type),
			add(p+"attn_v.weight", kv, c.Dim, sd, c.Type),
			add(p+"attn_output.weight", c.Dim, c.Dim, sd, c.Type),
			addNorm(gw, c.Seed, p+"ffn_norm.weight", c.Dim),
			add(p+"ffn_gate.weight", c.FFN, c.Dim, sd, c.Type),
			add(p+"ffn_up.weight", c.FFN, c.Dim, sd, c.Type),
			add(p+"ffn_down.weight", c.Dim, c.FFN, sf, c.Type),
		)
		if c.Arch == "qwen2" {
			errs = append(errs,
				add(p+"attn_q.bias", 1, c.Dim, 0.1, gguf.TypeF32),
				add(p+"attn_k.bias", 1, kv, 0.1, gguf.TypeF32),
				add(p+"attn_v.bias", 1, kv, 0.02, gguf.TypeF32))
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
	kvs := []struct {
		k string
		v any
	}{
		{"general.architecture", c.Arch},
		{"general.name", fmt.Sprintf("synth-%s-%dx%d-%s", c.Arch, c.Layers, c.Dim, c.Type)},
		{a + "context_length", uint32(c.Context)},
		{a + "embedding_length", uint32(c.Dim)},
		{a + "block_count", uint32(c.Layers)},
		{a + "feed_forward_length", uint32(c.FFN)},
		{a + "attention.head_count", uint32(c.Heads)},
		{a + "attention.head_count_kv", uint32(c.KVHeads)},
		{a + "attention.layer_norm_rms_epsilon", float32(1e-5)},
		{a + "rope.freq_base", float32(10000)},
	}
	for _, kv := range kvs {
		if err := gw.SetKV(kv.k, kv.v); err != nil {
			return err
		}
	}
	return setVocab(gw, c.Vocab)
}

// setVocab writes a SentencePiece vocabulary: <unk>, <s>, </s>, the 256
// byte tokens, then made-up word pieces.
func setVocab(gw *gguf.Writer, n int) error {
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
		for range rows {
			for i := range x {
				x[i] = float32(r.NormFloat64() * std)
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

// hash is FNV-1a, to give every tensor its own random stream.
func hash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
