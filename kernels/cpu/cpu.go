// Package cpu is optima's CPU compute backend: a kernels.Backend whose GEMMs
// run a cache-blocked driver with packed panels (Goto/BLIS: K. Goto and R. van
// de Geijn, "Anatomy of high-performance matrix multiplication", ACM TOMS
// 34(3), 2008) around register-tile micro-kernels in Go assembly: AVX2+FMA
// (6×16 float32, 6×8 float64) as the baseline and AVX-512F (12×32, 12×16)
// where the CPU has it, chosen at run time with golang.org/x/sys/cpu. Other
// CPUs and architectures use gonum's pure-Go BLAS ("generic"). The Cholesky
// factorization is gonum's Dpotrf.
//
// The package uses no cgo.
package cpu

import (
	"fmt"
	"runtime"
	"strings"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/blas/gonum"
	"gonum.org/v1/gonum/lapack/lapack64"

	"github.com/optima-llm/optima/kernels"
)

// Backend is the CPU implementation of kernels.Backend. It holds no mutable
// state besides its configuration and is safe for concurrent use.
type Backend struct {
	threads int
	kern32  microKernel[float32]
	kern64  microKernel[float64]
}

var _ kernels.Backend = (*Backend)(nil)

// New returns a CPU backend that runs its heavy kernels on up to threads
// goroutines; threads <= 0 means runtime.GOMAXPROCS(0).
func New(threads int) *Backend {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	k32, k64 := bestKernels()
	return &Backend{threads: threads, kern32: k32, kern64: k64}
}

// SIMDs lists the micro-kernel instruction sets this CPU runs, fastest
// first, ending with "generic" (gonum): e.g. ["avx512", "avx2-fma",
// "generic"]. New picks the first.
func SIMDs() []string {
	var names []string
	for _, k := range microKernels32() {
		names = append(names, k.name)
	}
	return names
}

// NewWithSIMD is New with the micro-kernels of the named instruction set
// (one of SIMDs()) instead of the fastest, e.g. to measure what a worker
// without AVX-512 gets. It returns an error naming the known sets when this
// CPU cannot run simd.
func NewWithSIMD(threads int, simd string) (*Backend, error) {
	b := New(threads)
	var ok32, ok64 bool
	for _, k := range microKernels32() {
		if k.name == simd {
			b.kern32, ok32 = k, true
		}
	}
	for _, k := range microKernels64() {
		if k.name == simd {
			b.kern64, ok64 = k, true
		}
	}
	if !ok32 || !ok64 {
		return nil, fmt.Errorf("cpu: SIMD %q not available on this CPU (have %s)", simd, strings.Join(SIMDs(), ", "))
	}
	return b, nil
}

// Name returns "cpu".
func (*Backend) Name() string { return "cpu" }

// Capabilities reports Device "cpu", the thread count, the instruction set of
// the GEMM micro-kernels ("avx512", "avx2-fma" or "generic") and Float64 true.
func (b *Backend) Capabilities() kernels.Capabilities {
	return kernels.Capabilities{
		Device:  "cpu",
		Threads: b.threads,
		SIMD:    b.kern32.name,
		Float64: true,
	}
}

// Sgemm computes C = alpha·op(A)·op(B) + beta·C in float32 (see
// kernels.Backend.Sgemm). Products accumulate in float32 with fused
// multiply-adds. It panics when a dimension is negative, a leading dimension
// is smaller than the stored row width, or a slice is too short.
func (b *Backend) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, bm []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm("Sgemm", transA, transB, m, n, k, len(a), lda, len(bm), ldb, len(c), ldc)
	gemm(b.kern32, b.threads, transA, transB, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc)
}

// Dgemm computes C = alpha·op(A)·op(B) + beta·C in float64 with the same
// blocked driver and a float64 micro-kernel of the same instruction set
// (gonum's DGEMM where the kernel is "generic"). Panics as Sgemm.
func (b *Backend) Dgemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, bm []float64, ldb int, beta float64, c []float64, ldc int) {
	checkGemm("Dgemm", transA, transB, m, n, k, len(a), lda, len(bm), ldb, len(c), ldc)
	gemm(b.kern64, b.threads, transA, transB, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc)
}

