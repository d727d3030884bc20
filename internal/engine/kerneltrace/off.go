//go:build !kerneltrace

package kerneltrace

// On reports whether this build counts kernel calls (the tag kerneltrace).
const On = false
