package tensor

import (
	"math"
	"math/rand/v2"
	"testing"

	"courier/internal/engine/gguf"
)

func TestQuantizeActivationHandBuilt(t *testing.T) {
	// amax 127: multiplier 1; x.5 values round half to even (roundf would
	// round away from zero).
	x := make([]float32, 32)
	x[0], x[1], x[2], x[3], x[4] = 127, 0.5, 1.5, 2.5, -2.5
	b := make([]byte, 34)
	must(t, QuantizeActivation(gguf.TypeQ8_0, x, b))
	if d := FP16ToFP32(le16(b)); d != FP16ToFP32(FP32ToFP16(1)) {
		t.Errorf("d = %g", d)
	}
	for i, w := range []int8{127, 0, 2, 2, -2} {
		if got := int8(b[2+i]); got != w {
			t.Errorf("q[%d] = %d, want %d", i, got, w)
		}
	}
	// Q8_1: s = d*sum(q) = 1*(127+0+2+2-2) = 129.
	b1 := make([]byte, 36)
	must(t, QuantizeActivation(gguf.TypeQ8_1, x, b1))
	if s := FP16ToFP32(le16(b1[2:])); s != 129 {
		t.Errorf("Q8_1 s = %g, want 129", s)
	}
	// Q8_K: the extreme is +127, so iscale = -1: codes are negated, d = -1.
	xk := make([]float32, 256)
	copy(xk, x)
	xk[20] = 3
	bk := make([]byte, q8KB)
	must(t, QuantizeActivation(gguf.TypeQ8_K, xk, bk))
	if d := math.Float32frombits(le32(bk)); d != -1 {
		t.Errorf("Q8_K d = %g, want -1", d)
	}
	for i, w := range []int8{-127, 0, -2, -2, 2} {
		if got := int8(bk[4+i]); got != w {
			t.Errorf("Q8_K q[%d] = %d, want %d", i, got, w)
		}
	}
	if s := int16(le16(bk[4+256:])); s != -129 {
		t.Errorf("bsum[0] = %d, want -129", s)
	}
	if s := int16(le16(bk[4+256+2:])); s != -3 {
		t.Errorf("bsum[1] = %d, want -3", s)
	}
}

func TestVecDotHandBuilt(t *testing.T) {
	// Q8_0 x Q8_0: weights d=0.5, codes 1..32; activation d=2, all ones:
	// 0.5*2*(1+...+32) = 528.
	w := make([]byte, 34)
	w[0], w[1] = h16(0.5)
	for i := 0; i < 32; i++ {
		w[2+i] = byte(i + 1)
	}
	a := make([]byte, 34)
	a[0], a[1] = h16(2)
	for i := 0; i < 32; i++ {
		a[2+i] = 1
	}
	got, err := VecDot(gguf.TypeQ8_0, w, a, 32)
	must(t, err)
	want(t, got, 528)
	// Q4_0: d=1, all nibbles 0x9 (value 1) against the same activation:
	// 1*2*32 = 64.
	w4 := make([]byte, 18)
	w4[0], w4[1] = h16(1)
	for i := 0; i < 16; i++ {
		w4[2+i] = 0x99
	}
	got, err = VecDot(gguf.TypeQ4_0, w4, a, 32)
	must(t, err)
	want(t, got, 64)
	// Q4_1 x Q8_1: d=1, m=-3, nibbles 2 (value -1): activation d=1, s=32
	// with codes all 1: 1*1*(2*32) + (-3)*32 = -32.
	w41 := make([]byte, 20)
	w41[0], w41[1] = h16(1)
	w41[2], w41[3] = h16(-3)
	for i := 0; i < 16; i++ {
		w41[4+i] = 0x22
	}
	a1 := make([]byte, 36)
	a1[0], a1[1] = h16(1)
	a1[2], a1[3] = h16(32)
	for i := 0; i < 32; i++ {
		a1[4+i] = 1
	}
	got, err = VecDot(gguf.TypeQ4_1, w41, a1, 32)
	must(t, err)
	want(t, got, -32)
	// Q6_K x Q8_K: d=1, scale 1 for every group, all codes 33 (value 1):
	// activation d=0.5, codes 2: 256 * 1 * 1 * 0.5*2 = 256.
	w6 := make([]byte, 210)
	for i := 0; i < 128; i++ {
		w6[i] = 0x11 // low 4 bits 1, high 4 bits 1
	}
	for i := 128; i < 192; i++ {
		w6[i] = 0xaa // high bits 2 (=32) for each of the four
	}
	for i := 192; i < 208; i++ {
		w6[i] = 1
	}
	w6[208], w6[209] = h16(1)
	ak := make([]byte, q8KB)
	d := math.Float32bits(0.5)
	ak[0], ak[1], ak[2], ak[3] = byte(d), byte(d>>8), byte(d>>16), byte(d>>24)
	for i := 0; i < 256; i++ {
		ak[4+i] = 2
	}
	for j := 0; j < 16; j++ {
		put16(ak[4+256+2*j:], 32)
	}
	got, err = VecDot(gguf.TypeQ6_K, w6, ak, 256)
	must(t, err)
	want(t, got, 256)
	// Q4_K: d=1, dmin=1, sub-block 0 scale 2 min 1, all others 0; codes 3;
	// activation as above (codes 2, d=0.5): 32 elements * (2*3*2 - 1*2)*0.5 = 160.
	wk := make([]byte, 144)
	wk[0], wk[1] = h16(1)
	wk[2], wk[3] = h16(1)
	wk[4], wk[8] = 2, 1
	for i := 16; i < 144; i++ {
		wk[i] = 0x33
	}
	got, err = VecDot(gguf.TypeQ4_K, wk, ak, 256)
	must(t, err)
	want(t, got, 160)
}

