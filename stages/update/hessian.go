// Package update holds the mask selectors that compute their own weight
// update while they choose the mask, on a whole linear layer at once:
//
//   - SparseGPT (Frantar & Alistarh 2023, "SparseGPT: Massive Language Models
//     Can Be Accurately Pruned in One-Shot", Algorithm 1 and its reference
//     code sparsegpt.py fasterprune): OBS saliency w²/[H⁻¹]_jj² over column
//     blocks, sequential update with the upper Cholesky factor of H⁻¹;
//   - Thanos (Ilin & Richtárik 2025, "Thanos: A Block-wise Pruning Algorithm
//     for Efficient Large Language Model Compression"): Wanda metric per
//     column block, multi-weight OBS update of each row on the trailing
//     columns;
//   - ADMM (Boža 2024, "Fast and Effective Weight Update for Pruned Large
//     Language Models", Algorithm 1 with the gradual mask of §3.2): ADMM on
//     the layer-wise least squares with a cubic sparsity schedule.
//
// All three read the layer's undamped normalised Hessian H = XᵀX/N ([in, in]
// float64) and weights W ([out, in]); they compute in float64. Unstructured
// SparseGPT and Thanos compare scores over a column block of all rows, and
// unstructured ADMM over the whole layer, so these selectors need every row
// of a linear at once: the row sparsity is then uneven and only the layer's
// (or block's) fraction is the requested one. Each registers in the
// stages/mask registry as a mask.LayerSelector.
//
// Damping: H_d = H + λ·mean(diag H)·I. When H_d (or the Cholesky factor of
// its inverse) is not positive definite, λ is raised to max(10·λ, 1e-6) and
// the factorisation retried, up to λ = 1 (solve.MinRetryDamping,
// solve.MaxDamping); beyond that the selector returns a
// *NotPositiveDefiniteError. The λ used is returned to the caller, who
// reports it per layer (report.LinearReport.Damping). There is never an
// identity fallback.
package update

import (
	"fmt"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/lapack64"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/stages/solve"
)

// NotPositiveDefiniteError reports that the damped Hessian of a layer was not
// positive definite up to relative damping Damping (the largest tried). It
// wraps kernels.ErrNotPositiveDefinite. Layer is set by the caller that knows
// the layer's name.
type NotPositiveDefiniteError struct {
	Layer   string
	Damping float64
}

func (e *NotPositiveDefiniteError) Error() string {
	l := e.Layer
	if l == "" {
		l = "(unnamed layer)"
	}
	return fmt.Sprintf("update: %s: hessian not positive definite up to relative damping %g", l, e.Damping)
}

// Unwrap returns kernels.ErrNotPositiveDefinite.
func (e *NotPositiveDefiniteError) Unwrap() error { return kernels.ErrNotPositiveDefinite }

// nextDamping is the retry step: max(10·λ, solve.MinRetryDamping).
func nextDamping(l float64) float64 { return max(10*l, solve.MinRetryDamping) }

// deadFix returns a copy of h ([n, n]) with every dead channel (h_jj == 0) set
// to h_jj = 1 and the list of dead channels (SparseGPT's rule, also Thanos').
func deadFix(h []float64, n int) ([]float64, []int) {
	c := make([]float64, len(h))
	copy(c, h)
	var dead []int
	for j := range n {
		if c[j*n+j] == 0 {
			c[j*n+j] = 1
			dead = append(dead, j)
		}
	}
	return c, dead
}

func meanDiag(h []float64, n int) float64 {
	var s float64
	for j := range n {
		s += h[j*n+j]
	}
	return s / float64(n)
}

// dampedInverse returns (h + λ·mean(diag h)·I)⁻¹ ([n, n], both triangles) for
// the first λ of the damping steps starting at lambda for which the damped
// matrix is positive definite, and that λ. extra, when not nil, is called on
// the inverse and may reject it (returning false) to continue with the next
// λ. h is not modified.
func dampedInverse(be kernels.Backend, h []float64, n int, lambda float64, extra func(inv []float64) bool) ([]float64, float64, error) {
	mean := meanDiag(h, n)
	if !(mean > 0) {
		return nil, lambda, &NotPositiveDefiniteError{Damping: lambda}
	}
	a := make([]float64, n*n)
	for l := lambda; ; l = min(nextDamping(l), solve.MaxDamping) {
		copy(a, h)
		for j := range n {
			a[j*n+j] += l * mean
		}
		if inverseSPD(be, a, n) && (extra == nil || extra(a)) {
			return a, l, nil
		}
		if l >= solve.MaxDamping {
			return nil, l, &NotPositiveDefiniteError{Damping: l}
		}
	}
}

// inverseSPD overwrites a ([n, n] symmetric, lower triangle read) with its
// inverse (both triangles) through a Cholesky factorisation; false when a is
// not numerically positive definite.
func inverseSPD(be kernels.Backend, a []float64, n int) bool {
	if n == 0 {
		return true
	}
	if err := be.Cholesky(a, n); err != nil {
		return false
	}
	for j := range n {
		if !(a[j*n+j] > 0) {
			return false
		}
	}
	if _, ok := lapack64.Potri(blas64.Triangular{Uplo: blas.Lower, Diag: blas.NonUnit, N: n, Stride: n, Data: a}); !ok {
		return false
	}
	for i := range n {
		for j := i + 1; j < n; j++ {
			a[i*n+j] = a[j*n+i]
		}
	}
	return true
}

// upperCholesky returns U with a = UᵀU ([n, n], upper triangle, lower
// zeroed), or false.
func upperCholesky(be kernels.Backend, a []float64, n int) ([]float64, bool) {
	l := make([]float64, n*n)
	copy(l, a)
	if err := be.Cholesky(l, n); err != nil {
		return nil, false
	}
	u := make([]float64, n*n)
	for i := range n {
		if !(l[i*n+i] > 0) {
			return nil, false
		}
		for j := 0; j <= i; j++ {
			u[j*n+i] = l[i*n+j]
		}
	}
	return u, true
}
