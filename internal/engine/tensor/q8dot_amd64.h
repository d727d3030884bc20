// Macros shared by the AVX2 Q8_0 and Q4_0 dot kernels (dot_amd64.s,
// multi_amd64.s, repack_q40x4_amd64.s, rows_q8_avx2_amd64.s), with their
// register conventions: weight codes in Y4, activation codes in Y5, the
// 16-bit ones in Y15, the nibble mask in Y14 and the eights in Y13.

// Q40CODES(P, T): the 32 codes of the Q4_0 block at P, minus 8, as signed
// bytes in Y4 (low nibbles in the low half, high ones in the high; T an X
// scratch register).
#define Q40CODES(P, T) \
	VMOVDQU 2(P), X4; \
	VPSRLW $4, X4, T; \
	VINSERTI128 $1, T, Y4, Y4; \
	VPAND Y14, Y4, Y4; \
	VPSUBB Y13, Y4, Y4

// I8SDOT(S): the signed products of the codes Y4 and Y5, in pairs
// (VPMADDUBSW of |Y4| and Y5 signed by Y4), then in fours as dwords, in S
// (Y6, Y7 scratch).
#define I8SDOT(S) \
	VPSIGNB Y4, Y4, Y6; \
	VPSIGNB Y4, Y5, Y7; \
	VPMADDUBSW Y7, Y6, S; \
	VPMADDWD Y15, S, S

// I8DOTW(P, S) is I8SDOT with the activation codes of the Q8_0 block at P.
#define I8DOTW(P, S) \
	VMOVDQU 2(P), Y5; \
	I8SDOT(S)

// Q8W(P, XS, YS, YD, YI, ACC): the Q8_0 weight block at P against the
// activation block (codes in Y5, scale in Y8): its scale widened in XS/YS,
// times the activation's into YD, the exact sums in YI, converted and added
// to ACC by one fused multiply-add.
#define Q8W(P, XS, YS, YD, YI, ACC) \
	VPBROADCASTW (P), XS; \
	VCVTPH2PS XS, YS; \
	VMULPS Y8, YS, YD; \
	VMOVDQU 2(P), Y4; \
	I8SDOT(YI); \
	VCVTDQ2PS YI, YI; \
	VFMADD231PS YI, YD, ACC

// SUMS4ROWS: the eight dword sums of each of four rows (Y8-Y11) added up
// into X8's lanes 0-3 (row p in lane p) and converted to float32.
#define SUMS4ROWS \
	VPHADDD Y9, Y8, Y8; \
	VPHADDD Y11, Y10, Y10; \
	VPHADDD Y10, Y8, Y8; \
	VEXTRACTI128 $1, Y8, X9; \
	VPADDD X9, X8, X8; \
	VCVTDQ2PS X8, X8
