// Macros shared by the AVX-512 kernels (float_avx512_amd64.s,
// f16block_avx512_amd64.s, bf16vdp_amd64.s): zeroing runs of zmm
// accumulators, VPXORD each (ZERO4ZQ: VPXORQ, the same zeros), and the
// reduce16 ending of one 16-lane accumulator.

#include "hsum_amd64.h"

// ZERO4Z(A, B, C, D) zeroes the zmm registers A, B, C, D.
#define ZERO4Z(A, B, C, D) \
	VPXORD A, A, A; \
	VPXORD B, B, B; \
	VPXORD C, C, C; \
	VPXORD D, D, D

// ZERO4ZQ(A, B, C, D) is ZERO4Z by VPXORQ.
#define ZERO4ZQ(A, B, C, D) \
	VPXORQ A, A, A; \
	VPXORQ B, B, B; \
	VPXORQ C, C, C; \
	VPXORQ D, D, D

// ZERO_Z0_7, ZERO_Z0_15, ZERO_Z0_23, ZERO_Z8_31: the accumulators Z0-Z7,
// Z0-Z15, Z0-Z23 and Z8-Z31 from zero, in register order.
#define ZERO_Z0_7 \
	ZERO4Z(Z0, Z1, Z2, Z3); \
	ZERO4Z(Z4, Z5, Z6, Z7)

#define ZERO_Z0_15 \
	ZERO_Z0_7; \
	ZERO4Z(Z8, Z9, Z10, Z11); \
	ZERO4Z(Z12, Z13, Z14, Z15)

#define ZERO_Z0_23 \
	ZERO_Z0_15; \
	ZERO4Z(Z16, Z17, Z18, Z19); \
	ZERO4Z(Z20, Z21, Z22, Z23)

#define ZERO_Z8_31 \
	ZERO4Z(Z8, Z9, Z10, Z11); \
	ZERO4Z(Z12, Z13, Z14, Z15); \
	ZERO4Z(Z16, Z17, Z18, Z19); \
	ZERO4Z(Z20, Z21, Z22, Z23); \
	ZERO4Z(Z24, Z25, Z26, Z27); \
	ZERO4Z(Z28, Z29, Z30, Z31)

// RED512(Z, Y, X, YT, XT) reduces the 16 lanes of Z into X's lowest lane
// as reduce16 (_mm512_reduce_add_ps): halves 8 (here), 4, then
// (u0+u2)+(u1+u3) (HSUM8). Y and X are Z's low halves; YT, XT scratch
// (registers below 16).
#define RED512(Z, Y, X, YT, XT) \
	VEXTRACTF64X4 $1, Z, YT; \
	VADDPS YT, Y, Y; \
	HSUM8(Y, X, XT)
