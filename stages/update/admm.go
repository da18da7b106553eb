package update

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/stages/mask"
	"github.com/optima-llm/optima/stages/solve"
)

// ADMM prunes w ([rows, cols] row-major float64, overwritten with the updated
// weights, pruned entries exactly 0) with Boža's ADMM weight update and
// gradual mask selection, and writes the mask into pruned. h is the undamped
// Hessian ([cols, cols], both triangles), not modified.
//
// From the paper (Algorithm 1, §3.2 gradual pruning) and its reference code
// (lib/admm.py fasterprune), on the normalised problem: c_j = sqrt(H_jj) (1 for
// a dead channel), G = D⁻¹HD⁻¹ with D = diag(c), V = W·D (column j scaled by
// c_j); G += λ·mean(diag G)·I (λ = Damping, default 0.1); B = V·G;
// K = (G + ρI)⁻¹. With U = 0 and t = 0..Iters−1:
//
//   - while t < PruneIters, the mask is re-selected on |V + U| at sparsity
//     s_t = s − s·(1 − (t+1)/PruneIters)³: unstructured, the int(rows·cols·s_t)
//     smallest over the whole layer (ties to the lower row-major index);
//     N:M, the N largest of each group are kept and the int(rows·cols·s_t)
//     smallest of the rest pruned (s = (M−N)/M);
//   - Z = (V + U)⊙mask, U += V − Z, V = (B + ρ(Z − U))·K.
//
// The result is Z = (V + U)⊙mask, scaled back by D⁻¹. Deviation from the
// reference code: its unstructured branch selects at the final sparsity in
// every iteration (it passes sparsity, not the scheduled one, to topk); this
// follows the paper's schedule. Its N:M branch is written for 2:4 only.
//
// It returns the damping used or a *NotPositiveDefiniteError; it panics on
// mismatched shapes, or PruneIters outside [1, Iters].
func ADMM(be kernels.Backend, w []float64, rows, cols int, h []float64, p mask.Pattern, o Options, pruned []bool) (Result, error) {
	checkShapes("ADMM", w, rows, cols, h, p, pruned)
	iters, pIters, rho := o.Iters, o.PruneIters, o.Rho
	if iters == 0 {
		iters = 20
	}
	if pIters == 0 {
		pIters = min(15, iters)
	}
	if rho == 0 {
		rho = 1
	}
	if pIters < 1 || pIters > iters {
		panic(fmt.Sprintf("update.ADMM: prune iterations %d outside [1, %d]", pIters, iters))
	}
	c := make([]float64, cols)
	for j := range cols {
		c[j] = math.Sqrt(max(h[j*cols+j], 0))
		if c[j] == 0 {
			c[j] = 1
		}
	}
	g := make([]float64, cols*cols)
	for i := range cols {
		for j := range cols {
			g[i*cols+j] = h[i*cols+j] / c[i] / c[j]
		}
	}
	v := make([]float64, rows*cols)
	for r := range rows {
		for j := range cols {
			v[r*cols+j] = w[r*cols+j] * c[j]
		}
	}
	meanG := meanDiag(g, cols)
	if !(meanG > 0) {
		return Result{Damping: o.Damping}, &NotPositiveDefiniteError{Damping: o.Damping}
	}
	// G_d = G + λ·mean(diag G)·I must be positive definite (λ raised in the
	// documented steps otherwise); then K = (G_d + ρI)⁻¹.
	var lambda float64
	chk := make([]float64, len(g))
	for l := o.Damping; ; l = min(nextDamping(l), solve.MaxDamping) {
		copy(chk, g)
		for j := range cols {
			chk[j*cols+j] += l * meanG
		}
		if be.Cholesky(chk, cols) == nil {
			lambda = l
			break
		}
		if l >= solve.MaxDamping {
			return Result{Damping: l}, &NotPositiveDefiniteError{Damping: l}
		}
	}
	for j := range cols {
		g[j*cols+j] += lambda * meanG
	}
	k := make([]float64, len(g))
	copy(k, g)
	for j := range cols {
		k[j*cols+j] += rho
	}
	if !inverseSPD(be, k, cols) {
		return Result{Damping: lambda}, &NotPositiveDefiniteError{Damping: lambda}
	}
	b := make([]float64, rows*cols)
	be.Dgemm(false, false, rows, cols, cols, 1, v, cols, g, cols, 0, b, cols)
	u := make([]float64, rows*cols)
	z := make([]float64, rows*cols)
	tmp := make([]float64, rows*cols)
	sp := p.Fraction()
	var sc, sorted []float64
	selectMask := func(t int) {
		st := sp - sp*math.Pow(1-float64(t+1)/float64(pIters), 3)
		kk := blockPrunedCount(rows*cols, st)
		sc = sc[:0]
		for i := range v {
			sc = append(sc, math.Abs(v[i]+u[i]))
		}
		if p.IsNM() {
			idx := make([]int, p.M)
			for r := range rows {
				for base := 0; base < cols; base += p.M {
					o := r*cols + base
					for j := range idx {
						idx[j] = j
					}
					slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(sc[o+b], sc[o+a]) })
					for _, j := range idx[:p.N] {
						sc[o+j] = math.Inf(1)
					}
				}
			}
		}
		clear(pruned)
		for i := range smallestK(sc, kk, &sorted) {
			pruned[i] = true
		}
	}
	for t := range iters {
		if t < pIters {
			selectMask(t)
		}
		for i := range v {
			zi := v[i] + u[i]
			if pruned[i] {
				zi = 0
			}
			z[i] = zi
			u[i] += v[i] - zi
			tmp[i] = b[i] + rho*(zi-u[i])
		}
		be.Dgemm(false, false, rows, cols, cols, 1, tmp, cols, k, cols, 0, v, cols)
	}
	for r := range rows {
		for j := range cols {
			i := r*cols + j
			if pruned[i] {
				w[i] = 0
			} else {
				w[i] = (v[i] + u[i]) / c[j]
			}
		}
	}
	return Result{Damping: lambda}, nil
}
