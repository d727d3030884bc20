//go:build !noasm

#include "textflag.h"
#include "hsum_amd64.h"
#include "q8quant_amd64.h"

// AVX-512 activation quantizer (quantizeQ8_0's arithmetic): per block of
// 32, amax = max |x|, d = amax/127 stored as fp16 (VCVTPS2PH, round to
// nearest even), id = 127/amax (0 when amax is 0), q = x*id rounded to
// nearest even (VCVTPS2DQ under the default MXCSR) and narrowed to int8
// with signed saturation. Blocks holding an infinity or NaN are reported
// (the return value is nonzero) and redone by the generic code.

DATA absMaskQ<>+0(SB)/4, $0x7fffffff
GLOBL absMaskQ<>(SB), RODATA|NOPTR, $4
DATA c127Q<>+0(SB)/4, $0x42fe0000
GLOBL c127Q<>(SB), RODATA|NOPTR, $4

// func quantQ8_0AVX512(x *float32, dst *byte, nb int) (bad int)
TEXT ·quantQ8_0AVX512(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ dst+8(FP), DI
	MOVQ nb+16(FP), CX
	VBROADCASTSS absMaskQ<>(SB), Z15
	VMOVSS c127Q<>(SB), X14
	VPXORD Z13, Z13, Z13 // x-x summed: NaN iff an element was Inf or NaN
	VXORPS X12, X12, X12
	TESTQ CX, CX
	JZ qdone
qloop:
	VMOVUPS (SI), Z0
	VMOVUPS 64(SI), Z1
	VSUBPS Z0, Z0, Z2
	VADDPS Z2, Z13, Z13
	VSUBPS Z1, Z1, Z2
	VADDPS Z2, Z13, Z13
	VPANDD Z15, Z0, Z2
	VPANDD Z15, Z1, Z3
	VMAXPS Z3, Z2, Z2
	VEXTRACTF64X4 $1, Z2, Y3
	VMAXPS Y3, Y2, Y2
	HMAX8(Y2, X2, X3) // amax
	Q8SCALE(X2, X4, X5, qnz)
	VBROADCASTSS X5, Z5
	VMULPS Z5, Z0, Z0
	VMULPS Z5, Z1, Z1
	VCVTPS2DQ Z0, Z0
	VCVTPS2DQ Z1, Z1
	VPMOVSDB Z0, 2(DI)
	VPMOVSDB Z1, 18(DI)
	ADDQ $128, SI
	ADDQ $34, DI
	DECQ CX
	JNZ qloop
qdone:
	VEXTRACTF64X4 $1, Z13, Y0
	VADDPS Y0, Y13, Y13
	Q8BAD
	VZEROUPPER
	RET

// func absMaxQ8KAVX512(x *float32) (amax float32, idx int)
// absMax of one 256-element Q8_K block: the largest |x| (NaNs ignored, as
// the generic comparison ignores them) and the index of the first element
// of that magnitude (0 when there is none, e.g. an all-NaN block).
TEXT ·absMaxQ8KAVX512(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	VBROADCASTSS absMaskQ<>(SB), Z15
	VPXORD Z0, Z0, Z0
	XORQ BX, BX
amaxloop:
	VPANDD (SI)(BX*4), Z15, Z1
	VMAXPS Z0, Z1, Z0 // NaN in Z1: keeps Z0
	ADDQ $16, BX
	CMPQ BX, $256
	JB amaxloop
	VEXTRACTF64X4 $1, Z0, Y1
	VMAXPS Y1, Y0, Y0
	HMAX8(Y0, X0, X1)
	VMOVSS X0, amax+8(FP)
	VBROADCASTSS X0, Z2
	XORQ BX, BX
findloop:
	VPANDD (SI)(BX*4), Z15, Z1
	VCMPPS $0, Z2, Z1, K1
	KMOVW K1, AX
	TESTL AX, AX
	JNZ found
	ADDQ $16, BX
	CMPQ BX, $256
	JB findloop
	XORQ BX, BX
	JMP amaxdone
found:
	TZCNTL AX, AX
	ADDQ AX, BX
amaxdone:
	MOVQ BX, idx+16(FP)
	VZEROUPPER
	RET

// func quantQ8KCodesAVX512(x *float32, qs *byte, iscale float32)
// The 256 codes of a Q8_K block: iscale*x rounded to nearest even and
// narrowed to int8 with signed saturation (finite iscale*x within
// [-127.5, 127.5], where that is roundEven32).
TEXT ·quantQ8KCodesAVX512(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ qs+8(FP), DI
	VBROADCASTSS iscale+16(FP), Z3
	XORQ BX, BX
codesloop:
	VMULPS (SI)(BX*4), Z3, Z1
	VCVTPS2DQ Z1, Z1
	VPMOVSDB Z1, (DI)(BX*1)
	ADDQ $16, BX
	CMPQ BX, $256
	JB codesloop
	VZEROUPPER
	RET
