//go:build amd64

#include "textflag.h"

// AVX2+FMA kernels for the attention softmax and the SwiGLU and GeGLU
// activations, shared by every model family (model/llama, model/opt,
// model/gemma).
// Every function takes slices whose length is a positive multiple of 8; the
// Go wrappers in vec.go handle tails. The exponential is expf's algorithm
// (Expf in exp.go) on 8 lanes: inputs below -87.3 give 0, inputs are clamped to
// 88.37 (so 2^n stays finite), NaN stays NaN, n = round-to-even(x·log2e)
// instead of round-half-away (only exact ties differ; r stays within
// ±ln2/2), and the polynomial is evaluated with fused multiply-adds.

// EXP8 overwrites Y0 with exp(Y0). Needs Y14 = expLo and Y13 = expHi;
// clobbers Y1, Y2, Y3.
#define EXP8 \
	VCMPPS       $1, Y14, Y0, Y3; \
	VMAXPS       Y0, Y14, Y0; \
	VMINPS       Y0, Y13, Y0; \
	VMULPS       expLog2e<>(SB), Y0, Y1; \
	VROUNDPS     $0, Y1, Y1; \
	VFNMADD231PS expLn2Hi<>(SB), Y1, Y0; \
	VFNMADD231PS expLn2Lo<>(SB), Y1, Y0; \
	VMOVUPS      expC7<>(SB), Y2; \
	VFMADD213PS  expC6<>(SB), Y0, Y2; \
	VFMADD213PS  expC5<>(SB), Y0, Y2; \
	VFMADD213PS  expC4<>(SB), Y0, Y2; \
	VFMADD213PS  expC3<>(SB), Y0, Y2; \
	VFMADD213PS  expC2<>(SB), Y0, Y2; \
	VFMADD213PS  expOne<>(SB), Y0, Y2; \
	VFMADD213PS  expOne<>(SB), Y0, Y2; \
	VCVTPS2DQ    Y1, Y1; \
	VPSLLD       $23, Y1, Y1; \
	VPADDD       expOne<>(SB), Y1, Y1; \
	VMULPS       Y1, Y2, Y0; \
	VANDNPS      Y0, Y3, Y0

// func maxAVX2(x []float32) float32
TEXT ·maxAVX2(SB), NOSPLIT, $0-28
	MOVQ    x_base+0(FP), SI
	MOVQ    x_len+8(FP), CX
	VMOVUPS (SI), Y0
	ADDQ    $32, SI
	SUBQ    $8, CX
	JLE     max_done

max_loop:
	VMAXPS (SI), Y0, Y0
	ADDQ   $32, SI
	SUBQ   $8, CX
	JG     max_loop

max_done:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0x4e, X0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VMAXPS       X1, X0, X0
	VZEROUPPER
	MOVSS        X0, ret+24(FP)
	RET

// func expSubSumAVX2(x []float32, m float32) float32
TEXT ·expSubSumAVX2(SB), NOSPLIT, $0-36
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), CX
	VBROADCASTSS m+24(FP), Y15
	VMOVUPS      expLo<>(SB), Y14
	VMOVUPS      expHi<>(SB), Y13
	VXORPS       Y4, Y4, Y4

exp_loop:
	VMOVUPS (SI), Y0
	VSUBPS  Y15, Y0, Y0
	EXP8
	VMOVUPS Y0, (SI)
	VADDPS  Y0, Y4, Y4
	ADDQ    $32, SI
	SUBQ    $8, CX
	JG      exp_loop

	VEXTRACTF128 $1, Y4, X1
	VADDPS       X1, X4, X4
	VPERMILPS    $0x4e, X4, X1
	VADDPS       X1, X4, X4
	VPERMILPS    $0xb1, X4, X1
	VADDPS       X1, X4, X4
	VZEROUPPER
	MOVSS        X4, ret+32(FP)
	RET

// func scaleAVX2(x []float32, s float32)
TEXT ·scaleAVX2(SB), NOSPLIT, $0-28
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), CX
	VBROADCASTSS s+24(FP), Y15

