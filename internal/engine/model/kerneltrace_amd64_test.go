//go:build !noasm

package model

import (
	"testing"

	"golang.org/x/sys/cpu"

	"courier/internal/engine/kerneltrace"
)

// expectAVX512 returns a function, to be deferred, that fails the test
// when this CPU has AVX-512F, the build has the tag kerneltrace and one of
// the AVX-512 bodies named did not run in between (so that a pass under
// scripts/avx512-emu proves that they ran).
func expectAVX512(t *testing.T, names ...string) func() {
	t.Helper()
	return kerneltrace.Expect(t, cpu.X86.HasAVX512F, "AVX-512F", names...)
}
