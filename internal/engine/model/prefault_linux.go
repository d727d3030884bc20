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
// syscall); madvHugepage is MADV_HUGEPAGE.
const (
	madvPopulateWrite = 23
	madvHugepage      = 14
)

// prefault has the OS map s's pages now, as llama.cpp clears its KV
// buffer when it allocates it: otherwise each block's first prompt paid
// the page faults (a 256-token BF16 prompt on the Zen 5 spent about a
// tenth of its time in them while storing K and V into blocks never used
// before). One madvise(MADV_POPULATE_WRITE) over the page-aligned middle
// instead of a fault per page: a 302 MiB slice took 29 ms instead of
// 800 ms on the Zen 5's VM. Where the kernel refuses, every page is
// touched.
//
// The range is advised transparent huge pages first (MADV_HUGEPAGE: the
// kernel's default "madvise" mode gives them only where asked; a kernel
// without them refuses the advice, which is then ignored). A prompt step
// stores each row's K and V, layer by layer, into blocks no recent step
// touched, 4 KiB pages apart: on the Zen 5's VM those stores were a
// twentieth of an F16 prompt step's samples with 4 KiB pages and nearly
// none with 2 MiB ones (docs/engine.md, "TTFT at 16 fresh streams"). The
// price is at load, where the kernel may compact memory to find huge
// pages: `courier serve` of the 134M F16 model (a 576 MiB pool) was ready
// after 0.25-1.1 s instead of 0.24-0.29 s. Only a pool populated whole is
// advised, so a huge page holds no memory the pool would not have mapped
// anyway.
func prefault(s []uint16) {
	if len(s) == 0 {
		return
	}
	const page = 4096
	p := uintptr(unsafe.Pointer(&s[0]))
	lo, hi := (p+page-1)&^(page-1), (p+uintptr(2*len(s)))&^(page-1)
	if hi > lo {
		b := unsafe.Slice((*byte)(unsafe.Pointer(&s[(lo-p)/2])), hi-lo)
		_ = syscall.Madvise(b, madvHugepage) // advice: refused where THP is off
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
