package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"courier/internal/engine/tensor"
)

// The tests here restate ggml's flash-attention kernels the way ggml runs
// them — whole ubatches, thread chunks, query tiles that mix rows, masks
// over every cell of the padded KV length including cells that hold other
// data — and check that the per-(row, head) kernels give the same bits.

// attnFixture is a sequence's cache filled with random K and V, and random
// queries for its positions.
type attnFixture struct {
	cfg   Config
	cache *KVCache
	q     []float32 // [positions][Dim]
	n     int       // positions filled
	rng   *rand.Rand
}

func newAttnFixture(t testing.TB, heads, kvHeads, hd, n int, seed uint64, spread float64) *attnFixture {
	t.Helper()
	cfg := Config{Dim: heads * hd, Layers: 1, Heads: heads, KVHeads: kvHeads, HeadDim: hd, Vocab: 8, AttnScale: attnScale(hd)}
	cache, err := NewPrivateKVCache(&cfg, n)
	if err != nil {
		t.Fatal(err)
	}
	f := &attnFixture{cfg: cfg, cache: cache, q: make([]float32, n*cfg.Dim), n: n, rng: rand.New(rand.NewPCG(seed, 7))}
	k, v := make([]float32, cfg.KVDim()), make([]float32, cfg.KVDim())
	for p := 0; p < n; p++ {
		for i := range k {
			k[i] = float32(f.rng.NormFloat64() * spread)
			v[i] = float32(f.rng.NormFloat64())
		}
		cache.store(0, p, k, v)
	}
	cache.Len = n
	for i := range f.q {
		f.q[i] = float32(f.rng.NormFloat64() * spread)
	}
	return f
}

// cell returns a cell's K and V for head group kvh as llama.cpp's cache
// view would hold them: the sequence's rows up to limit, and other finite
// data (a later token of the ubatch, an unused cell) after it.
func (f *attnFixture) cell(t, limit, kvh int) (k, v []uint16) {
	hd := f.cfg.HeadDim
	if t <= limit {
		kr, vr := f.cache.row(0, t)
		return kr[kvh*hd : (kvh+1)*hd], vr[kvh*hd : (kvh+1)*hd]
	}
	k, v = make([]uint16, hd), make([]uint16, hd)
	for i := range k {
		k[i] = tensor.FP32ToFP16(float32(f.rng.NormFloat64() * 3))
		v[i] = tensor.FP32ToFP16(float32(f.rng.NormFloat64() * 3))
	}
	return k, v
}

// newState returns a State over f's shape, its pool running For with
// threads goroutines (1: serially).
func (f *attnFixture) newState(t testing.TB, rows int) *State {
	t.Helper()
	pool := tensor.NewPool(1)
	t.Cleanup(pool.Close)
	s, err := NewState(&Model{Config: f.cfg}, pool, rows, 1)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// attendBatch runs attendRows on a batch of (position, mode) rows of f's
// sequence and returns the rows' outputs.
func (f *attnFixture) attendBatch(s *State, pos []int, modes []RowMode) []float32 {
	dim := f.cfg.Dim
	b := &Batch{Tokens: make([]int32, len(pos)), Modes: modes}
	for i, p := range pos {
		b.Pos = append(b.Pos, int32(p))
		b.Seqs = append(b.Seqs, f.cache)
		b.Logits = append(b.Logits, false)
		copy(s.q[i*dim:(i+1)*dim], f.q[p*dim:(p+1)*dim])
	}
	s.attendRows(0, b, len(pos))
	return append([]float32(nil), s.att[:len(pos)*dim]...)
}

// refGemm is C[MxN] += A[MxK] * B[KxN] with every element a chain of fused
// multiply-adds over k in order, as simd_gemm computes it.
func refGemm(c, a, b []float32, m, k, n int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			acc := c[i*n+j]
			for kk := 0; kk < k; kk++ {
				acc = fma32(a[i*k+kk], b[kk*n+j], acc)
			}
			c[i*n+j] = acc
		}
	}
}

