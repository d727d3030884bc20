// Horizontal reductions shared by the kernels: the eight float lanes of a
// ymm in reduce16's and hsum8's order (HSUM8; HMAX8 with max), and the
// eight or four dword lanes of an integer sum (HSUM8D, HSUM4D). Included
// by avx2acc_amd64.h and zmm_amd64.h, and directly.

#ifndef HSUM_AMD64_H
#define HSUM_AMD64_H

// F16LANES8(A0, ..., A7) is ggml's floatLanes of dotF16AVX2's eight 8-lane
// accumulators (its four 16-lane ones): A0 = (A0+A4)+(A2+A6), lanes 0-7,
// and A1 = (A1+A5)+(A3+A7), lanes 8-15, before reduce16 adds the halves.
#define F16LANES8(A0, A1, A2, A3, A4, A5, A6, A7) \
	VADDPS A4, A0, A0; VADDPS A6, A2, A2; VADDPS A2, A0, A0; \
	VADDPS A5, A1, A1; VADDPS A7, A3, A3; VADDPS A3, A1, A1

// HRED8(OP, OPS, Y, X, T) reduces the eight lanes of Y into X's lowest lane
// (X: Y's low half) by OP, the last step by its scalar form OPS: lanes i+4
// and i, then (u0+u2) and (u1+u3), then those two. T is an X scratch
// register.
#define HRED8(OP, OPS, Y, X, T) \
	VEXTRACTF128 $1, Y, T; \
	OP T, X, X; \
	VPERMILPS $0x4e, X, T; \
	OP T, X, X; \
	VPERMILPS $0xb1, X, T; \
	OPS T, X, X

// HSUM8(Y, X, T) sums the eight lanes of Y into lane 0 of X as reduce16
// does (a4+a0, ..., then (u0+u2)+(u1+u3)); HMAX8 takes their maximum.
#define HSUM8(Y, X, T) HRED8(VADDPS, VADDSS, Y, X, T)
#define HMAX8(Y, X, T) HRED8(VMAXPS, VMAXSS, Y, X, T)

// HSUM4D(X, T) sums the four dwords of X into every lane (halves swapped
// and added, then pairs); HSUM8D(Y, X, T) the eight dwords of Y (its high
// half added to X first). T is an X scratch register.
#define HSUM4D(X, T) \
	VPSHUFD $0x4e, X, T; \
	VPADDD T, X, X; \
	VPSHUFD $0xb1, X, T; \
	VPADDD T, X, X

#define HSUM8D(Y, X, T) \
	VEXTRACTI128 $1, Y, T; \
	VPADDD T, X, X; \
	HSUM4D(X, T)

#endif
