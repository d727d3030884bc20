//go:build !noasm

#include "textflag.h"
#include "hsum_amd64.h"
#include "q8quant_amd64.h"

// AVX2 Q8_0 activation quantizer (quantizeQ8_0's arithmetic, as
// quantQ8_0AVX512): per block of 32, amax = max |x|, d = amax/127 stored
// as fp16 (VCVTPS2PH, round to nearest even), id = 127/amax (0 when amax
// is 0), q = x*id rounded to nearest even (VCVTPS2DQ) and narrowed to
// int8 (|q| <= 127: the saturating packs do not saturate). Blocks holding
// an infinity or NaN are reported (nonzero result) and redone by the
// generic code.

DATA absMaskQ2<>+0(SB)/4, $0x7fffffff
GLOBL absMaskQ2<>(SB), RODATA|NOPTR, $4
DATA c127Q2<>+0(SB)/4, $0x42fe0000
GLOBL c127Q2<>(SB), RODATA|NOPTR, $4
DATA packIdxQ2<>+0(SB)/4, $0
DATA packIdxQ2<>+4(SB)/4, $4
DATA packIdxQ2<>+8(SB)/4, $1
DATA packIdxQ2<>+12(SB)/4, $5
DATA packIdxQ2<>+16(SB)/4, $2
DATA packIdxQ2<>+20(SB)/4, $6
DATA packIdxQ2<>+24(SB)/4, $3
DATA packIdxQ2<>+28(SB)/4, $7
GLOBL packIdxQ2<>(SB), RODATA|NOPTR, $32

// PACK32: the 32 scaled values in Y0-Y3 rounded to nearest even
// (VCVTPS2DQ) and narrowed to int8 in order in Y0 (packIdxQ2 in Y11).
#define PACK32 \
	VCVTPS2DQ Y0, Y0; \
	VCVTPS2DQ Y1, Y1; \
	VCVTPS2DQ Y2, Y2; \
	VCVTPS2DQ Y3, Y3; \
	VPACKSSDW Y1, Y0, Y0; \
	VPACKSSDW Y3, Y2, Y2; \
	VPACKSSWB Y2, Y0, Y0; \
	VPERMD Y0, Y11, Y0

// func quantQ8_0AVX2(x *float32, dst *byte, nb int) (bad int)
TEXT ·quantQ8_0AVX2(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ dst+8(FP), DI
	MOVQ nb+16(FP), CX
	VBROADCASTSS absMaskQ2<>(SB), Y15
	VMOVSS c127Q2<>(SB), X14
	VMOVDQU packIdxQ2<>(SB), Y11
	VXORPS Y13, Y13, Y13 // x-x summed: NaN iff an element was Inf or NaN
	VXORPS X12, X12, X12
	TESTQ CX, CX
	JZ q2done
q2loop:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	VSUBPS Y0, Y0, Y4
	VADDPS Y4, Y13, Y13
	VSUBPS Y1, Y1, Y4
	VADDPS Y4, Y13, Y13
	VSUBPS Y2, Y2, Y4
	VADDPS Y4, Y13, Y13
	VSUBPS Y3, Y3, Y4
	VADDPS Y4, Y13, Y13
	VANDPS Y15, Y0, Y4
	VANDPS Y15, Y1, Y5
	VANDPS Y15, Y2, Y6
	VANDPS Y15, Y3, Y7
	VMAXPS Y5, Y4, Y4
	VMAXPS Y7, Y6, Y6
	VMAXPS Y6, Y4, Y4
	HMAX8(Y4, X4, X5) // amax
	Q8SCALE(X4, X6, X5, q2nz)
	VBROADCASTSS X5, Y5
	VMULPS Y5, Y0, Y0
	VMULPS Y5, Y1, Y1
	VMULPS Y5, Y2, Y2
	VMULPS Y5, Y3, Y3
	PACK32
	VMOVDQU Y0, 2(DI)
	ADDQ $128, SI
	ADDQ $34, DI
	DECQ CX
	JNZ q2loop
q2done:
	Q8BAD
	VZEROUPPER
	RET

// func absMaxQ8KAVX2(x *float32) (amax float32, idx int)
// absMax of one 256-element Q8_K block: the largest |x| (NaNs ignored, as
// the generic comparison ignores them) and the index of the first element
// of that magnitude (0 when there is none, e.g. an all-NaN block).
TEXT ·absMaxQ8KAVX2(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	VBROADCASTSS absMaskQ2<>(SB), Y15
	VXORPS Y0, Y0, Y0
	XORQ BX, BX
amax2loop:
	VANDPS (SI)(BX*4), Y15, Y1
	VMAXPS Y0, Y1, Y0 // NaN in Y1: keeps Y0
	ADDQ $8, BX
	CMPQ BX, $256
	JB amax2loop
	HMAX8(Y0, X0, X1)
	VMOVSS X0, amax+8(FP)
	VBROADCASTSS X0, Y2
	XORQ BX, BX
find2loop:
	VANDPS (SI)(BX*4), Y15, Y1
	VCMPPS $0, Y2, Y1, Y1
	VMOVMSKPS Y1, AX
	TESTL AX, AX
	JNZ found2
	ADDQ $8, BX
	CMPQ BX, $256
	JB find2loop
	XORQ BX, BX
	JMP amax2done
found2:
	TZCNTL AX, AX
	ADDQ AX, BX
amax2done:
	MOVQ BX, idx+16(FP)
	VZEROUPPER
	RET

// func quantQ8KCodesAVX2(x *float32, qs *byte, iscale float32)
// The 256 codes of a Q8_K block: iscale*x rounded to nearest even and
// narrowed to int8 with signed saturation (finite iscale*x within
// [-127.5, 127.5], where that is roundEven32).
TEXT ·quantQ8KCodesAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ qs+8(FP), DI
	VBROADCASTSS iscale+16(FP), Y5
	VMOVDQU packIdxQ2<>(SB), Y11
	MOVQ $8, CX
codes2loop:
	VMULPS (SI), Y5, Y0
	VMULPS 32(SI), Y5, Y1
	VMULPS 64(SI), Y5, Y2
	VMULPS 96(SI), Y5, Y3
	PACK32
	VMOVDQU Y0, (DI)
	ADDQ $128, SI
	ADDQ $32, DI
	DECQ CX
	JNZ codes2loop
	VZEROUPPER
	RET
