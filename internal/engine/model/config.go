package model

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"courier/internal/engine/gguf"
)

// RopeStyle says which elements RoPE rotates together.
type RopeStyle int

// RoPE pairings: Normal rotates adjacent pairs (x[2i], x[2i+1]), as llama.cpp
// does for converted Llama weights; NeoX rotates (x[i], x[i+d/2]), as Qwen2.
const (
	RopeNormal RopeStyle = iota
	RopeNeoX
)

// Config holds the shape and hyper-parameters of a model.
type Config struct {
	Arch      string
	Dim       int // embedding length
	Layers    int
	Heads     int
	KVHeads   int
	HeadDim   int
	FFN       int // feed-forward hidden size
	Vocab     int
	Context   int // trained context length
	NormEps   float32
	RopeBase  float32
	RopeScale float32 // multiplies positions (1/factor for linear scaling)
	RopeDims  int     // rotated dimensions per head
	RopeStyle RopeStyle
	QKVBias   bool
}

// KVDim is the width of one position's K (or V) in one layer.
func (c *Config) KVDim() int { return c.KVHeads * c.HeadDim }

// An archSpec describes how one architecture differs from plain llama.
type archSpec struct {
	rope    RopeStyle
	qkvBias bool
}

var archs = map[string]archSpec{}

// register makes an architecture loadable; each arch file calls it in init.
func register(name string, spec archSpec) { archs[name] = spec }

// UnsupportedArchError reports a general.architecture with no forward pass.
type UnsupportedArchError struct{ Arch string }

func (e *UnsupportedArchError) Error() string {
	names := make([]string, 0, len(archs))
	for n := range archs {
		names = append(names, n)
	}
	sort.Strings(names)
	return fmt.Sprintf("model: unsupported architecture %q (supported: %s)", e.Arch, strings.Join(names, ", "))
}

// ReadConfig reads the model's hyper-parameters from GGUF metadata.
func ReadConfig(f *gguf.File) (Config, error) {
	arch, err := f.String("general.architecture")
	if err != nil {
		return Config{}, fmt.Errorf("model: %w", err)
	}
	spec, ok := archs[arch]
	if !ok {
		return Config{}, &UnsupportedArchError{Arch: arch}
	}
	c := Config{Arch: arch, RopeStyle: spec.rope, QKVBias: spec.qkvBias, RopeScale: 1}
	r := metaReader{f: f, arch: arch}
	c.Dim = r.int("embedding_length", 0)
	c.Layers = r.int("block_count", 0)
	c.FFN = r.int("feed_forward_length", 0)
	c.Heads = r.int("attention.head_count", 0)
	c.KVHeads = r.int("attention.head_count_kv", c.Heads)
	c.Context = r.int("context_length", 2048)
	c.NormEps = float32(r.float("attention.layer_norm_rms_epsilon", 1e-5))
	c.RopeBase = float32(r.float("rope.freq_base", 10000))
	if c.Heads > 0 {
		c.HeadDim = r.int("attention.key_length", c.Dim/c.Heads)
	}
	c.RopeDims = r.int("rope.dimension_count", c.HeadDim)
	if typ, err := f.String(arch + ".rope.scaling.type"); err == nil && typ != "none" {
		if typ != "linear" {
			r.errs = append(r.errs, fmt.Errorf("rope scaling type %q is not supported (only linear)", typ))
		}
		if factor := r.float("rope.scaling.factor", 1); factor > 0 {
			c.RopeScale = float32(1 / factor)
		}
	} else if factor := r.float("rope.scale_linear", 0); factor > 0 {
		c.RopeScale = float32(1 / factor)
	}
	if err := errors.Join(r.errs...); err != nil {
		return Config{}, fmt.Errorf("model: %w", err)
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.Dim > 0 && c.Layers > 0 && c.FFN > 0, "dims must be positive (embedding %d, layers %d, ffn %d)", c.Dim, c.Layers, c.FFN)
	check(c.Heads > 0 && c.KVHeads > 0 && c.Heads%c.KVHeads == 0, "head_count %d must be a positive multiple of head_count_kv %d", c.Heads, c.KVHeads)
	check(c.HeadDim > 0 && c.HeadDim%2 == 0 && c.HeadDim <= 1024, "head dimension %d must be even and at most 1024", c.HeadDim)
	check(c.RopeDims > 0 && c.RopeDims <= c.HeadDim && c.RopeDims%2 == 0, "rope dimension %d must be even and at most the head dimension", c.RopeDims)
	check(c.Heads*c.HeadDim == c.Dim, "heads %d x head dim %d must equal embedding length %d", c.Heads, c.HeadDim, c.Dim)
	check(c.Context > 0, "context length must be positive")
	check(c.NormEps > 0, "rms epsilon must be positive")
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("model: %s: %w", c.Arch, err)
	}
	return nil
}

// metaReader reads "<arch>.<key>" values, collecting errors.
type metaReader struct {
	f    *gguf.File
	arch string
	errs []error
}

func (r *metaReader) int(key string, def int) int {
	v, err := r.f.Uint(r.arch + "." + key)
	if errors.Is(err, gguf.ErrNotFound) {
		if def == 0 {
			r.errs = append(r.errs, err)
		}
		return def
	}
	if err != nil || v > 1<<31 {
		r.errs = append(r.errs, fmt.Errorf("%s.%s: bad value %d: %v", r.arch, key, v, err))
		return def
	}
	return int(v)
}

func (r *metaReader) float(key string, def float64) float64 {
	v, err := r.f.Float(r.arch + "." + key)
	if errors.Is(err, gguf.ErrNotFound) {
		return def
	}
	if err != nil {
		r.errs = append(r.errs, err)
		return def
	}
	return v
}
