package model

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"courier/internal/engine/gguf"
	"courier/internal/engine/tensor"
)

// Layer holds one transformer block's weights. Matrices are [rows][cols]
// over the memory-mapped file; vectors are F32 views of it. Optional
// tensors are nil (or a zero Matrix) when the architecture or the file
// has none.
type Layer struct {
	AttnNorm []float32     // [Dim]
	Wqkv     tensor.Matrix // [QDim+2*KVDim][Dim] when the file fuses Q, K and V (phi3)
	Bqkv     []float32     // [QDim+2*KVDim], with Wqkv, optional
	Wq       tensor.Matrix // [QDim][Dim]
	Wk, Wv   tensor.Matrix // [KVDim][Dim]
	Bq       []float32     // [QDim], optional (required by qwen2)
	Bk, Bv   []float32     // [KVDim]
	QNorm    []float32     // [HeadDim], QKNorm only
	KNorm    []float32     // [HeadDim], QKNorm only
	Wo       tensor.Matrix // [Dim][QDim]
	PostAttn []float32     // [Dim], PostNorms only
	FFNNorm  []float32     // [Dim]
	WGate    tensor.Matrix // [FFN][Dim]; zero when fused into WUp
	WUp      tensor.Matrix // [FFN][Dim], or [2*FFN][Dim]: gate rows then up rows (phi3)
	WDown    tensor.Matrix // [Dim][FFN]
	PostFFN  []float32     // [Dim], PostNorms only
	Slides   bool          // sliding-window layer
	rope     *ropeLayer
}

// Model is a loaded transformer: its config and weights. It is read-only
// after Load and safe to share between goroutines; per-call state lives in
// State.
type Model struct {
	Config
	TokEmbd tensor.Matrix // [Vocab][Dim]
	Layers  []Layer
	OutNorm []float32     // [Dim]
	Output  tensor.Matrix // [Vocab][Dim]; TokEmbd when the output is tied
	// RopeFactors divide each rotated pair's frequency ([RopeDims/2]):
	// Llama 3's rope_freqs, or Phi-3's long or short factors; nil if none.
	RopeFactors []float32
	// Stage is the share of the model loaded (LoadOptions.Layers): Layers
	// holds blocks Stage.First..Stage.End-1 of Stage.Total, Config.Layers
	// their number. TokEmbd is loaded only by the first stage (and by the
	// last when the output is tied), OutNorm and Output only by the last.
	Stage LayerRange

	ropes [2]ropeLayer // full-attention and sliding-window layers
	// swaRing is the size of llama-server's sliding-window KV cache when it
	// is smaller than the context, so that it wraps (attention_ring.go);
	// 0 otherwise.
	swaRing int
}

// LoadOptions tune Load. The zero value works.
type LoadOptions struct {
	// NoRepack keeps every weight in the file's memory mapping: no packed
	// heap copies of Q4_0/Q4_K matrices (slower decode, same results).
	NoRepack bool
	// ContextLength is the context the model will run with (0: the
	// trained one). Phi-3's RoPE takes its long factors when it exceeds
	// the original context, as llama.cpp decides from n_ctx.
	ContextLength int
	// Layers loads only blocks [First, End) (a pipeline stage); the zero
	// value loads the whole model.
	Layers LayerRange
}

// LayerRange is a share of a model's transformer blocks: blocks
// [First, End) of Total.
type LayerRange struct{ First, End, Total int }

// IsFirst reports whether the range starts at block 0: its stage embeds
// tokens.
func (r LayerRange) IsFirst() bool { return r.First == 0 }

// IsLast reports whether the range ends at the last block: its stage
// applies the final norm and the output head.
func (r LayerRange) IsLast() bool { return r.End == r.Total }

// Whole reports whether the range is the whole model.
func (r LayerRange) Whole() bool { return r.IsFirst() && r.IsLast() }

// Load builds a Model over f's tensors; f must stay open while it is used.
func Load(f *gguf.File) (*Model, error) { return LoadWith(f, LoadOptions{}) }

