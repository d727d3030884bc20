package model

import (
	"math"

	"courier/internal/engine/tensor"
)

// ropeLayer is what ggml_rope_ext computes a layer's rotation from: the
// cache of cos and sin that ggml_rope_cache_init builds per position.
type ropeLayer struct {
	scale      float32    // freq_scale
	thetaScale float32    // powf(freq_base, -2.0f/n_dims)
	ext        float32    // ext_factor (YaRN; 0 otherwise)
	mscale     float32    // attn_factor, times YaRN's 1 + 0.1 ln(1/freq_scale)
	corr       [2]float32 // ggml_rope_yarn_corr_dims
}

// newRopeLayer computes the per-layer constants for freq_base base and
// freq_scale scale, as ggml_compute_forward_rope_flt does once per call.
func newRopeLayer(c *Config, base, scale float32) ropeLayer {
	dims := c.RopeDims
	r := ropeLayer{
		scale:      scale,
		thetaScale: float32(math.Pow(float64(base), float64(float32(-2)/float32(dims)))),
		ext:        c.Rope.ExtFactor,
		mscale:     c.Rope.AttnFactor,
	}
	r.corr = yarnCorrDims(dims, c.Rope.OrigCtx, base, c.Rope.BetaFast, c.Rope.BetaSlow)
	if r.ext != 0 {
		// rope_yarn: mscale *= 1.0f + 0.1f * logf(1.0f / freq_scale).
		r.mscale *= fma32(0.1, logf(1/scale), 1)
	}
	return r
}

// yarnCorrDims is ggml_rope_yarn_corr_dims.
func yarnCorrDims(nDims, nCtxOrig int, base, betaFast, betaSlow float32) [2]float32 {
	corrDim := func(nRot float32) float32 {
		return float32(nDims) * logf(float32(nCtxOrig)/(nRot*2*float32(math.Pi))) / (2 * logf(base))
	}
	start := float32(math.Floor(float64(corrDim(betaFast))))
	end := float32(math.Ceil(float64(corrDim(betaSlow))))
	return [2]float32{max(0, start), min(float32(nDims-1), end)}
}

// ropeBuf holds the rotation of one position: cos and sin per pair, and
// the same interleaved for the assembly's adjacent pairs (cs: cos, sin;
// sc: sin, cos; see interleave).
type ropeBuf struct{ cos, sin, cs, sc []float32 }

func newRopeBuf(dims int) ropeBuf {
	h := dims / 2
	return ropeBuf{cos: make([]float32, h), sin: make([]float32, h), cs: make([]float32, 2*h), sc: make([]float32, 2*h)}
}

// interleave fills cs and sc from cos and sin.
func (rb *ropeBuf) interleave() {
	for i, c := range rb.cos {
		s := rb.sin[i]
		rb.cs[2*i], rb.cs[2*i+1] = c, s
		rb.sc[2*i], rb.sc[2*i+1] = s, c
	}
}

// angles fills cos and sin for position pos the way ggml builds its
// rope cache (ggml_rope_cache_init and rope_yarn): theta starts at pos and
// is multiplied by thetaScale per pair; each pair's theta is divided by
// its frequency factor (rope_freqs, or Phi-3's long/short factors) when
// the model has them, scaled by freq_scale, mixed with the unscaled theta
// by YaRN's ramp when ext_factor is set, and cos and sin are multiplied by
// mscale.
func (rb *ropeBuf) angles(m *Model, pos int, r *ropeLayer) {
	ff := m.RopeFactors
	theta := float32(pos)
	for i := range rb.cos {
		extrap := theta
		if ff != nil {
			extrap = theta / ff[i]
		}
		t := r.scale * extrap
		if r.ext != 0 {
			mix := yarnRamp(r.corr[0], r.corr[1], 2*i) * r.ext
			t = fma32(t, 1-mix, extrap*mix)
		}
		c, sn := tensor.Cosf(t), tensor.Sinf(t) // glibc's cosf/sinf, bit for bit
		if r.mscale != 1 {
			c, sn = c*r.mscale, sn*r.mscale
		}
		rb.cos[i], rb.sin[i] = c, sn
		theta *= r.thetaScale
	}
	rb.interleave()
}

// yarnRamp is rope_yarn_ramp.
func yarnRamp(low, high float32, i0 int) float32 {
	y := (float32(i0/2) - low) / max(0.001, high-low)
	return 1 - min(1, max(0, y))
}

// rotate applies the rotation to one head vector (pairs half a head apart
// when neox, else adjacent). ggml computes x0*cos - x1*sin and x0*sin +
// x1*cos, which GCC contracts to fused multiply-adds on the first product.
func (rb *ropeBuf) rotate(x []float32, neox bool) {
	cos, sin := rb.cos, rb.sin
	half := len(cos)
	x = x[:2*half]
	done := rb.rotateVec(x, neox) // pairs [0, done) on AVX2
	// i0, i1: the pair's indices.
	i0, i1, step := done, done+half, 1
	if !neox {
		i0, i1, step = 2*done, 2*done+1, 2
	}
	for i := done; i < half; i++ {
		x0, x1 := x[i0], x[i1]
		c, s := cos[i], sin[i]
		// fma32 with fmaf's fast path inlined: the exact path's calls
		// were most of a prompt's RoPE time.
		r0, ok0 := fmaFast(x0, c, -float32(x1*s))
		r1, ok1 := fmaFast(x0, s, float32(x1*c))
		if !ok0 || !ok1 {
			r0, r1 = fma32(x0, c, -float32(x1*s)), fma32(x0, s, float32(x1*c))
		}
		x[i0], x[i1] = r0, r1
		i0 += step
		i1 += step
	}
}