scale_loop:
	VMULPS  (SI), Y15, Y0
	VMOVUPS Y0, (SI)
	ADDQ    $32, SI
	SUBQ    $8, CX
	JG      scale_loop
	VZEROUPPER
	RET

// func siluMulAVX2(g, u []float32)
TEXT ·siluMulAVX2(SB), NOSPLIT, $0-48
	MOVQ    g_base+0(FP), DI
	MOVQ    g_len+8(FP), CX
	MOVQ    u_base+24(FP), SI
	VMOVUPS expLo<>(SB), Y14
	VMOVUPS expHi<>(SB), Y13
	VMOVUPS expOne<>(SB), Y12
	VXORPS  Y11, Y11, Y11

silu_loop:
	VMOVUPS (DI), Y5
	VSUBPS  Y5, Y11, Y0
	EXP8
	VADDPS  Y12, Y0, Y0
	VDIVPS  Y0, Y5, Y0
	VMULPS  (SI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	SUBQ    $8, CX
	JG      silu_loop
	VZEROUPPER
	RET

// func geluMulAVX2(g, u []float32)
// g[i] = x/(1+exp(x·(c1 + c2·x²)))·u[i] with x = g[i], c1 = -2·sqrt(2/π),
// c2 = -2·sqrt(2/π)·0.044715: gelu_tanh(x)·u[i].
TEXT ·geluMulAVX2(SB), NOSPLIT, $0-48
	MOVQ    g_base+0(FP), DI
	MOVQ    g_len+8(FP), CX
	MOVQ    u_base+24(FP), SI
	VMOVUPS expLo<>(SB), Y14
	VMOVUPS expHi<>(SB), Y13
	VMOVUPS expOne<>(SB), Y12
	VMOVUPS geluC1<>(SB), Y11
	VMOVUPS geluC2<>(SB), Y10

gelu_loop:
	VMOVUPS     (DI), Y5
	VMULPS      Y5, Y5, Y6
	VFMADD213PS Y11, Y10, Y6
	VMULPS      Y6, Y5, Y0
	EXP8
	VADDPS      Y12, Y0, Y0
	VDIVPS      Y0, Y5, Y0
	VMULPS      (SI), Y0, Y0
	VMOVUPS     Y0, (DI)
	ADDQ        $32, DI
	ADDQ        $32, SI
	SUBQ        $8, CX
	JG          gelu_loop
	VZEROUPPER
	RET

// Constants, each a float32 (or int32) replicated over 8 lanes.

// expLog2e: log2(e) = float32(1.44269504088896341), 8 lanes.
DATA expLog2e<>+0(SB)/4, $0x3fb8aa3b
DATA expLog2e<>+4(SB)/4, $0x3fb8aa3b
DATA expLog2e<>+8(SB)/4, $0x3fb8aa3b
DATA expLog2e<>+12(SB)/4, $0x3fb8aa3b
DATA expLog2e<>+16(SB)/4, $0x3fb8aa3b
DATA expLog2e<>+20(SB)/4, $0x3fb8aa3b
DATA expLog2e<>+24(SB)/4, $0x3fb8aa3b
DATA expLog2e<>+28(SB)/4, $0x3fb8aa3b
GLOBL expLog2e<>(SB), RODATA|NOPTR, $32

// expLn2Hi: ln2, high part (exact in float32) = float32(0.693359375), 8 lanes.
DATA expLn2Hi<>+0(SB)/4, $0x3f318000
DATA expLn2Hi<>+4(SB)/4, $0x3f318000
DATA expLn2Hi<>+8(SB)/4, $0x3f318000
DATA expLn2Hi<>+12(SB)/4, $0x3f318000
DATA expLn2Hi<>+16(SB)/4, $0x3f318000
DATA expLn2Hi<>+20(SB)/4, $0x3f318000
DATA expLn2Hi<>+24(SB)/4, $0x3f318000
DATA expLn2Hi<>+28(SB)/4, $0x3f318000
GLOBL expLn2Hi<>(SB), RODATA|NOPTR, $32

// expLn2Lo: ln2 - expLn2Hi = float32(-2.12194440e-4), 8 lanes.
DATA expLn2Lo<>+0(SB)/4, $0xb95e8083
DATA expLn2Lo<>+4(SB)/4, $0xb95e8083
DATA expLn2Lo<>+8(SB)/4, $0xb95e8083
DATA expLn2Lo<>+12(SB)/4, $0xb95e8083
DATA expLn2Lo<>+16(SB)/4, $0xb95e8083
DATA expLn2Lo<>+20(SB)/4, $0xb95e8083
DATA expLn2Lo<>+24(SB)/4, $0xb95e8083
DATA expLn2Lo<>+28(SB)/4, $0xb95e8083
GLOBL expLn2Lo<>(SB), RODATA|NOPTR, $32

// expLo: below this exp returns 0 (expf) = float32(-87.3), 8 lanes.
DATA expLo<>+0(SB)/4, $0xc2ae999a
DATA expLo<>+4(SB)/4, $0xc2ae999a
DATA expLo<>+8(SB)/4, $0xc2ae999a
DATA expLo<>+12(SB)/4, $0xc2ae999a
DATA expLo<>+16(SB)/4, $0xc2ae999a
DATA expLo<>+20(SB)/4, $0xc2ae999a
DATA expLo<>+24(SB)/4, $0xc2ae999a
DATA expLo<>+28(SB)/4, $0xc2ae999a
GLOBL expLo<>(SB), RODATA|NOPTR, $32

// expHi: inputs are clamped here so 2^n stays finite (n <= 127) = float32(88.37), 8 lanes.
DATA expHi<>+0(SB)/4, $0x42b0bd71
DATA expHi<>+4(SB)/4, $0x42b0bd71
DATA expHi<>+8(SB)/4, $0x42b0bd71
DATA expHi<>+12(SB)/4, $0x42b0bd71
DATA expHi<>+16(SB)/4, $0x42b0bd71
DATA expHi<>+20(SB)/4, $0x42b0bd71
DATA expHi<>+24(SB)/4, $0x42b0bd71
DATA expHi<>+28(SB)/4, $0x42b0bd71
GLOBL expHi<>(SB), RODATA|NOPTR, $32

// expC7: 1/7! = float32(1.0/5040), 8 lanes.
DATA expC7<>+0(SB)/4, $0x39500d01
DATA expC7<>+4(SB)/4, $0x39500d01
DATA expC7<>+8(SB)/4, $0x39500d01
DATA expC7<>+12(SB)/4, $0x39500d01
DATA expC7<>+16(SB)/4, $0x39500d01
DATA expC7<>+20(SB)/4, $0x39500d01
DATA expC7<>+24(SB)/4, $0x39500d01
DATA expC7<>+28(SB)/4, $0x39500d01
GLOBL expC7<>(SB), RODATA|NOPTR, $32

// expC6: 1/6! = float32(1.0/720), 8 lanes.
DATA expC6<>+0(SB)/4, $0x3ab60b61
DATA expC6<>+4(SB)/4, $0x3ab60b61
DATA expC6<>+8(SB)/4, $0x3ab60b61
DATA expC6<>+12(SB)/4, $0x3ab60b61
DATA expC6<>+16(SB)/4, $0x3ab60b61
DATA expC6<>+20(SB)/4, $0x3ab60b61
DATA expC6<>+24(SB)/4, $0x3ab60b61
DATA expC6<>+28(SB)/4, $0x3ab60b61
GLOBL expC6<>(SB), RODATA|NOPTR, $32

// expC5: 1/5! = float32(1.0/120), 8 lanes.
DATA expC5<>+0(SB)/4, $0x3c088889
DATA expC5<>+4(SB)/4, $0x3c088889
DATA expC5<>+8(SB)/4, $0x3c088889
DATA expC5<>+12(SB)/4, $0x3c088889
DATA expC5<>+16(SB)/4, $0x3c088889
DATA expC5<>+20(SB)/4, $0x3c088889
DATA expC5<>+24(SB)/4, $0x3c088889
DATA expC5<>+28(SB)/4, $0x3c088889
GLOBL expC5<>(SB), RODATA|NOPTR, $32

// expC4: 1/4! = float32(1.0/24), 8 lanes.
DATA expC4<>+0(SB)/4, $0x3d2aaaab
DATA expC4<>+4(SB)/4, $0x3d2aaaab
DATA expC4<>+8(SB)/4, $0x3d2aaaab
DATA expC4<>+12(SB)/4, $0x3d2aaaab
DATA expC4<>+16(SB)/4, $0x3d2aaaab
DATA expC4<>+20(SB)/4, $0x3d2aaaab
DATA expC4<>+24(SB)/4, $0x3d2aaaab
DATA expC4<>+28(SB)/4, $0x3d2aaaab
GLOBL expC4<>(SB), RODATA|NOPTR, $32

// expC3: 1/3! = float32(1.0/6), 8 lanes.
DATA expC3<>+0(SB)/4, $0x3e2aaaab
DATA expC3<>+4(SB)/4, $0x3e2aaaab
DATA expC3<>+8(SB)/4, $0x3e2aaaab
DATA expC3<>+12(SB)/4, $0x3e2aaaab
DATA expC3<>+16(SB)/4, $0x3e2aaaab
DATA expC3<>+20(SB)/4, $0x3e2aaaab
DATA expC3<>+24(SB)/4, $0x3e2aaaab
DATA expC3<>+28(SB)/4, $0x3e2aaaab
GLOBL expC3<>(SB), RODATA|NOPTR, $32

// expC2: 1/2! = float32(0.5), 8 lanes.
DATA expC2<>+0(SB)/4, $0x3f000000
DATA expC2<>+4(SB)/4, $0x3f000000
DATA expC2<>+8(SB)/4, $0x3f000000
DATA expC2<>+12(SB)/4, $0x3f000000
DATA expC2<>+16(SB)/4, $0x3f000000
DATA expC2<>+20(SB)/4, $0x3f000000
DATA expC2<>+24(SB)/4, $0x3f000000
DATA expC2<>+28(SB)/4, $0x3f000000
GLOBL expC2<>(SB), RODATA|NOPTR, $32

// expOne: 1; also 127<<23, the exponent bias = float32(1.0), 8 lanes.
DATA expOne<>+0(SB)/4, $0x3f800000
DATA expOne<>+4(SB)/4, $0x3f800000
DATA expOne<>+8(SB)/4, $0x3f800000
DATA expOne<>+12(SB)/4, $0x3f800000
DATA expOne<>+16(SB)/4, $0x3f800000
DATA expOne<>+20(SB)/4, $0x3f800000
DATA expOne<>+24(SB)/4, $0x3f800000
DATA expOne<>+28(SB)/4, $0x3f800000
GLOBL expOne<>(SB), RODATA|NOPTR, $32

// geluC1: -2·sqrt(2/π) = float32(-1.5957691216057308), 8 lanes.
DATA geluC1<>+0(SB)/4, $0xbfcc422a
DATA geluC1<>+4(SB)/4, $0xbfcc422a
DATA geluC1<>+8(SB)/4, $0xbfcc422a
DATA geluC1<>+12(SB)/4, $0xbfcc422a
DATA geluC1<>+16(SB)/4, $0xbfcc422a
DATA geluC1<>+20(SB)/4, $0xbfcc422a
DATA geluC1<>+24(SB)/4, $0xbfcc422a
DATA geluC1<>+28(SB)/4, $0xbfcc422a
GLOBL geluC1<>(SB), RODATA|NOPTR, $32

// geluC2: -2·sqrt(2/π)·0.044715 = float32(-0.07135481627260025), 8 lanes.
DATA geluC2<>+0(SB)/4, $0xbd922279
DATA geluC2<>+4(SB)/4, $0xbd922279
DATA geluC2<>+8(SB)/4, $0xbd922279
DATA geluC2<>+12(SB)/4, $0xbd922279
DATA geluC2<>+16(SB)/4, $0xbd922279
DATA geluC2<>+20(SB)/4, $0xbd922279
DATA geluC2<>+24(SB)/4, $0xbd922279
DATA geluC2<>+28(SB)/4, $0xbd922279
GLOBL geluC2<>(SB), RODATA|NOPTR, $32