// refReduceAdd16 restates _mm512_reduce_add_ps: halves added pairwise down
// to four lanes, then (0+2)+(1+3).
func refReduceAdd16(x []float32) float32 {
	h := append([]float32(nil), x...)
	for w := 8; w >= 4; w /= 2 {
		for i := 0; i < w; i++ {
			h[i] = h[i] + h[i+w]
		}
	}
	return (h[0] + h[2]) + (h[1] + h[3])
}

// refTiledUbatch runs ggml_compute_forward_flash_attn_ext_tiled over a
// whole ubatch of rows at positions p0..p0+nq-1 as llama.cpp schedules it
// with nth threads: nr = nq*heads rows (row index iq1 fastest) cut into
// chunks, each chunk into query tiles of up to faTileQ rows of one head,
// each against every KV tile of the padded KV length. It returns
// [nq][Dim].
func refTiledUbatch(f *attnFixture, p0, nq, nth int) []float32 {
	c := &f.cfg
	hd, heads := c.HeadDim, c.Heads
	nkv := kvLength(p0 + nq - 1)
	scale := attnScale(hd)
	ninf := float32(math.Inf(-1))
	out := make([]float32, nq*c.Dim)
	// Cells as the view holds them, per KV head.
	ck := make([][][]uint16, c.KVHeads)
	cv := make([][][]uint16, c.KVHeads)
	for g := range ck {
		for t := 0; t < nkv; t++ {
			k, v := f.cell(t, p0+nq-1, g)
			ck[g], cv[g] = append(ck[g], k), append(cv[g], v)
		}
	}
	masked := func(iq1, t int) bool { return t > p0+iq1 }

	nr := nq * heads
	chunkSize := (nr + 4*nth - 1) / (4 * nth)
	nchunk := (nr + chunkSize - 1) / chunkSize
	if nth == 1 || nchunk < nth {
		nchunk = nth
	}
	dr := (nr + nchunk - 1) / nchunk
	for ch := 0; ch < nchunk; ch++ {
		ir0, ir1 := dr*ch, min(dr*ch+dr, nr)
		for ir := ir0; ir < ir1; {
			h, iq1 := ir/nq, ir%nq
			rows := min(faTileQ, ir1-ir, nq-iq1)
			g := h / (heads / c.KVHeads)
			qt := make([]float32, faTileQ*hd) // padded with zero rows
			for r := 0; r < rows; r++ {
				copy(qt[r*hd:(r+1)*hd], f.q[(p0+iq1+r)*c.Dim+h*hd:][:hd])
			}
			m := make([]float32, faTileQ)
			s := make([]float32, faTileQ)
			for i := range m {
				m[i] = ninf
			}
			vkq := make([]float32, faTileQ*hd)
			for ic := 0; ic < nkv; ic += faTileKV {
				skipTile := true
				mask := make([]float32, faTileQ*faTileKV)
				for r := 0; r < rows; r++ {
					for tk := 0; tk < faTileKV; tk++ {
						if masked(iq1+r, ic+tk) {
							mask[r*faTileKV+tk] = ninf
						} else {
							skipTile = false
						}
					}
				}
				if skipTile {
					continue
				}
				kt := make([]float32, hd*faTileKV) // transposed [hd][KV]
				vt := make([]float32, faTileKV*hd)
				for tk := 0; tk < faTileKV; tk++ {
					for d := 0; d < hd; d++ {
						kt[d*faTileKV+tk] = tensor.FP16ToFP32(ck[g][ic+tk][d])
						vt[tk*hd+d] = tensor.FP16ToFP32(cv[g][ic+tk][d])
					}
				}
				kq := make([]float32, faTileQ*faTileKV)
				refGemm(kq, qt, kt, faTileQ, hd, faTileKV)
				for i := range kq {
					kq[i] *= scale
				}
				for i := 0; i < rows*faTileKV; i++ {
					kq[i] += mask[i]
				}
				for r := 0; r < faTileQ; r++ {
					row := kq[r*faTileKV : (r+1)*faTileKV]
					mx := ninf
					for _, x := range row {
						mx = max(mx, x)
					}
					if mx == ninf {
						clear(row) // skipped row: zero weights
						continue
					}
					mn := max(m[r], mx)
					if mn > m[r] {
						ms := expf(m[r] - mn)
						for d := 0; d < hd; d++ {
							vkq[r*hd+d] *= ms
						}
						s[r] *= ms
					}
					m[r] = mn
					var sum float64
					for g0 := 0; g0 < faTileKV; g0 += 16 {
						for l := g0; l < g0+16; l++ {
							if row[l] == ninf { // ggml_v_expf(-Inf) = 0; vexpf's FMA32 gives NaN
								row[l] = 0
								continue
							}
							row[l] = vexpf(row[l] - mn)
						}
						sum += float64(refReduceAdd16(row[g0 : g0+16]))
					}
					s[r] = float32(float64(s[r]) + sum)
				}
				refGemm(vkq, kq, vt, faTileQ, faTileKV, hd)
			}
			for r := 0; r < rows; r++ {
				inv := float32(0)
				if s[r] != 0 {
					inv = 1 / s[r]
				}
				for d := 0; d < hd; d++ {
					out[(iq1+r)*c.Dim+h*hd+d] = vkq[r*hd+d] * inv
				}
			}
			ir += rows
		}
	}
	return out
}

