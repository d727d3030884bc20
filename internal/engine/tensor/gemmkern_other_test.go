//go:build noasm || !amd64

package tensor

import "courier/internal/engine/gguf"

type gemmVariant struct {
	name string
	typ  gguf.Type
	k    kernel
}

// gemmGroupVariants: no assembly here.
func gemmGroupVariants() []gemmVariant { return nil }
