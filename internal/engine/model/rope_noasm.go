//go:build !amd64 || noasm

package model

// Without assembly rotate is the generic body.

func (rb *ropeBuf) rotateVec(x []float32, neox bool) int { return 0 }
