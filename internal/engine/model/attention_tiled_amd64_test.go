//go:build !noasm

package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"courier/internal/engine/tensor"
	"golang.org/x/sys/cpu"
)

// The AVX-512 and AVX2 bodies of the tiled kernel's loops against the
// generic ones, bit for bit.

// tiledLevel is one set of assembly bodies: the flags that select it.
type tiledLevel struct {
	name         string
	avx512, avx2 bool
}

// tiledLevels returns the assembly bodies that can run here and sets the
// flags back when the test ends.
func tiledLevels(t *testing.T) []tiledLevel {
	t.Helper()
	v512, v2 := tiledAVX512, tiledAVX2
	t.Cleanup(func() { tiledAVX512, tiledAVX2 = v512, v2 })
	var l []tiledLevel
	if cpu.X86.HasAVX512F {
		l = append(l, tiledLevel{"avx512", true, false})
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C {
		l = append(l, tiledLevel{"avx2", false, true})
	}
	if len(l) == 0 {
		t.Skip("no AVX2 or AVX-512F: the tiled kernel runs its generic bodies only")
	}
	return l
}

// randF16 is a random F16 value: mostly normal of the given spread, some
// subnormal, zero or large.
func randF16(rng *rand.Rand, spread float64) uint16 {
	switch rng.IntN(16) {
	case 0:
		return uint16(rng.IntN(1024)) | uint16(rng.IntN(2))<<15 // subnormal or zero
	case 1:
		return tensor.FP32ToFP16(float32(rng.NormFloat64() * 1000))
	}
	return tensor.FP32ToFP16(float32(rng.NormFloat64() * spread))
}

// randF16Tile makes a KV tile of random F16 rows of at least hd values
// (rows may be longer than the head, as cache rows are).
func randF16Tile(rng *rand.Rand, hd int) [faTileKV][]uint16 {
	var rows [faTileKV][]uint16
	for tk := range rows {
		rows[tk] = make([]uint16, hd+rng.IntN(3))
		for d := range rows[tk] {
			rows[tk][d] = randF16(rng, 1)
		}
	}
	return rows
}

func TestTileLoopsAsmMatchGeneric(t *testing.T) {
	defer expectAVX512(t, "tileScoresAVX512", "tileAccumulateAVX512", "tileExpAVX512")()
	for _, lv := range tiledLevels(t) {
		tiledAVX512, tiledAVX2 = lv.avx512, lv.avx2
		t.Run(lv.name, testTileLoops)
	}
}

func testTileLoops(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, hd := range []int{16, 32, 48, 64, 80, 128, 256} {
		kt := make([]float32, hd*faTileKV)
		q := make([]float32, hd)
		for trial := range 40 {
			nv := 1 + rng.IntN(faTileKV)
			if trial < 2 {
				nv = faTileKV - 63*trial // 64, then 1
			}
			rows := randF16Tile(rng, hd)
			for d := range q {
				q[d] = float32(rng.NormFloat64() * math.Exp2(float64(rng.IntN(20)-10)))
			}
			var got, want [faTileKV]float32
			tileScoresGeneric(&want, q, &rows, nv, kt)
			r2 := rows
			tileScores(&got, q, &r2, nv, kt)
			equalBits(t, "scores", got[:nv], want[:nv])

			var p [faTileKV]float32
			for i := range p {
				p[i] = float32(rng.Float64())
			}
			vg, vw := make([]float32, hd), make([]float32, hd)
			for d := range vg {
				vg[d] = float32(rng.NormFloat64())
				vw[d] = vg[d]
			}
			tileAccumulateGeneric(vw, &p, &rows, nv)
			tileAccumulate(vg, &p, &rows, nv)
			equalBits(t, "values", vg, vw)
		}
	}
	for range 2000 {
		var got, want [faTileKV]float32
		for i := range want {
			switch rng.IntN(8) {
			case 0:
				want[i] = float32(math.Inf(-1))
			case 1:
				want[i] = float32(rng.NormFloat64() * 300)
			default:
				want[i] = float32(rng.NormFloat64() * 10)
			}
		}
		got = want
		m := float32(rng.NormFloat64() * 10)
		tileExpGeneric(&want, m)
		tileExp(&got, m)
		equalBits(t, "exp", got[:], want[:])
	}
}

// TestTileScoresRowsAsmMatchesGeneric checks the several-row scores
// (tileKtAVX512 and tileScoresKtAVX512, tileKtAVX2 and tileScoresKtAVX2)
// against the generic chains, for one to faRows rows, every tile fill and
// several head sizes.
func TestTileScoresRowsAsmMatchesGeneric(t *testing.T) {
	defer expectAVX512(t, "tileScoresKtAVX512")()
	for _, lv := range tiledLevels(t) {
		tiledAVX512, tiledAVX2 = lv.avx512, lv.avx2
		t.Run(lv.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, 6))
			for _, hd := range []int{16, 32, 48, 64, 80, 128, 256} {
				kt := make([]float32, hd*faTileKV)
				var qs [faRows][]float32
				for j := range qs {
					qs[j] = make([]float32, hd+rng.IntN(3)*16) // a row of the batch's Q may go on
					for d := range qs[j] {
						qs[j][d] = float32(rng.NormFloat64() * math.Exp2(float64(rng.IntN(20)-10)))
					}
					qs[j] = qs[j][:hd]
				}
				for trial := range 60 {
					nv := 1 + rng.IntN(faTileKV)
					n := 1 + trial%faRows
					if trial < 2 {
						nv = faTileKV - 63*trial
					}
					rows := randF16Tile(rng, hd)
					var got, want [faRows][faTileKV]float32
					r2 := rows
					tileScoresRowsGeneric(&want, &qs, n, &rows, nv, kt)
					clear(kt) // the assembly's transposition must not rely on the generic one's
					tileScoresRows(&got, &qs, n, &r2, nv, kt)
					for j := range n {
						equalBits(t, fmt.Sprintf("hd %d nv %d row %d of %d", hd, nv, j, n), got[j][:nv], want[j][:nv])
					}
				}
			}
		})
	}
}

