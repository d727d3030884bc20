// Macros shared by the AVX2 kernels over packed weights
// (packed_q40_amd64.s, packed_q4k_amd64.s): eight rows' codes sit in the
// dword lanes of a run, split into nibbles (the mask 0x0f in Y15) and
// multiplied unsigned with broadcast activation codes into int16 lanes.

// NIB(OFF): the run at OFF(SI) split into low (Y9) and high (Y10) nibbles.
#define NIB(OFF) \
	VMOVDQU OFF(SI), Y8 \
	VPSRLW $4, Y8, Y10 \
	VPAND Y15, Y8, Y9 \
	VPAND Y15, Y10, Y10

// PROD(A, LO, HI, ACCL, ACCH): products of the low nibbles with the four
// codes at LO(A) into ACCL, of the high ones with those at HI(A) into ACCH.
#define PROD(A, LO, HI, ACCL, ACCH) \
	VPBROADCASTD LO(A), Y11 \
	VPMADDUBSW Y11, Y9, Y11 \
	VPADDW Y11, ACCL, ACCL \
	VPBROADCASTD HI(A), Y12 \
	VPMADDUBSW Y12, Y10, Y12 \
	VPADDW Y12, ACCH, ACCH
