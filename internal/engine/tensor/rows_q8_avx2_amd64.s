//go:build !noasm

#include "textflag.h"
#include "q8dot_amd64.h"
#include "avx2acc_amd64.h"

// AVX2 rows kernel of the Q8_0 vec_dot (machines without AVX512-VNNI):
// dotQ8_0w4AVX2's arithmetic (per block, the exact integer sum in eight
// lanes, converted and fused into the lane by d_w*d_a) over a whole run of
// weight rows, four per pass over the activation row, with the next four
// rows prefetched at the rate the current ones are read (as
// dotQ8_0RowsVNNI): a decode step's rows are too short for the hardware
// prefetcher.

DATA onesR<>+0(SB)/8, $0x0001000100010001
DATA onesR<>+8(SB)/8, $0x0001000100010001
DATA onesR<>+16(SB)/8, $0x0001000100010001
DATA onesR<>+24(SB)/8, $0x0001000100010001
GLOBL onesR<>(SB), RODATA|NOPTR, $32

// Q8ROWA(P, ACC): one weight row's block at P against the activation
// block (codes in Y5, scale in Y8).
#define Q8ROWA(P, ACC) Q8W(P, X12, Y12, Y9, Y10, ACC)

// func dotQ8_0RowsAVX2(w *byte, wrb, n4 int, a *byte, nb int, out *float32, pf int)
TEXT ·dotQ8_0RowsAVX2(SB), NOSPLIT, $0-56
	MOVQ w+0(FP), SI
	MOVQ wrb+8(FP), BX
	MOVQ n4+16(FP), R11
	MOVQ out+40(FP), DX
	MOVQ pf+48(FP), R12
	VMOVDQU onesR<>(SB), Y15
	TESTQ R11, R11
	JZ r2done
