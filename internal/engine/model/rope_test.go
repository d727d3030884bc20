package model

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"courier/internal/engine/gguf"
	"courier/internal/engine/synth"
)

// TestRopeCacheMatchesGgml pins the cos/sin caches of two RoPE variants,
// read through ReadConfig from synthetic files, to what ggml's
// ggml_rope_cache_init, rope_yarn and ggml_rope_yarn_corr_dims, with
// llama_context's YaRN attention factor, compute when compiled as the CPU
// backend is (g++ -O3 -march=native, glibc 2.36): the sha256 of the cache
// words ("%08x\n" per float, cos then sin per pair) for positions 0, 7,
// ..., 2996, from a C++ program holding those functions' code.
//   - YaRN: rope.scaling.type yarn, factor 4, original context 128, base
//     10000, 64 rotated dimensions (ext_factor 1, corr dims, mscale);
//   - linear: rope.scaling.type linear, factor 2, base 500000;
//   - Phi-3's attention factor: rope.scaling.attn_factor 1.1902380714, 96
//     rotated dimensions (theta_scale = powf(base, -2.0f/96), not exact in
//     binary), no YaRN.
func TestRopeCacheMatchesGgml(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    synth.Config
		want string
	}{
		{"yarn", synth.Config{Arch: "llama", Dim: 256, Heads: 4, Layers: 1, FFN: 256, Vocab: 300, Context: 512, Type: gguf.TypeF32,
			RopeScaling: "yarn", RopeFactor: 4, RopeOrigCtx: 128},
			"ff4d879d8dbf8c82b17ff06247500fbb3867afc8503787a6b54c1cd9424852ee"},
		{"linear", synth.Config{Arch: "llama", Dim: 256, Heads: 4, Layers: 1, FFN: 256, Vocab: 300, Context: 512, Type: gguf.TypeF32,
			RopeBase: 500000, RopeScaling: "linear", RopeFactor: 2},
			"6144492a765081cbb1a30f2a16ec51a705e35cd52e473624179432ee6cf531e8"},
		{"phi3 attn_factor", synth.Config{Arch: "phi3", Dim: 384, Heads: 4, Layers: 1, FFN: 256, Vocab: 300, Context: 512, Type: gguf.TypeF32,
			RopeAttnFactor: 1.1902380714},
			"3f84e75451e74497b0817b9a229bc46b47512618893bea9e3f4a9f116409127b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := synth.Write(&buf, tc.c); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Parse(buf.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			m, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			rb := newRopeBuf(m.RopeDims)
			h := sha256.New()
			for p := 0; p < 3000; p += 7 {
				rb.angles(m, p, &m.ropes[0])
				for i := range rb.cos {
					fmt.Fprintf(h, "%08x\n%08x\n", math.Float32bits(rb.cos[i]), math.Float32bits(rb.sin[i]))
				}
			}
			if got := fmt.Sprintf("%x", h.Sum(nil)); got != tc.want {
				t.Fatalf("rope cache sha256 %s, ggml's %s", got, tc.want)
			}
		})
	}
}

// TestRotateMatchesFMA32 checks rotate (on AVX2 its assembly, which takes
// whole groups of pairs, then the generic body's inlined fmaf fast path
// for the rest; under -tags noasm the generic body alone) against the
// formula with fma32 itself, for both pair layouts, partial rotations and
// pair counts with and without leftovers.
func TestRotateMatchesFMA32(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 13))
	for _, neox := range []bool{false, true} {
		for _, dims := range []int{64, 32, 20, 6, 2} {
			rb := newRopeBuf(dims)
			x := make([]float32, 64)
			for range 2000 {
				for i := range rb.cos {
					rb.cos[i] = float32(rng.NormFloat64())
					rb.sin[i] = float32(rng.NormFloat64())
				}
				rb.interleave()
				for i := range x {
					x[i] = float32(rng.NormFloat64() * math.Exp2(float64(rng.IntN(40)-20)))
				}
				want := append([]float32(nil), x...)
				half := dims / 2
				for i := range half {
					i0, i1 := 2*i, 2*i+1
					if neox {
						i0, i1 = i, i+half
					}
					x0, x1 := want[i0], want[i1]
					want[i0] = fma32(x0, rb.cos[i], -float32(x1*rb.sin[i]))
					want[i1] = fma32(x0, rb.sin[i], float32(x1*rb.cos[i]))
				}
				rb.rotate(x, neox)
				for i := range x {
					if math.Float32bits(x[i]) != math.Float32bits(want[i]) {
						t.Fatalf("neox %v dims %d: x[%d] = %g, want %g", neox, dims, i, x[i], want[i])
					}
				}
			}
		}
	}
}
