// Package kernels is optima's numeric contract: the Backend interface that the
// forward pass, the Hessian accumulation and the OPTIMA row solve call for their
// heavy work, and the sentinel errors backends return.
//
// All matrices are dense and row-major. A matrix described as m×n with leading
// dimension ld stores element (i, j) at index i*ld+j. Backends never keep
// references to caller slices after a call returns.
package kernels

import (
	"errors"
	"fmt"
)

// ErrNotImplemented is returned (wrapped) by a backend for an operation it does
// not provide; callers may fall back to another backend.
var ErrNotImplemented = errors.New("kernels: not implemented")

// ErrNotPositiveDefinite is returned (wrapped) by Cholesky when the matrix is
// not numerically positive definite.
var ErrNotPositiveDefinite = errors.New("kernels: matrix not positive definite")

// Capabilities tells what a backend is and how it computes.
type Capabilities struct {
	// Device is "cpu" or "cuda".
	Device string
	// Threads is the number of worker goroutines (CPU) the backend uses.
	Threads int
	// SIMD names the instruction set of the GEMM micro-kernel ("avx2-fma", "generic").
	SIMD string
	// Float64 reports whether float64 operations run natively (not emulated).
	Float64 bool
}

// Backend is the narrow set of coarse operations optima needs. Implementations
// must be safe for concurrent use by multiple goroutines.
//
// Shapes are checked; a mismatch between the given dimensions and the slice
// lengths is programmer misuse and panics.
type Backend interface {
	// Name is a short identifier ("cpu", "cuda").
	Name() string
	// Capabilities describes the backend.
	Capabilities() Capabilities

	// Sgemm computes C = alpha·op(A)·op(B) + beta·C in float32, where op(X) is X
	// or Xᵀ as transA/transB say, op(A) is m×k, op(B) is k×n and C is m×n.
	// lda, ldb, ldc are the row strides of A, B, C as stored. When beta is 0, C
	// is not read (NaNs in C do not propagate).
	Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)

	// Dgemm is Sgemm in float64.
	Dgemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int)

	// AccumulateGram adds XᵀX to h: h is in×in float64 (full matrix, both
	// triangles written), x is tokens×in float32 row-major. The product is
	// formed in float32 blocks of at most 256 tokens and summed into h in
	// float64, so the error does not grow with the token count.
	AccumulateGram(h []float64, x []float32, tokens, in int)

	// Cholesky factors the n×n symmetric positive definite matrix a (row-major,
	// lower triangle read) in place into L with A = L·Lᵀ (lower triangle written,
	// upper triangle zeroed). It returns an error wrapping ErrNotPositiveDefinite
	// when a pivot is not positive.
	Cholesky(a []float64, n int) error
}

// GramSetter is an optional interface of a Backend whose AccumulateGram
// moves h between two memories (kernels/cuda uploads h, adds the products on
// the device and downloads h). SetGram sets h to XᵀX instead of adding to
// it, without reading h first, which saves the upload of h: its result
// equals AccumulateGram on an all-zero h bit for bit. Shapes, dtypes and
// panics are those of AccumulateGram. stages/hessian uses it for the first
// Add of a Hessian (one per input group and calibration shard).
type GramSetter interface {
	SetGram(h []float64, x []float32, tokens, in int)
}

// SetGram sets h ([in, in] float64) to XᵀX of x ([tokens, in] float32) on
// be: with be's SetGram when be is a GramSetter, else by zeroing h[:in·in]
// and calling be.AccumulateGram. It panics as AccumulateGram does.
func SetGram(be Backend, h []float64, x []float32, tokens, in int) {
	if g, ok := be.(GramSetter); ok {
		g.SetGram(h, x, tokens, in)
		return
	}
	if in > 0 && len(h) >= in*in {
		clear(h[:in*in])
	}
	be.AccumulateGram(h, x, tokens, in)
}

