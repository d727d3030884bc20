//go:build !noasm

package tensor

import (
	"testing"

	"courier/internal/engine/kerneltrace"
)

// expectAVX512 returns a function, to be deferred, that fails the test
// when this CPU has AVX-512F, the build has the tag kerneltrace and one of
// the AVX-512 bodies named did not run in between (so that a pass under
// scripts/avx512-emu proves that they ran).
func expectAVX512(t *testing.T, names ...string) func() {
	t.Helper()
	return kerneltrace.Expect(t, hasAVX512, "AVX-512F", names...)
}

// expectVNNI is expectAVX512 for the AVX512-VNNI bodies.
func expectVNNI(t *testing.T, names ...string) func() {
	t.Helper()
	return kerneltrace.Expect(t, hasVNNI, "AVX512-VNNI", names...)
}

// expectVNNI512 is expectAVX512 for the 512-bit VNNI prompt bodies.
func expectVNNI512(t *testing.T, names ...string) func() {
	t.Helper()
	return kerneltrace.Expect(t, hasVNNI512, "AVX512-VNNI (zmm)", names...)
}

// expectBF16VDP is expectAVX512 for the AVX512_BF16 (VDPBF16PS) bodies.
func expectBF16VDP(t *testing.T, names ...string) func() {
	t.Helper()
	return kerneltrace.Expect(t, hasBF16VDP, "AVX512_BF16", names...)
}

// expectF16Rows2 is expectAVX512 for dotF16Rows2AVX512 (AVX512VL).
func expectF16Rows2(t *testing.T, names ...string) func() {
	t.Helper()
	return kerneltrace.Expect(t, hasF16Rows2, "AVX-512VL", names...)
}
