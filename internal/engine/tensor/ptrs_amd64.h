// PTRS4(R0, R1, R2, R3) loads the four pointers of the array at AX (an
// a *[4]*byte argument) into R0-R3, as the kernels over four rows given
// by address begin.
#define PTRS4(R0, R1, R2, R3) \
	MOVQ 0(AX), R0; \
	MOVQ 8(AX), R1; \
	MOVQ 16(AX), R2; \
	MOVQ 24(AX), R3