// equalBits fails unless got and want are identical bit for bit and the
// reference is a number: a NaN on both sides is a shared bug, not
// agreement.
func equalBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.IsNaN(float64(want[i])) {
			t.Fatalf("%s: element %d of the reference is %v", what, i, want[i])
		}
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: element %d = %v, want %v", what, i, got[i], want[i])
		}
	}
}

func TestTiledAttentionMatchesUbatchKernel(t *testing.T) {
	for _, tc := range []struct {
		name          string
		heads, kv, hd int
		p0, nq, nth   int
		spread        float64
	}{
		{"first ubatch 100 rows", 4, 2, 32, 0, 100, 2, 1},
		{"second ubatch, tiles straddle", 4, 1, 16, 70, 130, 2, 2},
		{"64 rows, peaky scores", 2, 2, 32, 5, 64, 2, 4},
		{"one thread", 3, 3, 16, 0, 200, 1, 1.5},
		{"head 80", 2, 1, 80, 33, 65, 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newAttnFixture(t, tc.heads, tc.kv, tc.hd, tc.p0+tc.nq, 1, tc.spread)
			want := refTiledUbatch(f, tc.p0, tc.nq, tc.nth)
			s := f.newState(t, tc.nq)
			pos := make([]int, tc.nq)
			modes := make([]RowMode, tc.nq)
			for i := range pos {
				pos[i] = tc.p0 + i
				modes[i] = RowPrompt | RowPromptTiledAttention
			}
			equalBits(t, "tiled", f.attendBatch(s, pos, modes), want)
		})
	}
}

