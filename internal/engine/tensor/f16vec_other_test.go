//go:build noasm || !amd64

package tensor

// asmF16Bodies returns no bodies: this build has no assembly.
func asmF16Bodies() []f16Bodies { return nil }
