package model

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"courier/internal/engine/gguf"
	"courier/internal/engine/synth"
)

// synthImage writes a small synthetic model in memory.
func synthImage(t *testing.T, arch string) []byte {
	t.Helper()
	var buf bytes.Buffer
	c := synth.Config{Arch: arch, Dim: 64, Layers: 2, Heads: 4, KVHeads: 2, FFN: 128, Vocab: 300, Context: 64, Type: gguf.TypeF32, Seed: 3}
	if arch == "gemma3" {
		c.SlidingWindow, c.SWAPattern = 8, 2
	}
	if err := synth.Write(&buf, c); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rewrite copies a GGUF image without the tensors named in drop, lets edit
// add to it, and parses the result.
func rewrite(t *testing.T, img []byte, edit func(w *gguf.Writer) error, drop ...string) *gguf.File {
	t.Helper()
	src, err := gguf.Parse(img)
	if err != nil {
		t.Fatal(err)
	}
	w := gguf.NewWriter()
	for _, kv := range src.Metadata {
		if err := w.SetKV(kv.Key, kv.Value); err != nil {
			t.Fatal(err)
		}
	}
	skip := map[string]bool{}
	for _, d := range drop {
		skip[d] = true
	}
	for _, ti := range src.Tensors {
		if skip[ti.Name] {
			continue
		}
		data, err := src.TensorData(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.AddTensor(ti.Name, ti.Type, ti.Dims, data); err != nil {
			t.Fatal(err)
		}
	}
	if edit != nil {
		if err := edit(w); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if _, err := w.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// f32Tensor adds a 1-D F32 tensor of n ones.
func f32Tensor(name string, n int) func(w *gguf.Writer) error {
	return func(w *gguf.Writer) error {
		data := make([]byte, 4*n)
		for i := 0; i < n; i++ {
			copy(data[4*i:], []byte{0, 0, 0x80, 0x3f})
		}
		return w.AddTensor(name, gguf.TypeF32, []uint64{uint64(n)}, data)
	}
}

func setKV(key string, v any) func(w *gguf.Writer) error {
	return func(w *gguf.Writer) error { return w.SetKV(key, v) }
}

// TestLoadRefusesWhatItWouldMisread checks that a file the forward pass
// would compute wrongly fails to load with an error naming the tensor or
// the metadata key, and that the unmodified files load.
func TestLoadRefusesWhatItWouldMisread(t *testing.T) {
	llama, qwen2 := synthImage(t, "llama"), synthImage(t, "qwen2")
	qwen3, gemma3, phi3 := synthImage(t, "qwen3"), synthImage(t, "gemma3"), synthImage(t, "phi3")
	for _, tc := range []struct {
		name string
		f    *gguf.File
		want string // "" loads
	}{
		{"llama as written", rewrite(t, llama, nil), ""},
		{"qwen2 as written", rewrite(t, qwen2, nil), ""},
		{"llama with rope_freqs (Llama 3)", rewrite(t, llama, f32Tensor("rope_freqs.weight", 8)), ""},
		{"extra tensor", rewrite(t, llama, f32Tensor("blk.0.ffn_gate_inp.weight", 64)), "blk.0.ffn_gate_inp.weight"},
		{"extra tensor after the layers", rewrite(t, llama, f32Tensor("blk.2.attn_norm.weight", 64)), "blk.2.attn_norm.weight"},
		{"rope_freqs on qwen2", rewrite(t, qwen2, f32Tensor("rope_freqs.weight", 8)), "rope_freqs.weight"},
		{"rope factors on llama", rewrite(t, llama, f32Tensor("rope_factors_long.weight", 8)), "rope_factors_long.weight"},
		{"missing tensor", rewrite(t, llama, nil, "blk.1.ffn_down.weight"), "blk.1.ffn_down.weight"},
		{"missing qwen2 bias", rewrite(t, qwen2, nil, "blk.0.attn_k.bias"), "blk.0.attn_k.bias"},
		{"fused and split QKV", rewrite(t, llama, func(w *gguf.Writer) error {
			return w.AddTensor("blk.0.attn_qkv.weight", gguf.TypeF32, []uint64{64, 128}, make([]byte, 4*64*128))
		}), "blk.0.attn_q.weight"},
		{"sliding window on llama", rewrite(t, llama, setKV("llama.attention.sliding_window", uint32(32))), "llama.attention.sliding_window"},
		{"soft-capping on llama", rewrite(t, llama, setKV("llama.attn_logit_softcapping", float32(50))), "llama.attn_logit_softcapping"},
		{"experts", rewrite(t, llama, setKV("llama.expert_count", uint32(8))), "llama.expert_count"},
		{"longrope", rewrite(t, llama, setKV("llama.rope.scaling.type", "longrope")), "longrope"},
		{"yarn", rewrite(t, llama, func(w *gguf.Writer) error {
			if err := w.SetKV("llama.rope.scaling.type", "yarn"); err != nil {
				return err
			}
			return w.SetKV("llama.rope.scaling.factor", float32(4))
		}), ""},
		{"qwen3 as written", rewrite(t, qwen3, nil), ""},
		{"gemma3 as written", rewrite(t, gemma3, nil), ""},
		{"phi3 as written", rewrite(t, phi3, nil), ""},
		{"rope_freqs on qwen3", rewrite(t, qwen3, f32Tensor("rope_freqs.weight", 8)), "rope_freqs.weight"},
		{"rope_freqs on gemma3", rewrite(t, gemma3, f32Tensor("rope_freqs.weight", 8)), "rope_freqs.weight"},
		{"qwen3 without its K norm", rewrite(t, qwen3, nil, "blk.1.attn_k_norm.weight"), "blk.1.attn_k_norm.weight"},
		{"gemma3 without a post-norm", rewrite(t, gemma3, nil, "blk.0.post_ffw_norm.weight"), "blk.0.post_ffw_norm.weight"},
		{"gemma3 final soft-capping", rewrite(t, gemma3, setKV("gemma3.final_logit_softcapping", float32(30))), "final_logit_softcapping"},
		{"gemma3 pattern as an array", rewrite(t, gemma3, setKV("gemma3.attention.sliding_window_pattern", []bool{true, false})), "sliding_window_pattern"},
		{"phi3 sliding window (ignored, as llama.cpp does)", rewrite(t, phi3, setKV("phi3.attention.sliding_window", uint32(2047))), ""},
		{"phi3 with a separate gate", rewrite(t, phi3, f32Tensor("blk.0.ffn_gate.weight", 64)), "blk.0.ffn_gate.weight"},
		{"yarn beta_fast at llama.cpp's value", rewrite(t, llama, setKV("llama.rope.scaling.yarn_beta_fast", float32(32))), ""},
		{"yarn beta_fast elsewhere", rewrite(t, llama, setKV("llama.rope.scaling.yarn_beta_fast", float32(16))), "yarn_beta_fast"},
		{"value length", rewrite(t, llama, setKV("llama.attention.value_length", uint32(32))), "value_length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.f)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Load: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("Load succeeded, want an error naming %s", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("Load: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

// TestGemma3QueryScale checks Gemma 3's Q scale as llama.cpp sets it:
// 1/sqrt(head size), except for the 27B model (62 layers), whose scale is
// 1/sqrt(embedding/heads).
func TestGemma3QueryScale(t *testing.T) {
	var buf bytes.Buffer
	c := synth.Config{Arch: "gemma3", Dim: 128, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 64, FFN: 128, Vocab: 300, Context: 64, Type: gguf.TypeF32, Seed: 3}
	if err := synth.Write(&buf, c); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		layers uint32
		want   float32
	}{{2, 0.125}, {62, float32(1 / math.Sqrt(32))}} {
		f := rewrite(t, buf.Bytes(), setKV("gemma3.block_count", tc.layers))
		cfg, err := ReadConfig(f)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.QScale != tc.want {
			t.Errorf("%d layers: Q scale %g, want %g", tc.layers, cfg.QScale, tc.want)
		}
	}
}
