//go:build !linux

package model

// prefault does nothing here: prefaultBudget is 0, so NewKVPool never
// calls it, and pools fault in as used.
func prefault([]uint16) {}

// prefaultBudget is 0 here: the prefault was measured only on Linux, and
// without MemAvailable there is no safe size, so pools fault in as used.
var prefaultBudget = func() int64 { return 0 }
