// Package tensor holds the arithmetic of Courier's inference engine: block
// layouts of ggml's tensor types, their (de)quantizers, the activation
// quantizers and fused dot products that llama.cpp's CPU backend uses, and a
// threaded matrix-vector/matrix-matrix product over raw (memory-mapped)
// weight bytes.
//
// # Block layouts
//
// All multi-byte fields are little endian; "fp16" is IEEE binary16.
//
//	F32   4 bytes per element          F16/BF16  2 bytes per element
//	Q8_0  32 elements, 34 bytes: fp16 d, int8 qs[32]; x = d*q
//	Q4_0  32 elements, 18 bytes: fp16 d, qs[16]; element j (j<16) is the low
//	      nibble of qs[j], element j+16 its high nibble; x = d*(q-8)
//	Q4_1  32 elements, 20 bytes: fp16 d, fp16 m, qs[16]; x = d*q + m
//	Q5_0  32 elements, 22 bytes: fp16 d, uint32 qh, qs[16]; bit j of qh is
//	      the fifth bit of element j; x = d*(q-16)
//	Q5_1  32 elements, 24 bytes: fp16 d, fp16 m, qh, qs[16]; x = d*q + m
//	Q4_K  256 elements, 144 bytes: fp16 d, fp16 dmin, 12 bytes of eight
//	      6-bit scales and mins, qs[128]; each 32 bytes hold sub-block 2c
//	      (low nibbles) and 2c+1 (high nibbles); x = d*sc*q - dmin*m
//	Q5_K  256 elements, 176 bytes: as Q4_K with qh[32] before qs: bit s of
//	      qh[l] is the fifth bit of element l of sub-block s
//	Q6_K  256 elements, 210 bytes: ql[128] (low 4 bits), qh[64] (high 2
//	      bits), int8 scales[16] (one per 16 elements), fp16 d;
//	      x = d*scale*(q-32)
//	Q8_1  (activations) 32 elements, 36 bytes: fp16 d, fp16 s = d*sum(q), qs[32]
//	Q8_K  (activations) 256 elements, 292 bytes: float32 d, int8 qs[256],
//	      int16 bsums[16] (sums of 16 codes)
//
// # Activation types
//
// llama.cpp never multiplies quantized weights with float activations. Its
// CPU backend first converts each activation row to the weight type's
// "vec-dot type" (VecDotType): Q8_0 for Q4_0, Q5_0 and Q8_0 weights (same
// 32-element blocks, one scale); Q8_1 for Q4_1 and Q5_1 (it carries
// s = d*sum(q), so the weights' offset m contributes m*s without touching
// the codes); Q8_K for the K-quants (256-element blocks and the 16-element
// sums that the mins and Q6_K's -32 need); F16 for F16 and BF16 for BF16
// weights (the activations are rounded to the weight format). Then it takes
// integer dot products per block and scales them by the blocks' scales.
// Reproducing llama.cpp's greedy tokens on quantized models needs that
// arithmetic nearly bit for bit, so this package copies it: the activation
// quantizers follow ggml's x86 (AVX2) code (amax/127 scale, 127/amax
// multiplier, rounding half to even), and the dot products reproduce the
// lane structure of ggml's AVX2/AVX-512 kernels: eight lanes of four
// consecutive products, a fused multiply-add per block into each lane, and
// hsum_float_8's reduction order (F32/F16: four 16-lane accumulators and
// _mm512_reduce_add_ps's order; F32's leftover elements as GCC vectorizes
// ggml's scalar loop, see f32Tail). MatMul also picks the kernel llama.cpp
// picks (see job.plan): ggml_vec_dot_* for one activation row; llamafile's
// tinyBLAS for two or more rows of F32/F16/BF16 weights (one 16-lane
// accumulator per output; prompt.go); and, for Q4_0/Q4_K matrices with a
// multiple of 8 rows (which llama.cpp repacks), the 8x8 gemm kernels for
// whole groups of four rows and gemv for the others, with their own
// accumulation and, for Q4_K gemm, their own activation quantizer. libm.go
// reproduces glibc's expf/sinf/cosf, which the forward pass needs bit for bit.
//
// # Row modes (batch invariance)
//
// MatMulModes takes one RowMode per activation row and applies to each row
// the kernel llama.cpp uses for such a row in single-stream evaluation
// (RowDecode: vec_dot or repacked gemv; RowPrompt: tinyBLAS where the shape
// qualifies; RowPromptGemm: repacked gemm and its activation quantizer), so
// a row's outputs are bit for bit the same whatever else shares the call.
// MatMul(n) is MatMulModes with the modes of one n-row ubatch
// (UbatchModes). Rows are grouped by kernel (a permutation kept in the
// Workspace) and the group kernels apply each weight load to several rows
// at once, interleaving rows in registers without changing any row's
// accumulation order.
//
// # Kernels and threading
//
// Each weight type has a generic (pure Go) kernel, the reference, and
// possibly assembly ones (amd64) that must agree with it bit for bit; tests
// compare both (FuzzVecDot, TestMatMulModesRowInvariant,
// TestRowsKernelsMatchGeneric, TestF16VecFastMatchesGeneric,
// TestQuantizeQ8_0FastMatchesGeneric).
// AVX2+FMA+F16C: vec_dot Q8_0, Q4_0, Q4_K, F32, F16 (dot_amd64.s);
// vec_dot Q6_K and Q5_K as rows kernels, one weight row per pass with
// prefetching, which the single-row dot also calls, and as group kernels
// that decode each weight vector once for up to four activation rows
// (prompt rows, batched decode rows) (kquant_amd64.s);
// BF16 vec_dot rows and tinyBLAS kernels (bf16_amd64.s: VDPBF16PS's
// order, odd product then even product added per lane, with masks and
// shifts to widen; vec_dot rounds each product and adds it, tinyBLAS adds
// it with a fused multiply-add, as VDPBF16PS's two steps are defined), and
// tinyBLAS group kernels of two weight rows by four activation rows
// (bf16group_amd64.s; one takes the activation rows already widened, odd
// and even elements apart, as side data) and a block kernel of the same
// rows, a group of eight weight rows against a whole block of activation
// rows in tiles of four weight rows by three activation rows;
// repacked Q4_K gemv/gemm and a gemv rows kernel (repack_amd64.s), and a
// gemm group kernel that unpacks each weight block once for four
// activation rows, one row per lane of the float accumulators
// (repack_q4kx4_amd64.s);
// tinyBLAS F32/F16 group kernels for machines without AVX-512, three
// weight rows by four activation rows in registers (F16: the last two of
// a group of eight in a two-row tile), one pass over the columns per half
// of the 16-lane accumulator (float_avx2_amd64.s; F16 in f16deint_amd64.s:
// the F16 rows are read deinterleaved, lanes 0-7 of every 16-element group
// first and lanes 8-15 after, so each pass reads a contiguous half of its
// rows; the activation rows are converted that way (kernel.gemmAct), each
// group of weight rows is copied that way into per-thread scratch once per
// MatMul, all activation rows in one block (kernel.actBlock), and rows are
// spaced so that none a tile reads together are a multiple of 4 KiB
// apart);
// multi-row Q8_0 and four-outputs-in-lanes repacked Q4_0 (multi_amd64.s);
// a Q8_0 prompt tile of two weight rows by four activation rows whose
// rows carry their scales as float32 side data (q8tile_amd64.s);
// a repacked Q4_0 group kernel that decodes each weight block once for
// four activation rows, one per lane (repack_q40x4_amd64.s); decode rows
// kernels for Q8_0, unpacked repacked Q4_0 and F16, several weight rows
// per pass with the next ones prefetched (rows_q8_avx2_amd64.s); the Q8_0
// and Q8_K activation quantizers (actquant_avx2_amd64.s).
// AVX-512F: four-row F32/F16 vec_dot, 2x4-output tinyBLAS F32/F16, a
// one-activation-row F32 rows kernel (float_avx512_amd64.s), the F16
// vector operations of attention (f16vec_amd64.s), the Q8_0 activation
// quantizer and the Q8_K one's maximum and codes (actquant_amd64.s).
// AVX512_BF16 (with AVX512F): the BF16 kernels on the real VDPBF16PS
// (bf16vdp_amd64.s; encoded with BYTE directives by VDPBF16PS_Z in
// vdpbf16ps_amd64.h, which TestVDPBF16PSEncoding checks against
// binutils): vec_dot rows (two 16-lane accumulators per 64 elements) and
// its accumulators for a row with a tail, tinyBLAS one output and a tile
// of four weight rows by four activation rows. They give the
// instruction's bits, subnormal inputs read as zero and subnormal results
// flushed; the AVX2 and generic bodies keep IEEE gradual underflow
// (docs/engine.md, "BF16 products"), and on such a CPU the generic BF16
// kernel is dotBF16VDPGeneric/gemmBF16VDPGeneric (bf16vdp.go).
// AVX512-VNNI (256-bit): Q8_0 decode rows (four weight rows per activation
// load), Q8_0 two-weight by four-activation rows, repacked Q4_0 gemv rows
// with eight outputs in lanes (vnni_amd64.s) and repacked Q4_K gemv rows
// with VPDPWSSD (repack_amd64.s); VPDPBUSD takes one operand unsigned, so signed bytes
// enter as byte+128 and the lane starts at -128 times the other operand's
// four-byte sum, which leaves the exact integer sums of the AVX2 kernels.
// AVX512-VNNI with AVX512BW (zmm): packed Q4_0 and Q4_K (gemm, and gemv
// for batched decode rows) tiles of 16 weight rows (two packed groups, one
// per half of the register) by eight activation rows, each decoded weight
// block applied to all eight (packed_avx512_amd64.s; Q4_K's float accumulators in a
// scratch block, loaded and stored once per 64 elements), and the Q4_K
// gemm's activation quantizer (codes, 16-code sums by VPSADBW, scale);
// the Q8_0 prompt tile of eight weight rows by six activation rows, two
// outputs (a weight pair with one activation row) per register, each with
// the eight lanes of the Q8_0 vec_dot (q8zmm_amd64.s).
// All are chosen at init with golang.org/x/sys/cpu and left out with the
// build tag noasm; Q4_1, Q5_0, Q5_1 and the Q8_1 quantizer are generic
// everywhere (legacy types; no decode-speed work was done on them).
//
// # Packed weights
//
// Where the packed kernels can run (AVX512-VNNI, or AVX2 with
// packed_q40_amd64.s and packed_q4k_amd64.s), NewMatrix copies a
// matrix of such a type with a multiple of 8 rows once into a packed,
// row-interleaved layout (packed.go: per group of eight rows and block,
// the eight rows' scales, Q4_K's scales and mins unpacked to bytes, and
// the codes as 4-byte runs, row q in lane q), so that a kernel computes
// eight outputs in the lanes of one register without horizontal sums or
// gathers. MatMul then reads only the copy: rows whose arithmetic has a
// packed kernel (Q4_0 in every mode; Q4_K gemv and gemm) are applied to a
// whole chunk of packed rows per call, and the other rows get groups of
// eight rows unpacked (byte for byte the original) into per-thread
// scratch. Every output keeps its arithmetic bit for bit
// (TestPackedMatchesUnpacked, TestPackedKernelsMatchGeneric). On AVX2,
// prompt rows carry side data (sideQ8Sums: 8 times each block's code sum,
// and its scale as float32) so that packedGroupRows/packedGroupGemm
// decode each packed block once for four activation rows, feeding the
// unsigned codes to VPMADDUBSW and taking the -8 offset off the exact
// integer sum (packed_q40_amd64.s); Q4_K's gemm rows need no side data
// (its activation blocks carry their 16-element sums) and its kernel
// decodes each packed block once for two rows, one int16 accumulator per
// row and nibble half, VPMADDWD by the scales as word pairs
// (packed_q4k_amd64.s). With 512-bit VNNI the tile kernels
// (packedTileRows/packedTileGemm, packed_avx512_amd64.s) take over
// multi-row MatMuls: two groups per zmm by eight activation rows, Q4_0's
// rows carrying the same side data; such a MatMul claims weight rows in
// pairs of groups (job.unit). Data is still the original, read only by
// Row and EmbeddingRow, and must not change after NewMatrix.
//
// MatMul converts the activation rows once into a Workspace (for multi-row
// jobs a kernel may ask for side data after each converted row, e.g. F16
// rows widened back to float32: actSide), then the pool's threads (the
// caller included) take chunks of whole groups of eight weight rows from
// an atomic counter, smaller as the rows run out so that the threads end
// together (job.claimRows); a chunk passes over the activation rows in blocks of
// about 192 KiB of converted rows (actBlockBytes, or the kernel's
// actBlock), each group of eight
// weight rows applied to a whole block while both are in cache (a class
// whose kernel takes a whole block in one call, groupBlockFunc, gets it so:
// Q8_0's tile, F16's, BF16's; a block's row count is a multiple of the
// kernel's actUnit, BF16's whole tiles). A MatMul of one activation row (a decode step)
// gives a whole chunk to one kernel call where the type has a rows kernel
// (rowsFunc: F32, Q8_0, Q6_K, Q5_K, BF16, packed Q4_0/Q4_K), which also
// prefetches the rows it reads next: a decode step's matrices are small
// and their rows too short for the hardware prefetcher. A Pool is a fixed set of worker goroutines started by
// NewPool and stopped by Close; between jobs a worker spins for up to
// spinWait before it sleeps, and the caller hands a job to a spinning
// worker with an atomic claim, so the ~100 MatMuls of a decode step do not
// each pay a goroutine wake-up. MatMul allocates nothing; calls on one
// Pool (MatMul, For) are serialized by a mutex.
package tensor
