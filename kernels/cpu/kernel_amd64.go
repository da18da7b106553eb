package cpu

import "golang.org/x/sys/cpu"

// kernAVX2 is the 6×16 micro-kernel in AVX2+FMA assembly (kernel_amd64.s).
//
//go:noescape
func kernAVX2(k int, a, b, c *float32, ldc int, beta float32)

// kernAVX512 is the 12×32 micro-kernel in AVX-512F assembly (kernel_amd64.s).
//
//go:noescape
func kernAVX512(k int, a, b, c *float32, ldc int, beta float32)

// fmaPeakAVX2 runs n iterations of 12 independent 8-wide FMAs (192 flops).
//
//go:noescape
func fmaPeakAVX2(n int)

// fmaPeakAVX512 runs n iterations of 24 independent 16-wide FMAs (768 flops).
//
//go:noescape
func fmaPeakAVX512(n int)

var (
	avx2Kernel   = microKernel{name: "avx2-fma", mr: 6, nr: 16, fn: kernAVX2}
	avx512Kernel = microKernel{name: "avx512", mr: 12, nr: 32, fn: kernAVX512}
)

// microKernels returns the micro-kernels this CPU runs, fastest first.
func microKernels() []microKernel {
	var ks []microKernel
	if cpu.X86.HasAVX512F {
		ks = append(ks, avx512Kernel)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, avx2Kernel)
	}
	return append(ks, genericKernel)
}
