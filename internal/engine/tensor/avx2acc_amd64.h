// Macros shared by the AVX2 tinyBLAS kernels (float_avx2_amd64.s,
// bf16group_amd64.s): the reduce16 ending of an output and the eight
// 8-lane accumulators Y0-Y7 of a tile kept at B(DX) between chunks.

// HSUM8(y, x, t) sums the eight lanes of y into lane 0 of x (y's low
// half) as reduce16 does: lanes i+4 and i, then (u0+u2)+(u1+u3). t is an
// X scratch register.
#define HSUM8(y, x, t) \
	VEXTRACTF128 $1, y, t; \
	VADDPS t, x, x; \
	VPERMILPS $0x4e, x, t; \
	VADDPS t, x, x; \
	VPERMILPS $0xb1, x, t; \
	VADDSS t, x, x

// REDUCE16 ends one output: it adds the first pass's lanes 0-7 (lo at
// offset off of DX) to the second pass's accumulator y (its low half x),
// reduces the eight lanes as reduce16 does and stores the sum at offset
// out of R13. t is scratch.
#define REDUCE16(off, y, x, out, t) \
	VADDPS off(DX), y, y; \
	HSUM8(y, x, t); \
	VMOVSS x, out(R13)

// REDUCE8(t) ends the outputs of the accumulators Y0-Y7 (lo at 0(DX)
// on, out at 0(R13) on) as REDUCE16.
#define REDUCE8(t) \
	REDUCE16(0, Y0, X0, 0, t); \
	REDUCE16(32, Y1, X1, 4, t); \
	REDUCE16(64, Y2, X2, 8, t); \
	REDUCE16(96, Y3, X3, 12, t); \
	REDUCE16(128, Y4, X4, 16, t); \
	REDUCE16(160, Y5, X5, 20, t); \
	REDUCE16(192, Y6, X6, 24, t); \
	REDUCE16(224, Y7, X7, 28, t)

// RED16(LO, HI, P, Q, T): reduce the output whose lanes 0-7 are at LO(DX)
// and 8-15 at HI(DX) as reduce16 and store it at element Q of output row
// P (outs in R13). T is scratch.
#define RED16(LO, HI, P, Q, T) \
	VMOVUPS 0+HI(DX), Y0; \
	VADDPS 0+LO(DX), Y0, Y0; \
	HSUM8(Y0, X0, T); \
	MOVQ 0+8*P(R13), AX; \
	VMOVSS X0, 0+4*Q(AX)

// ACC8_LOAD(B), ACC8_ZERO, ACC8_STORE(B): the accumulators Y0-Y7 from
// B(DX), from zero, and back to B(DX).
#define ACC8_LOAD(B) \
	VMOVUPS B+0(DX), Y0; VMOVUPS B+32(DX), Y1; VMOVUPS B+64(DX), Y2; VMOVUPS B+96(DX), Y3; \
	VMOVUPS B+128(DX), Y4; VMOVUPS B+160(DX), Y5; VMOVUPS B+192(DX), Y6; VMOVUPS B+224(DX), Y7

#define ACC8_ZERO \
	VXORPS Y0, Y0, Y0; VXORPS Y1, Y1, Y1; VXORPS Y2, Y2, Y2; VXORPS Y3, Y3, Y3; \
	VXORPS Y4, Y4, Y4; VXORPS Y5, Y5, Y5; VXORPS Y6, Y6, Y6; VXORPS Y7, Y7, Y7

#define ACC8_STORE(B) \
	VMOVUPS Y0, B+0(DX); VMOVUPS Y1, B+32(DX); VMOVUPS Y2, B+64(DX); VMOVUPS Y3, B+96(DX); \
	VMOVUPS Y4, B+128(DX); VMOVUPS Y5, B+160(DX); VMOVUPS Y6, B+192(DX); VMOVUPS Y7, B+224(DX)

// RED4(N, T, H, Q, S): the four outputs of weight row Q (row H of tile T)
// of a group kernel whose buf holds N 8-lane rows per tile and pass, as
// RED16 with scratch S.
#define RED4(N, T, H, Q, S) \
	RED16((2*T*N+4*H)*32, ((2*T+1)*N+4*H)*32, 0, Q, S); \
	RED16((2*T*N+4*H+1)*32, ((2*T+1)*N+4*H+1)*32, 1, Q, S); \
	RED16((2*T*N+4*H+2)*32, ((2*T+1)*N+4*H+2)*32, 2, Q, S); \
	RED16((2*T*N+4*H+3)*32, ((2*T+1)*N+4*H+3)*32, 3, Q, S)
