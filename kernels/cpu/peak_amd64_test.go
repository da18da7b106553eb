package cpu

import (
	"testing"

	"golang.org/x/sys/cpu"
)

// BenchmarkPeak measures one core's float32 FMA throughput with no memory
// traffic: the ceiling for any micro-kernel on this machine.
func BenchmarkPeak(b *testing.B) {
	const iters = 1 << 16
	b.Run("avx2-fma", func(b *testing.B) {
		if !cpu.X86.HasAVX2 || !cpu.X86.HasFMA {
			b.Skip("no AVX2+FMA")
		}
		for b.Loop() {
			fmaPeakAVX2(iters)
		}
		b.ReportMetric(192*iters*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
	b.Run("avx512", func(b *testing.B) {
		if !cpu.X86.HasAVX512F {
			b.Skip("no AVX-512F")
		}
		for b.Loop() {
			fmaPeakAVX512(iters)
		}
		b.ReportMetric(768*iters*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
}
