package cpu

import "golang.org/x/sys/cpu"

// kernAVX2 is kernGeneric in AVX2+FMA assembly (kernel_amd64.s).
//
//go:noescape
func kernAVX2(k int, a, b, c *float32, ldc int, beta float32)

var avx2Kernel = microKernel{name: "avx2-fma", fn: kernAVX2}

// bestKernel returns the fastest micro-kernel this CPU runs.
func bestKernel() microKernel {
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		return avx2Kernel
	}
	return genericKernel
}