// LoadWith is Load with options. Like llama.cpp, it refuses a file that
// lacks a tensor the architecture needs; unlike llama.cpp, which ignores
// them, it also refuses a file holding a tensor the forward pass would not
// use, naming it: such a file is not the model the forward pass computes.
func LoadWith(f *gguf.File, opts LoadOptions) (*Model, error) {
	cfg, err := ReadConfig(f)
	if err != nil {
		return nil, err
	}
	spec := archs[cfg.Arch]
	w := weights{f: f, newMatrix: tensor.NewMatrix, used: map[string]bool{}}
	if opts.NoRepack {
		w.newMatrix = tensor.NewMappedMatrix
	}
	r := opts.Layers
	if r == (LayerRange{}) {
		r = LayerRange{0, cfg.Layers, cfg.Layers}
	}
	if r.Total != cfg.Layers || r.First < 0 || r.End <= r.First || r.End > cfg.Layers {
		return nil, fmt.Errorf("model: layers %d-%d of %d: the model has %d layers", r.First, r.End-1, r.Total, cfg.Layers)
	}
	m := &Model{Config: cfg, Stage: r}
	m.Config.Layers = r.End - r.First
	// Only the stages that use them read (and so touch the pages of) the
	// embedding and the head; the others learn the vocabulary's size from
	// the tensor's shape.
	tied := !w.has("output.weight")
	if r.IsFirst() || (r.IsLast() && tied) {
		m.TokEmbd = w.matrix("token_embd.weight", -1, cfg.Dim)
		if w.err == nil {
			m.Vocab = m.TokEmbd.Rows
		}
	} else if info, err := f.Tensor("token_embd.weight"); err != nil || len(info.Dims) != 2 {
		return nil, fmt.Errorf("model: token_embd.weight missing or not a matrix")
	} else {
		m.Vocab = int(info.Dims[1])
	}
	if r.IsLast() {
		m.OutNorm = w.vector("output_norm.weight", cfg.Dim)
		if !tied {
			m.Output = w.matrix("output.weight", m.Vocab, cfg.Dim)
		} else {
			m.Output = m.TokEmbd
		}
	}
	ctx := opts.ContextLength
	if ctx <= 0 || ctx > cfg.Context {
		ctx = cfg.Context
	}
	m.swaRing = swaRingSize(cfg.SlidingWindow, ctx)
	m.loadRopeFactors(&w, spec, ctx)
	m.ropes[0] = newRopeLayer(&m.Config, cfg.Rope.Base, cfg.Rope.Scale)
	m.ropes[1] = newRopeLayer(&m.Config, cfg.Rope.BaseSWA, cfg.Rope.ScaleSWA)
	m.Layers = make([]Layer, r.End-r.First)
	for i := range m.Layers {
		m.loadLayer(&w, spec, &m.Layers[i], r.First+i)
	}
	if w.err != nil {
		return nil, w.err
	}
	for _, t := range f.Tensors {
		if !w.used[t.Name] && !otherStage(t.Name, r) {
			return nil, fmt.Errorf("model: %s: tensor %s is not used by the %s forward pass (refusing a file it would misread)", cfg.Arch, t.Name, cfg.Arch)
		}
	}
	return m, nil
}

// otherStage reports whether tensor name belongs to a share of the model
// outside r (a block outside it, or the embedding or head another stage
// loads), so that its not being used here says nothing about the file.
func otherStage(name string, r LayerRange) bool {
	if r.Whole() {
		return false
	}
	switch name {
	case "token_embd.weight", "output_norm.weight", "output.weight":
		return true
	}
	var blk int
	if _, err := fmt.Sscanf(name, "blk.%d.", &blk); err == nil {
		return blk < r.First || blk >= r.End
	}
	return false
}

// loadLayer reads block i's tensors into l. Q, K and V come fused
// (attn_qkv) or apart, with optional biases, as llama.cpp's
// create_tensor_qkv accepts.
func (m *Model) loadLayer(w *weights, spec archSpec, l *Layer, i int) {
	c := &m.Config
	p := fmt.Sprintf("blk.%d.", i)
	q, kv := c.QDim(), c.KVDim()
	l.Slides = c.LayerSlides(i)
	l.rope = &m.ropes[0]
	if l.Slides {
		l.rope = &m.ropes[1]
	}
	l.AttnNorm = w.vector(p+"attn_norm.weight", c.Dim)
	if w.has(p+"attn_qkv.weight") && !spec.qkvBias {
		l.Wqkv = w.matrix(p+"attn_qkv.weight", q+2*kv, c.Dim)
		l.Bqkv = w.optVector(p+"attn_qkv.bias", q+2*kv)
	} else {
		l.Wq = w.matrix(p+"attn_q.weight", q, c.Dim)
		l.Wk = w.matrix(p+"attn_k.weight", kv, c.Dim)
		l.Wv = w.matrix(p+"attn_v.weight", kv, c.Dim)
		if spec.qkvBias {
			l.Bq = w.vector(p+"attn_q.bias", q)
			l.Bk = w.vector(p+"attn_k.bias", kv)
			l.Bv = w.vector(p+"attn_v.bias", kv)
		} else {
			l.Bq = w.optVector(p+"attn_q.bias", q)
			l.Bk = w.optVector(p+"attn_k.bias", kv)
			l.Bv = w.optVector(p+"attn_v.bias", kv)
		}
	}
	if c.QKNorm {
		l.QNorm = w.vector(p+"attn_q_norm.weight", c.HeadDim)
		l.KNorm = w.vector(p+"attn_k_norm.weight", c.HeadDim)
	}
	l.Wo = w.matrix(p+"attn_output.weight", c.Dim, q)
	l.FFNNorm = w.vector(p+"ffn_norm.weight", c.Dim)
	if spec.fusedGateUp {
		l.WUp = w.matrix(p+"ffn_up.weight", 2*c.FFN, c.Dim)
	} else {
		l.WGate = w.matrix(p+"ffn_gate.weight", c.FFN, c.Dim)
		l.WUp = w.matrix(p+"ffn_up.weight", c.FFN, c.Dim)
	}
	l.WDown = w.matrix(p+"ffn_down.weight", c.Dim, c.FFN)
	if c.PostNorms {
		l.PostAttn = w.vector(p+"post_attention_norm.weight", c.Dim)
		l.PostFFN = w.vector(p+"post_ffw_norm.weight", c.Dim)
	}
}

