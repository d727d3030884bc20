// Macros shared by the Q8_0 activation quantizers (actquant_amd64.s,
// actquant_avx2_amd64.s), whose frames both hold bad at 24 and which
// keep 127 in X14, zero in X12 and the sum of x-x in Y13.

// Q8SCALE(AMAX, D, ID, LNZ): from the block's amax, d = amax/127 stored as
// fp16 at (DI) and id = 127/amax (0 when amax is 0) in ID; LNZ is the
// label past the zeroing.
#define Q8SCALE(AMAX, D, ID, LNZ) \
	VDIVSS X14, AMAX, D; \
	VCVTPS2PH $0, D, D; \
	VMOVD D, AX; \
	MOVW AX, (DI); \
	VDIVSS AMAX, X14, ID; \
	VUCOMISS X12, AMAX; \
	JNE LNZ; \
	VXORPS ID, ID, ID; \
LNZ:

// Q8BAD returns whether the sum of x-x (Y13's lanes) is NaN: some element
// was an infinity or NaN.
#define Q8BAD \
	HSUM8(Y13, X13, X0); \
	XORQ AX, AX; \
	VUCOMISS X13, X13; \
	SETPS AL; \
	MOVQ AX, bad+24(FP)
