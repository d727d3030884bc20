//go:build !noasm

package tensor

// asmF16Bodies returns the assembly bodies of the F16 vector operations
// that this CPU can run.
func asmF16Bodies() []f16Bodies {
	var b []f16Bodies
	if hasAVX2 {
		b = append(b, f16Bodies{"avx2", dotF16AVX2Full, madF16AVX2, scaleF16AVX2, roundF16AVX2, madF16RowsAVX2, dotF16RowsAsm})
	}
	if hasAVX512 {
		b = append(b, f16Bodies{"avx512", dotF16AVX2Full, madF16AVX512, scaleF16AVX512, roundF16AVX512, nil, nil})
	}
	return b
}