// TestTileValuesAsmMatchesGeneric checks the shared value tile's widening
// and accumulation (tileVtAVX2, tileAccumulateVtAVX2 on AVX2) against the
// generic bodies and against tileAccumulate on the F16 rows, bit for bit.
func TestTileValuesAsmMatchesGeneric(t *testing.T) {
	for _, lv := range tiledLevels(t) {
		tiledAVX512, tiledAVX2 = lv.avx512, lv.avx2
		t.Run(lv.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 8))
			for _, hd := range []int{16, 32, 48, 64, 80, 128, 256} {
				got, want := make([]float32, hd*faTileKV), make([]float32, hd*faTileKV)
				for trial := range 40 {
					nv := 1 + rng.IntN(faTileKV)
					if trial < 2 {
						nv = faTileKV - 63*trial
					}
					rows := randF16Tile(rng, hd)
					tileValuesGeneric(want, &rows, nv, hd)
					tileValues(got, &rows, nv, hd)
					equalBits(t, "widened values", got[:nv*hd], want[:nv*hd])

					var p [faTileKV]float32
					for i := range p {
						p[i] = float32(rng.Float64())
						if rng.IntN(8) == 0 {
							p[i] = 0 // a masked cell
						}
					}
					vg, vw, vr := make([]float32, hd), make([]float32, hd), make([]float32, hd)
					for d := range vg {
						vg[d] = float32(rng.NormFloat64())
						if d%7 == 0 {
							vg[d] = float32(math.Copysign(0, -1)) // the sign of a zero must survive
						}
						vw[d], vr[d] = vg[d], vg[d]
					}
					tileAccumulateVtGeneric(vw, &p, want, nv)
					tileAccumulateVt(vg, &p, got, nv)
					tileAccumulate(vr, &p, &rows, nv)
					equalBits(t, fmt.Sprintf("hd %d nv %d accumulated", hd, nv), vg, vw)
					equalBits(t, fmt.Sprintf("hd %d nv %d accumulated from F16", hd, nv), vg, vr)
				}
			}
		})
	}
}

