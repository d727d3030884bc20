//go:build !linux

package model

// prefault maps s's pages now, as llama.cpp clears its KV buffer when it
// allocates it (see prefault_linux.go).
func prefault(s []uint16) { touchPages(s) }
