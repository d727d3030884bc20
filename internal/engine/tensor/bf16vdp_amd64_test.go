//go:build !noasm

package tensor

import (
	"bufio"
	"bytes"
	"debug/elf"
	"debug/gosym"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// vdpUses lists, per assembly function of bf16vdp_amd64.s, its
// VDPBF16PS_Z uses in order, as binutils writes them (AT&T order: src2,
// src1, dst).
func vdpUses() map[string][]string {
	z := func(src2, src1, dst int) string {
		return fmt.Sprintf("vdpbf16ps %%zmm%d,%%zmm%d,%%zmm%d", src2, src1, dst)
	}
	var tile []string
	for q := 0; q < 4; q++ {
		for p := 0; p < 4; p++ {
			tile = append(tile, z(24+p, 28+q, 8+4*q+p))
		}
	}
	var g8 []string
	for q := 0; q < 8; q++ {
		for p := 0; p < 3; p++ {
			g8 = append(g8, z(p, 3+q%4, 8+8*p+q))
		}
	}
	return map[string][]string{
		"gemmBF16G8VDP":   g8,
		"dotBF16RowsVDP":  {z(4, 2, 0), z(5, 3, 1)},
		"dotBF16AccVDP":   {z(4, 2, 0), z(5, 3, 1)},
		"gemmBF16VDP":     {z(4, 2, 0)},
		"gemmBF16x4x4VDP": tile,
	}
}

// TestVDPBF16PSEncoding checks the VDPBF16PS_Z macro's bytes (Go's
// assembler does not know the instruction) against binutils, for every
// register combination the kernels use: each AVX512_BF16 function's code
// is read from this test binary, disassembled with objdump, and must hold
// exactly the listed instructions, in order, each with the bytes that `as`
// encodes for it. Skipped where binutils is missing (the emulator's
// guest), except under CI=true, where a skip would pass unchecked bytes.
func TestVDPBF16PSEncoding(t *testing.T) {
	objdump, err1 := exec.LookPath("objdump")
	as, err2 := exec.LookPath("as")
	if err1 != nil || err2 != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("binutils (as, objdump) not found: CI must check the VDPBF16PS encoding")
		}
		t.Skip("binutils (as, objdump) not found")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab := pclnTable(t, f)
	dir := t.TempDir()
	for fn, want := range vdpUses() {
		code := funcCode(t, f, tab, "courier/internal/engine/tensor."+fn)
		bin := filepath.Join(dir, fn+".bin")
		if err := os.WriteFile(bin, code, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(objdump, "-D", "-b", "binary", "-m", "i386:x86-64", bin).CombinedOutput()
		if err != nil {
			t.Fatalf("objdump: %v\n%s", err, out)
		}
		if bytes.Contains(out, []byte("(bad)")) {
			t.Errorf("%s: objdump finds bad instructions:\n%s", fn, out)
		}
		var got []string
		var gotBytes []string
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			// "  1c:	62 f2 6e 48 52 c4    	vdpbf16ps %zmm4,%zmm2,%zmm0"
			parts := strings.Split(sc.Text(), "\t")
			if len(parts) < 3 || !strings.HasPrefix(parts[2], "vdpbf16ps") {
				continue
			}
			got = append(got, strings.Join(strings.Fields(parts[2]), " "))
			gotBytes = append(gotBytes, strings.TrimSpace(parts[1]))
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: objdump reads\n%s\nwant\n%s", fn, strings.Join(got, "\n"), strings.Join(want, "\n"))
			continue
		}
		for i, ins := range want {
			if enc := asEncode(t, as, objdump, dir, ins); enc != gotBytes[i] {
				t.Errorf("%s: %s is %s, as encodes %s", fn, ins, gotBytes[i], enc)
			}
		}
	}
}