// TestTileAccumulate4AsmMatchesGeneric checks the four-row accumulation
// (tileAccumulate4AVX512 for the cells all four rows take, then the
// one-row body for each row's rest) against the generic chains: equal and
// different cell counts, zero weights, zeros of either sign in the
// accumulators, several head sizes.
func TestTileAccumulate4AsmMatchesGeneric(t *testing.T) {
	defer expectAVX512(t, "tileAccumulate4AVX512")()
	for _, lv := range tiledLevels(t) {
		tiledAVX512, tiledAVX2 = lv.avx512, lv.avx2
		t.Run(lv.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(9, 10))
			for _, hd := range []int{16, 32, 48, 64, 80, 128, 256} {
				for trial := range 60 {
					rows := randF16Tile(rng, hd)
					var p [4]*[faTileKV]float32
					var nv [4]int
					var got, want [4][]float32
					for r := range 4 {
						p[r] = new([faTileKV]float32)
						for i := range p[r] {
							p[r][i] = float32(rng.Float64())
							if rng.IntN(8) == 0 {
								p[r][i] = 0 // a masked cell
							}
						}
						switch {
						case trial == 0:
							nv[r] = faTileKV
						case trial == 1:
							nv[r] = 1
						case trial%3 == 0:
							nv[r] = 1 + trial%faTileKV // all equal
						default:
							nv[r] = 1 + rng.IntN(faTileKV)
						}
						got[r], want[r] = make([]float32, hd), make([]float32, hd)
						for d := range hd {
							got[r][d] = float32(rng.NormFloat64())
							if d%7 == r {
								got[r][d] = float32(math.Copysign(0, -1)) // the sign of a zero must survive
							}
							want[r][d] = got[r][d]
						}
					}
					tileAccumulate4Generic(&want, &p, &rows, &nv)
					tileAccumulate4(&got, &p, &rows, &nv)
					for r := range 4 {
						equalBits(t, fmt.Sprintf("hd %d cells %v row %d", hd, nv, r), got[r], want[r])
					}
				}
			}
		})
	}
}

func TestTiledAttentionAsmMatchesGeneric(t *testing.T) {
	defer expectAVX512(t, "tileScoresAVX512", "tileAccumulateAVX512", "tileExpAVX512")()
	for _, lv := range tiledLevels(t) {
		t.Run(lv.name, func(t *testing.T) { testTiledAttention(t, lv) })
	}
}

func testTiledAttention(t *testing.T, lv tiledLevel) {
	for _, hd := range []int{16, 32, 64, 80, 128} {
		const n = 300 // five KV tiles, the last partial
		f := newAttnFixture(t, 2, 1, hd, n, uint64(hd), 1.5)
		var w attnWorker
		w.init(hd, 0)
		got, want := make([]float32, hd), make([]float32, hd)
		for _, pos := range []int{0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 200, 255, 256, 299} {
			for h := range 2 {
				q := f.q[pos*f.cfg.Dim+h*hd:][:hd]
				tiledAVX512, tiledAVX2 = false, false
				w.attendTiled(f.cache, 0, 0, pos, q, want, fullView(hd))
				tiledAVX512, tiledAVX2 = lv.avx512, lv.avx2
				w.attendTiled(f.cache, 0, 0, pos, q, got, fullView(hd))
				equalBits(t, "attention", got, want)
			}
		}
	}
}

// randScores is a tile of scores before scaling: mostly normal, some
// large, zero of either sign or infinite.
func randScores(rng *rand.Rand) [faTileKV]float32 {
	var kq [faTileKV]float32
	for i := range kq {
		switch rng.IntN(12) {
		case 0:
			kq[i] = float32(rng.NormFloat64() * 3000)
		case 1:
			kq[i] = float32(math.Copysign(0, float64(rng.IntN(2)*2-1)))
		case 2:
			kq[i] = float32(math.Inf(-1))
		default:
			kq[i] = float32(rng.NormFloat64() * 30)
		}
	}
	return kq
}