// refSplitKVDecode runs the split-KV path for one decoded row at pos as
// ggml does with nth threads: each thread's slice of the padded KV length
// through the one-chunk kernel (masked cells skipped), then
// ggml_flash_attn_ext_reduce_partials. It returns [Dim].
func refSplitKVDecode(f *attnFixture, pos, nth int) []float32 {
	c := &f.cfg
	hd := c.HeadDim
	nkv := kvLength(pos)
	chunk := (nkv + nth - 1) / nth
	scale := attnScale(hd)
	out := make([]float32, c.Dim)
	qh := make([]uint16, hd)
	for h := 0; h < c.Heads; h++ {
		g := h / (c.Heads / c.KVHeads)
		for i := range qh {
			qh[i] = tensor.FP32ToFP16(f.q[pos*c.Dim+h*hd+i])
		}
		type partial struct {
			m, s float32
			vkq  []float32
		}
		parts := make([]partial, nth)
		for th := 0; th < nth; th++ {
			p := partial{m: float32(math.Inf(-1)), vkq: make([]float32, hd)}
			lo, hi := th*chunk, min(th*chunk+chunk, nkv)
			acc := make([]uint16, hd)
			for ic := lo; ic < hi; ic++ {
				if ic > pos {
					continue // mask -Inf
				}
				k, v := f.cell(ic, pos, g)
				sc := dotF16(qh, k) * scale
				ms, vs := float32(1), float32(1)
				if sc > p.m {
					old := p.m
					p.m = sc
					ms = expf(old - p.m)
					scaleF16(acc, ms)
				} else {
					vs = expf(sc - p.m)
				}
				madF16(acc, v, vs)
				p.s = fma32(p.s, ms, vs)
			}
			for d := range acc {
				p.vkq[d] = tensor.FP16ToFP32(acc[d])
			}
			parts[th] = p
		}
		mf, sf := float32(math.Inf(-1)), float32(0)
		vf := make([]float32, hd)
		for th, p := range parts {
			if th*chunk >= nkv || p.s == 0 {
				continue
			}
			mn := max(mf, p.m)
			so, sn := expf(mf-mn), expf(p.m-mn)
			for d := range vf {
				vf[d] = fma32(vf[d], so, p.vkq[d]*sn)
			}
			sf = fma32(sf, so, p.s*sn)
			mf = mn
		}
		if sf != 0 {
			inv := 1 / sf
			for d := range vf {
				vf[d] *= inv
			}
		}
		copy(out[h*hd:], vf)
	}
	return out
}

func TestSplitKVDecodeMatchesThreadedKernel(t *testing.T) {
	// Heads in pairs over 64-lane strips (4 heads of 64, one K/V head per
	// two, and per head), of 32 (two heads one after the other), and an
	// odd head count (no pairs).
	for _, c := range []struct{ heads, kvHeads, hd int }{{4, 2, 64}, {4, 4, 64}, {2, 1, 128}, {3, 1, 64}} {
		f := newAttnFixture(t, c.heads, c.kvHeads, c.hd, 1100, 3, 1.5)
		s := f.newState(t, 1)
		for _, pos := range []int{511, 512, 700, 1099} {
			want := refSplitKVDecode(f, pos, refThreads)
			got := f.attendBatch(s, []int{pos}, []RowMode{RowDecode})
			equalBits(t, fmt.Sprintf("%+v: split-KV at %d", c, pos), got, want)
		}
	}
	f := newAttnFixture(t, 4, 2, 32, 1100, 2, 1.5)
	s := f.newState(t, 1)
	for _, pos := range []int{256, 300, 383, 384, 511, 512, 700, 767, 900, 1099} {
		want := refSplitKVDecode(f, pos, refThreads)
		got := f.attendBatch(s, []int{pos}, []RowMode{RowDecode})
		equalBits(t, fmt.Sprint("split-KV at ", pos), got, want)
	}
	// Below splitKVMin, and while the second slice is empty, the decode
	// row equals the one-chunk kernel bit for bit.
	for _, pos := range []int{0, 10, 255} {
		got := f.attendBatch(s, []int{pos}, []RowMode{RowDecode})
		want := f.attendBatch(s, []int{pos}, []RowMode{RowPrompt})
		equalBits(t, "short decode", got, want)
	}
	// The split changes the arithmetic somewhere once both slices hold
	// cells (otherwise this test would not test it).
	differs := false
	for pos := 300; pos < 400 && !differs; pos++ {
		a := f.attendBatch(s, []int{pos}, []RowMode{RowDecode})
		b := f.attendBatch(s, []int{pos}, []RowMode{RowPrompt})
		for i := range a {
			differs = differs || a[i] != b[i]
		}
	}
	if !differs {
		t.Error("split-KV decode never differs from the one-chunk kernel")
	}
}

func TestKvLength(t *testing.T) {
	for _, c := range []struct{ pos, want int }{{0, 256}, {255, 256}, {256, 512}, {511, 512}, {512, 768}} {
		if got := kvLength(c.pos); got != c.want {
			t.Errorf("kvLength(%d) = %d, want %d", c.pos, got, c.want)
		}
	}
}