// pclnTable reads the Go symbol table of the binary f (go test strips
// the ELF one; the runtime's own table stays).
func pclnTable(t *testing.T, f *elf.File) *gosym.Table {
	t.Helper()
	pcln, text := f.Section(".gopclntab"), f.Section(".text")
	if pcln == nil || text == nil {
		t.Fatal("no .gopclntab or .text in the test binary")
	}
	data, err := pcln.Data()
	if err != nil {
		t.Fatal(err)
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// funcCode returns the machine code of the assembly function name (the
// body, not a Go wrapper: the one whose code is not a call of another).
func funcCode(t *testing.T, f *elf.File, tab *gosym.Table, name string) []byte {
	t.Helper()
	text := f.Section(".text")
	data, err := text.Data()
	if err != nil {
		t.Fatal(err)
	}
	var found [][]byte
	for _, fn := range tab.Funcs {
		if fn.Name == name {
			found = append(found, data[fn.Entry-text.Addr:fn.End-text.Addr])
		}
	}
	if len(found) == 0 {
		t.Fatalf("%s not in the test binary", name)
	}
	// The largest: a wrapper is a few instructions and a call.
	best := found[0]
	for _, c := range found[1:] {
		if len(c) > len(best) {
			best = c
		}
	}
	return best
}

// asEncode returns the bytes (as objdump prints them) that as encodes ins
// to.
func asEncode(t *testing.T, as, objdump, dir, ins string) string {
	t.Helper()
	obj := filepath.Join(dir, "x.o")
	cmd := exec.Command(as, "-o", obj, "-")
	cmd.Stdin = strings.NewReader(ins + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as %q: %v\n%s", ins, err, out)
	}
	out, err := exec.Command(objdump, "-d", obj).CombinedOutput()
	if err != nil {
		t.Fatalf("objdump: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		parts := strings.Split(line, "\t")
		if len(parts) >= 3 && strings.HasPrefix(parts[2], "vdpbf16ps") {
			return strings.TrimSpace(parts[1])
		}
	}
	t.Fatalf("as: no vdpbf16ps in\n%s", out)
	return ""
}

// bf16Row is a row of n bf16 values: normal samples, when extreme scaled
// by 2^k for k in [-140, 60) so that elements are subnormal (about 1 in 8),
// products fall below float32's normal range and lanes' sums span many
// exponents, plus some exact subnormal codes, zeros and negative zeros.
func bf16Row(r *rand.Rand, n int, extreme bool) []byte {
	b := make([]byte, 2*n)
	for e := 0; e < n; e++ {
		v := float32(r.NormFloat64())
		var h uint16
		switch {
		case extreme && r.IntN(16) == 0:
			h = uint16(r.IntN(0x80)) | uint16(r.IntN(2))<<15 // zero or subnormal
		case extreme:
			v *= float32(math.Pow(2, float64(r.IntN(200)-140)))
			h = FP32ToBF16(v)
		default:
			h = FP32ToBF16(v)
		}
		binary.LittleEndian.PutUint16(b[2*e:], h)
	}
	return b
}

// TestBF16KernelsMatchGeneric compares every BF16 body that can run here
// with the Go statement of its arithmetic, bit for bit: the AVX512_BF16
// bodies (VDPBF16PS) with dotBF16VDPGeneric and gemmBF16VDPGeneric, the
// AVX2 bodies with dotBF16 and gemmBF16, on random rows with subnormal
// elements, products and sums, for decode rows with no tail and with
// tails from 1 to 63 elements (cols%64 of 1, 2, 8, 17, 31, 32, 63; fewer
// under COURIER_KERNEL_TEST_SHAPES=small), columns below 64 (the tail
// alone) and run lengths around the kernels' groupings, and prompt groups of every weight-row count up to a group
// by every activation-row count up to four.
func TestBF16KernelsMatchGeneric(t *testing.T) {
	defer expectBF16VDP(t, "dotBF16RowsVDP", "dotBF16AccVDP", "gemmBF16VDP", "gemmBF16x4x4VDP")()
	if !hasAVX2 {
		t.Skip("no AVX2")
	}
	type body struct {
		name   string
		rows   rowsFunc
		dot    dotFunc
		gemm   dotFunc
		group  groupFunc
		refDot func(w, a []byte, n int) float32
		refGem func(w, a []byte, n int) float32
	}
	bodies := []body{{"avx2", dotBF16Rows, dotBF16Fast, gemmBF16Fast, groupGemmBF16AVX2, dotBF16, gemmBF16}}
	if hasBF16VDP {
		bodies = append(bodies, body{"vdp", dotBF16RowsVDPFast, dotBF16VDPFast, gemmBF16VDPFast, groupGemmBF16VDP,
			dotBF16VDPGeneric, gemmBF16VDPGeneric})
	}
	r := rand.New(rand.NewPCG(61, 62))
	decCols := pick(t, []int{64, 128, 768, 4096, 1, 17, 31, 32, 63, 65, 96, 127, 130, 200}, []int{64, 128, 17, 63, 130})
	nws := pick(t, []int{1, 2, 3, 4, 5, 7, 8, 9, 17}, []int{1, 3, 5})
	gemCols := pick(t, []int{32, 64, 96, 768, 2048}, []int{32, 96})
	for _, b := range bodies {
		for _, extreme := range []bool{false, true} {
			for _, cols := range decCols {
				for _, nw := range nws {
					w := make([]byte, 0, 2*nw*cols)
					for range nw {
						w = append(w, bf16Row(r, cols, extreme)...)
					}
					a := bf16Row(r, cols, extreme)
					out := make([]float32, nw)
					b.rows(w, 2*cols, a, cols, out)
					for q := range nw {
						row := w[2*q*cols : 2*(q+1)*cols]
						want, one := b.refDot(row, a, cols), b.dot(row, a, nil, cols)
						if !sameBits(want, out[q], one) && !(want != want && out[q] != out[q] && one != one) {
							t.Fatalf("%s cols=%d extreme=%v nw=%d row %d: rows %g (%#x), dot %g (%#x), want %g (%#x)",
								b.name, cols, extreme, nw, q, out[q], math.Float32bits(out[q]), one, math.Float32bits(one), want, math.Float32bits(want))
						}
					}
				}
			}
			for _, cols := range gemCols {
				for nw := 1; nw <= groupW; nw++ {
					for m := 1; m <= groupA; m++ {
						var w, a []byte
						for range nw {
							w = append(w, bf16Row(r, cols, extreme)...)
						}
						for range m {
							a = append(a, bf16Row(r, cols, extreme)...)
						}
						var res [groupW * groupA]float32
						b.group(w, 2*cols, nw, a, 2*cols, m, cols, &res)
						for q := range nw {
							for p := range m {
								wq, ap := w[2*q*cols:2*(q+1)*cols], a[2*p*cols:2*(p+1)*cols]
								want, one, got := b.refGem(wq, ap, cols), b.gemm(wq, ap, nil, cols), res[q*m+p]
								if !sameBits(want, got, one) && !(want != want && got != got && one != one) {
									t.Fatalf("%s gemm cols=%d extreme=%v nw=%d m=%d out (%d,%d): group %g (%#x), one %g (%#x), want %g (%#x)",
										b.name, cols, extreme, nw, m, q, p, got, math.Float32bits(got), one, math.Float32bits(one), want, math.Float32bits(want))
								}
							}
						}
					}
				}
			}
		}
	}
}

// TestBF16BlockVDPMatchesGeneric compares blockGemmBF16VDP (tiles of eight
// weight rows by three activation rows, the last overlapping) with
// gemmBF16VDPGeneric bit for bit, on normal and extreme rows (subnormal
// elements, products and sums), for activation-row counts that are and
// are not multiples of the tile, in a permuted order, into output rows
// wider than the group: every output it owns must be written with the
// generic bits and no other element touched.
func TestBF16BlockVDPMatchesGeneric(t *testing.T) {
	if !hasBF16VDP {
		t.Skip("no AVX512_BF16")
	}
	defer expectBF16VDP(t, "gemmBF16G8VDP")()
	r := rand.New(rand.NewPCG(71, 72))
	ms := pick(t, []int{3, 4, 5, 6, 7, 8, 11, 12, 13, 40}, []int{3, 5, 13})
	gemCols := pick(t, []int{32, 64, 96, 768, 2048}, []int{32, 96})
	const orb = 19 // output row stride (elements), wider than a group
	sentinel := math.Float32frombits(0x7fc0dead)
	for _, extreme := range []bool{false, true} {
		for _, cols := range gemCols {
			var w []byte
			for range groupW {
				w = append(w, bf16Row(r, cols, extreme)...)
			}
			for _, m := range ms {
				arb := 2*cols + 64 // slots wider than the row
				a := make([]byte, m*arb)
				for p := range m {
					copy(a[p*arb:], bf16Row(r, cols, extreme))
				}
				perm := make([]int32, m)
				for i, v := range r.Perm(m) {
					perm[i] = int32(v)
				}
				out := make([]float32, m*orb)
				for i := range out {
					out[i] = sentinel
				}
				var g groupOut
				if got := blockGemmBF16VDP(w, 2*cols, groupW, a, arb, m, cols, out, orb, perm, &g); got != m {
					t.Fatalf("cols=%d m=%d: took %d rows", cols, m, got)
				}
				for p := range m {
					row := out[int(perm[p])*orb : int(perm[p]+1)*orb]
					for q := range orb {
						want := sentinel
						if q < groupW {
							want = gemmBF16VDPGeneric(w[2*q*cols:2*(q+1)*cols], a[p*arb:p*arb+2*cols], cols)
						}
						if !sameBits(want, row[q]) && !(q < groupW && want != want && row[q] != row[q]) {
							t.Fatalf("cols=%d extreme=%v m=%d out (%d,%d) = %g (%#x), want %g (%#x)",
								cols, extreme, m, q, p, row[q], math.Float32bits(row[q]), want, math.Float32bits(want))
						}
					}
				}
			}
		}
	}
}

// TestVDPFMAMatchesMXCSR compares vdpFMA, the Go statement of one
// VDPBF16PS step, with this CPU's VFMADD231SS run with MXCSR's DAZ and
// FTZ set (what the SDM's "FP32 FMA with daz in, ftz out and RNE
// rounding" names), bit for bit, on operands whose sums lie around
// float32's smallest normal 2^-126: subnormal accumulators, products on
// and below the subnormal grid, ties at 2^-126 - 2^-150 and sums tiny
// before rounding only.
func TestVDPFMAMatchesMXCSR(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no FMA")
	}
	r := rand.New(rand.NewPCG(63, 64))
	// f is ±(1 + m/2^24)·2^e (24-bit significand; subnormal when e < -126).
	f := func(e int) float32 {
		v := float32(math.Ldexp(1+float64(r.IntN(1<<23))/(1<<23), e))
		if r.IntN(2) == 0 {
			v = -v
		}
		return v
	}
	check := func(x, y, c float32) {
		t.Helper()
		want, got := vdpFMA(x, y, c), fmaDAZFTZ(x, y, c)
		if !sameBits(want, got) && !(want != want && got != got) {
			t.Fatalf("vdpFMA(%g, %g, %g) = %g (%#x), VFMADD231SS under DAZ/FTZ %g (%#x)",
				x, y, c, want, math.Float32bits(want), got, math.Float32bits(got))
		}
	}
	edges := [][3]float32{
		{1, -0x1p-150, 0x1p-126}, {1, -0x1p-151, 0x1p-126}, {1, -0x1p-152, 0x1p-126},
		{-0x1p-75, 0x1p-75, 0x1p-126}, {-0x1p-76, 0x1p-76, 0x1p-126}, {0x1p-70, 0x1p-70, 0},
		{0x1p-130, 0x1p100, 0}, {0x1p-62, 0x1p-63, 0}, {1.25 * 0x1p-75, 0x1p-74, 0x1p-125},
		{-0x1p-70, 0x1p-70, 0}, {0x1p-126, 0x1p-126, -0x1p-140},
	}
	for _, e := range edges {
		check(e[0], e[1], e[2])
		check(-e[0], e[1], -e[2])
	}
	n := pick(t, 1_000_000, 100_000)
	for range n {
		ec := r.IntN(50) - 155 // accumulators from below the subnormal range to 2^-106
		ex := r.IntN(60) - 90
		ey := ec - ex + r.IntN(7) - 3
		x, y, c := f(ex), f(ey), f(ec)
		if r.IntN(8) == 0 {
			x = f(r.IntN(30) - 150) // a subnormal (or tiny normal) factor
		}
		check(x, y, c)
	}
}
