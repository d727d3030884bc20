package model

import (
	"errors"
	"fmt"
	"math"
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
	Arch     string
	Dim      int // embedding length
	Layers   int
	Heads    int
	KVHeads  int
	HeadDim  int // per head, of Q, K and V
	FFN      int // feed-forward hidden size
	Vocab    int
	Context  int // trained context length
	NormEps  float32
	RopeDims int // rotated dimensions per head
	RopeStyle
	Rope RopeConfig

	// QKVBias: the file's Q, K and V carry biases (they are optional, as in
	// llama.cpp, except for qwen2 which requires them).
	QKVBias bool
	// QKNorm: per-head RMSNorm of Q and K before RoPE (qwen3, gemma3).
	QKNorm bool
	// PostNorms: RMSNorm of the attention and feed-forward outputs before
	// their residual additions (gemma3).
	PostNorms bool
	// EmbedScale, when not 0, multiplies the token embeddings (gemma3:
	// sqrtf(Dim)).
	EmbedScale float32
	// GELU: the gated feed-forward uses GELU (tanh approximation) instead of
	// SiLU (gemma3).
	GELU bool
	// QScale, when not 0, multiplies Q in F32 after RoPE and attention runs
	// with a scale of 1 (gemma3, phi3); otherwise attention scales the
	// scores by AttnScale.
	QScale    float32
	AttnScale float32
	// SlidingWindow, when not 0, is the number of positions a token of a
	// sliding-window layer sees (itself included); SWAPattern says which
	// layers slide: layer il does when il % SWAPattern < SWAPattern-1.
	SlidingWindow int
	SWAPattern    int
}

// RopeConfig is the RoPE of a model as ggml_rope_ext takes it.
type RopeConfig struct {
	Base      float32 // freq_base of full-attention layers
	BaseSWA   float32 // freq_base of sliding-window layers
	Scale     float32 // freq_scale: 1/factor for linear or YaRN scaling
	ScaleSWA  float32 // freq_scale of sliding-window layers
	ExtFactor float32 // YaRN's ext_factor: 0 unless scaling type is yarn
	// AttnFactor is attn_factor (YaRN's magnitude correction and
	// rope.scaling.attn_factor), multiplying cos and sin.
	AttnFactor float32
	BetaFast   float32
	BetaSlow   float32
	OrigCtx    int // n_ctx_orig_yarn
}

// QDim is the width of the concatenated query heads (and of the
// attention output): Heads*HeadDim, which need not be Dim.
func (c *Config) QDim() int { return c.Heads * c.HeadDim }

// KVDim is the width of one position's K (or V) in one layer.
func (c *Config) KVDim() int { return c.KVHeads * c.HeadDim }

// LayerSlides reports whether layer il uses the sliding window.
func (c *Config) LayerSlides(il int) bool {
	return c.SlidingWindow > 0 && il%c.SWAPattern < c.SWAPattern-1
}

