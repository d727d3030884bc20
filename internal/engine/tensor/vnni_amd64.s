//go:build !noasm

#include "textflag.h"

// AVX512-VNNI (EVEX, 256-bit) kernels. VPDPBUSD multiplies unsigned by
// signed bytes, so a signed weight byte w enters as w+128 (w XOR 0x80) and
// the accumulator starts at -128 times the sum of the four activation bytes
// of its lane: the lane's integer sum is exactly sum(w*a) over its four
// products, the same integer the AVX2 kernels compute.

DATA signsV<>+0(SB)/8, $0x8080808080808080
DATA signsV<>+8(SB)/8, $0x8080808080808080
DATA signsV<>+16(SB)/8, $0x8080808080808080
DATA signsV<>+24(SB)/8, $0x8080808080808080
GLOBL signsV<>(SB), RODATA|NOPTR, $32

// Q8ROW(R, ACC): one weight row's block at R against the activation block
// (bias in Y5, scale in Y8): ACC += fp32(R.d)*a.d * float(sum).
#define Q8ROW(R, ACC) \
	VPXOR 2(R), Y7, Y4 \
	VMOVDQA Y5, Y6 \
	VPDPBUSD Y9, Y4, Y6 \
	VCVTDQ2PS Y6, Y6 \
	VPBROADCASTW (R), X10 \
	VCVTPH2PS X10, Y10 \
	VMULPS Y8, Y10, Y10 \
	VFMADD231PS Y6, Y10, ACC

// func dotQ8_0w4VNNI(w *[4]*byte, a *byte, nb int, acc *[4][8]float32)
// dotQ8_0w4AVX2's outputs with VPDPBUSD.
TEXT ·dotQ8_0w4VNNI(SB), NOSPLIT, $0-32
	MOVQ w+0(FP), AX
	MOVQ 0(AX), SI
	MOVQ 8(AX), R8
	MOVQ 16(AX), R9
	MOVQ 24(AX), R10
	MOVQ a+8(FP), DI
	MOVQ nb+16(FP), CX
	MOVQ acc+24(FP), DX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VMOVDQU signsV<>(SB), Y7
	TESTQ CX, CX
	JZ q8w4vdone
q8w4vloop:
	VMOVDQU 2(DI), Y9
	VPXOR Y5, Y5, Y5
	VPDPBUSD Y9, Y7, Y5
	VPXOR Y11, Y11, Y11
	VPSUBD Y5, Y11, Y5
	VPBROADCASTW (DI), X8
	VCVTPH2PS X8, Y8
	Q8ROW(SI, Y0)
	Q8ROW(R8, Y1)
	Q8ROW(R9, Y2)
	Q8ROW(R10, Y3)
	ADDQ $34, SI
	ADDQ $34, R8
	ADDQ $34, R9
	ADDQ $34, R10
	ADDQ $34, DI
	DECQ CX
	JNZ q8w4vloop