// refOneChunk restates the one-chunk kernel for one head of the row at pos
// as ggml runs it: one key at a time, the accumulator scaled at each new
// maximum and a value added to it at each key, through the F16 vector
// operations. It returns the head's [HeadDim] output.
func refOneChunk(f *attnFixture, cache *KVCache, pos, h int) []float32 {
	c := &f.cfg
	hd := c.HeadDim
	g := h / (c.Heads / c.KVHeads)
	qh, acc := make([]uint16, hd), make([]uint16, hd)
	for i := range qh {
		qh[i] = tensor.FP32ToFP16(f.q[pos*c.Dim+h*hd+i])
	}
	m, sum := float32(math.Inf(-1)), float32(0)
	for t := 0; t <= pos; t++ {
		kr, vr := cache.row(0, t)
		sc := dotF16(qh, kr[g*hd:(g+1)*hd]) * attnScale(hd)
		ms, vs := float32(1), float32(1)
		if sc > m {
			old := m
			m = sc
			ms = expf(old - m)
			scaleF16(acc, ms)
		} else {
			vs = expf(sc - m)
		}
		madF16(acc, vr[g*hd:(g+1)*hd], vs)
		sum = fma32(sum, ms, vs)
	}
	inv := float32(0)
	if sum != 0 {
		inv = 1 / sum
	}
	out := make([]float32, hd)
	for i, v := range acc {
		out[i] = tensor.FP16ToFP32(v) * inv
	}
	return out
}

// withBlockSize returns a copy of f's cache in a pool of blocks of bs
// positions.
func withBlockSize(t *testing.T, f *attnFixture, bs int) *KVCache {
	t.Helper()
	pool, err := NewKVPool(&f.cfg, bs, (f.n+bs-1)/bs)
	if err != nil {
		t.Fatal(err)
	}
	c := NewKVCache(pool, f.n)
	if !c.Reserve(f.n) {
		t.Fatal("cannot reserve the cache")
	}
	for p := 0; p < f.n; p++ {
		k, v := f.cache.row(0, p)
		k2, v2 := c.row(0, p)
		copy(k2, k)
		copy(v2, v)
	}
	c.Len = f.n
	return c
}

// TestOneChunkMatchesPerKeyKernel checks the one-chunk kernel, which takes
// keys a run at a time, against ggml's key-at-a-time loop, bit for bit,
// at head sizes that take every path of the F16 vector operations, with
// scores peaky enough to bring many new maxima, and with KV blocks
// shorter and longer than a run.
func TestOneChunkMatchesPerKeyKernel(t *testing.T) {
	const n = 200
	for _, hd := range []int{8, 4, 12, 24, 40, 64, 80, 96, 112, 128, 3} {
		for _, spread := range []float64{1, 6} {
			f := newAttnFixture(t, 4, 2, hd, n, uint64(hd), spread)
			for _, bs := range []int{16, 7, 128} {
				cache := withBlockSize(t, f, bs)
				pos := []int{0, 1, 15, 16, 63, 64, 65, 127, 150, n - 1}
				s := f.newState(t, len(pos))
				b := &Batch{}
				for i, p := range pos {
					b.Tokens, b.Pos, b.Seqs = append(b.Tokens, 0), append(b.Pos, int32(p)), append(b.Seqs, cache)
					b.Logits, b.Modes = append(b.Logits, false), append(b.Modes, RowPrompt)
					copy(s.q[i*f.cfg.Dim:(i+1)*f.cfg.Dim], f.q[p*f.cfg.Dim:(p+1)*f.cfg.Dim])
				}
				s.attendRows(0, b, len(pos))
				for i, p := range pos {
					for h := 0; h < f.cfg.Heads; h++ {
						got := s.att[i*f.cfg.Dim+h*hd:][:hd]
						equalBits(t, fmt.Sprintf("hd %d spread %g block %d pos %d head %d", hd, spread, bs, p, h), got, refOneChunk(f, cache, p, h))
					}
				}
			}
		}
	}
}

