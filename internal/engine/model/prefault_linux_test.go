package model

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// resident counts the resident pages among those s's bytes span (mincore).
func resident(t *testing.T, s []uint16) (in, n int) {
	t.Helper()
	p := uintptr(unsafe.Pointer(&s[0]))
	lo := p &^ 4095
	n = int(p+uintptr(2*len(s))-lo+4095) / 4096
	vec := make([]byte, n)
	if _, _, e := syscall.Syscall(syscall.SYS_MINCORE, lo, uintptr(n*4096), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	for _, v := range vec {
		in += int(v & 1)
	}
	return in, n
}

// TestKVPoolPrefaultsWithinBudget checks that NewKVPool maps a pool in at
// once within prefaultBudget (every page of K and V resident) and that a
// pool over it (a default pool for a long context) is not prefaulted.
// Whether an unprefaulted pool's pages are resident depends on what the Go
// heap reused, so the second case checks the decision.
func TestKVPoolPrefaultsWithinBudget(t *testing.T) {
	if b := prefaultBudget(); b <= 0 {
		t.Fatalf("prefaultBudget() = %d: /proc/meminfo's MemAvailable was not read", b)
	}
	defer func(f func() int64) { prefaultBudget = f }(prefaultBudget)
	cfg := &Config{Layers: 4, KVHeads: 8, HeadDim: 64}   // 4 KiB of K per position
	const blocks, size = 256, 2 * 2 * 4 * 512 * 16 * 256 // K and V of 256 blocks of 16: 32 MiB
	prefaultBudget = func() int64 { return size }
	p, err := NewKVPool(cfg, 16, blocks)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string][]uint16{"K": p.k, "V": p.v} {
		if 2*len(s) != size/2 {
			t.Fatalf("%s is %d bytes, want %d", name, 2*len(s), size/2)
		}
		if in, n := resident(t, s); in != n {
			t.Errorf("pool within the budget: %d of %d pages of %s resident", in, n, name)
		}
	}
	prefaultBudget = func() int64 { return size - 1 }
	if prefaultFits(size) {
		t.Errorf("a pool of %d bytes is prefaulted with a budget of %d", size, size-1)
	}
}

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

// vmFlags returns the VmFlags of the mapping that holds addr
// (/proc/self/smaps); it skips the test where the kernel (or a sandbox
// such as gVisor) does not report them.
func vmFlags(t *testing.T, addr uintptr) string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x ", &lo, &hi); n == 2 {
			in = lo <= addr && addr < hi
			continue
		}
		if flags, ok := strings.CutPrefix(line, "VmFlags:"); ok && in {
			return flags
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Skipf("/proc/self/smaps reports no VmFlags for %#x", addr)
	return ""
}

// TestKVPoolAsksForHugePages checks that a prefaulted pool's K and V are
// advised huge pages (the mapping that holds them has the kernel's "hg"
// flag, which MADV_HUGEPAGE sets whether or not the kernel then finds
// huge pages). (Heap memory a test's prefault advised may be reused by
// other slices, so that a slice without the flag cannot be asked for.)
func TestKVPoolAsksForHugePages(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage"); err != nil {
		t.Skip("kernel without transparent huge pages:", err)
	}
	defer func(f func() int64) { prefaultBudget = f }(prefaultBudget)
	cfg := &Config{Layers: 4, KVHeads: 8, HeadDim: 64}
	const blocks, size = 256, 2 * 2 * 4 * 512 * 16 * 256 // 32 MiB, as above
	prefaultBudget = func() int64 { return size }
	p, err := NewKVPool(cfg, 16, blocks)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string][]uint16{"K": p.k, "V": p.v} {
		if flags := vmFlags(t, uintptr(unsafe.Pointer(&s[len(s)/2]))); !strings.Contains(" "+flags+" ", " hg ") {
			t.Errorf("%s of a prefaulted pool: VmFlags %q, want hg (MADV_HUGEPAGE)", name, flags)
		}
	}
}
