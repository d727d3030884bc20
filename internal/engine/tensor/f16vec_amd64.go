//go:build !noasm

package tensor

// Assembly bodies of the F16 vector operations (f16vec_amd64.s). Each
// takes slices of equal length (the exported callers cut them) and handles
// every length, the last elements included.

//go:noescape
func madF16AVX512(y, x []uint16, s float32)

//go:noescape
func scaleF16AVX512(y []uint16, s float32)

//go:noescape
func roundF16AVX512(dst []uint16, x []float32)

//go:noescape
func madF16AVX2(y, x []uint16, s float32)

//go:noescape
func scaleF16AVX2(y []uint16, s float32)

//go:noescape
func roundF16AVX2(dst []uint16, x []float32)

// dotF16AVX2Full is DotF16 for non-empty vectors.
//
//go:noescape
func dotF16AVX2Full(a, b []uint16) float32

func init() {
	switch {
	case hasAVX512:
		dotF16Vec = dotF16AVX2Full
		madF16Vec, scaleF16Vec, roundF16Vec = madF16AVX512, scaleF16AVX512, roundF16AVX512
	case hasAVX2:
		dotF16Vec = dotF16AVX2Full
		madF16Vec, scaleF16Vec, roundF16Vec = madF16AVX2, scaleF16AVX2, roundF16AVX2
	}
}
