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
// over the memory-mapped file; vectors are F32 views of it.
type Layer struct {
	AttnNorm   []float32     // [Dim]
	Wq         tensor.Matrix // [Dim][Dim]
	Wk, Wv     tensor.Matrix // [KVDim][Dim]
	Bq         []float32     // [Dim], qwen2 only
	Bk, Bv     []float32     // [KVDim], qwen2 only
	Wo         tensor.Matrix // [Dim][Dim]
	FFNNorm    []float32     // [Dim]
	WGate, WUp tensor.Matrix // [FFN][Dim]
	WDown      tensor.Matrix // [Dim][FFN]
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
}

// LoadOptions tune Load. The zero value works.
type LoadOptions struct {
	// NoRepack keeps every weight in the file's memory mapping: no packed
	// heap copies of Q4_0/Q4_K matrices (slower decode, same results).
	NoRepack bool
}

// Load builds a Model over f's tensors; f must stay open while it is used.
func Load(f *gguf.File) (*Model, error) { return LoadWith(f, LoadOptions{}) }

// LoadWith is Load with options.
func LoadWith(f *gguf.File, opts LoadOptions) (*Model, error) {
	cfg, err := ReadConfig(f)
	if err != nil {
		return nil, err
	}
	w := weights{f: f, newMatrix: tensor.NewMatrix}
	if opts.NoRepack {
		w.newMatrix = tensor.NewMappedMatrix
	}
	m := &Model{Config: cfg}
	m.TokEmbd = w.matrix("token_embd.weight", -1, cfg.Dim)
	if w.err == nil {
		m.Vocab = m.TokEmbd.Rows
	}
	m.OutNorm = w.vector("output_norm.weight", cfg.Dim)
	if _, err := f.Tensor("output.weight"); err == nil {
		m.Output = w.matrix("output.weight", m.Vocab, cfg.Dim)
	} else {
		m.Output = m.TokEmbd
	}
	m.Layers = make([]Layer, cfg.Layers)
	kv := cfg.KVDim()
	for i := range m.Layers {
		p := fmt.Sprintf("blk.%d.", i)
		l := &m.Layers[i]
		l.AttnNorm = w.vector(p+"attn_norm.weight", cfg.Dim)
		l.Wq = w.matrix(p+"attn_q.weight", cfg.Dim, cfg.Dim)
		l.Wk = w.matrix(p+"attn_k.weight", kv, cfg.Dim)
		l.Wv = w.matrix(p+"attn_v.weight", kv, cfg.Dim)
		l.Wo = w.matrix(p+"attn_output.weight", cfg.Dim, cfg.Dim)
		if cfg.QKVBias {
			l.Bq = w.vector(p+"attn_q.bias", cfg.Dim)
			l.Bk = w.vector(p+"attn_k.bias", kv)
			l.Bv = w.vector(p+"attn_v.bias", kv)
		}
		l.FFNNorm = w.vector(p+"ffn_norm.weight", cfg.Dim)
		l.WGate = w.matrix(p+"ffn_gate.weight", cfg.FFN, cfg.Dim)
		l.WUp = w.matrix(p+"ffn_up.weight", cfg.FFN, cfg.Dim)
		l.WDown = w.matrix(p+"ffn_down.weight", cfg.Dim, cfg.FFN)
	}
	if w.err != nil {
		return nil, w.err
	}
	return m, nil
}

// weights fetches tensors, keeping the first error.
type weights struct {
	f         *gguf.File
	newMatrix func(t gguf.Type, rows, cols int, data []byte) (tensor.Matrix, error)
	err       error
}

// matrix returns a 2-D tensor of shape [rows][cols]; rows < 0 accepts any.
func (w *weights) matrix(name string, rows, cols int) tensor.Matrix {
	if w.err != nil {
		return tensor.Matrix{}
	}
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

// vector returns a 1-D F32 tensor of length n as a view of the mapping.
func (w *weights) vector(name string, n int) []float32 {
	if w.err != nil {
		return nil
	}
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
