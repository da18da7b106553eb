package cpu

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/optima-llm/optima/kernels"
)

var _ kernels.BatchedCholesky = (*Backend)(nil)

// CholeskyBatched implements kernels.BatchedCholesky: each matrix of the
// batch is factored by Cholesky, the matrices spread over the backend's
// threads. It returns a *kernels.CholeskyBatchError listing the matrices that
// are not positive definite (the others are factored). It panics when n < 0,
// batch < 0 or len(a) < batch·n·n.
func (b *Backend) CholeskyBatched(a []float64, n, batch int) error {
	kernels.CheckBatch("cpu: CholeskyBatched", n, batch, len(a), -1)
	return b.batch(a, n, batch, nil)
}

// CholeskySolveBatched implements kernels.BatchedCholesky: each A_k is
// factored by Cholesky (left in a) and x_k is overwritten with A_k⁻¹·x_k by a
// forward and a backward substitution in float64. A matrix whose factor
// fails, or whose solution is not finite (NaN or Inf in x_k), is listed in
// the returned *kernels.CholeskyBatchError. It panics when n < 0, batch < 0,
// len(a) < batch·n·n or len(x) < batch·n.
func (b *Backend) CholeskySolveBatched(a []float64, n, batch int, x []float64) error {
	kernels.CheckBatch("cpu: CholeskySolveBatched", n, batch, len(a), len(x))
	return b.batch(a, n, batch, x)
}

// batch factors (and, with x, solves) the matrices of a batch on up to
// b.threads goroutines.
func (b *Backend) batch(a []float64, n, batch int, x []float64) error {
	failed := make([]bool, batch)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(b.threads, batch) {
		wg.Go(func() {
			for {
				k := int(next.Add(1) - 1)
				if k >= batch {
					return
				}
				ak := a[k*n*n : (k+1)*n*n]
				if b.Cholesky(ak, n) != nil {
					failed[k] = true
					continue
				}
				if x != nil {
					xk := x[k*n : (k+1)*n]
					kernels.CholeskySubstitute(ak, n, xk)
					for _, v := range xk {
						if math.IsNaN(v) || math.IsInf(v, 0) {
							failed[k] = true
							break
						}
					}
				}
			}
		})
	}
	wg.Wait()
	return kernels.BatchError(failed, n)
}