// TestTiledRowsMatchOneRow checks that attendTiledRows gives each row of a
// run of rows exactly what attendTiled gives it alone: runs of one to
// faRows rows (around the four-row steps of the scores) starting before, at and across KV tile boundaries, in KV
// blocks shorter and longer than a tile, with and without a sliding window
// (whose first visible position differs per row).
func TestTiledRowsMatchOneRow(t *testing.T) {
	const n = 300
	for _, hd := range []int{16, 32, 64, 80, 128} {
		f := newAttnFixture(t, 2, 1, hd, n, uint64(hd)+11, 1.5)
		var w attnWorker
		w.init(hd, 0)
		want := make([]float32, hd)
		for _, bs := range []int{16, 100} {
			cache := withBlockSize(t, f, bs)
			for _, window := range []int{0, 40, 70} {
				for _, pos0 := range []int{0, 1, 57, 60, 63, 64, 120, 250, n - faRows} {
					for _, rows := range []int{1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, faRows - 1, faRows} {
						if pos0+rows > n {
							continue
						}
						h := (pos0 + rows) % 2
						g := &tiledRows{n: rows, pos0: pos0}
						outs := make([]float32, rows*hd)
						for j := range rows {
							g.q[j] = f.q[(pos0+j)*f.cfg.Dim+h*hd:][:hd]
							g.out[j] = outs[j*hd : (j+1)*hd]
							if window > 0 {
								g.lo[j] = max(0, pos0+j-window+1)
							}
						}
						view := fullView(hd)
						w.attendTiledRows(cache, 0, 0, g, view.scale)
						for j := range rows {
							view.lo = g.lo[j]
							w.attendTiled(cache, 0, 0, pos0+j, g.q[j], want, view)
							equalBits(t, fmt.Sprintf("hd %d block %d window %d pos %d row %d of %d", hd, bs, window, pos0, j, rows),
								outs[j*hd:(j+1)*hd], want)
						}
					}
				}
			}
		}
	}
}

// TestAttentionRowIndependentOfBatch evaluates the same rows in batches of
// different shapes — a whole prompt, chunks of it, rows mixed with rows of
// another sequence, in reverse order — and requires the same bits for each
// row with the same mode.
func TestAttentionRowIndependentOfBatch(t *testing.T) {
	const n = 300
	f := newAttnFixture(t, 4, 2, 16, n, 3, 1.5)
	other := newAttnFixture(t, 4, 2, 16, n, 4, 1.5)
	dim := f.cfg.Dim
	s := f.newState(t, n)
	pos := make([]int, n)
	modes := make([]RowMode, n)
	for i := range pos {
		pos[i] = i
		modes[i] = PromptRowMode(i, n)
		if i >= 280 {
			modes[i] = RowDecode // generated tokens, some on the split-KV path
		}
	}
	whole := f.attendBatch(s, pos, modes)
	// Chunks of 37 rows.
	for lo := 0; lo < n; lo += 37 {
		hi := min(lo+37, n)
		got := f.attendBatch(s, pos[lo:hi], modes[lo:hi])
		equalBits(t, "chunked", got, whole[lo*dim:hi*dim])
	}
	// Reverse order, interleaved with rows of another sequence.
	b := &Batch{}
	for i := n - 1; i >= 0; i -= 3 {
		for _, src := range []*attnFixture{f, other} {
			b.Tokens = append(b.Tokens, 0)
			b.Pos = append(b.Pos, int32(i))
			b.Seqs = append(b.Seqs, src.cache)
			b.Logits = append(b.Logits, false)
			b.Modes = append(b.Modes, modes[i])
			r := len(b.Tokens) - 1
			copy(s.q[r*dim:(r+1)*dim], src.q[i*dim:(i+1)*dim])
		}
	}
	s.attendRows(0, b, b.Len())
	for r := 0; r < b.Len(); r += 2 {
		i := int(b.Pos[r])
		equalBits(t, "mixed", s.att[r*dim:(r+1)*dim], whole[i*dim:(i+1)*dim])
	}
}

// goroutineFor is a parallelFor that really runs calls concurrently, one
// goroutine per worker taking indices from a shared counter.
type goroutineFor struct{ threads int }

func (g goroutineFor) Threads() int { return g.threads }

