package model

import (
	"syscall"
	"testing"
	"unsafe"
)

// TestPrefaultMapsPages checks that prefault leaves every page of a fresh
// slice resident (mincore), including the partial pages at its ends,
// and the slice zero.
func TestPrefaultMapsPages(t *testing.T) {
	for _, off := range []int{0, 1, 1000} {
		buf := make([]uint16, 3<<20+off+7)
		s := buf[off:]
		prefault(s)
		p := uintptr(unsafe.Pointer(&s[0]))
		lo := p &^ 4095
		n := int(p+uintptr(2*len(s))-lo+4095) / 4096
		vec := make([]byte, n)
		if _, _, e := syscall.Syscall(syscall.SYS_MINCORE, lo, uintptr(n*4096), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
			t.Fatal(e)
		}
		for i, v := range vec {
			if v&1 == 0 {
				t.Fatalf("offset %d: page %d of %d not resident", off, i, n)
			}
		}
		for i, v := range s {
			if v != 0 {
				t.Fatalf("offset %d: s[%d] = %d", off, i, v)
			}
		}
	}
}
