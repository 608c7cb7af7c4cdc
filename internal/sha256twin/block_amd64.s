//go:build amd64 && !purego

#include "textflag.h"

// The round constants, four per 16-byte row (one row per four rounds).
DATA k256<>+0(SB)/8, $0x71374491428a2f98
DATA k256<>+8(SB)/8, $0xe9b5dba5b5c0fbcf
DATA k256<>+16(SB)/8, $0x59f111f13956c25b
DATA k256<>+24(SB)/8, $0xab1c5ed5923f82a4
DATA k256<>+32(SB)/8, $0x12835b01d807aa98
DATA k256<>+40(SB)/8, $0x550c7dc3243185be
DATA k256<>+48(SB)/8, $0x80deb1fe72be5d74
DATA k256<>+56(SB)/8, $0xc19bf1749bdc06a7
DATA k256<>+64(SB)/8, $0xefbe4786e49b69c1
DATA k256<>+72(SB)/8, $0x240ca1cc0fc19dc6
DATA k256<>+80(SB)/8, $0x4a7484aa2de92c6f
DATA k256<>+88(SB)/8, $0x76f988da5cb0a9dc
DATA k256<>+96(SB)/8, $0xa831c66d983e5152
DATA k256<>+104(SB)/8, $0xbf597fc7b00327c8
DATA k256<>+112(SB)/8, $0xd5a79147c6e00bf3
DATA k256<>+120(SB)/8, $0x1429296706ca6351
DATA k256<>+128(SB)/8, $0x2e1b213827b70a85
DATA k256<>+136(SB)/8, $0x53380d134d2c6dfc
DATA k256<>+144(SB)/8, $0x766a0abb650a7354
DATA k256<>+152(SB)/8, $0x92722c8581c2c92e
DATA k256<>+160(SB)/8, $0xa81a664ba2bfe8a1
DATA k256<>+168(SB)/8, $0xc76c51a3c24b8b70
DATA k256<>+176(SB)/8, $0xd6990624d192e819
DATA k256<>+184(SB)/8, $0x106aa070f40e3585
DATA k256<>+192(SB)/8, $0x1e376c0819a4c116
DATA k256<>+200(SB)/8, $0x34b0bcb52748774c
DATA k256<>+208(SB)/8, $0x4ed8aa4a391c0cb3
DATA k256<>+216(SB)/8, $0x682e6ff35b9cca4f
DATA k256<>+224(SB)/8, $0x78a5636f748f82ee
DATA k256<>+232(SB)/8, $0x8cc7020884c87814
DATA k256<>+240(SB)/8, $0xa4506ceb90befffa
DATA k256<>+248(SB)/8, $0xc67178f2bef9a3f7
GLOBL k256<>(SB), RODATA|NOPTR, $256

// PSHUFB mask turning each big-endian message word into a lane.
DATA bswap32<>+0(SB)/8, $0x0405060700010203
DATA bswap32<>+8(SB)/8, $0x0c0d0e0f08090a0b
GLOBL bswap32<>(SB), RODATA|NOPTR, $16

// Four rounds of both chains: X0 = message words + constants; chain A is X1 (ABEF) and
// X2 (CDGH), chain B is X3 and X4. SHA256RNDS2 leaves the new ABEF in its destination and
// the old ABEF is the new CDGH, so after four rounds the registers hold their roles again.
// The two chains are independent, so the CPU overlaps them.
#define ROUNDS4(msg, koff) \
	MOVOU       koff(AX), X0; \
	PADDD       msg, X0; \
	SHA256RNDS2 X0, X1, X2; \
	SHA256RNDS2 X0, X3, X4; \
	PSHUFD      $0x0e, X0, X0; \
	SHA256RNDS2 X0, X2, X1; \
	SHA256RNDS2 X0, X4, X3

// The next four message words into m0, from the sixteen before them:
// W[t] = W[t-16] + s0(W[t-15]) + W[t-7] + s1(W[t-2]), with m0..m3 = W[t-16..t-1].
#define SCHEDULE(m0, m1, m2, m3) \
	SHA256MSG1 m1, m0; \
	MOVO       m3, X9; \
	PALIGNR    $4, m2, X9; \
	PADDD      X9, m0; \
	SHA256MSG2 m3, m0

// func blockTwin(a, b *state, p []byte)
TEXT ·blockTwin(SB), NOSPLIT, $0-40
	MOVQ  a+0(FP), DI
	MOVQ  b+8(FP), R8
	MOVQ  p_base+16(FP), SI
	MOVQ  p_len+24(FP), DX
	ANDQ  $~63, DX
	TESTQ DX, DX
	JZ    done
	ADDQ  SI, DX
	MOVOU (DI), X1
	MOVOU 16(DI), X2
	MOVOU (R8), X3
	MOVOU 16(R8), X4
	MOVOU bswap32<>(SB), X15
	LEAQ  k256<>(SB), AX

loop:
	MOVO X1, X11
	MOVO X2, X12
	MOVO X3, X13
	MOVO X4, X14

	MOVOU  (SI), X5
	PSHUFB X15, X5
	MOVOU  16(SI), X6
	PSHUFB X15, X6
	MOVOU  32(SI), X7
	PSHUFB X15, X7
	MOVOU  48(SI), X8
	PSHUFB X15, X8

	ROUNDS4(X5, 0)
	ROUNDS4(X6, 16)
	ROUNDS4(X7, 32)
	ROUNDS4(X8, 48)
	SCHEDULE(X5, X6, X7, X8)
	ROUNDS4(X5, 64)
	SCHEDULE(X6, X7, X8, X5)
	ROUNDS4(X6, 80)
	SCHEDULE(X7, X8, X5, X6)
	ROUNDS4(X7, 96)
	SCHEDULE(X8, X5, X6, X7)
	ROUNDS4(X8, 112)
	SCHEDULE(X5, X6, X7, X8)
	ROUNDS4(X5, 128)
	SCHEDULE(X6, X7, X8, X5)
	ROUNDS4(X6, 144)
	SCHEDULE(X7, X8, X5, X6)
	ROUNDS4(X7, 160)
	SCHEDULE(X8, X5, X6, X7)
	ROUNDS4(X8, 176)
	SCHEDULE(X5, X6, X7, X8)
	ROUNDS4(X5, 192)
	SCHEDULE(X6, X7, X8, X5)
	ROUNDS4(X6, 208)
	SCHEDULE(X7, X8, X5, X6)
	ROUNDS4(X7, 224)
	SCHEDULE(X8, X5, X6, X7)
	ROUNDS4(X8, 240)

	PADDD X11, X1
	PADDD X12, X2
	PADDD X13, X3
	PADDD X14, X4
	ADDQ  $64, SI
	CMPQ  SI, DX
	JB    loop

	MOVOU X1, (DI)
	MOVOU X2, 16(DI)
	MOVOU X3, (R8)
	MOVOU X4, 16(R8)

done:
	RET

// func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL leaf+0(FP), AX
	MOVL sub+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET
