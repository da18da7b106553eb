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
// device path) the groups go through gatherGroup instead (no blocks on the
// host); when it answers kernels.ErrNotImplemented, the rest goes through
// bc. It writes the solved rows into w, sets used[k] = Options.Damping for
// them, and returns the ks (ascending) whose H_SS was not positive
// definite, left unchanged for the one-by-one path to retry with more
// damping. Errors: another error of bc or dg, wrapped.
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
		if dg != nil {
			r, done, err := p.gatherGroup(dg, n, per, g, w, pruned, rows, used)
			retry = append(retry, r...)
			switch {
			case err == nil:
				continue
			case errors.Is(err, kernels.ErrNotImplemented):
				dg = nil // host-built blocks from here on
				g = g[done:]
			default:
				return nil, err
			}
		}
		a := make([]float64, per*n*n)
		x := make([]float64, per*n)
		for c0 := 0; c0 < len(g); c0 += per {
			chunk := g[c0:min(len(g), c0+per)]
			nb := len(chunk)
			parallelScratch(nb, func(sc *directScratch, m int) {
				i := rows[chunk[m]]
				sc.split(pruned[i*in : i*in+in])
				sc.build(p.hd, in, 0, w[i*in:i*in+in], a[m*n*n:(m+1)*n*n], x[m*n:(m+1)*n])
			})
			r, err := p.finishChunk(bc.CholeskySolveBatched(a[:nb*n*n], n, nb, x[:nb*n]), n, chunk, x, w, pruned, rows, used)
			if err != nil {
				return nil, err
			}
			retry = append(retry, r...)
		}
	}
	slices.Sort(retry)
	return retry, nil
}

// gatherGroup solves the rows g (ks, all with |S| = n) through
// dg.CholeskySolveGathered in chunks of per rows: the host forms only the
// kept indices and right-hand sides of a chunk (those of chunk c+1 while
// the device solves chunk c), the device the blocks, from the Hessian it
// holds under p.id. It writes the solved rows as finishChunk does and
// returns the ks whose H_SS was not positive definite, how many rows of g
// it handled (the chunks before an error), and an error: one wrapping
// kernels.ErrNotImplemented leaves g[done:] for the host-built path; any
// other is final, wrapped.
func (p *Problem) gatherGroup(dg DeviceGather, n, per int, g []int, w []float32, pruned []bool, rows []int, used []float64) (retry []int, done int, err error) {
	in := p.in
	type inputs struct {
		kept []int32   // [per, n]
		x    []float64 // [per, n]
	}
	var bufs [2]inputs
	chunkAt := func(c0 int) []int { return g[c0:min(len(g), c0+per)] }
	prep := func(b *inputs, chunk []int) {
		if b.kept == nil {
			b.kept, b.x = make([]int32, per*n), make([]float64, per*n)
		}
		parallelScratch(len(chunk), func(sc *directScratch, m int) {
			i := rows[chunk[m]]
			sc.split(pruned[i*in : i*in+in])
			sc.packKept(b.kept[m*n : (m+1)*n])
			sc.buildRHS(p.hd, in, w[i*in:i*in+in], b.x[m*n:(m+1)*n])
		})
	}
	prep(&bufs[0], chunkAt(0))
	for c, c0 := 0, 0; c0 < len(g); c, c0 = c+1, c0+per {
		chunk := chunkAt(c0)
		nb := len(chunk)
		cur := &bufs[c%2]
		var next chan struct{}
		if c0+per < len(g) {
			// The other buffers held chunk c−1, whose rows are written.
			next = make(chan struct{})
			go func() {
				defer close(next)
				prep(&bufs[(c+1)%2], chunkAt(c0+per))
			}()
		}
		err := dg.CholeskySolveGathered(p.id, in, p.hd, n, nb, cur.kept[:nb*n], cur.x[:nb*n])
		if next != nil {
			<-next
		}
		if errors.Is(err, kernels.ErrNotImplemented) {
			return retry, c0, err
		}
		r, err := p.finishChunk(err, n, chunk, cur.x, w, pruned, rows, used)
		if err != nil {
			return retry, c0, err
		}
		retry = append(retry, r...)
	}
	return retry, len(g), nil
}

// finishChunk takes the answer err of a batched solve of the rows chunk
// (ks, |S| = n, solutions in x [len(chunk), n]): it writes every solved row
// into w (dst_P = 0, dst_S = w_S + x) with used[k] = Options.Damping and
// returns the ks listed as not positive definite by a
// *kernels.CholeskyBatchError; any other error is returned, wrapped.
func (p *Problem) finishChunk(err error, n int, chunk []int, x []float64, w []float32, pruned []bool, rows []int, used []float64) ([]int, error) {
	in := p.in
	nb := len(chunk)
	failed := make([]bool, nb)
	var retry []int
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
