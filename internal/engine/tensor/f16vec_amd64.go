//go:build !noasm

package tensor

//go:noescape
func madF16AVX512(y, x *uint16, n16 int, s float32)

//go:noescape
func scaleF16AVX512(y *uint16, n16 int, s float32)

//go:noescape
func roundF16AVX512(dst *uint16, x *float32, n16 int)

func init() {
	if hasAVX2 {
		dotF16Vec = func(w, a []byte, n int) float32 { return dotF16Fast(w, a, nil, n) }
	}
	if hasAVX512 {
		madF16Vec, scaleF16Vec, roundF16Vec = madF16AVX512, scaleF16AVX512, roundF16AVX512
	}
}
