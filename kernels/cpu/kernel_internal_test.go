package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkMicroKernel runs each micro-kernel on L1-resident packed panels
// (k = kc): the ceiling of the blocked GEMM on one core. Sample (best of
// several noisy runs on the 2-core Sapphire Rapids VM; compare BenchmarkPeak):
//
//	float32/avx512 147  float32/avx2-fma 82  float64/avx512 63  float64/avx2-fma 38 GFLOP/s
func BenchmarkMicroKernel(b *testing.B) {
	for _, k := range microKernels32() {
		benchKernel(b, k)
	}
	for _, k := range microKernels64() {
		benchKernel(b, k)
	}
}

func benchKernel[T float](b *testing.B, kern microKernel[T]) {
	if kern.fn == nil {
		return
	}
	r := rand.New(rand.NewPCG(1, 1))
	a := make([]T, kc*kern.mr)
	bp := make([]T, kc*kern.nr)
	for i := range a {
		a[i] = T(r.Float64())
	}
	for i := range bp {
		bp[i] = T(r.Float64())
	}
	var c [maxTile]T
	var z T
	b.Run(fmt.Sprintf("shape=%T/impl=%s", z, kern.name), func(b *testing.B) {
		for b.Loop() {
			kern.fn(kc, &a[0], &bp[0], &c[0], kern.nr, 1)
		}
		b.ReportMetric(2*float64(kern.mr*kern.nr*kc)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
}
