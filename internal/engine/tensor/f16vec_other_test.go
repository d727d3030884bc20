//go:build noasm || !amd64

package tensor

// asmF16Bodies returns no bodies: this build has no assembly.
func asmF16Bodies() []f16Bodies { return nil }

const hasOnlineSoftmax16 = false

func onlineSoftmax16(scores, ms, vs []float32, scale, m, s float32) (float32, float32, bool) {
	return 0, 0, false
}
