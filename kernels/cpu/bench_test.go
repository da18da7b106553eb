package cpu_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/blas/gonum"
	"gonum.org/v1/gonum/lapack/lapack64"

	"github.com/optima-llm/optima/kernels/cpu"
)

// gemmShapes are the products of a SmolLM2-135M forward pass at seqlen 2048
// (hidden 576, intermediate 1536, head_dim 64, vocab 49152) and the Hessian.
var gemmShapes = []struct {
	name           string
	transA, transB bool
	m, n, k        int
}{
	{"x·Wqᵀ_2048x576x576", false, true, 2048, 576, 576},
	{"x·Wupᵀ_2048x1536x576", false, true, 2048, 1536, 576},
	{"h·Wdownᵀ_2048x576x1536", false, true, 2048, 576, 1536},
	{"Q·Kᵀ_2048x2048x64", false, true, 2048, 2048, 64},
	{"P·V_2048x64x2048", false, false, 2048, 64, 2048},
	{"XᵀX_1536x1536x256", true, false, 1536, 1536, 256},
	{"LMhead_2048x49152x576", false, true, 2048, 49152, 576},
}

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// impls are the implementations each benchmark compares: the default backend,
// every micro-kernel this CPU runs, and gonum's SGEMM/DGEMM called directly.
func impls() []string {
	return append(append([]string{"ours"}, cpu.SIMDs()...), "gonum")
}

// backend returns the backend an impl name stands for (nil for "gonum").
func backend(impl string) *cpu.Backend {
	switch impl {
	case "ours":
		return cpu.New(0)
	case "gonum":
		return nil
	}
	b, err := cpu.NewWithSIMD(0, impl)
	if err != nil {
		panic(err)
	}
	return b
}

