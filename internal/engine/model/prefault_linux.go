package model

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// madvPopulateWrite is Linux's MADV_POPULATE_WRITE (5.14; not in package
// syscall).
const madvPopulateWrite = 23

// prefault has the OS map s's pages now, as llama.cpp clears its KV
// buffer when it allocates it: otherwise each block's first prompt paid
// the page faults (a 256-token BF16 prompt on the Zen 5 spent about a
// tenth of its time in them while storing K and V into blocks never used
// before). One madvise(MADV_POPULATE_WRITE) over the page-aligned middle
// instead of a fault per page: a 302 MiB slice took 29 ms instead of
// 800 ms on the Zen 5's VM. Huge pages are not asked for: with MADV_HUGEPAGE
// first it took 16 ms, or 220 ms when the kernel compacted memory for
// them. Where the kernel refuses, every page is touched.
func prefault(s []uint16) {
	if len(s) == 0 {
		return
	}
	const page = 4096
	p := uintptr(unsafe.Pointer(&s[0]))
	lo, hi := (p+page-1)&^(page-1), (p+uintptr(2*len(s)))&^(page-1)
	if hi > lo {
		b := unsafe.Slice((*byte)(unsafe.Pointer(&s[(lo-p)/2])), hi-lo)
		if syscall.Madvise(b, madvPopulateWrite) == nil {
			s[0], s[len(s)-1] = 0, 0 // the partial pages at both ends
			return
		}
	}
	touchPages(s)
}

// prefaultBudget is the largest KV pool, in bytes, that NewKVPool maps in
// at once: half the memory the kernel reports available (MemAvailable),
// 0 where that cannot be read. A larger pool, such as the default one
// sized for every slot to fill a long context (a Llama 3.x's 131072
// positions), keeps its pages unmapped until sequences first use them, as
// before: populating it would invite the OOM killer for memory most
// requests never touch. A variable so that tests can set it.
var prefaultBudget = func() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("MemAvailable:"))
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte(" kB"))), 10, 64)
		if err != nil {
			return 0
		}
		return kb * 1024 / 2
	}
	return 0
}

// touchPages writes one element per 4 KiB of s, so that the OS maps each
// of its pages.
func touchPages(s []uint16) {
	for i := 0; i < len(s); i += 2048 {
		s[i] = 0
	}
}
