package cuda

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"unsafe"

	"github.com/optima-llm/optima/kernels"
)

// CholeskySolveGathered is CholeskySolveBatched for the OPTIMA fallback
// with the matrices formed on the device: matrix k is H_SS for the kept
// set kept[k·n : (k+1)·n], A_k[r][c] = h[kept_k[r]][kept_k[c]], gathered by
// an NVRTC kernel (gather_hss) from the float64 Hessian h [in, in]
// row-major (used as given: the caller passes it damped and symmetric) that
// the backend keeps on the device under key (uploaded when absent, as
// RowObjectives does; key 0: uploaded and freed by this call). Then, as
// CholeskySolveBatched: DpotrfBatched and DpotrsBatched (or Dpotrf/Dpotrs
// one matrix at a time above Options.CholeskyLoopAbove) on device
// pointers, in chunks sized to the free device memory, and x [batch·n]
// (right-hand side k at x[k·n : (k+1)·n], float64) is overwritten with
// the solutions. Only the kept indices and x cross PCIe, not the n×n
// blocks; the factors are those of the host-built blocks (the same lower
// triangles, bit for bit), so the solutions equal CholeskySolveBatched's.
//
// Errors: a *kernels.CholeskyBatchError (wrapping
// kernels.ErrNotPositiveDefinite) listing the matrices whose info is
// positive or whose solution is not finite (the others are solved);
// an error wrapping kernels.ErrNotImplemented, with x unchanged, when
// Options.DeviceGather is off, cuSOLVER's batched routines are missing, or
// a cuSOLVER status error moved the batched Cholesky to the CPU (see
// BatchedErr; it is recorded here too): the caller then builds the blocks
// on the host; an *Error when another CUDA call fails; errClosed after
// Close. It panics when in, n or batch is negative, n > in, len(h) !=
// in·in, len(kept) or len(x) < batch·n, or a kept index is outside
// [0, in).
func (b *Backend) CholeskySolveGathered(key uint64, in int, h []float64, n, batch int, kept []int32, x []float64) (err error) {
	if in < 0 || n < 0 || batch < 0 || n > in || len(h) != in*in || len(kept) < batch*n || len(x) < batch*n {
		panic(fmt.Sprintf("cuda: CholeskySolveGathered: in=%d n=%d batch=%d, lengths h=%d kept=%d x=%d (want in·in, ≥ batch·n, ≥ batch·n)",
			in, n, batch, len(h), len(kept), len(x)))
	}
	checkKept(kept[:batch*n], in)
	switch {
	case !b.opts.DeviceGather:
		return fmt.Errorf("cuda: CholeskySolveGathered: Options.DeviceGather is off: %w", kernels.ErrNotImplemented)
	case b.solver == 0 || !b.a.cusolverBatchedOK:
		return fmt.Errorf("cuda: CholeskySolveGathered: no batched cuSOLVER routines: %w", kernels.ErrNotImplemented)
	case b.batchedErr.Load() != nil:
		return fmt.Errorf("cuda: CholeskySolveGathered: the batched Cholesky runs on the CPU after %v: %w", b.batchedErr.Load(), kernels.ErrNotImplemented)
	}
	if n == 0 || batch == 0 {
		return nil
	}
	loop := b.opts.CholeskyLoopAbove > 0 && n > b.opts.CholeskyLoopAbove
	failed := make([]bool, batch)
	x0 := slices.Clone(x[:batch*n])
	b.w.do(func() {
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			e, ok := p.(*Error)
			if !ok {
				panic(p)
			}
			if strings.HasPrefix(e.Call, "cusolverDn") {
				if b.batchedErr.CompareAndSwap(nil, e) {
					fmt.Fprintf(os.Stderr, "optima: warning: %v; the batched Cholesky runs on the CPU from now on\n", e)
				}
				copy(x, x0)
				err = fmt.Errorf("cuda: CholeskySolveGathered: %v: %w", e, kernels.ErrNotImplemented)
				return
			}
			err = e
		}()
		if b.closed {
			err = errClosed
			return
		}
		res := b.hessian(key, in, nil, h)
		if key == 0 {
			defer res.free(b.a)
		}
		out := &b.w.out
		if st := call(b.a.cuMemGetInfo, uintptr(unsafe.Pointer(&out[0])), uintptr(unsafe.Pointer(&out[1]))); st != 0 {
			panic(b.a.cuErr("cuMemGetInfo", st))
		}
		budget := min(maxBatchBytes.Load(), int64(out[0]+uint64(b.bufA.bytes)+uint64(b.bufB.bytes)+uint64(b.bufK.bytes))/2)
		per := gatherChunk(batch, n, budget)
		for k0 := 0; k0 < batch; k0 += per {
			nb := min(per, batch-k0)
			b.growBatch(n, nb)
			b.grow(&b.bufK, uintptr(nb*n)*4)
			b.a.htod(b.bufK.ptr, unsafe.Pointer(&kept[k0*n]), uintptr(nb*n)*4)
			b.a.htod(b.bufB.ptr, unsafe.Pointer(&x[k0*n]), uintptr(nb*n)*8)
			// One 256-thread block per row of every matrix; then the
			// factor and solve on the same (default) stream.
			b.launch("gather_hss", nb*n, 256, uint64(in), uint64(n), uint64(b.bufK.ptr), uint64(res.h64.ptr), uint64(b.bufA.ptr))
			info := b.factorChunk(n, nb, true, loop)
			b.a.dtoh(unsafe.Pointer(&x[k0*n]), b.bufB.ptr, uintptr(nb*n)*8)
			for k := range nb {
				failed[k0+k] = info[k] > 0
			}
		}
	})
	if err != nil {
		return err
	}
	for k := range batch {
		if failed[k] {
			continue
		}
		for _, v := range x[k*n : (k+1)*n] {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				failed[k] = true
				break
			}
		}
	}
	return kernels.BatchError(failed, n)
}

// gatherChunk is how many n×n matrices of a CholeskySolveGathered call of
// batch matrices go into one chunk of at most budget device bytes (the
// matrix, its right-hand side, its kept indices, its pointers and infos):
// at least 1, at most batch.
func gatherChunk(batch, n int, budget int64) int {
	per := int64(8*(n*n+n) + 4*n + 20)
	return max(1, min(batch, int(budget/per)))
}

// checkKept panics unless every index of kept is in [0, in): the gather
// kernel reads h at them, unchecked.
func checkKept(kept []int32, in int) {
	for i, j := range kept {
		if j < 0 || int(j) >= in {
			panic(fmt.Sprintf("cuda: CholeskySolveGathered: kept[%d] = %d outside [0, %d)", i, j, in))
		}
	}
}
