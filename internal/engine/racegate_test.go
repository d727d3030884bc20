package engine

import "testing"

// skipArithmeticUnderRace skips a test that checks only arithmetic — one
// forward pass's numbers against llama.cpp's, or a model loading in every
// tensor type — when the race detector is on. The detector slows the forward
// pass about tenfold (the engine package alone ran past go test's 15-minute
// limit on 2 cores), and these tests start no goroutines of their own that the
// scheduler's race tests do not already cover. scripts/test runs the whole
// engine package once more without -race, so each of them still runs in CI.
func skipArithmeticUnderRace(t *testing.T) {
	t.Helper()
	if raceEnabled {
		t.Skip("arithmetic only: runs in scripts/test's pass without -race")
	}
}