// An archSpec describes how one architecture differs from plain llama.
type archSpec struct {
	rope      RopeStyle
	qkvBias   bool // Q, K and V biases required
	qkNorm    bool
	postNorms bool
	// ropeFreqs: a rope_freqs.weight tensor is used when present (llama).
	ropeFreqs bool
	// ropeLongShort: rope_factors_long/short are used when present (phi3).
	ropeLongShort bool
	// fusedGateUp: ffn_up holds the gate rows then the up rows (phi3).
	fusedGateUp bool
	// keys lists the architecture's own metadata keys (after "<arch>.")
	// beyond the common ones; hparams reads them.
	keys    []string
	hparams func(c *Config, r *metaReader)
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

// commonKeys are the "<arch>." metadata keys every architecture reads (or
// knows to be harmless: they do not change the arithmetic). A key outside
// these and the architecture's own is refused: it may change the
// arithmetic in a way the forward pass does not implement.
var commonKeys = []string{
	"context_length", "embedding_length", "block_count", "feed_forward_length",
	"attention.head_count", "attention.head_count_kv", "attention.layer_norm_rms_epsilon",
	"attention.key_length", "attention.value_length",
	"rope.freq_base", "rope.dimension_count",
	"rope.scaling.type", "rope.scaling.factor", "rope.scale_linear",
	"rope.scaling.original_context_length", "rope.scaling.finetuned", "rope.scaling.attn_factor",
	"vocab_size", "pooling_type",
	// Read by llama.cpp for other architectures only; harmless here.
	"attention.layer_norm_epsilon", "tensor_data_layout",
	// Checked in readRope: accepted only at the values llama.cpp uses.
	"rope.scaling.yarn_ext_factor", "rope.scaling.yarn_beta_fast", "rope.scaling.yarn_beta_slow",
}

// ReadConfig reads the model's hyper-parameters from GGUF metadata, as
// llama.cpp's llama_model::load_hparams does for the supported
// architectures, and refuses metadata it does not implement.
func ReadConfig(f *gguf.File) (Config, error) {
	arch, err := f.String("general.architecture")
	if err != nil {
		return Config{}, fmt.Errorf("model: %w", err)
	}
	spec, ok := archs[arch]
	if !ok {
		return Config{}, &UnsupportedArchError{Arch: arch}
	}
	r := metaReader{f: f, arch: arch}
	r.checkKeys(spec.keys)
	c := Config{Arch: arch, RopeStyle: spec.rope, QKVBias: spec.qkvBias, QKNorm: spec.qkNorm, PostNorms: spec.postNorms}
	c.Dim = r.int("embedding_length", 0)
	c.Layers = r.int("block_count", 0)
	c.FFN = r.int("feed_forward_length", 0)
	c.Heads = r.int("attention.head_count", 0)
	c.KVHeads = r.int("attention.head_count_kv", c.Heads)
	c.Context = r.int("context_length", 2048)
	c.NormEps = float32(r.float("attention.layer_norm_rms_epsilon", 1e-5))
	if c.Heads > 0 {
		c.HeadDim = r.int("attention.key_length", c.Dim/c.Heads)
		if v := r.int("attention.value_length", c.HeadDim); v != c.HeadDim {
			r.fail("attention.value_length %d differs from attention.key_length %d (not implemented)", v, c.HeadDim)
		}
	}
	c.RopeDims = r.int("rope.dimension_count", c.HeadDim)
	r.readRope(&c)
	c.AttnScale = 1 / float32(math.Sqrt(float64(c.HeadDim)))
	if spec.hparams != nil {
		spec.hparams(&c, &r)
	}
	if err := errors.Join(r.errs...); err != nil {
		return Config{}, fmt.Errorf("model: %s: %w", arch, err)
	}
	return c, c.validate()
}

// readRope reads the RoPE scaling metadata as llama.cpp does: the type
// defaults to linear, the factor (or the old rope.scale_linear) gives
// freq_scale = 1/factor, YaRN sets ext_factor 1 and its attention factor.
func (r *metaReader) readRope(c *Config) {
	rc := &c.Rope
	rc.Base = float32(r.float("rope.freq_base", 10000))
	rc.BaseSWA = 10000
	rc.ScaleSWA = 1
	rc.BetaFast, rc.BetaSlow = 32, 1
	rc.OrigCtx = r.int("rope.scaling.original_context_length", c.Context)
	typ := "linear"
	if v, err := r.f.String(r.arch + ".rope.scaling.type"); err == nil {
		typ = v
	} else if !errors.Is(err, gguf.ErrNotFound) {
		r.errs = append(r.errs, err)
	}
	factor := float32(r.float("rope.scaling.factor", 0))
	if factor == 0 {
		factor = float32(r.float("rope.scale_linear", 0))
	}
	rc.Scale = 1
	if factor != 0 {
		rc.Scale = 1 / factor
	}
	rc.AttnFactor = 1
	switch typ {
	case "none":
		rc.Scale = 1
	case "linear":
	case "yarn":
		rc.ExtFactor = 1
		// llama_context: attn_factor = get_mscale(factor) / (1 + 0.1 ln
		// factor), the second cancelling the factor rope_yarn applies.
		f := 1 / rc.Scale
		mscale := float32(1)
		if f > 1 {
			mscale = fma32(0.1, logf(f), 1)
		}
		rc.AttnFactor = mscale * (1 / fma32(0.1, logf(f), 1))
	default:
		r.fail("rope.scaling.type %q is not implemented (none, linear and yarn are)", typ)
	}
	rc.AttnFactor *= float32(r.float("rope.scaling.attn_factor", 1))
	// The converter may write YaRN's parameters; llama.cpp ignores them for
	// these architectures and uses its defaults, so only those values are
	// accepted (another would mean the model wants arithmetic that neither
	// computes).
	for _, k := range []struct {
		key  string
		want float32
	}{{"rope.scaling.yarn_ext_factor", 1}, {"rope.scaling.yarn_beta_fast", rc.BetaFast}, {"rope.scaling.yarn_beta_slow", rc.BetaSlow}} {
		if v := float32(r.float(k.key, float64(k.want))); v != k.want {
			r.fail("%s %g is not implemented (llama.cpp uses %g)", k.key, v, k.want)
		}
	}
}

// logf is libm's logf for the few arguments RoPE metadata gives it.
func logf(x float32) float32 { return float32(math.Log(float64(x))) }

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
	check(c.QDim() <= 1<<16, "heads %d x head dim %d too large", c.Heads, c.HeadDim)
	check(c.Context > 0, "context length must be positive")
	check(c.NormEps > 0, "rms epsilon must be positive")
	check(c.Rope.Base > 0 && c.Rope.BaseSWA > 0, "rope base must be positive")
	check(c.Rope.Scale > 0 && !math.IsInf(float64(c.Rope.Scale), 0), "rope scaling factor must be positive")
	check(c.SlidingWindow >= 0 && (c.SlidingWindow == 0 || c.SWAPattern > 0), "sliding window %d with pattern %d", c.SlidingWindow, c.SWAPattern)
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

func (r *metaReader) fail(format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf(format, args...))
}

// checkKeys refuses every "<arch>." key that is neither common nor one of
// the architecture's own.
func (r *metaReader) checkKeys(own []string) {
	known := map[string]bool{}
	for _, k := range commonKeys {
		known[k] = true
	}
	for _, k := range own {
		known[k] = true
	}
	prefix := r.arch + "."
	for _, kv := range r.f.Metadata {
		if k, ok := strings.CutPrefix(kv.Key, prefix); ok && !known[k] {
			r.fail("metadata %s is not implemented for %s (it may change the arithmetic; refusing rather than misreading the model)", kv.Key, r.arch)
		}
	}
}

func (r *metaReader) has(key string) bool {
	_, ok := r.f.Lookup(r.arch + "." + key)
	return ok
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
