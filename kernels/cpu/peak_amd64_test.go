package cpu

import (
	"testing"

	"golang.org/x/sys/cpu"
)

// BenchmarkPeak measures one core's float32 FMA throughput with no memory
// traffic: the ceiling for any micro-kernel on this machine. Sample (best of
// several noisy runs, 2-core Sapphire Rapids VM): avx2-fma 86, avx512 165
// GFLOP/s per core, so about 170 and 330 GFLOP/s for the machine.
func BenchmarkPeak(b *testing.B) {
	const iters = 1 << 16
	b.Run("impl=avx2-fma", func(b *testing.B) {
		if !cpu.X86.HasAVX2 || !cpu.X86.HasFMA {
			b.Skip("no AVX2+FMA")
		}
		for b.Loop() {
			fmaPeakAVX2(iters)
		}
		b.ReportMetric(192*iters*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
	b.Run("impl=avx512", func(b *testing.B) {
		if !cpu.X86.HasAVX512F {
			b.Skip("no AVX-512F")
		}
		for b.Loop() {
			fmaPeakAVX512(iters)
		}
		b.ReportMetric(768*iters*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
}
