package solve

import (
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/optima-llm/optima/kernels"
)

// directBatchBytes caps the host memory of the H_SS blocks of one batched
// Cholesky call (256 MiB: 8 blocks of |S| = 2048, 400 of |S| = 288); larger
// groups are split into several calls. Tests lower it.
var directBatchBytes = 256 << 20

// solveBatched solves the listed rows of w (indices into rows are "k")
// exactly at Options.Damping through bc: the rows are grouped by |S| (in
// increasing |S|, rows in list order within a group), and each group, in
// chunks of at most directBatchBytes of H_SS blocks, is formed on GOMAXPROCS
// goroutines (the same blocks and right-hand sides as directScratch.solve)
// and factored and solved by one bc.CholeskySolveBatched call. With dg (the
// device path) only the right-hand sides and the kept indices are formed on
// the host and dg.CholeskySolveGathered forms the blocks on the device from
// the Hessian it holds under p.id; when it answers
// kernels.ErrNotImplemented, that chunk and the rest go through bc. It
// writes the solved rows into w, sets used[k] = Options.Damping for them,
// and returns the ks (ascending) whose H_SS was not positive definite, left
// unchanged for the one-by-one path to retry with more damping. Errors:
// another error of bc or dg, wrapped.
func (p *Problem) solveBatched(bc kernels.BatchedCholesky, dg DeviceGather, w []float32, pruned []bool, rows []int, used []float64) ([]int, error) {
	in := p.in
	groups := map[int][]int{}
	for k, i := range rows {
		n := 0
		for _, pr := range pruned[i*in : i*in+in] {
			if !pr {
				n++
			}
		}
		groups[n] = append(groups[n], k)
	}
	var retry []int
	for _, n := range slices.Sorted(maps.Keys(groups)) {
		g := groups[n]
		per := max(1, min(len(g), directBatchBytes/(8*max(1, n*n))))
		var a []float64  // host blocks [per, n, n], when bc is used
		var kept []int32 // kept indices [per, n], when dg is used
		x := make([]float64, per*n)
		for c0 := 0; c0 < len(g); c0 += per {
			chunk := g[c0:min(len(g), c0+per)]
			nb := len(chunk)
			var err error
			if dg != nil {
				if kept == nil {
					kept = make([]int32, per*n)
				}
				parallelScratch(nb, func(sc *directScratch, m int) {
					i := rows[chunk[m]]
					sc.split(pruned[i*in : i*in+in])
					sc.packKept(kept[m*n : (m+1)*n])
					sc.buildRHS(p.hd, in, w[i*in:i*in+in], x[m*n:(m+1)*n])
				})
				err = dg.CholeskySolveGathered(p.id, in, p.hd, n, nb, kept[:nb*n], x[:nb*n])
				if errors.Is(err, kernels.ErrNotImplemented) {
					dg = nil // host-built blocks from this chunk on
				}
			}
			if dg == nil {
				if a == nil {
					a = make([]float64, per*n*n)
				}
				parallelScratch(nb, func(sc *directScratch, m int) {
					i := rows[chunk[m]]
					sc.split(pruned[i*in : i*in+in])
					sc.build(p.hd, in, 0, w[i*in:i*in+in], a[m*n*n:(m+1)*n*n], x[m*n:(m+1)*n])
				})
				err = bc.CholeskySolveBatched(a[:nb*n*n], n, nb, x[:nb*n])
			}
			failed := make([]bool, nb)
			if err != nil {
				var be *kernels.CholeskyBatchError
				if !errors.As(err, &be) {
					return nil, fmt.Errorf("solve: batched Cholesky of %d rows with |S| = %d: %w", nb, n, err)
				}
				for _, m := range be.Failed {
					failed[m] = true
					retry = append(retry, chunk[m])
				}
			}
			parallelScratch(nb, func(sc *directScratch, m int) {
				if failed[m] {
					return
				}
				k := chunk[m]
				i := rows[k]
				wi := w[i*in : i*in+in]
				sc.split(pruned[i*in : i*in+in])
				sc.write(wi, x[m*n:(m+1)*n], wi)
				used[k] = p.opts.Damping
			})
		}
	}
	slices.Sort(retry)
	return retry, nil
}

// parallelScratch calls f(sc, m) for m in [0, n) on up to GOMAXPROCS
// goroutines, each with its own scratch.
func parallelScratch(n int, f func(sc *directScratch, m int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			var sc directScratch
			for {
				m := int(next.Add(1) - 1)
				if m >= n {
					return
				}
				f(&sc, m)
			}
		})
	}
	wg.Wait()
}
