// Package kernels is optima's numeric contract: the Backend interface that the
// forward pass, the Hessian accumulation and the OPTIMA row solve call for their
// heavy work, and the sentinel errors backends return.
//
// All matrices are dense and row-major. A matrix described as m×n with leading
// dimension ld stores element (i, j) at index i*ld+j. Backends never keep
// references to caller slices after a call returns.
package kernels

import "errors"

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