// TestTileSoftmaxAsmMatchesGeneric checks one row's step of the tiled
// softmax (tileMaskMaxAVX2, tileSoftmaxVtAVX2) against the generic bodies,
// bit for bit: masks at every window start and row end, grown and
// unchanged maxima, accumulators with signed zeros.
func TestTileSoftmaxAsmMatchesGeneric(t *testing.T) {
	if !tiledAVX2 {
		t.Skip("no AVX2: the generic bodies only")
	}
	rng := rand.New(rand.NewPCG(9, 10))
	for _, hd := range []int{16, 32, 48, 64, 80, 128, 256} {
		vt := make([]float32, faTileKV*hd)
		for i := range vt {
			vt[i] = tensor.FP16ToFP32(randF16(rng, 1))
		}
		vg, vw := make([]float32, hd), make([]float32, hd)
		for trial := range 300 {
			nv := 1 + rng.IntN(faTileKV)
			lo := 0
			if trial%3 == 0 {
				lo = rng.IntN(faTileKV + 1)
			}
			scale := float32(rng.Float64() + 0.01)
			got := randScores(rng)
			want := got
			mg := tileMaskMaxAVX2(&got, scale, lo, nv)
			mw := tileMaskMaxGeneric(&want, scale, lo, nv)
			equalBits(t, fmt.Sprintf("hd %d lo %d nv %d masked scores", hd, lo, nv), got[:], want[:])
			if mg != mw { // +0 and -0 are the same maximum (the softmax's bits do not depend on its sign)
				t.Fatalf("lo %d nv %d: max %v, want %v", lo, nv, mg, mw)
			}
			if mw == float32(math.Inf(-1)) {
				continue
			}
			m, ms := mw, float32(1)
			if trial%2 == 0 { // the maximum grew from an earlier tile's
				ms = float32(rng.Float64())
			} else if rng.IntN(2) == 0 {
				m = mw + float32(rng.Float64()*5) // an earlier tile's larger maximum
			}
			for d := range vg {
				vg[d] = float32(rng.NormFloat64())
				if d%7 == 0 {
					vg[d] = float32(math.Copysign(0, -1))
				}
				vw[d] = vg[d]
			}
			sg := tileSoftmaxVtAVX2(&vg[0], &got, &vt[0], m, ms, nv, hd)
			sw := tileSoftmaxVtGeneric(vw, &want, vt, m, ms, nv)
			what := fmt.Sprintf("hd %d lo %d nv %d m %v ms %v", hd, lo, nv, m, ms)
			equalBits(t, what+" weights", got[:], want[:])
			equalBits(t, what+" accumulated", vg, vw)
			if math.Float64bits(sg) != math.Float64bits(sw) {
				t.Fatalf("%s: sum %v, want %v", what, sg, sw)
			}
		}
	}
}

// TestTileSoftmaxExpSweep checks the exponential of tileSoftmaxVtAVX2
// against vexpf (ggml_v_expf) for the arguments the softmax gives it:
// score - max, from -Inf to +0 and -0. Every 257th float32 of the range
// (with both zeros, the smallest subnormals, -Inf and the ends of the
// ranges where the result underflows or is subnormal); every one of the
// 2^31 with COURIER_EXHAUSTIVE=1 (about a minute).
func TestTileSoftmaxExpSweep(t *testing.T) {
	if !tiledAVX2 {
		t.Skip("no AVX2: the generic bodies only")
	}
	step := uint64(257)
	if os.Getenv("COURIER_EXHAUSTIVE") != "" {
		step = 1
	}
	var kq [faTileKV]float32
	var vkq [16]float32
	vt := make([]float32, 16)
	var in [faTileKV]float32
	n := 0
	flush := func() {
		for i := n; i < faTileKV; i++ {
			in[i] = 0
		}
		kq = in
		tileSoftmaxVtAVX2(&vkq[0], &kq, &vt[0], 0, 1, 1, 16)
		for i := range n {
			want := float32(0) // a masked score's weight (tileExpGeneric)
			if in[i] != float32(math.Inf(-1)) {
				want = vexpf(in[i])
			}
			if math.Float32bits(kq[i]) != math.Float32bits(want) {
				t.Fatalf("vexpf(%v) (bits %#x) = %v, want %v", in[i], math.Float32bits(in[i]), kq[i], want)
			}
		}
		n = 0
	}
	add := func(bits uint32) {
		in[n] = math.Float32frombits(bits)
		n++
		if n == faTileKV {
			flush()
		}
	}
	// -0 .. -Inf: the sign bit set, then every magnitude up to Inf's.
	for b := uint64(0x80000000); b <= 0xff800000; b += step {
		add(uint32(b))
	}
	edges := []uint32{0, 0x80000000, 0x80000001, 0x80000002, 0xff800000, 0xff7fffff}
	for _, x := range []float32{-87.33655, -88.72283, -103.97208, -104, -126 * 0.6931472, -149 * 0.6931472, -192 * 0.6931472, -133.08} {
		b := math.Float32bits(x)
		for d := range uint32(2048) {
			edges = append(edges, b-1024+d)
		}
	}
	for _, b := range edges {
		add(b)
	}
	flush()
}
