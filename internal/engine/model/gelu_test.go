package model

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"testing"
)

// TestGeluTableMatchesGgml pins geluTable to ggml_table_gelu_f16 as the
// reference build fills it (ggml_gelu_f32 compiled by GCC -O3
// -march=native, glibc 2.36's tanhf, F16C rounding): the sha256 of its
// 65536 little-endian entries, computed from a C program with ggml's
// expression.
func TestGeluTableMatchesGgml(t *testing.T) {
	const want = "5372503d4d69aabb589feee6b59e80bf08cbcd71ffb6c43a8210622729ad32bf"
	b := make([]byte, 2*len(geluTable))
	for i, v := range geluTable {
		binary.LittleEndian.PutUint16(b[2*i:], v)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("gelu table sha256 %s, want %s", got, want)
	}
}

// TestGegluRanges checks ggml_vec_geglu_f32's three ranges.
func TestGegluRanges(t *testing.T) {
	gate := []float32{-11, -10, 10, 12, 0, 1}
	up := []float32{2, 2, 2, 2, 2, 2}
	geglu(gate, up)
	if gate[0] != 0 || gate[1] != 0 || gate[2] != 20 || gate[3] != 24 || gate[4] != 0 {
		t.Fatalf("geglu = %v", gate)
	}
	if g := gate[5]; g < 2*0.841 || g > 2*0.842 { // gelu(1) = 0.8412
		t.Fatalf("geglu(1)*2 = %v", g)
	}
}
