//go:build !noasm

package tensor

//go:noescape
func quantQ8_0AVX512(x *float32, dst *byte, nb int) (bad int)

func init() {
	if hasAVX512 {
		quantizeQ8_0Row = quantizeQ8_0Fast
	}
}

// quantizeQ8_0Fast is quantizeQ8_0 in assembly (the generic code redoes a
// row that holds an infinity or NaN).
func quantizeQ8_0Fast(x []float32, dst []byte) {
	nb := len(x) / qk
	if nb == 0 {
		return
	}
	_ = dst[34*nb-1]
	if quantQ8_0AVX512(&x[0], &dst[0], nb) != 0 {
		quantizeQ8_0(x, dst)
	}
}
