package tensor

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"courier/internal/engine/gguf"
)

var allTypes = []gguf.Type{
	gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16, gguf.TypeQ8_0, gguf.TypeQ4_0,
	gguf.TypeQ4_1, gguf.TypeQ5_0, gguf.TypeQ5_1, gguf.TypeQ4_K, gguf.TypeQ5_K, gguf.TypeQ6_K,
}

func h16(f float32) (byte, byte) { h := FP32ToFP16(f); return byte(h), byte(h >> 8) }

func TestUnsupported(t *testing.T) {
	err := DequantizeRow(gguf.TypeIQ2_XXS, make([]byte, 66), make([]float32, 256))
	if err == nil || !strings.Contains(err.Error(), "unsupported tensor type IQ2_XXS") {
		t.Fatalf("err = %v", err)
	}
	if err := QuantizeRow(gguf.TypeQ2_K, make([]float32, 256), make([]byte, 84)); err == nil {
		t.Fatal("Q2_K quantize: no error")
	}
	if _, err := NewMatrix(gguf.TypeIQ4_NL, 1, 32, make([]byte, 18)); err == nil {
		t.Fatal("IQ4_NL matrix: no error")
	}
	if err := DequantizeRow(gguf.TypeQ4_0, make([]byte, 17), make([]float32, 32)); err == nil {
		t.Fatal("short Q4_0 row: no error")
	}
	if err := DequantizeRow(gguf.TypeQ4_0, make([]byte, 18), make([]float32, 31)); err == nil {
		t.Fatal("partial block: no error")
	}
}

