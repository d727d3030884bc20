//go:build !amd64 || noasm

package model

// Without assembly the norm's scaling and the residual add are the
// generic bodies.

func normMul(dst, x, w []float32, scale float32) { normMulGeneric(dst, x, w, scale) }

func addInto(dst, src []float32) { addIntoGeneric(dst, src) }