// BatchedCholesky is an optional interface of a Backend that factors and
// solves many independent symmetric positive definite systems of one size in
// one call (kernels/cpu: a parallel loop over its Cholesky; kernels/cuda:
// cuSOLVER's DpotrfBatched and DpotrsBatched). stages/solve uses it for the
// rows whose PCG did not converge, grouped by the size of their kept set.
//
// A batch is batch n×n row-major float64 matrices packed back to back: matrix
// k occupies a[k·n·n : (k+1)·n·n]. Only the lower triangle of each is read.
// Implementations must be safe for concurrent use, like Backend.
//
// Errors: when some matrices are not numerically positive definite, both
// methods still process all the others and return a *CholeskyBatchError
// (which wraps ErrNotPositiveDefinite) listing the failed ones; the contents
// of a failed matrix (and of its right-hand side) are then unspecified.
// Shape mismatches (n < 0, batch < 0, short slices) panic.
type BatchedCholesky interface {
	// CholeskyBatched factors every matrix of the batch in place into its
	// lower Cholesky factor L_k (A_k = L_k·L_kᵀ; lower triangle written,
	// upper triangle zeroed), exactly as Backend.Cholesky would one by one.
	// It panics when n < 0, batch < 0 or len(a) < batch·n·n.
	CholeskyBatched(a []float64, n, batch int) error

	// CholeskySolveBatched factors every matrix A_k of the batch and
	// overwrites x_k = x[k·n : (k+1)·n] with A_k⁻¹·x_k (one right-hand side
	// per matrix; LAPACK DPOTRF then DPOTRS). a is workspace: its contents
	// on return are unspecified (the GPU backend does not copy the factors
	// back). It panics when n < 0, batch < 0, len(a) < batch·n·n or
	// len(x) < batch·n.
	CholeskySolveBatched(a []float64, n, batch int, x []float64) error
}

// CholeskyBatchError is the error of BatchedCholesky when some matrices of a
// batch are not positive definite. It wraps ErrNotPositiveDefinite.
type CholeskyBatchError struct {
	// Failed lists the indices (0-based, ascending) of the matrices whose
	// factorization failed.
	Failed []int
	// N and Batch are the matrix size and batch size of the call.
	N, Batch int
}

func (e *CholeskyBatchError) Error() string {
	const show = 8
	s := fmt.Sprint(e.Failed)
	if len(e.Failed) > show {
		s = fmt.Sprint(e.Failed[:show]) + "…"
	}
	return fmt.Sprintf("kernels: batched Cholesky: %d of %d matrices (%d×%d) not positive definite: %s",
		len(e.Failed), e.Batch, e.N, e.N, s)
}

// Unwrap returns ErrNotPositiveDefinite.
func (e *CholeskyBatchError) Unwrap() error { return ErrNotPositiveDefinite }

// BatchError returns a *CholeskyBatchError listing the k with failed[k] set
// (failed has one entry per matrix of a batch of n×n matrices), or nil when
// none failed. Backends end their batched calls with it.
func BatchError(failed []bool, n int) error {
	var e *CholeskyBatchError
	for k, f := range failed {
		if f {
			if e == nil {
				e = &CholeskyBatchError{N: n, Batch: len(failed)}
			}
			e.Failed = append(e.Failed, k)
		}
	}
	if e != nil {
		return e
	}
	return nil
}

// CholeskySubstitute overwrites x [n] with (L·Lᵀ)⁻¹·x for the Cholesky
// factor L in the lower triangle of the row-major n×n l (as Cholesky writes
// it): L·y = x by forward substitution, then Lᵀ·x = y backward, each sum in
// index order, in float64. It panics when l or x is too short.
func CholeskySubstitute(l []float64, n int, x []float64) {
	if n == 0 {
		return
	}
	_, _ = l[n*n-1:], x[n-1:]
	for i := range n {
		v := x[i]
		for k, lv := range l[i*n : i*n+i] {
			v -= lv * x[k]
		}
		x[i] = v / l[i*n+i]
	}
	for i := n - 1; i >= 0; i-- {
		v := x[i]
		for k := i + 1; k < n; k++ {
			v -= l[k*n+i] * x[k]
		}
		x[i] = v / l[i*n+i]
	}
}

// CheckBatch panics with a message naming op unless n, batch and the slice
// lengths describe a valid BatchedCholesky call (lx < 0: no right-hand
// sides). Backends call it first.
func CheckBatch(op string, n, batch, la, lx int) {
	if n < 0 || batch < 0 {
		panic(fmt.Sprintf("%s: negative dimension n=%d batch=%d", op, n, batch))
	}
	if la < batch*n*n {
		panic(fmt.Sprintf("%s: len(a) = %d < batch·n·n = %d·%d·%d", op, la, batch, n, n))
	}
	if lx >= 0 && lx < batch*n {
		panic(fmt.Sprintf("%s: len(x) = %d < batch·n = %d·%d", op, lx, batch, n))
	}
}
