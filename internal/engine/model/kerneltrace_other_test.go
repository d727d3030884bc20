//go:build noasm || !amd64

package model

import "testing"

// expectAVX512: no assembly here.
func expectAVX512(*testing.T, ...string) func() { return func() {} }