func benchSgemm(b *testing.B, impl string, transA, transB bool, m, n, k int) {
	r := rand.New(rand.NewPCG(1, 1))
	lda, ldb := k, n
	if transA {
		lda = m
	}
	if transB {
		ldb = k
	}
	a, bm, c := randSlice(r, m*k), randSlice(r, k*n), make([]float32, m*n)
	be := backend(impl)
	tA, tB := blas.NoTrans, blas.NoTrans
	if transA {
		tA = blas.Trans
	}
	if transB {
		tB = blas.Trans
	}
	for b.Loop() {
		if be != nil {
			be.Sgemm(transA, transB, m, n, k, 1, a, lda, bm, ldb, 0, c, n)
		} else {
			gonum.Implementation{}.Sgemm(tA, tB, m, n, k, 1, a, lda, bm, ldb, 0, c, n)
		}
	}
	b.ReportMetric(2*float64(m)*float64(n)*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkSgemm compares the backend (default and each micro-kernel) with
// gonum's SGEMM on the forward-pass shapes. Sample (2 cores, Xeon Sapphire
// Rapids under KVM, other builds running: load average 6-8; medians of 3):
//
//	shape                     avx512  avx2-fma  gonum   GFLOP/s
//	x·Wqᵀ   2048x576x576        86.9     45.2    10.9
//	x·Wupᵀ  2048x1536x576       92.8     49.2     7.3
//	h·Wdownᵀ 2048x576x1536      97.2     49.2     8.5
//	Q·Kᵀ    2048x2048x64       115.6    119.9    12.2
//	P·V     2048x64x2048        69.1     40.7     8.9
//	XᵀX     1536x1536x256       91.5     69.7     6.2
//	LM head 2048x49152x576     201.0     60.1    10.9
//
// On a quieter moment the same binary reached 188-215 GFLOP/s (avx512) on
// the first six shapes.
func BenchmarkSgemm(b *testing.B) {
	for _, s := range gemmShapes {
		for _, impl := range impls() {
			if impl == "generic" {
				continue // the same as gonum
			}
			b.Run(fmt.Sprintf("shape=%s/impl=%s", s.name, impl), func(b *testing.B) {
				benchSgemm(b, impl, s.transA, s.transB, s.m, s.n, s.k)
			})
		}
	}
}

// gonumGram is AccumulateGram done with gonum's SGEMM over 256-token blocks,
// the baseline for BenchmarkAccumulateGram.
func gonumGram(h []float64, x []float32, tokens, in int, tmp []float32) {
	for t0 := 0; t0 < tokens; t0 += 256 {
		bt := min(256, tokens-t0)
		xb := x[t0*in : (t0+bt)*in]
		gonum.Implementation{}.Sgemm(blas.Trans, blas.NoTrans, in, in, bt, 1, xb, in, xb, in, 0, tmp, in)
		for i, v := range tmp {
			h[i] += float64(v)
		}
	}
}

// BenchmarkAccumulateGram compares AccumulateGram with gonum SGEMM over the
// same 256-token blocks; GFLOP/s counts the full product 2·tokens·in², though
// ours computes only the lower triangle. Sample (same run as BenchmarkSgemm):
//
//	tokens2048_in576   avx512 149.2  avx2-fma 109.7  gonum 8.9 GFLOP/s
//	tokens2048_in1536  avx512 168.5  avx2-fma  93.8  gonum 5.2 GFLOP/s
func BenchmarkAccumulateGram(b *testing.B) {
	for _, in := range []int{576, 1536} {
		const tokens = 2048
		r := rand.New(rand.NewPCG(2, 2))
		x := randSlice(r, tokens*in)
		h := make([]float64, in*in)
		tmp := make([]float32, in*in)
		for _, impl := range impls() {
			if impl == "generic" {
				continue
			}
			be := backend(impl)
			b.Run(fmt.Sprintf("shape=tokens%d_in%d/impl=%s", tokens, in, impl), func(b *testing.B) {
				for b.Loop() {
					if be != nil {
						be.AccumulateGram(h, x, tokens, in)
					} else {
						gonumGram(h, x, tokens, in, tmp)
					}
				}
				// Flops of the full product XᵀX, whether or not symmetry is used.
				b.ReportMetric(2*float64(tokens)*float64(in)*float64(in)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkDgemm compares Dgemm with gonum's DGEMM. Sample (same run):
//
//	576x576x576     avx512 44.4  avx2-fma 22.1  gonum 4.1 GFLOP/s
//	1536x1536x1536  avx512 35.1  avx2-fma 27.5  gonum 3.9 GFLOP/s
func BenchmarkDgemm(b *testing.B) {
	// The solve stage's products: [rows, in]·[in, in] with in = 576 and 1536.
	for _, n := range []int{576, 1536} {
		r := rand.New(rand.NewPCG(3, 3))
		a, bm, c := make([]float64, n*n), make([]float64, n*n), make([]float64, n*n)
		for i := range a {
			a[i], bm[i] = r.NormFloat64(), r.NormFloat64()
		}
		for _, impl := range impls() {
			if impl == "generic" {
				continue
			}
			be := backend(impl)
			b.Run(fmt.Sprintf("shape=%dx%dx%d/impl=%s", n, n, n, impl), func(b *testing.B) {
				for b.Loop() {
					if be != nil {
						be.Dgemm(false, false, n, n, n, 1, a, n, bm, n, 0, c, n)
					} else {
						gonum.Implementation{}.Dgemm(blas.NoTrans, blas.NoTrans, n, n, n, 1, a, n, bm, n, 0, c, n)
					}
				}
				b.ReportMetric(2*float64(n)*float64(n)*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkCholesky compares the blocked Cholesky with gonum's Dpotrf
// (GFLOP/s counts n³/3). Sample (same run):
//
//	n576   avx512 11.2  avx2-fma  9.2  gonum 5.5 GFLOP/s
//	n1536  avx512 14.6  avx2-fma 11.5  gonum 4.5 GFLOP/s
func BenchmarkCholesky(b *testing.B) {
	for _, n := range []int{576, 1536} {
		// A = G·Gᵀ + n·I.
		r := rand.New(rand.NewPCG(4, 4))
		g := make([]float64, n*n)
		for i := range g {
			g[i] = r.NormFloat64()
		}
		spd := make([]float64, n*n)
		cpu.New(0).Dgemm(false, true, n, n, n, 1, g, n, g, n, 0, spd, n)
		for i := range n {
			spd[i*n+i] += float64(n)
		}
		work := make([]float64, n*n)
		for _, impl := range impls() {
			if impl == "generic" {
				continue
			}
			be := backend(impl)
			b.Run(fmt.Sprintf("shape=n%d/impl=%s", n, impl), func(b *testing.B) {
				for b.Loop() {
					copy(work, spd)
					if be != nil {
						if err := be.Cholesky(work, n); err != nil {
							b.Fatal(err)
						}
					} else if _, ok := lapack64.Potrf(blas64.Symmetric{Uplo: blas.Lower, N: n, Stride: n, Data: work}); !ok {
						b.Fatal("not positive definite")
					}
				}
				b.ReportMetric(float64(n)*float64(n)*float64(n)/3*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