func (g goroutineFor) For(n int, fn func(worker, i int)) {
	var mu sync.Mutex
	next := 0
	var wg sync.WaitGroup
	for w := 0; w < g.threads; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				fn(w, i)
			}
		}()
	}
	wg.Wait()
}

func TestAttentionParallelEqualsSerial(t *testing.T) {
	const n = 130
	f := newAttnFixture(t, 4, 2, 32, 600, 5, 1)
	pos := make([]int, 0, n+3)
	modes := make([]RowMode, 0, n+3)
	for i := 0; i < n; i++ {
		pos, modes = append(pos, i), append(modes, PromptRowMode(i, n))
	}
	pos, modes = append(pos, 20, 400, 599), append(modes, RowPrompt, RowDecode, RowDecode)
	serial := f.attendBatch(f.newState(t, len(pos)), pos, modes)
	s := f.newState(t, len(pos))
	s.attn.setup(s)
	s.attn.par = goroutineFor{threads: 3}
	s.attn.workers = make([]attnWorker, 3)
	for i := range s.attn.workers {
		s.attn.workers[i].init(f.cfg.HeadDim, f.cfg.Heads)
	}
	equalBits(t, "parallel", f.attendBatch(s, pos, modes), serial)
}

func TestAttentionAllocatesNothing(t *testing.T) {
	const n = 70
	f := newAttnFixture(t, 4, 2, 32, 600, 6, 1)
	pool := tensor.NewPool(2)
	defer pool.Close()
	s, err := NewState(&Model{Config: f.cfg}, pool, n, 1)
	if err != nil {
		t.Fatal(err)
	}
	b := &Batch{}
	for i := 0; i < n; i++ {
		p, m := i, PromptRowMode(i, n)
		if i == n-1 {
			p, m = 599, RowDecode
		}
		b.Tokens, b.Pos, b.Seqs = append(b.Tokens, 0), append(b.Pos, int32(p)), append(b.Seqs, f.cache)
		b.Logits, b.Modes = append(b.Logits, false), append(b.Modes, m)
	}
	if allocs := testing.AllocsPerRun(3, func() { s.attendRows(0, b, n) }); allocs != 0 {
		t.Fatalf("attendRows allocates %v times per call", allocs)
	}
}

// BenchmarkAttention measures attendRows on a 512-row prompt ubatch
// (tiled kernel) and on one decoded row at position 2047 (split KV), with
// 8 heads of 64 (2 KV heads) and the pool's threads.
func BenchmarkAttention(b *testing.B) {
	const n = 512
	f := newAttnFixture(b, 8, 2, 64, 2048, 8, 1)
	pool := tensor.NewPool(0)
	defer pool.Close()
	s, err := NewState(&Model{Config: f.cfg}, pool, n, 1)
	if err != nil {
		b.Fatal(err)
	}
	batch := func(pos []int, mode RowMode) *Batch {
		bt := &Batch{}
		for _, p := range pos {
			bt.Tokens, bt.Pos, bt.Seqs = append(bt.Tokens, 0), append(bt.Pos, int32(p)), append(bt.Seqs, f.cache)
			bt.Logits, bt.Modes = append(bt.Logits, false), append(bt.Modes, mode)
		}
		return bt
	}
	prompt := make([]int, n)
	for i := range prompt {
		prompt[i] = i
	}
	b.Run("prompt512", func(b *testing.B) {
		bt := batch(prompt, RowPrompt|RowPromptTiledAttention)
		for b.Loop() {
			s.attendRows(0, bt, n)
		}
	})
	b.Run("prompt512-onechunk", func(b *testing.B) {
		bt := batch(prompt, RowPrompt)
		for b.Loop() {
			s.attendRows(0, bt, n)
		}
	})
	b.Run("decode2047", func(b *testing.B) {
		bt := batch([]int{2047}, RowDecode)
		for b.Loop() {
			s.attendRows(0, bt, 1)
		}
	})
}

