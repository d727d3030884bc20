//go:build noasm || !amd64

package tensor

import "testing"

// expectAVX512: no assembly here.
func expectAVX512(*testing.T, ...string) func() { return func() {} }

// expectVNNI: no assembly here.
func expectVNNI(*testing.T, ...string) func() { return func() {} }

// expectVNNI512: no assembly here.
func expectVNNI512(*testing.T, ...string) func() { return func() {} }

// expectBF16VDP: no assembly here.
func expectBF16VDP(*testing.T, ...string) func() { return func() {} }

// expectF16Rows2: no assembly here.
func expectF16Rows2(*testing.T, ...string) func() { return func() {} }