// choleskyBlock is the panel width of the blocked Cholesky factorization.
const choleskyBlock = 96

// Cholesky factors the n×n symmetric positive definite row-major matrix a in
// place into its lower Cholesky factor L (A = L·Lᵀ); only the lower triangle
// is read and the upper triangle is zeroed. It is the right-looking blocked
// algorithm of LAPACK's DPOTRF (Golub and Van Loan, Matrix Computations, 4th
// ed., §4.2.9): each 96-wide diagonal block is factored with gonum's Dpotrf,
// the panel below it solved with gonum's Dtrsm, and the trailing lower
// triangle updated with this backend's Dgemm, which does almost all the
// work. It returns an error wrapping kernels.ErrNotPositiveDefinite, naming
// the failing block, when a pivot is not positive (or NaN); a is then partly
// overwritten. It panics when n < 0 or len(a) < n*n.
func (b *Backend) Cholesky(a []float64, n int) error {
	if n < 0 {
		panic(fmt.Sprintf("cpu: Cholesky: negative n %d", n))
	}
	if len(a) < n*n {
		panic(fmt.Sprintf("cpu: Cholesky: len(a) = %d < n*n = %d", len(a), n*n))
	}
	impl := gonum.Implementation{}
	for j := 0; j < n; j += choleskyBlock {
		jb := min(choleskyBlock, n-j)
		diag := blas64.Symmetric{Uplo: blas.Lower, N: jb, Stride: n, Data: a[j*n+j : (j+jb-1)*n+j+jb]}
		if _, ok := lapack64.Potrf(diag); !ok {
			return fmt.Errorf("cpu: Cholesky of %d×%d matrix: diagonal block at %d: %w", n, n, j, kernels.ErrNotPositiveDefinite)
		}
		rest := n - j - jb
		if rest == 0 {
			break
		}
		// A21 ← A21·L11⁻ᵀ, A21 = a[j+jb:n, j:j+jb].
		a21 := a[(j+jb)*n+j:]
		impl.Dtrsm(blas.Right, blas.Lower, blas.Trans, blas.NonUnit, rest, jb, 1, a[j*n+j:], n, a21, n)
		// A22 ← A22 − A21·A21ᵀ on the lower triangle, one block row at a time
		// (each block row also updates its diagonal block in full).
		for i := 0; i < rest; i += choleskyBlock {
			ib := min(choleskyBlock, rest-i)
			b.Dgemm(false, true, ib, i+ib, jb, -1, a21[i*n:], n, a21, n, 1, a[(j+jb+i)*n+j+jb:], n)
		}
	}
	for i := range n {
		clear(a[i*n+i+1 : i*n+n])
	}
	return nil
}

func blasTrans(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

// checkGemm panics unless the GEMM arguments describe valid row-major
// matrices: A is m×k (k×m when transA) with row stride lda, B is k×n (n×k when
// transB) with stride ldb, and C is m×n with stride ldc.
func checkGemm(op string, transA, transB bool, m, n, k, la, lda, lb, ldb, lc, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("cpu: %s: negative dimension m=%d n=%d k=%d", op, m, n, k))
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	checkMat(op, "A", ar, ac, la, lda)
	checkMat(op, "B", br, bc, lb, ldb)
	checkMat(op, "C", m, n, lc, ldc)
}

func checkMat(op, name string, rows, cols, length, ld int) {
	if ld < max(1, cols) {
		panic(fmt.Sprintf("cpu: %s: leading dimension of %s is %d, want >= %d (%d×%d as stored)", op, name, ld, max(1, cols), rows, cols))
	}
	if rows == 0 || cols == 0 {
		return
	}
	if need := (rows-1)*ld + cols; length < need {
		panic(fmt.Sprintf("cpu: %s: len(%s) = %d, want >= %d (%d×%d as stored, ld %d)", op, name, length, need, rows, cols, ld))
	}
}
