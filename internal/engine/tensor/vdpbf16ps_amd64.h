// VDPBF16PS_Z(src2, src1, dst) is VDPBF16PS zmm_dst, zmm_src1,
// zmm_src2 (Intel order; EVEX.512.F3.0F38.W0 52 /r, no mask, register
// operands only), which Go's assembler does not know, as six bytes:
// 0x62, P0 (R, X, B, R' inverted; map 0F38), P1 (W0, vvvv = ~src1, pp =
// F3), P2 (L'L = 512, V' = ~src1 bit 4), the opcode, ModRM (11, dst,
// src2). The arguments are register numbers (0-31), not names;
// TestVDPBF16PSEncoding checks every use against binutils.
#define VDPBF16PS_Z(src2, src1, dst) \
	BYTE $0x62; \
	BYTE $(((((dst)>>3)&1)^1)<<7 | ((((src2)>>4)&1)^1)<<6 | ((((src2)>>3)&1)^1)<<5 | ((((dst)>>4)&1)^1)<<4 | 2); \
	BYTE $((((src1)&15)^15)<<3 | 6); \
	BYTE $(0x40 | ((((src1)>>4)&1)^1)<<3); \
	BYTE $0x52; \
	BYTE $(0xc0 | ((dst)&7)<<3 | ((src2)&7))
