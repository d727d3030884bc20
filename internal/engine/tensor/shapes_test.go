package tensor

import (
	"os"
	"testing"
)

// shapesEnv selects emulator-sized kernel tests: with
// COURIER_KERNEL_TEST_SHAPES=small the kernel-against-generic tests run
// fewer shapes and iterations (still every dispatch path and both
// extremes), so that scripts/avx512-emu can run them in an interpreted
// CPU in minutes. Unset, every test runs its full selection.
const shapesEnv = "COURIER_KERNEL_TEST_SHAPES"

// smallShapes reports whether shapesEnv asks for the small selection; any
// other value than "small" or empty fails the test (never a silent
// default).
func smallShapes(t testing.TB) bool {
	t.Helper()
	switch v := os.Getenv(shapesEnv); v {
	case "":
		return false
	case "small":
		return true
	default:
		t.Fatalf("%s=%q: want small or nothing", shapesEnv, v)
		return false
	}
}

// pick is full, or small where smallShapes.
func pick[T any](t testing.TB, full, small T) T {
	t.Helper()
	if smallShapes(t) {
		return small
	}
	return full
}
