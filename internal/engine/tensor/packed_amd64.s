//go:build !noasm

#include "textflag.h"

// Kernels over packed (row-interleaved) weights; see packed.go.

DATA nibP<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibP<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibP<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibP<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL nibP<>(SB), RODATA|NOPTR, $32

DATA eightsP<>+0(SB)/8, $0x0808080808080808
DATA eightsP<>+8(SB)/8, $0x0808080808080808
DATA eightsP<>+16(SB)/8, $0x0808080808080808
DATA eightsP<>+24(SB)/8, $0x0808080808080808
GLOBL eightsP<>(SB), RODATA|NOPTR, $32

// Q40P(T): the codes of run T of the packed block at SI against the
// activation block at DI: lane q of Y0 += sum of row q's low nibbles times
// activation codes 4T..4T+3, lane q of Y1 += its high nibbles times codes
// 16+4T..16+4T+3 (exact integers).
#define Q40P(T) \
	VMOVDQU (16+32*T)(SI), Y2 \
	VPSRLW $4, Y2, Y3 \
	VPAND Y14, Y2, Y2 \
	VPAND Y14, Y3, Y3 \
	VPDPBUSD.BCST (2+4*T)(DI), Y2, Y0 \
	VPDPBUSD.BCST (18+4*T)(DI), Y3, Y1

// func gemvQ4_0x8PackedVNNI(p *byte, n8 int, a *byte, nb int, out *float32)
// dotQ4_0x8 for the 8*n8 rows of packed Q4_0 weights, one output per lane:
// per block, each row's exact integer sum of (q-8)*a, then one fused
// multiply-add per lane by the product of the scales, in block order.
TEXT ·gemvQ4_0x8PackedVNNI(SB), NOSPLIT, $0-40
	MOVQ p+0(FP), SI
	MOVQ n8+8(FP), R15
	MOVQ out+32(FP), DX
	VMOVDQU nibP<>(SB), Y14
	VMOVDQU eightsP<>(SB), Y13
	TESTQ R15, R15
	JZ q4pdone
q4pgroup:
	MOVQ a+16(FP), DI
	MOVQ nb+24(FP), CX
	VPXORD Y15, Y15, Y15
q4ploop:
	PREFETCHT0 576(SI)
	PREFETCHT0 640(SI)
	PREFETCHT0 704(SI)
	// -8*sum(a) of the block in every lane
	VMOVDQU 2(DI), Y9
	VPXORD Y8, Y8, Y8
	VPDPBUSD Y9, Y13, Y8
	VEXTRACTI128 $1, Y8, X10
	VPADDD X10, X8, X8
	VPSHUFD $0x4e, X8, X10
	VPADDD X10, X8, X8
	VPSHUFD $0xb1, X8, X10
	VPADDD X10, X8, X8
	VPBROADCASTD X8, Y8
	VPXORD Y0, Y0, Y0
	VPXORD Y1, Y1, Y1
	Q40P(0)
	Q40P(1)
	Q40P(2)
	Q40P(3)
	VPADDD Y1, Y0, Y0
	VPSUBD Y8, Y0, Y0
	VCVTDQ2PS Y0, Y0
	VCVTPH2PS (SI), Y4
	VPBROADCASTW (DI), X5
	VCVTPH2PS X5, Y5
	VMULPS Y5, Y4, Y4
	VFMADD231PS Y4, Y0, Y15
	ADDQ $144, SI
	ADDQ $34, DI
	DECQ CX
	JNZ q4ploop
	VMOVUPS Y15, (DX)
	ADDQ $32, DX
	DECQ R15
	JNZ q4pgroup
q4pdone:
	VZEROUPPER
	RET