r2group:
	LEAQ (SI)(BX*1), R8
	LEAQ (R8)(BX*1), R9
	LEAQ (R9)(BX*1), R10
	LEAQ (R10)(BX*1), R13 // next group
	MOVQ a+24(FP), DI
	MOVQ nb+32(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ SI, R14
r2loop:
	TESTQ R12, R12
	JZ r2nopf
	PREFETCHT0 (R13)
	PREFETCHT0 45(R13)
	PREFETCHT0 90(R13)
r2nopf:
	VPBROADCASTW (DI), X8
	VCVTPH2PS X8, Y8
	VMOVDQU 2(DI), Y5
	Q8ROWA(R14, Y0)
	Q8ROWA(R8, Y1)
	Q8ROWA(R9, Y2)
	Q8ROWA(R10, Y3)
	ADDQ $34, R14
	ADDQ $34, R8
	ADDQ $34, R9
	ADDQ $34, R10
	ADDQ $136, R13
	ADDQ $34, DI
	DECQ CX
	JNZ r2loop
	HSUM8(Y0, X0, X12)
	HSUM8(Y1, X1, X12)
	HSUM8(Y2, X2, X12)
	HSUM8(Y3, X3, X12)
	VMOVSS X0, 0(DX)
	VMOVSS X1, 4(DX)
	VMOVSS X2, 8(DX)
	VMOVSS X3, 12(DX)
	ADDQ $16, DX
	LEAQ (SI)(BX*4), SI
	DECQ R11
	JNZ r2group
r2done:
	VZEROUPPER
	RET

DATA nibR<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibR<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibR<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibR<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL nibR<>(SB), RODATA|NOPTR, $32

DATA eightsR<>+0(SB)/8, $0x0808080808080808
DATA eightsR<>+8(SB)/8, $0x0808080808080808
DATA eightsR<>+16(SB)/8, $0x0808080808080808
DATA eightsR<>+24(SB)/8, $0x0808080808080808
GLOBL eightsR<>(SB), RODATA|NOPTR, $32

// Q4ROWA(P, S): the eight dword partial sums of the Q4_0 block at P
// (codes minus 8) times the activation codes in Y5.
#define Q4ROWA(P, S) \
	Q40CODES(P, X6); \
	I8SDOT(S)

// func dotQ4_0RowsAVX2(w *byte, wrb, n4 int, a *byte, nb int, out *float32, pf int)
// out[q] = dotQ4_0x8 (the repacked gemv arithmetic: per block, a fused
// multiply-add of the exact integer sum by d_w*d_a into one float) of
// weight row q with the Q8_0 activation row, for 4*n4 rows four at a
// time, row p of a pass in lane p of X0; the next four rows prefetched.
TEXT ·dotQ4_0RowsAVX2(SB), NOSPLIT, $0-56
	MOVQ w+0(FP), SI
	MOVQ wrb+8(FP), BX
	MOVQ n4+16(FP), R11
	MOVQ out+40(FP), DX
	MOVQ pf+48(FP), R12
	VMOVDQU onesR<>(SB), Y15
	VMOVDQU nibR<>(SB), Y14
	VMOVDQU eightsR<>(SB), Y13
	TESTQ R11, R11
	JZ q4rdone
q4rgroup:
	LEAQ (SI)(BX*1), R8
	LEAQ (R8)(BX*1), R9
	LEAQ (R9)(BX*1), R10
	LEAQ (R10)(BX*1), R13 // next group
	MOVQ a+24(FP), DI
	MOVQ nb+32(FP), CX
	VXORPS X0, X0, X0
	MOVQ SI, R14
q4rloop:
	TESTQ R12, R12
	JZ q4rnopf
	PREFETCHT0 (R13)
	PREFETCHT0 64(R13)
q4rnopf:
	VMOVDQU 2(DI), Y5
	Q4ROWA(R14, Y8)
	Q4ROWA(R8, Y9)
	Q4ROWA(R9, Y10)
	Q4ROWA(R10, Y11)
	SUMS4ROWS
	VPINSRW $0, (R14), X1, X1
	VPINSRW $1, (R8), X1, X1
	VPINSRW $2, (R9), X1, X1
	VPINSRW $3, (R10), X1, X1
	VCVTPH2PS X1, X1
	VPBROADCASTW (DI), X2
	VCVTPH2PS X2, X2
	VMULPS X2, X1, X3
	VFMADD231PS X8, X3, X0
	ADDQ $18, R14
	ADDQ $18, R8
	ADDQ $18, R9
	ADDQ $18, R10
	ADDQ $72, R13
	ADDQ $34, DI
	DECQ CX
	JNZ q4rloop
	VMOVUPS X0, (DX)
	ADDQ $16, DX
	LEAQ (SI)(BX*4), SI
	DECQ R11
	JNZ q4rgroup
q4rdone:
	VZEROUPPER
	RET

// func dotF16RowsAVX2x(w *byte, wrb, nw int, a *byte, n64 int, out *float32, pf int)
// out[q] = dotF16Fast of weight row q (nw rows wrb bytes apart) with the
// F16 activation row of 64*n64 elements (no tail): dotF16AVX2's eight
// 8-lane accumulators (ggml's four 16-lane ones), reduced as floatLanes,
// r = (A+C)+(B+D), then reduce16. The bytes pf ahead are prefetched.
TEXT ·dotF16RowsAVX2x(SB), NOSPLIT, $0-56
	MOVQ w+0(FP), R15
	MOVQ wrb+8(FP), R14
	MOVQ nw+16(FP), R13
	MOVQ out+40(FP), DX
	MOVQ pf+48(FP), R12
	TESTQ R13, R13
	JZ f16rdone
f16rrow:
	MOVQ R15, SI
	MOVQ a+24(FP), DI
	MOVQ n64+32(FP), CX
	ACC8_ZERO
f16rloop:
	PREFETCHT0 (SI)(R12*1)
	PREFETCHT0 64(SI)(R12*1)
	F16DOT64
	ADDQ $128, SI
	ADDQ $128, DI
	DECQ CX
	JNZ f16rloop
	F16LANES8(Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7)
	VADDPS Y0, Y1, Y1
	HSUM8(Y1, X1, X2)
	VMOVSS X1, (DX)
	ADDQ $4, DX
	ADDQ R14, R15
	DECQ R13
	JNZ f16rrow
f16rdone:
	VZEROUPPER
	RET
