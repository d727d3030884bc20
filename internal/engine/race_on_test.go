//go:build race

package engine

// raceEnabled: the race detector slows the forward pass about tenfold;
// property tests run fewer cases under it.
const raceEnabled = true
