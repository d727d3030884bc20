//go:build !noasm

package tensor

import (
	"golang.org/x/sys/cpu"

	"courier/internal/engine/gguf"
)

//go:noescape
func dotQ8_0AVX2(w, a *byte, nb int, acc *[8]float32)

//go:noescape
func dotQ4_0AVX2(w, a *byte, nb int, acc *[8]float32)

//go:noescape
func dotQ4_0x8AVX2(w, a *byte, nb int, acc *float32)

//go:noescape
func dotQ4KAVX2(w, a *byte, nb int, acc *[8]float32, accm *[4]float32)

//go:noescape
func dotF32AVX2(w *byte, x *float32, n64 int, acc *[64]float32)

//go:noescape
func dotF16AVX2(w, a *byte, n64 int, acc *[64]float32)

//go:noescape
func sumBytesAVX2(b *byte, n int) uint64

// hasAVX2 reports whether the assembly kernels can run here.
var hasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C

func init() {
	if !hasAVX2 {
		return
	}
	fastKernels[gguf.TypeQ8_0] = kernel{act: gguf.TypeQ8_0, dot: dotQ8_0Fast}
	fastKernels[gguf.TypeQ4_0] = kernel{act: gguf.TypeQ8_0, dot: dotQ4_0Fast}
	fastKernels[gguf.TypeQ4_K] = kernel{act: gguf.TypeQ8_K, dot: dotQ4KFast}
	g32, g16 := genericKernels[gguf.TypeF32], genericKernels[gguf.TypeF16]
	fastKernels[gguf.TypeF32] = kernel{act: gguf.TypeF32, dot: dotF32Fast, gemm: g32.gemm, gemmK: g32.gemmK}
	fastKernels[gguf.TypeF16] = kernel{act: gguf.TypeF16, dot: dotF16Fast, gemm: g16.gemm, gemmK: g16.gemmK}
	q40x8 := func(w, a []byte, _ []float32, n int) float32 {
		var acc float32
		nb := n / qk
		_, _ = w[18*nb-1], a[34*nb-1]
		dotQ4_0x8AVX2(&w[0], &a[0], nb, &acc)
		return acc
	}
	fastRepackKernels[gguf.TypeQ4_0] = repackKernel{gemv: q40x8, gemm: q40x8}
	sumBytes = func(b []byte) uint64 {
		n := len(b) &^ 127
		if n == 0 {
			return sumBytesGeneric(b)
		}
		return sumBytesAVX2(&b[0], n) + sumBytesGeneric(b[n:])
	}
}

func dotQ8_0Fast(w, a []byte, _ []float32, n int) float32 {
	var acc [8]float32
	nb := n / qk
	_, _ = w[34*nb-1], a[34*nb-1]
	dotQ8_0AVX2(&w[0], &a[0], nb, &acc)
	return hsum8(&acc)
}

func dotQ4_0Fast(w, a []byte, _ []float32, n int) float32 {
	var acc [8]float32
	nb := n / qk
	_, _ = w[18*nb-1], a[34*nb-1]
	dotQ4_0AVX2(&w[0], &a[0], nb, &acc)
	return hsum8(&acc)
}

func dotQ4KFast(w, a []byte, _ []float32, n int) float32 {
	var acc [8]float32
	var accm [4]float32
	nb := n / qkK
	_, _ = w[144*nb-1], a[q8KB*nb-1]
	dotQ4KAVX2(&w[0], &a[0], nb, &acc, &accm)
	m := (accm[0] + accm[2]) + (accm[1] + accm[3])
	return hsum8(&acc) + m
}

// floatLanes reduces an F32/F16 dot: the 64 accumulator lanes as ggml's four
// 16-lane vectors, reduced as in dotF32.
func floatLanes(acc *[64]float32) float32 {
	var r [16]float32
	for l := range r {
		r[l] = (acc[l] + acc[32+l]) + (acc[16+l] + acc[48+l])
	}
	return reduce16(&r)
}

func dotF32Fast(w, _ []byte, x []float32, n int) float32 {
	var acc [64]float32
	np := n &^ 63
	if np > 0 {
		_, _ = w[4*np-1], x[np-1]
		dotF32AVX2(&w[0], &x[0], np/64, &acc)
	}
	return f32Tail(floatLanes(&acc), w, x, np, n)
}

func dotF16Fast(w, a []byte, _ []float32, n int) float32 {
	var acc [64]float32
	np := n &^ 63
	if np > 0 {
		_, _ = w[2*np-1], a[2*np-1]
		dotF16AVX2(&w[0], &a[0], np/64, &acc)
	}
	s := float64(floatLanes(&acc))
	for e := np; e < n; e++ {
		s += float64(float32(f16at(w[2*e:]) * f16at(a[2*e:])))
	}
	return float32(s)
}
