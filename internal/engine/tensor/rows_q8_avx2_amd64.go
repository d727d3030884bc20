//go:build !noasm

package tensor

import "courier/internal/engine/gguf"

//go:noescape
func dotQ8_0RowsAVX2(w *byte, wrb, n4 int, a *byte, nb int, out *float32, pf int)

//go:noescape
func dotF16RowsAVX2x(w *byte, wrb, nw int, a *byte, n64 int, out *float32, pf int)

//go:noescape
func dotQ4_0RowsAVX2(w *byte, wrb, n4 int, a *byte, nb int, out *float32, pf int)

// init gives Q8_0, F16 and (unpacked) repacked Q4_0 rows kernels (one call per
// chunk of a decode step's weight rows) where vnni_amd64.go's init gives
// none (init functions run in file-name order: this file's runs after
// multi_amd64.go's and repack_amd64.go's, before vnni_amd64.go's, which
// replaces them).
func init() {
	if !hasAVX2 {
		return
	}
	k := fastKernels[gguf.TypeQ8_0]
	k.dotRows = dotQ8_0RowsA2
	fastKernels[gguf.TypeQ8_0] = k
	k = fastKernels[gguf.TypeF16]
	k.dotRows = dotF16RowsA2
	fastKernels[gguf.TypeF16] = k
	rk := fastRepackKernels[gguf.TypeQ4_0]
	rk.gemvRows = dotQ4_0x8RowsA2
	fastRepackKernels[gguf.TypeQ4_0] = rk
}

// dotQ4_0x8RowsA2 is the rowsFunc of repacked Q4_0 gemv on AVX2 (the
// matrix is not packed here): four rows per pass over the activation row,
// the last len(out)%4 one at a time.
func dotQ4_0x8RowsA2(w []byte, wrb int, a []byte, cols int, out []float32) {
	nb := cols / qk
	nw := len(out)
	if nw == 0 {
		return
	}
	if nb == 0 {
		clear(out)
		return
	}
	_, _ = w[nw*wrb-1], a[34*nb-1]
	if n4 := nw / 4; n4 > 0 {
		dotQ4_0RowsAVX2(&w[0], wrb, n4, &a[0], nb, &out[0], 1)
	}
	for q := nw &^ 3; q < nw; q++ {
		var acc float32
		dotQ4_0x8AVX2(&w[q*wrb], &a[0], nb, &acc)
		out[q] = acc
	}
}

// dotQ8_0RowsA2 is the Q8_0 rowsFunc on AVX2: four rows per pass over the
// activation row, the last len(out)%4 one at a time.
func dotQ8_0RowsA2(w []byte, wrb int, a []byte, cols int, out []float32) {
	nb := cols / qk
	nw := len(out)
	if nw == 0 || nb == 0 {
		for q := range out {
			out[q] = dotQ8_0(w[q*wrb:(q+1)*wrb], a, nb)
		}
		return
	}
	_, _ = w[nw*wrb-1], a[34*nb-1]
	if n4 := nw / 4; n4 > 0 {
		dotQ8_0RowsAVX2(&w[0], wrb, n4, &a[0], nb, &out[0], 1)
	}
	for q := nw &^ 3; q < nw; q++ {
		out[q] = dotQ8_0Fast(w[q*wrb:(q+1)*wrb], a, nil, cols)
	}
}

// dotF16RowsA2 is the F16 rowsFunc: one assembly call for every row when
// the columns are a multiple of 64 (no tail), else dotF16Fast per row.
func dotF16RowsA2(w []byte, wrb int, a []byte, cols int, out []float32) {
	nw := len(out)
	if nw == 0 {
		return
	}
	if cols%64 != 0 {
		for q := range out {
			out[q] = dotF16Fast(w[q*wrb:(q+1)*wrb], a, nil, cols)
		}
		return
	}
	_, _ = w[(nw-1)*wrb+2*cols-1], a[2*cols-1]
	dotF16RowsAVX2x(&w[0], wrb, nw, &a[0], cols/64, &out[0], (f16PrefetchMin+wrb-1)/wrb*wrb)
}

// f16PrefetchMin is how far ahead dotF16RowsAVX2x prefetches, at least
// (whole rows): prefetchAhead's 2048 bytes measured 6% slower on the
// Zen 5's whole-model F16 decode (tg128 at one thread, three interleaved
// pairs, 110.5-111.2 against 115.9-118.5 tok/s, 10:45 UTC); 16384 bytes
// measured the same as 8192.
const f16PrefetchMin = 8192