func TestFmafIsFMA32(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	check := func(a, b, c float32) {
		if got, want := fmaf(a, b, c), tensor.FMA32(a, b, c); math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("fmaf(%g, %g, %g) = %g, want %g", a, b, c, got, want)
		}
	}
	for i := 0; i < 1_000_000; i++ {
		a := float32(rng.NormFloat64() * math.Exp2(float64(rng.IntN(60)-30)))
		b := float32(rng.NormFloat64() * math.Exp2(float64(rng.IntN(60)-30)))
		c := float32(rng.NormFloat64() * math.Exp2(float64(rng.IntN(80)-40)))
		check(a, b, c)
		// c a float32 midpoint away from a*b's rounding: a*b + c lands
		// near a float32 tie, where double rounding would go wrong.
		p := float64(a) * float64(b)
		check(a, b, float32(-p)) // cancellation
		u := math.Float32bits(float32(p))
		check(1+0x1p-23, math.Float32frombits(u&^1), -math.Float32frombits(u&^1))
	}
	// Double rounding: (1+2^-12)^2 + 2^-60 = 1 + 2^-11 + 2^-24 + 2^-60
	// rounds to a float32 tie in float64, which float32() would round down
	// to even; the exact result rounds up.
	a, c := float32(1+0x1p-12), float32(0x1p-60)
	if naive := float32(float64(a)*float64(a) + float64(c)); naive == tensor.FMA32(a, a, c) {
		t.Fatal("the double-rounding case does not double-round")
	}
	check(a, a, c)
	for _, c := range [][3]float32{{0, 5, 0}, {-0.0, 1, 0}, {1e-30, 1e-30, 0}, {1e-20, 1e-20, 1e-45}, {3e38, 2, 0}} {
		check(c[0], c[1], c[2])
	}
}

// BenchmarkAttentionOneChunk measures the one-chunk kernel serially on a
// 63-row prompt ubatch at positions 449..511 (the shape of a short
// classification prompt's attention, with a longer history) for several
// head sizes; ns/pos is the time per (row, head, key position).
func BenchmarkAttentionOneChunk(b *testing.B) {
	const n, rows = 512, 63
	for _, hd := range []int{8, 24, 64, 80, 128} {
		b.Run(fmt.Sprintf("hd%d", hd), func(b *testing.B) {
			f := newAttnFixture(b, 8, 4, hd, n, 8, 1)
			s := f.newState(b, rows)
			bt := &Batch{}
			keys := 0
			for p := n - rows; p < n; p++ {
				bt.Tokens, bt.Pos, bt.Seqs = append(bt.Tokens, 0), append(bt.Pos, int32(p)), append(bt.Seqs, f.cache)
				bt.Logits, bt.Modes = append(bt.Logits, false), append(bt.Modes, RowPrompt)
				keys += (p + 1) * f.cfg.Heads
			}
			for b.Loop() {
				s.attendRows(0, bt, rows)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(keys), "ns/pos")
		})
	}
}

// BenchmarkAttentionDecodeDepth measures one decoded row's attention at
// depth 1100 in the shape of BenchmarkVsLlamaCpp's model (12 heads of 64,
// one K/V head each) over 12 caches, one per layer, 40 MB in all: more
// than the last-level cache, so the keys and values come from memory as
// in a decode step. ns/op is one token's attention over the 12 layers.
func BenchmarkAttentionDecodeDepth(b *testing.B) {
	const layers, pos = 12, 1099
	fs := make([]*attnFixture, layers)
	ss := make([]*State, layers)
	bs := make([]*Batch, layers)
	for l := range fs {
		fs[l] = newAttnFixture(b, 12, 12, 64, pos+1, uint64(l), 1)
		ss[l] = fs[l].newState(b, 1)
		bs[l] = &Batch{Tokens: []int32{0}, Pos: []int32{pos}, Seqs: []*KVCache{fs[l].cache}, Logits: []bool{false}, Modes: []RowMode{RowDecode}}
		copy(ss[l].q, fs[l].q[pos*fs[l].cfg.Dim:])
	}
	for b.Loop() {
		for l := range fs {
			ss[l].attendRows(0, bs[l], 1)
		}
	}
}