// floatDot is the reference: dequantize the weight row, dequantize the
// converted activation, dot in float64.
func floatDot(t testing.TB, typ gguf.Type, w, a []byte, n int) (dot, mag float64) {
	wf := make([]float32, n)
	if err := DequantizeRow(typ, w, wf); err != nil {
		t.Fatal(err)
	}
	at, _ := VecDotType(typ)
	af := make([]float32, n)
	dequantAct(at, a, af)
	for i := range wf {
		p := float64(wf[i]) * float64(af[i])
		dot += p
		mag += math.Abs(p)
	}
	return dot, mag
}

// dequantAct decodes an activation row of type at.
func dequantAct(at gguf.Type, a []byte, af []float32) {
	switch at {
	case gguf.TypeQ8_1:
		for b := 0; b < len(af)/32; b++ {
			d := f16at(a[36*b:])
			for j := 0; j < 32; j++ {
				af[32*b+j] = d * float32(int8(a[36*b+4+j]))
			}
		}
	case gguf.TypeQ8_K:
		for b := 0; b < len(af)/256; b++ {
			d := math.Float32frombits(le32(a[q8KB*b:]))
			for j := 0; j < 256; j++ {
				af[256*b+j] = d * float32(int8(a[q8KB*b+4+j]))
			}
		}
	default:
		dequantizeRow(at, a, af)
	}
}

// checkDot compares VecDot (current kernels) with the generic kernel
// (bit for bit) and with a float reference (tolerance).
func checkDot(t testing.TB, typ gguf.Type, wf, x []float32) {
	n := len(x)
	rb, _ := typ.RowBytes(n)
	w := make([]byte, rb)
	if err := QuantizeRow(typ, wf, w); err != nil {
		t.Fatal(err)
	}
	at, _ := VecDotType(typ)
	ab, _ := at.RowBytes(n)
	a := make([]byte, ab)
	if err := QuantizeActivation(at, x, a); err != nil {
		t.Fatal(err)
	}
	fast, err := VecDot(typ, w, a, n)
	if err != nil {
		t.Fatal(err)
	}
	var xf []float32
	if typ == gguf.TypeF32 {
		xf = x
	}
	gen := genericKernels[typ].dot(w, a, xf, n)
	if math.Float32bits(fast) != math.Float32bits(gen) && !(fast != fast && gen != gen) {
		t.Fatalf("%v n=%d: fast %g != generic %g", typ, n, fast, gen)
	}
	ref, mag := floatDot(t, typ, w, a, n)
	tol := 1e-5*mag + 1e-30
	if typ == gguf.TypeQ4_1 || typ == gguf.TypeQ5_1 {
		tol = 2e-3*mag + 1e-30 // the min term uses s = fp16(d*sum), not the codes
	}
	if math.Abs(float64(fast)-ref) > tol {
		t.Fatalf("%v n=%d: dot %g, reference %g (tol %g)", typ, n, fast, ref, tol)
	}
}

func TestVecDotRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, typ := range allTypes {
		for _, n := range []int{256, 512, 1024, 4096} {
			for rep := 0; rep < 5; rep++ {
				checkDot(t, typ, randRow(r, n, 0.1), randRow(r, n, 3))
			}
		}
		if typ.BlockSize() == 1 { // tails for the float kernels
			for _, n := range []int{1, 17, 63, 65, 130} {
				checkDot(t, typ, randRow(r, n, 1), randRow(r, n, 1))
			}
		} else if typ.BlockSize() == 32 {
			checkDot(t, typ, randRow(r, 32, 1), randRow(r, 32, 1))
		}
	}
}

// FuzzVecDot compares the fast and generic kernels and the float reference
// on rows derived from the fuzzer's seed and scales.
func FuzzVecDot(f *testing.F) {
	f.Add(uint64(1), uint8(0), uint8(1), float32(1), float32(1))
	f.Add(uint64(2), uint8(3), uint8(4), float32(1e-3), float32(100))
	f.Fuzz(func(t *testing.T, seed uint64, ti, nb uint8, ws, xs float32) {
		if ws != ws || xs != xs || math.Abs(float64(ws)) > 1e3 || math.Abs(float64(xs)) > 1e3 {
			return
		}
		typ := allTypes[int(ti)%len(allTypes)]
		n := (int(nb)%16 + 1) * 256
		r := rand.New(rand.NewPCG(seed, 9))
		checkDot(t, typ, randRow(r, n, float64(ws)), randRow(r, n, float64(xs)))
	})
}
