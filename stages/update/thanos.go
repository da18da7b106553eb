package update

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/stages/mask"
)

// parallelRows calls f(r) for every r in [0, rows) on GOMAXPROCS goroutines.
func parallelRows(rows int, f func(r int)) {
	workers := min(runtime.GOMAXPROCS(0), rows)
	if workers <= 1 {
		for r := range rows {
			f(r)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int, rows)
	for r := range rows {
		next <- r
	}
	close(next)
	for range workers {
		wg.Go(func() {
			for r := range next {
				f(r)
			}
		})
	}
	wg.Wait()
}

// Thanos prunes w ([rows, cols] row-major float64, overwritten with the
// updated weights, pruned entries exactly 0) with the Thanos algorithm and
// writes the mask into pruned ([rows, cols], true = pruned). h is the
// undamped Hessian ([cols, cols], both triangles, any positive scale), not
// modified.
//
// As in the paper's Algorithm 1 (and lib/thanos.py snap): dead channels get
// H_jj = 1 and W[:, j] = 0; H_d = H + λ·mean(diag H)·I. For each block of
// BlockSize columns [i1, i2), with the weights as updated by the earlier
// blocks, the Wanda metric |w_ij|·sqrt(H_jj) (undamped H) picks the pruned set
// of the block: unstructured, the int(rows·count·Sparsity) smallest over the
// whole block of all rows (ties to the lower row-major index); N:M, the M−N
// smallest of every group of M in each row (ties to the lower column). Then
// every row r with pruned block columns Q solves the multi-weight OBS problem
// on the trailing columns j ≥ i1 with A⁻¹ = (H_d[i1:, i1:])⁻¹:
// λ = (A⁻¹_QQ)⁻¹ w_Q, w_{i1:} −= A⁻¹_{:,Q} λ, and w_Q = 0. The next block's
// inverse (H_d[i2:, i2:])⁻¹ is obtained from A⁻¹ by the Schur complement
// A⁻¹_{22} − A⁻¹_{21} (A⁻¹_{11})⁻¹ A⁻¹_{12} (the reference inverts anew;
// the result is the same up to rounding).
//
// It returns the damping used or a *NotPositiveDefiniteError; it panics on
// mismatched shapes or a BlockSize that is not a multiple of M for N:M.
func Thanos(be kernels.Backend, w []float64, rows, cols int, h []float64, p mask.Pattern, o Options, pruned []bool) (Result, error) {
	checkShapes("Thanos", w, rows, cols, h, p, pruned)
	bs := o.BlockSize
	if bs <= 0 {
		bs = 128
	}
	if p.IsNM() && bs%p.M != 0 {
		panic(fmt.Sprintf("update.Thanos: block size %d is not a multiple of M = %d", bs, p.M))
	}
	norms := make([]float64, cols)
	for j := range cols {
		norms[j] = math.Sqrt(max(h[j*cols+j], 0))
	}
	hh, dead := deadFix(h, cols)
	for _, j := range dead {
		for r := range rows {
			w[r*cols+j] = 0
		}
	}
	ainv, lambda, err := dampedInverse(be, hh, cols, o.Damping, nil)
	if err != nil {
		return Result{Damping: lambda}, err
	}
	clear(pruned)
	n := cols // ainv is [n, n] for columns i1..cols-1
	var sc, sorted []float64
	for i1 := 0; i1 < cols; i1 += bs {
		i2 := min(i1+bs, cols)
		count := i2 - i1
		// Mask of the block.
		if p.IsNM() {
			parallelRows(rows, func(r int) {
				idx := make([]int, p.M)
				row := w[r*cols : (r+1)*cols]
				for base := i1; base < i2; base += p.M {
					nmSmallest(idx, base, p, func(j int) float64 { return math.Abs(row[j]) * norms[j] }, pruned[r*cols:(r+1)*cols])
				}
			})
		} else if k := blockPrunedCount(rows*count, p.Sparsity); k > 0 {
			sc = sc[:0]
			for r := range rows {
				for j := i1; j < i2; j++ {
					sc = append(sc, math.Abs(w[r*cols+j])*norms[j])
				}
			}
			for i := range smallestK(sc, k, &sorted) {
				pruned[(i/count)*cols+i1+i%count] = true
			}
		}
		// Multi-weight OBS per row: λ_Q = (A⁻¹_QQ)⁻¹ w_Q into a dense
		// [rows, count] Λ (0 off Q), then W[:, i1:] −= Λ·A⁻¹[0:count, :]
		// (A⁻¹ symmetric, so A⁻¹_{:,Q}λ is row Q of A⁻¹ weighted by λ).
		lam := make([]float64, rows*count)
		parallelRows(rows, func(r int) {
			row := w[r*cols+i1 : (r+1)*cols]
			pr := pruned[r*cols+i1 : r*cols+i2]
			var q []int
			for j, p := range pr {
				if p {
					q = append(q, j)
				}
			}
			if len(q) == 0 {
				return
			}
			kq := len(q)
			a := make([]float64, kq*kq)
			b := make([]float64, kq)
			for x, qx := range q {
				b[x] = row[qx]
				for y, qy := range q {
					a[x*kq+y] = ainv[qx*n+qy]
				}
			}
			if !solveSPD(be, a, b, kq) {
				// A principal submatrix of a positive definite inverse is
				// positive definite; failing here means rounding broke it.
				solveGeneral(a, b, kq, q, ainv, n)
			}
			for x, qx := range q {
				lam[r*count+qx] = b[x]
			}
		})
		be.Dgemm(false, false, rows, n, count, -1, lam, count, ainv, n, 1, w[i1:], cols)
		for r := range rows {
			for j := i1; j < i2; j++ {
				if pruned[r*cols+j] {
					w[r*cols+j] = 0
				}
			}
		}
		// Inverse of the trailing block H_d[i2:, i2:] by the Schur complement.
		if i2 < cols {
			ainv = trailingInverse(be, ainv, n, count)
			n -= count
		}
	}
	return Result{Damping: lambda}, nil
}

// smallestK yields the indices of the k smallest values of s in the order
// of a stable ascending sort's prefix (ties to the lower index), in
// increasing index order; buf is scratch. s must hold no NaN.
func smallestK(s []float64, k int, buf *[]float64) func(yield func(int) bool) {
	return func(yield func(int) bool) {
		if k <= 0 {
			return
		}
		*buf = append((*buf)[:0], s...)
		t := kthSmallest(*buf, k-1)
		below := 0
		for _, v := range s {
			if v < t {
				below++
			}
		}
		ties := k - below
		for i, v := range s {
			if v < t || (v == t && ties > 0) {
				if v == t {
					ties--
				}
				if !yield(i) {
					return
				}
			}
		}
	}
}

// kthSmallest returns the k-th smallest (0-based) value of a, reordering a
// (Hoare's selection with a median-of-three pivot).
func kthSmallest(a []float64, k int) float64 {
	lo, hi := 0, len(a)-1
	for hi > lo {
		if hi-lo < 16 {
			slices.Sort(a[lo : hi+1])
			return a[k]
		}
		mid := lo + (hi-lo)/2
		if a[mid] < a[lo] {
			a[mid], a[lo] = a[lo], a[mid]
		}
		if a[hi] < a[lo] {
			a[hi], a[lo] = a[lo], a[hi]
		}
		if a[hi] < a[mid] {
			a[hi], a[mid] = a[mid], a[hi]
		}
		pivot := a[mid]
		i, j := lo, hi
		for i <= j {
			for a[i] < pivot {
				i++
			}
			for a[j] > pivot {
				j--
			}
			if i <= j {
				a[i], a[j] = a[j], a[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return a[k]
		}
	}
	return a[k]
}

// trailingInverse returns (A_{22})⁻¹ for A⁻¹ = ainv ([n, n]) split after its
// first b rows/columns: A⁻¹_{22} − A⁻¹_{21} (A⁻¹_{11})⁻¹ A⁻¹_{12}.
func trailingInverse(be kernels.Backend, ainv []float64, n, b int) []float64 {
	m := n - b
	p11 := make([]float64, b*b)
	for i := range b {
		copy(p11[i*b:(i+1)*b], ainv[i*n:i*n+b])
	}
	p12 := make([]float64, b*m)
	for i := range b {
		copy(p12[i*m:(i+1)*m], ainv[i*n+b:(i+1)*n])
	}
	// X = (A⁻¹_{11})⁻¹ A⁻¹_{12}: invert the small block (positive definite).
	if !inverseSPD(be, p11, b) {
		panic("update: principal block of a positive definite inverse is not positive definite")
	}
	x := make([]float64, b*m)
	be.Dgemm(false, false, b, m, b, 1, p11, b, p12, m, 0, x, m)
	out := make([]float64, m*m)
	for i := range m {
		copy(out[i*m:(i+1)*m], ainv[(b+i)*n+b:(b+i+1)*n])
	}
	// out −= A⁻¹_{21} X = p12ᵀ X
	be.Dgemm(true, false, m, m, b, -1, p12, m, x, m, 1, out, m)
	// symmetrize against rounding
	for i := range m {
		for j := i + 1; j < m; j++ {
			v := 0.5 * (out[i*m+j] + out[j*m+i])
			out[i*m+j], out[j*m+i] = v, v
		}
	}
	return out
}

// solveSPD solves a·x = b in place (x into b) for a small symmetric positive
// definite a ([k, k], overwritten); false when a is not positive definite.
func solveSPD(be kernels.Backend, a, b []float64, k int) bool {
	if err := be.Cholesky(a, k); err != nil {
		return false
	}
	for i := range k { // L y = b
		s := b[i]
		for j := range i {
			s -= a[i*k+j] * b[j]
		}
		if !(a[i*k+i] > 0) {
			return false
		}
		b[i] = s / a[i*k+i]
	}
	for i := k - 1; i >= 0; i-- { // Lᵀ x = y
		s := b[i]
		for j := i + 1; j < k; j++ {
			s -= a[j*k+i] * b[j]
		}
		b[i] = s / a[i*k+i]
	}
	return true
}

// solveGeneral solves A⁻¹_QQ x = b by Gaussian elimination with partial
// pivoting, re-reading A⁻¹_QQ from ainv (a was overwritten).
func solveGeneral(a, b []float64, k int, q []int, ainv []float64, n int) {
	for x, qx := range q {
		for y, qy := range q {
			a[x*k+y] = ainv[qx*n+qy]
		}
	}
	for c := range k {
		piv := c
		for r := c + 1; r < k; r++ {
			if math.Abs(a[r*k+c]) > math.Abs(a[piv*k+c]) {
				piv = r
			}
		}
		if piv != c {
			for j := range k {
				a[c*k+j], a[piv*k+j] = a[piv*k+j], a[c*k+j]
			}
			b[c], b[piv] = b[piv], b[c]
		}
		for r := c + 1; r < k; r++ {
			f := a[r*k+c] / a[c*k+c]
			for j := c; j < k; j++ {
				a[r*k+j] -= f * a[c*k+j]
			}
			b[r] -= f * b[c]
		}
	}
	for i := k - 1; i >= 0; i-- {
		s := b[i]
		for j := i + 1; j < k; j++ {
			s -= a[i*k+j] * b[j]
		}
		b[i] = s / a[i*k+i]
	}
}
