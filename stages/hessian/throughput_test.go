package hessian

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/kernels/cpu"
)

// sgemmRate measures be's SGEMM rate (GFLOP/s) as the best of 5 timed
// calls (after a warm-up) of C[m,n] = op(A)·B with inner dimension k.
func sgemmRate(be kernels.Backend, transA bool, m, n, k int) float64 {
	r := rand.New(rand.NewPCG(9, 9))
	a, bm := randX(r, m, k), randX(r, k, n)
	lda := k
	if transA {
		lda = m
	}
	c := make([]float32, m*n)
	be.Sgemm(transA, false, m, n, k, 1, a, lda, bm, n, 0, c, n)
	best := time.Duration(1 << 62)
	for range 5 {
		t0 := time.Now()
		be.Sgemm(transA, false, m, n, k, 1, a, lda, bm, n, 0, c, n)
		best = min(best, time.Since(t0))
	}
	return 2 * float64(m) * float64(n) * float64(k) / best.Seconds() / 1e9
}

// BenchmarkAddVsGEMM measures Hessian accumulation (Add: NaN scan,
// AccumulateGram in float32 blocks summed in float64, symmetrization) with
// kernels/cpu on 2048-token shards of SmolLM2's input widths, and reports
// its GFLOP/s (counting the full 2·tokens·in² product) and that rate as a
// fraction ("of_gemm") of the machine's SGEMM rate measured in the same run:
// the better of a 1024³ product and the [in, tokens]·[tokens, in] product
// Add stands for ("gemm_GFLOP/s"). AccumulateGram computes one triangle, so
// the fraction can exceed 1.
//
// Sample (2 shared cores, AVX-512, load from other builds):
//
//	tokens2048_in576    GFLOP/s 35.0  gemm_GFLOP/s 48.1  of_gemm 0.73
//	tokens2048_in1536   GFLOP/s 29.7  gemm_GFLOP/s 69.3  of_gemm 0.43
//
// (an earlier run, timing only the XᵀX-shaped GEMM, gave 72.8 of 42.7 and
// 42.1 of 36.9: on this shared machine single numbers vary about 2×).
//
//	go test -run XXX -bench AddVsGEMM ./stages/hessian
func BenchmarkAddVsGEMM(b *testing.B) {
	be := cpu.New(0)
	for _, in := range []int{576, 1536} {
		const tokens = 2048
		x := randX(rand.New(rand.NewPCG(5, uint64(in))), tokens, in)
		b.Run(fmt.Sprintf("tokens%d_in%d", tokens, in), func(b *testing.B) {
			gemm := max(sgemmRate(be, false, 1024, 1024, 1024), sgemmRate(be, true, in, in, tokens))
			h := New("g", in)
			for b.Loop() {
				if err := h.Add(be, x, tokens); err != nil {
					b.Fatal(err)
				}
			}
			rate := 2 * float64(tokens) * float64(in) * float64(in) * float64(b.N) / b.Elapsed().Seconds() / 1e9
			b.ReportMetric(rate, "GFLOP/s")
			b.ReportMetric(gemm, "gemm_GFLOP/s")
			b.ReportMetric(rate/gemm, "of_gemm")
		})
	}
}
