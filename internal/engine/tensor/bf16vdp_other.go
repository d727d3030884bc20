//go:build noasm || !amd64

package tensor

// hasBF16VDP: no AVX512_BF16 bodies here (bf16vdp_amd64.go).
const hasBF16VDP = false
