//go:build race

package upstream

// raceEnabled: the race detector is on; it makes sync.Pool drop items at
// random, so the allocation tests skip (scripts/test runs them without it).
const raceEnabled = true