// loadRopeFactors reads Llama 3's rope_freqs.weight or Phi-3's
// rope_factors_long/short.weight where the architecture uses them
// (llama.cpp's get_rope_factors: the long factors when the context
// exceeds the original one). Elsewhere they stay unread, so a file that
// has them is refused as holding a tensor the forward pass ignores.
func (m *Model) loadRopeFactors(w *weights, spec archSpec, ctx int) {
	n := m.RopeDims / 2
	switch {
	case spec.ropeFreqs && w.has("rope_freqs.weight"):
		m.RopeFactors = w.vector("rope_freqs.weight", n)
	case spec.ropeLongShort && (w.has("rope_factors_long.weight") || w.has("rope_factors_short.weight")):
		long := w.vector("rope_factors_long.weight", n)
		short := w.vector("rope_factors_short.weight", n)
		m.RopeFactors = short
		if ctx > m.Rope.OrigCtx {
			m.RopeFactors = long
		}
	}
}

// weights fetches tensors, keeping the first error and the names used.
type weights struct {
	f         *gguf.File
	newMatrix func(t gguf.Type, rows, cols int, data []byte) (tensor.Matrix, error)
	err       error
	used      map[string]bool
}

func (w *weights) has(name string) bool {
	_, err := w.f.Tensor(name)
	return err == nil
}

// matrix returns a 2-D tensor of shape [rows][cols]; rows < 0 accepts any.
func (w *weights) matrix(name string, rows, cols int) tensor.Matrix {
	if w.err != nil {
		return tensor.Matrix{}
	}
	w.used[name] = true
	info, err := w.f.Tensor(name)
	if err != nil {
		w.err = fmt.Errorf("model: %w", err)
		return tensor.Matrix{}
	}
	if len(info.Dims) != 2 || int(info.Dims[0]) != cols || (rows >= 0 && int(info.Dims[1]) != rows) {
		w.err = fmt.Errorf("model: tensor %s has shape %v, want [%d %d]", name, info.Dims, cols, rows)
		return tensor.Matrix{}
	}
	data, err := w.f.TensorData(name)
	if err != nil {
		w.err = fmt.Errorf("model: %w", err)
		return tensor.Matrix{}
	}
	m, err := w.newMatrix(info.Type, int(info.Dims[1]), cols, data)
	if err != nil {
		w.err = fmt.Errorf("model: tensor %s: %w", name, err)
	}
	return m
}

// optVector is vector for a tensor the file may omit (nil then).
func (w *weights) optVector(name string, n int) []float32 {
	if !w.has(name) {
		return nil
	}
	return w.vector(name, n)
}

// vector returns a 1-D F32 tensor of length n as a view of the mapping.
func (w *weights) vector(name string, n int) []float32 {
	if w.err != nil {
		return nil
	}
	w.used[name] = true
	info, err := w.f.Tensor(name)
	if err != nil {
		w.err = fmt.Errorf("model: %w", err)
		return nil
	}
	if len(info.Dims) != 1 || int(info.Dims[0]) != n || info.Type != gguf.TypeF32 {
		w.err = fmt.Errorf("model: tensor %s is %s %v, want F32 [%d]", name, info.Type, info.Dims, n)
		return nil
	}
	data, err := w.f.TensorData(name)
	if err != nil {
		w.err = fmt.Errorf("model: %w", err)
		return nil
	}
	if uintptr(unsafe.Pointer(unsafe.SliceData(data)))%4 != 0 {
		// GGUF aligns tensor data (32 bytes by default); copy if a file does not.
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
		return out
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(data))), n)
}