q8w4vdone:
	VMOVUPS Y0, 0(DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, 64(DX)
	VMOVUPS Y3, 96(DX)
	VZEROUPPER
	RET

// HSUM8(Y, X, T) reduces the eight lanes of Y into X's lowest lane in
// hsum8's order: (a4+a0), (a5+a1), ..., then (r0+r2)+(r1+r3).
#define HSUM8(Y, X, T) \
	VEXTRACTF128 $1, Y, T \
	VADDPS T, X, X \
	VPERMILPS $0x4e, X, T \
	VADDPS T, X, X \
	VPERMILPS $0xb1, X, T \
	VADDSS T, X, X

// func dotQ8_0RowsVNNI(w *byte, wrb, n4 int, a *byte, nb int, out *float32, pf int)
// out[q] = the Q8_0 dot of weight row q (rows wrb bytes apart) with the
// activation row, for 4*n4 rows, four at a time as dotQ8_0w4VNNI. pf != 0
// prefetches the group of four rows after the next (4*wrb contiguous
// bytes, at the rate the current four are read) while a group is
// computed: the rows of the small matrices of a decode step are too short
// for the hardware prefetcher, and one group ahead (3.3 KB at 768
// columns) was too close to hide the memory's latency. Past the last
// group it prefetches addresses past the matrix, which never faults.
TEXT ·dotQ8_0RowsVNNI(SB), NOSPLIT, $0-56
	MOVQ w+0(FP), SI
	MOVQ wrb+8(FP), BX
	MOVQ n4+16(FP), R11
	MOVQ out+40(FP), DX
	MOVQ pf+48(FP), R12
	VMOVDQU signsV<>(SB), Y7
	TESTQ R11, R11
	JZ rowsdone
rowsgroup:
	LEAQ (SI)(BX*1), R8
	LEAQ (R8)(BX*1), R9
	LEAQ (R9)(BX*1), R10
	LEAQ (R10)(BX*1), R13 // next group
	LEAQ (R13)(BX*4), R13 // the group after it
	MOVQ a+24(FP), DI
	MOVQ nb+32(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ SI, R14
rowsloop:
	TESTQ R12, R12
	JZ rowsnopf
	PREFETCHT0 (R13)
	PREFETCHT0 45(R13)
	PREFETCHT0 90(R13)
rowsnopf:
	VMOVDQU 2(DI), Y9
	VPXOR Y5, Y5, Y5
	VPDPBUSD Y9, Y7, Y5
	VPXOR Y11, Y11, Y11
	VPSUBD Y5, Y11, Y5
	VPBROADCASTW (DI), X8
	VCVTPH2PS X8, Y8
	Q8ROW(R14, Y0)
	Q8ROW(R8, Y1)
	Q8ROW(R9, Y2)
	Q8ROW(R10, Y3)
	ADDQ $34, R14
	ADDQ $34, R8
	ADDQ $34, R9
	ADDQ $34, R10
	ADDQ $136, R13
	ADDQ $34, DI
	DECQ CX
	JNZ rowsloop
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
	JNZ rowsgroup
rowsdone:
	VZEROUPPER
	RET

DATA nibV<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibV<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibV<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibV<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL nibV<>(SB), RODATA|NOPTR, $32

DATA eightsV<>+0(SB)/8, $0x0808080808080808
DATA eightsV<>+8(SB)/8, $0x0808080808080808
DATA eightsV<>+16(SB)/8, $0x0808080808080808
DATA eightsV<>+24(SB)/8, $0x0808080808080808
GLOBL eightsV<>(SB), RODATA|NOPTR, $32

// Q40ROW(R, ACC): ACC = -8*sum(a) + sum(nibbles*a) over the four products
// of each lane, for the Q4_0 block at R (activation block in Y9, bias Y8):
// lane sums of (q-8)*a.
#define Q40ROW(R, ACC) \
	VMOVDQU 2(R), X10 \
	VPSRLW $4, X10, X11 \
	VINSERTI128 $1, X11, Y10, Y10 \
	VPAND Y14, Y10, Y10 \
	VMOVDQA Y8, ACC \
	VPDPBUSD Y9, Y10, ACC

// func dotQ4_0x8RowsVNNI(w *byte, wrb, n8 int, a *byte, nb int, out *float32)
// The repacked Q4_0 arithmetic (dotQ4_0x8) for 8*n8 weight rows, eight at
// a time with one output per lane: per block, each row's exact integer sum
// (VPDPBUSD lanes reduced with VPHADDD), then one fused multiply-add per
// lane by the product of the scales, in block order. The next eight rows
// are prefetched while a group is computed.
TEXT ·dotQ4_0x8RowsVNNI(SB), NOSPLIT, $0-48
	MOVQ w+0(FP), SI
	MOVQ wrb+8(FP), BX
	MOVQ n8+16(FP), R15
	MOVQ out+40(FP), DX
	VMOVDQU nibV<>(SB), Y14
	VMOVDQU eightsV<>(SB), Y13
	TESTQ R15, R15
	JZ q4rdone
q4rgroup:
	LEAQ (SI)(BX*1), R8
	LEAQ (R8)(BX*1), R9
	LEAQ (R9)(BX*1), R10
	LEAQ (R10)(BX*1), R11
	LEAQ (R11)(BX*1), R12
	LEAQ (R12)(BX*1), R13
	LEAQ (R13)(BX*1), R14
	LEAQ (R14)(BX*1), AX // next group
	MOVQ a+24(FP), DI
	MOVQ nb+32(FP), CX
	VXORPS Y15, Y15, Y15
	PUSHQ SI
q4rloop:
	PREFETCHT0 (AX)
	PREFETCHT0 48(AX)
	PREFETCHT0 96(AX)
	VMOVDQU 2(DI), Y9
	VPXOR Y8, Y8, Y8
	VPDPBUSD Y9, Y13, Y8
	VPXOR Y10, Y10, Y10
	VPSUBD Y8, Y10, Y8
	Q40ROW(SI, Y0)
	Q40ROW(R8, Y1)
	Q40ROW(R9, Y2)
	Q40ROW(R10, Y3)
	Q40ROW(R11, Y4)
	Q40ROW(R12, Y5)
	Q40ROW(R13, Y6)
	Q40ROW(R14, Y7)
	VPHADDD Y1, Y0, Y0
	VPHADDD Y3, Y2, Y2
	VPHADDD Y5, Y4, Y4
	VPHADDD Y7, Y6, Y6
	VPHADDD Y2, Y0, Y0
	VPHADDD Y6, Y4, Y4
	VPERM2I128 $0x20, Y4, Y0, Y1
	VPERM2I128 $0x31, Y4, Y0, Y2
	VPADDD Y2, Y1, Y1
	VCVTDQ2PS Y1, Y1
	VPINSRW $0, (SI), X10, X10
	VPINSRW $1, (R8), X10, X10
	VPINSRW $2, (R9), X10, X10
	VPINSRW $3, (R10), X10, X10
	VPINSRW $4, (R11), X10, X10
	VPINSRW $5, (R12), X10, X10
	VPINSRW $6, (R13), X10, X10
	VPINSRW $7, (R14), X10, X10
	VCVTPH2PS X10, Y10
	VPBROADCASTW (DI), X11
	VCVTPH2PS X11, Y11
	VMULPS Y11, Y10, Y10
	VFMADD231PS Y10, Y1, Y15
	ADDQ $18, SI
	ADDQ $18, R8
	ADDQ $18, R9
	ADDQ $18, R10
	ADDQ $18, R11
	ADDQ $18, R12
	ADDQ $18, R13
	ADDQ $18, R14
	ADDQ $144, AX
	ADDQ $34, DI
	DECQ CX
	JNZ q4rloop
	POPQ SI
	VMOVUPS Y15, (DX)
	ADDQ $32, DX
	LEAQ (SI)(BX*8), SI
	DECQ R15
	JNZ q4rgroup
q4rdone:
	VZEROUPPER
	RET

// Q8PROD(P, ACC0, ACC1): the block of the prepared activation row at P
// (float32 scale, then its 32 codes XOR 0x80, i.e. code+128 unsigned)
// against both weight blocks (codes Y8/Y9, -128*lane sums Y10/Y11,
// scales Y12/Y13): ACCi += (wi.d*a.d) * float(sum of wi*a per lane).
#define Q8PROD(P, ACC0, ACC1) \
	VMOVDQU 4(P), Y14 \
	VMULPS.BCST (P), Y12, Y18 \
	VMOVDQA32 Y10, Y16 \
	VPDPBUSD Y8, Y14, Y16 \
	VCVTDQ2PS Y16, Y16 \
	VFMADD231PS Y16, Y18, ACC0 \
	VMULPS.BCST (P), Y13, Y19 \
	VMOVDQA32 Y11, Y20 \
	VPDPBUSD Y9, Y14, Y20 \
	VCVTDQ2PS Y20, Y20 \
	VFMADD231PS Y20, Y19, ACC1

// func dotQ8_0w2a4VNNI(w0, w1 *byte, a *[4]*byte, nb int, acc *[8]float32)
// Two Q8_0 weight rows times four prepared activation rows (a[p], 36
// bytes per block; see sideQ8_0): acc[4*q+p] is the output of weight row
// q with activation row p, each with dotQ8_0AVX2's lanes, integer sums,
// float steps and hsum8 reduction. The activation side is converted once
// per MatMul; the weight side once per block for all four rows.
TEXT ·dotQ8_0w2a4VNNI(SB), NOSPLIT, $0-40
	MOVQ w0+0(FP), SI
	MOVQ w1+8(FP), R11
	MOVQ a+16(FP), AX
	MOVQ 0(AX), DI
	MOVQ 8(AX), R8
	MOVQ 16(AX), R9
	MOVQ 24(AX), R10
	MOVQ nb+24(FP), CX
	MOVQ acc+32(FP), DX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VPXORD Y21, Y21, Y21
	VMOVDQU signsV<>(SB), Y15
	TESTQ CX, CX
	JZ w2a4done
w2a4loop:
	VMOVDQU 2(SI), Y8
	VMOVDQU 2(R11), Y9
	VPXORD Y10, Y10, Y10
	VPDPBUSD Y8, Y15, Y10
	VPSUBD Y10, Y21, Y10
	VPXORD Y11, Y11, Y11
	VPDPBUSD Y9, Y15, Y11
	VPSUBD Y11, Y21, Y11
	VPBROADCASTW (SI), X12
	VCVTPH2PS X12, Y12
	VPBROADCASTW (R11), X13
	VCVTPH2PS X13, Y13
	Q8PROD(DI, Y0, Y4)
	Q8PROD(R8, Y1, Y5)
	Q8PROD(R9, Y2, Y6)
	Q8PROD(R10, Y3, Y7)
	ADDQ $34, SI
	ADDQ $34, R11
	ADDQ $36, DI
	ADDQ $36, R8
	ADDQ $36, R9
	ADDQ $36, R10
	DECQ CX
	JNZ w2a4loop
w2a4done:
	HSUM8(Y0, X0, X12)
	HSUM8(Y1, X1, X12)
	HSUM8(Y2, X2, X12)
	HSUM8(Y3, X3, X12)
	HSUM8(Y4, X4, X12)
	HSUM8(Y5, X5, X12)
	HSUM8(Y6, X6, X12)
	HSUM8(Y7, X7, X12)
	VMOVSS X0, 0(DX)
	VMOVSS X1, 4(DX)
	VMOVSS X2, 8(DX)
	VMOVSS X3, 12(DX)
	VMOVSS X4, 16(DX)
	VMOVSS X5, 20(DX)
	VMOVSS X6, 24(DX)
	VMOVSS X7, 28(DX)
	VZEROUPPER
	RET
