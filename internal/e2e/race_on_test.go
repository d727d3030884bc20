//go:build race

package e2e

// raceEnabled: the race detector is on (its shadow memory swamps RSS).
const raceEnabled = true