// Hand-built blocks with values worked out by hand.
func TestDequantizeHandBuilt(t *testing.T) {
	t.Run("Q8_0", func(t *testing.T) {
		b := make([]byte, 34)
		b[0], b[1] = h16(0.5)
		b[2], b[3], b[33] = 2, 0xff, 0x80 // 2, -1, ..., -128
		y := make([]float32, 32)
		must(t, DequantizeRow(gguf.TypeQ8_0, b, y))
		want(t, y[0], 1)
		want(t, y[1], -0.5)
		want(t, y[31], -64)
	})
	t.Run("Q4_0", func(t *testing.T) {
		b := make([]byte, 18)
		b[0], b[1] = h16(2)
		b[2] = 0xf0  // element 0: 0-8 = -8; element 16: 15-8 = 7
		b[17] = 0x9a // element 15: 10-8 = 2; element 31: 9-8 = 1
		y := make([]float32, 32)
		must(t, DequantizeRow(gguf.TypeQ4_0, b, y))
		want(t, y[0], -16)
		want(t, y[16], 14)
		want(t, y[15], 4)
		want(t, y[31], 2)
	})
	t.Run("Q4_1", func(t *testing.T) {
		b := make([]byte, 20)
		b[0], b[1] = h16(0.5)
		b[2], b[3] = h16(-1)
		b[4] = 0x3c // element 0: 12*0.5-1 = 5; element 16: 3*0.5-1 = 0.5
		y := make([]float32, 32)
		must(t, DequantizeRow(gguf.TypeQ4_1, b, y))
		want(t, y[0], 5)
		want(t, y[16], 0.5)
		want(t, y[1], -1)
	})
	t.Run("Q5_0", func(t *testing.T) {
		b := make([]byte, 22)
		b[0], b[1] = h16(1)
		b[2] = 0x01 // qh bit 0: element 0 has bit 4
		b[5] = 0x80 // qh bit 31: element 31 has bit 4
		b[6] = 0x21 // element 0: 1|16 - 16 = 1; element 16: 2 - 16 = -14
		b[21] = 0xf0
		y := make([]float32, 32)
		must(t, DequantizeRow(gguf.TypeQ5_0, b, y))
		want(t, y[0], 1)
		want(t, y[16], -14)
		want(t, y[15], -16)
		want(t, y[31], 15) // 15|16 - 16
	})
	t.Run("Q5_1", func(t *testing.T) {
		b := make([]byte, 24)
		b[0], b[1] = h16(2)
		b[2], b[3] = h16(1)
		b[4] = 0x02 // element 1 has bit 4
		b[9] = 0x05 // element 1: 5|16 = 21 -> 43
		y := make([]float32, 32)
		must(t, DequantizeRow(gguf.TypeQ5_1, b, y))
		want(t, y[1], 43)
		want(t, y[0], 1)
	})
	t.Run("Q4_K", func(t *testing.T) {
		b := make([]byte, 144)
		b[0], b[1] = h16(1)
		b[2], b[3] = h16(0.5)
		sc := b[4:16]
		sc[0], sc[4] = 3, 2 // sub-block 0: scale 3, min 2
		// sub-block 5 (j=5 >= 4): scale = sc[9]&15 | (sc[1]>>6)<<4, min = sc[9]>>4 | (sc[5]>>6)<<4
		sc[9], sc[1], sc[5] = 0x21, 0x40, 0xc0 // scale 1|16 = 17, min 2|48 = 50
		qs := b[16:]
		qs[0] = 0x07  // element 0 (sub-block 0): 7*3 - 2*0.5 = 20
		qs[64] = 0x50 // chunk 2, high nibble: sub-block 5, element 160: 5*17 - 50*0.5 = 60
		y := make([]float32, 256)
		must(t, DequantizeRow(gguf.TypeQ4_K, b, y))
		want(t, y[0], 20)
		want(t, y[160], 60)
		want(t, y[1], -1)
	})
	t.Run("Q5_K", func(t *testing.T) {
		b := make([]byte, 176)
		b[0], b[1] = h16(1)
		b[2], b[3] = h16(1)
		sc := b[4:16]
		sc[1], sc[5] = 2, 1 // sub-block 1: scale 2, min 1
		qh, qs := b[16:48], b[48:]
		qh[3] = 0x02 // bit 1: fifth bit of element 3 of sub-block 1
		qs[3] = 0x40 // high nibble of byte 3 of chunk 0: element 32+3 = 35
		y := make([]float32, 256)
		must(t, DequantizeRow(gguf.TypeQ5_K, b, y))
		want(t, y[35], (4+16)*2-1)
		want(t, y[32], -1)
	})
	t.Run("Q6_K", func(t *testing.T) {
		b := make([]byte, 210)
		ql, qh, sc := b[0:128], b[128:192], b[192:208]
		b[208], b[209] = h16(0.5)
		sc[0], sc[6], sc[15] = 2, 0xfe, 4 // scale of elements 0-15: 2; 96-111: -2; 240-255: 4
		ql[0] = 0x05                      // element 0 low 4 bits 5
		qh[0] = 0x03 | 0x80               // element 0 high bits 3 -> 53; element 96 high bits 2 -> 32+
		ql[32] = 0x70                     // element 96 low bits 7 -> 39
		ql[127] = 0xf0                    // element 255 (half 1, quarter 3, l 31): low 15
		qh[63] = 0xc0                     // its high bits 3 -> 63
		y := make([]float32, 256)
		must(t, DequantizeRow(gguf.TypeQ6_K, b, y))
		want(t, y[0], 0.5*2*(53-32))
		want(t, y[96], 0.5*-2*(39-32))
		want(t, y[255], 0.5*4*(63-32))
		want(t, y[1], 0.5*2*-32)
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func want(t *testing.T, got, w float32) {
	t.Helper()
	if got != w {
		t.Errorf("got %g, want %g", got, w)
	}
}

func randRow(r *rand.Rand, n int, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * scale)
	}
	return x
}

// TestQuantizeRoundTrip quantizes random rows and checks the decoded values
// are within the type's step of the originals.
func TestQuantizeRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	relTol := map[gguf.Type]float64{
		gguf.TypeF32: 0, gguf.TypeF16: 1e-3, gguf.TypeBF16: 8e-3,
		gguf.TypeQ8_0: 0.01, gguf.TypeQ4_0: 0.2, gguf.TypeQ4_1: 0.1,
		gguf.TypeQ5_0: 0.1, gguf.TypeQ5_1: 0.05, gguf.TypeQ4_K: 0.15,
		gguf.TypeQ5_K: 0.08, gguf.TypeQ6_K: 0.05,
	}
	for _, typ := range allTypes {
		n := 512
		x := randRow(r, n, 1)
		x[7] = 0
		rb, _ := typ.RowBytes(n)
		b := make([]byte, rb)
		must(t, QuantizeRow(typ, x, b))
		y := make([]float32, n)
		must(t, DequantizeRow(typ, b, y))
		var amax float64
		for _, v := range x {
			amax = max(amax, math.Abs(float64(v)))
		}
		for i := range x {
			if d := math.Abs(float64(x[i] - y[i])); d > relTol[typ]*amax+1e-3*math.Abs(float64(x[i])) {
				t.Errorf("%v: element %d: %g -> %g", typ, i, x[i], y[i])
				break
			}
		}
		// Zero rows must decode to zeros, not NaNs.
		z := make([]float32, n)
		must(t, QuantizeRow(typ, z, b))
		must(t, DequantizeRow(typ, b, y))
		for i := range y {
			if y[i] != 0 {
				t.Errorf("%v: zero row decodes to %g at %d", typ, y[i], i)
				break
			}
		}
	}
}
