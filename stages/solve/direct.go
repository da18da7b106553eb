package solve

import (
	"fmt"
	"math"

	"github.com/optima-llm/optima/kernels"
)

// DirectRow is the float64 Cholesky oracle for one row: it writes into dst
// (length in) the exact minimiser of (ŵ − w)ᵀ H_d (ŵ − w) s.t. ŵ_P = 0,
// with H_d = (h + hᵀ)/2 + damping·mean(diag h)·I, computed as
// ŵ_S = w_S + H_SS⁻¹ H_SP w_P (DESIGN.md §1) by a textbook pure-Go Cholesky
// of H_SS (independent of any kernels.Backend) and two triangular solves, all
// in float64; ŵ_P = 0 exactly. pruned[j] true means input j is pruned. A row
// whose kept set is empty gets all zeros. w and dst may alias.
//
// h is [in, in] row-major float64, w and dst are float32 of length in.
// Errors: *NonFiniteError for NaN/Inf in h or w; *NotPositiveDefiniteError
// (Row 0) when H_SS is not positive definite at this damping (no retry:
// the oracle solves exactly the problem it is given). It panics on wrong
// lengths.
func DirectRow(h []float64, in int, w []float32, pruned []bool, dst []float32, damping float64) error {
	if in < 0 || len(h) != in*in || len(w) != in || len(pruned) != in || len(dst) != in {
		panic(fmt.Sprintf("solve: DirectRow: lengths h=%d w=%d pruned=%d dst=%d, want in*in, in, in, in with in = %d",
			len(h), len(w), len(pruned), len(dst), in))
	}
	for i, v := range h {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return &NonFiniteError{Operand: "hessian", Row: i / in, Col: i % in, Value: v}
		}
	}
	if err := checkFinite(w, in); err != nil {
		return err
	}
	hd := symmetrizedDamped(h, in, damping*meanDiag(h, in))
	var ws directScratch
	if err := ws.solve(choleskyRef, hd, in, 0, w, pruned, dst); err != nil {
		return &NotPositiveDefiniteError{Row: 0, Damping: damping}
	}
	return nil
}

// directScratch holds the buffers of one direct row solve.
type directScratch struct {
	kept, drop []int
	a, rhs     []float64
}

// solve writes the exact re-fit of row w into dst using the damped Hessian hd
// plus extra·I on the kept block, factoring H_SS with chol. It returns chol's
// error (dst untouched) when H_SS is not positive definite.
func (s *directScratch) solve(chol func(a []float64, n int) error, hd []float64, in int, extra float64, w []float32, pruned []bool, dst []float32) error {
	n := s.split(pruned)
	if cap(s.a) < n*n {
		s.a = make([]float64, n*n)
		s.rhs = make([]float64, n)
	}
	a, rhs := s.a[:n*n], s.rhs[:n]
	s.build(hd, in, extra, w, a, rhs)
	if err := chol(a, n); err != nil {
		return err
	}
	kernels.CholeskySubstitute(a, n, rhs)
	s.write(w, rhs, dst)
	return nil
}

// split lists the kept and pruned inputs of a row in s.kept and s.drop and
// returns the number kept, n = |S|.
func (s *directScratch) split(pruned []bool) int {
	s.kept, s.drop = s.kept[:0], s.drop[:0]
	for j, pr := range pruned {
		if pr {
			s.drop = append(s.drop, j)
		} else {
			s.kept = append(s.kept, j)
		}
	}
	return len(s.kept)
}

// build writes the lower triangle of H_SS + extra·I (n×n row-major, from
// the damped hd [in, in]) into a and the right-hand side (H_d w_P)_S into
// rhs (length n), for the split of the last split call. The upper triangle
// of a is not written.
func (s *directScratch) build(hd []float64, in int, extra float64, w []float32, a, rhs []float64) {
	n := len(s.kept)
	for r, i := range s.kept {
		row := hd[i*in : i*in+in]
		for c, j := range s.kept[:r+1] {
			a[r*n+c] = row[j]
		}
		a[r*n+r] += extra
		rhs[r] = s.rowRHS(row, w)
	}
}

// buildRHS writes build's right-hand side (H_d w_P)_S alone into rhs (length n),
// for the split of the last split call: the same sums in the same order.
func (s *directScratch) buildRHS(hd []float64, in int, w []float32, rhs []float64) {
	for r, i := range s.kept {
		rhs[r] = s.rowRHS(hd[i*in:i*in+in], w)
	}
}

// rowRHS returns Σ_{j ∈ P} row[j]·w[j] in float64, in increasing j.
func (s *directScratch) rowRHS(row []float64, w []float32) float64 {
	var b float64
	for _, j := range s.drop {
		b += row[j] * float64(w[j])
	}
	return b
}

// packKept writes the kept inputs of the last split call into dst (length
// n = |S|) as int32, for DeviceGather.
func (s *directScratch) packKept(dst []int32) {
	if len(dst) != len(s.kept) {
		panic(fmt.Sprintf("solve: packKept: len(dst) = %d, |S| = %d", len(dst), len(s.kept)))
	}
	for r, j := range s.kept {
		dst[r] = int32(j)
	}
}

// write sets dst_P = 0 and dst_S = w_S + x (x = H_SS⁻¹ (H_d w_P)_S, length
// n) in float32 for the split of the last split call. w and dst may alias.
func (s *directScratch) write(w []float32, x []float64, dst []float32) {
	for _, j := range s.drop {
		dst[j] = 0
	}
	for r, i := range s.kept {
		dst[i] = float32(float64(w[i]) + x[r])
	}
}

// choleskyRef is a textbook (Cholesky–Banachiewicz) float64 factorization of
// the lower triangle of the n×n row-major a into L, used by the oracle so that
// it does not depend on a backend.
func choleskyRef(a []float64, n int) error {
	for i := range n {
		ri := a[i*n : i*n+n]
		for j := 0; j <= i; j++ {
			rj := a[j*n : j*n+n]
			s := ri[j]
			for k := range j {
				s -= ri[k] * rj[k]
			}
			if i == j {
				if !(s > 0) {
					return fmt.Errorf("solve: pivot %d is %g: %w", i, s, kernels.ErrNotPositiveDefinite)
				}
				ri[i] = math.Sqrt(s)
			} else {
				ri[j] = s / rj[j]
			}
		}
		clear(ri[i+1:])
	}
	return nil
}

// checkFinite returns *NonFiniteError for the first NaN/Inf in w ([rows, in]).
func checkFinite(w []float32, in int) error {
	for i, v := range w {
		if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
			return &NonFiniteError{Operand: "weight", Row: i / in, Col: i % in, Value: f}
		}
	}
	return nil
}
