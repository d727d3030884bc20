//go:build !linux

package model

// prefault maps s's pages now, as llama.cpp clears its KV buffer when it
// allocates it (see prefault_linux.go).
func prefault(s []uint16) { touchPages(s) }

// prefaultBudget is 0 here: the prefault was measured only on Linux, and
// without MemAvailable there is no safe size, so pools fault in as used.
var prefaultBudget = func() int64 { return 0 }
