//go:build noasm || !amd64

package tensor

import "courier/internal/engine/gguf"

type gemmVariant struct {
	name string
	typ  gguf.Type
	k    kernel
	vdp  bool // BF16 with VDPBF16PS's arithmetic
}

// gemmGroupVariants: no assembly here.
func gemmGroupVariants() []gemmVariant { return nil }

// bf16Bodies: no assembly here.
func bf16Bodies() (dot, gemm []bf16Body) { return nil, nil }
