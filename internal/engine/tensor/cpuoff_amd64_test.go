//go:build !noasm

package tensor

import (
	"os"
	"strings"
	"testing"
)

// TestGODEBUGSelectsAVX2 checks what scripts/test's AVX2 pass relies on:
// where GODEBUG hides AVX-512 (cpu.avx512f=off and the rest of that
// pass's options), golang.org/x/sys/cpu reports none of it, so no
// AVX-512, VNNI or AVX512_BF16 body is chosen and that pass runs the AVX2
// bodies on a CPU that has AVX-512.
func TestGODEBUGSelectsAVX2(t *testing.T) {
	if !strings.Contains(os.Getenv("GODEBUG"), "cpu.avx512f=off") {
		t.Skip("GODEBUG does not hide AVX-512 (scripts/test's AVX2 pass sets it)")
	}
	if hasAVX512 || hasVNNI || hasBF16VDP {
		t.Fatalf("GODEBUG=%s: AVX-512 %v, VNNI %v, AVX512_BF16 %v: an AVX-512 body would still be chosen", os.Getenv("GODEBUG"), hasAVX512, hasVNNI, hasBF16VDP)
	}
	if !hasAVX2 {
		t.Fatal("no AVX2 either: the pass would test the generic bodies, which the noasm pass covers")
	}
}
