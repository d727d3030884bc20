//go:build !noasm

#include "textflag.h"

// func prefetchRowsT0(p *uint16, stride, rows, lines int)
// PREFETCHT0 of lines 64-byte lines at each of rows rows, stride bytes
// apart (rows, lines > 0).
TEXT ·prefetchRowsT0(SB), NOSPLIT, $0-32
	MOVQ p+0(FP), SI
	MOVQ stride+8(FP), R8
	MOVQ rows+16(FP), CX
	MOVQ lines+24(FP), R9
prow:
	MOVQ SI, DI
	MOVQ R9, BX
pline:
	PREFETCHT0 (DI)
	ADDQ $64, DI
	DECQ BX
	JNZ pline
	ADDQ R8, SI
	DECQ CX
	JNZ prow
	RET
