package cpu

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkMicroKernel runs one micro-kernel on L1-resident packed panels
// (k = kc): the ceiling of the blocked GEMM on one core.
func BenchmarkMicroKernel(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	a := make([]float32, kc*maxTile)
	bp := make([]float32, kc*maxNR)
	for i := range a {
		a[i] = r.Float32()
	}
	for i := range bp {
		bp[i] = r.Float32()
	}
	var c [maxTile]float32
	for _, kern := range microKernels() {
		if kern.fn == nil {
			continue
		}
		b.Run(kern.name, func(b *testing.B) {
			for b.Loop() {
				kern.fn(kc, &a[0], &bp[0], &c[0], kern.nr, 1)
			}
			b.ReportMetric(2*float64(kern.mr*kern.nr*kc)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
