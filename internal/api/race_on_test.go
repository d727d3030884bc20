//go:build race

package api

// raceEnabled: the race detector is on (sync.Pool drops items at random
// under it, so allocation counts vary).
const raceEnabled = true
