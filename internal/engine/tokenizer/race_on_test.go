//go:build race

package tokenizer

// raceEnabled: the race detector makes sync.Pool drop items on purpose.
const raceEnabled = true
