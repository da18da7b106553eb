package cuda

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/optima-llm/optima/kernels"
)

var _ kernels.BatchedCholesky = (*Backend)(nil)

// maxBatchBytes caps the device memory of one chunk of a batched Cholesky
// (matrices and right-hand sides); a chunk also takes at most half of the
// device's free memory. Tests lower it to exercise the chunking.
var maxBatchBytes atomic.Int64

func init() { maxBatchBytes.Store(4 << 30) }

// CholeskyBatched implements kernels.BatchedCholesky with cuSOLVER's
// DpotrfBatched, as Cholesky does with Dpotrf: each row-major lower
// triangle is read as the column-major upper one (uplo upper), so the
// column-major factor U (A = Uᵀ·U) is the row-major L. The batch is uploaded
// in chunks that fit the free device memory (at most 4 GiB each), with the
// device array of matrix pointers cuSOLVER takes and one info per matrix.
// A matrix is listed as failed in the *kernels.CholeskyBatchError when its
// info is positive or its factor has a non-finite or non-positive diagonal
// (cuSOLVER does not flag NaN). Matrices larger than
// Options.CholeskyLoopAbove (when set) are factored one at a time with
// Dpotrf on the uploaded chunk instead. Without libcusolver (or its batched
// symbols) it runs on the CPU backend. It panics when n < 0, batch < 0 or
// len(a) < batch·n·n, and with an *Error when a CUDA call fails.
func (b *Backend) CholeskyBatched(a []float64, n, batch int) error {
	kernels.CheckBatch("cuda: CholeskyBatched", n, batch, len(a), -1)
	if b.solver == 0 || !b.a.cusolverBatchedOK || b.batchedErr.Load() != nil {
		return b.cpu.CholeskyBatched(a, n, batch)
	}
	a0 := slices.Clone(a[:batch*n*n]) // potrfBatched writes a chunk by chunk
	if err, ok := b.guardBatched(func() error { return b.potrfBatched(a, n, batch, nil) }); ok {
		return err
	}
	copy(a, a0)
	return b.cpu.CholeskyBatched(a, n, batch)
}

// CholeskySolveBatched implements kernels.BatchedCholesky: DpotrfBatched as
// in CholeskyBatched, then DpotrsBatched (uplo upper, one right-hand side
// per matrix, cuSOLVER's only supported nrhs) on the device factors (or
// Dpotrf and Dpotrs one matrix at a time above Options.CholeskyLoopAbove). Only x
// is copied back; a is left unchanged. A matrix is listed as failed when
// its info is positive or its solution is not finite. Falls back and panics
// as CholeskyBatched; it also panics when len(x) < batch·n.
func (b *Backend) CholeskySolveBatched(a []float64, n, batch int, x []float64) error {
	kernels.CheckBatch("cuda: CholeskySolveBatched", n, batch, len(a), len(x))
	if b.solver == 0 || !b.a.cusolverBatchedOK || b.batchedErr.Load() != nil {
		return b.cpu.CholeskySolveBatched(a, n, batch, x)
	}
	x0 := slices.Clone(x[:batch*n]) // potrfBatched writes x chunk by chunk
	if err, ok := b.guardBatched(func() error { return b.potrfBatched(a, n, batch, x) }); ok {
		return err
	}
	copy(x, x0)
	return b.cpu.CholeskySolveBatched(a, n, batch, x)
}

// guardBatched runs f and reports ok. When f panics with a cuSOLVER status
// error (*Error of a cusolverDn call, e.g. a fill mode or size the batched
// routines refuse), it records the error (BatchedErr), prints a warning
// once, and returns ok = false so that the caller restores its inputs
// (potrfBatched writes a or x chunk by chunk) and redoes the batch on the
// CPU. Any other panic (a driver error, a bad shape) is re-raised.
func (b *Backend) guardBatched(f func() error) (err error, ok bool) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		e, isErr := p.(*Error)
		if !isErr || !strings.HasPrefix(e.Call, "cusolverDn") {
			panic(p)
		}
		if b.batchedErr.CompareAndSwap(nil, e) {
			fmt.Fprintf(os.Stderr, "optima: warning: %v; the batched Cholesky runs on the CPU from now on\n", e)
		}
		err, ok = nil, false
	}()
	return f(), true
}

// BatchedErr returns the cuSOLVER error that moved the batched Cholesky to
// the CPU (see guardBatched), or nil while it runs on the device. The GPU
// tests require nil.
func (b *Backend) BatchedErr() error {
	if e := b.batchedErr.Load(); e != nil {
		return e
	}
	return nil
}

// potrfBatched factors (and with x solves) the batch chunk by chunk.
func (b *Backend) potrfBatched(a []float64, n, batch int, x []float64) error {
	if n == 0 || batch == 0 {
		return nil
	}
	nn := n * n
	loop := b.opts.CholeskyLoopAbove > 0 && n > b.opts.CholeskyLoopAbove
	failed := make([]bool, batch)
	per := 0
	for k0 := 0; k0 < batch; k0 += per {
		b.w.do(func() {
			w := b.w
			if per == 0 { // chunk size from the free memory, once
				out := &w.out
				if st := call(b.a.cuMemGetInfo, uintptr(unsafe.Pointer(&out[0])), uintptr(unsafe.Pointer(&out[1]))); st != 0 {
					panic(b.a.cuErr("cuMemGetInfo", st))
				}
				budget := min(maxBatchBytes.Load(), int64(out[0]+uint64(b.bufA.bytes)+uint64(b.bufB.bytes))/2)
				per = max(1, min(batch, int(budget/int64(8*(nn+n)+20))))
			}
			nb := min(per, batch-k0)
			b.growBatch(n, nb)
			b.a.htod(b.bufA.ptr, unsafe.Pointer(&a[k0*nn]), uintptr(nb*nn)*8)
			if x != nil {
				b.a.htod(b.bufB.ptr, unsafe.Pointer(&x[k0*n]), uintptr(nb*n)*8)
			}
			info := b.factorChunk(n, nb, x != nil, loop)
			if x != nil {
				b.a.dtoh(unsafe.Pointer(&x[k0*n]), b.bufB.ptr, uintptr(nb*n)*8)
			} else {
				b.a.dtoh(unsafe.Pointer(&a[k0*nn]), b.bufA.ptr, uintptr(nb*nn)*8)
			}
			for k := range nb {
				failed[k0+k] = info[k] > 0
			}
		})
		for k := k0; k < k0+min(per, batch-k0); k++ {
			if failed[k] {
				continue
			}
			if x != nil {
				for _, v := range x[k*n : (k+1)*n] {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						failed[k] = true
						break
					}
				}
				continue
			}
			l := a[k*nn : (k+1)*nn]
			for i := range n {
				if d := l[i*n+i]; !(d > 0) || math.IsInf(d, 0) {
					failed[k] = true
					break
				}
				clear(l[i*n+i+1 : i*n+n])
			}
		}
	}
	return kernels.BatchError(failed, n)
}

// growBatch sizes the buffers of one chunk of nb n×n matrices: bufA the
// matrices, bufB the right-hand sides, bufC the device array of their
// device addresses (A_k, then x_k) that the batched routines take, bufD
// one info per matrix and the solve's parameter info. Worker thread only.
func (b *Backend) growBatch(n, nb int) {
	b.grow(&b.bufA, uintptr(nb*n*n)*8)
	b.grow(&b.bufB, uintptr(nb*n)*8)
	b.grow(&b.bufC, uintptr(2*nb)*8)
	b.grow(&b.bufD, uintptr(nb+1)*4)
}

// factorChunk factors the nb n×n matrices in bufA (column-major upper =
// row-major lower) with DpotrfBatched and, with solve, solves the
// right-hand sides in bufB with DpotrsBatched, or one matrix at a time
// (potrfLoop) when loop is set; buffers as growBatch made them. It returns
// the nb per-matrix infos (and with solve the solve's parameter info
// after them), panicking with an *Error on a cuSOLVER status or a negative
// (parameter) info. Worker thread only.
func (b *Backend) factorChunk(n, nb int, solve, loop bool) []int32 {
	nn := n * n
	ptrs := make([]uint64, 2*nb) // device addresses of A_k, then x_k
	for k := range nb {
		ptrs[k] = uint64(b.bufA.ptr) + uint64(k*nn*8)
		ptrs[nb+k] = uint64(b.bufB.ptr) + uint64(k*n*8)
	}
	b.a.htod(b.bufC.ptr, unsafe.Pointer(&ptrs[0]), uintptr(2*nb)*8)
	const upper = 1
	if loop {
		b.potrfLoop(n, nb, solve)
	} else {
		st := call(b.a.cusolverDnDpotrfBatched, b.solver, upper, uintptr(n), b.bufC.ptr, uintptr(n), b.bufD.ptr, uintptr(nb))
		if st != 0 {
			panic(&Error{Call: "cusolverDnDpotrfBatched", Code: st})
		}
		if solve {
			st := call(b.a.cusolverDnDpotrsBatched, b.solver, upper, uintptr(n), 1, b.bufC.ptr, uintptr(n),
				b.bufC.ptr+uintptr(nb)*8, uintptr(n), b.bufD.ptr+uintptr(nb)*4, uintptr(nb))
			if st != 0 {
				panic(&Error{Call: "cusolverDnDpotrsBatched", Code: st})
			}
		}
	}
	info := make([]int32, nb+1) // per-matrix potrf infos, then the potrs parameter info
	if solve {
		b.a.dtoh(unsafe.Pointer(&info[0]), b.bufD.ptr, uintptr(nb+1)*4)
		if info[nb] < 0 {
			panic(&Error{Call: "cusolverDnDpotrs (invalid parameter)", Code: int(-info[nb])})
		}
	} else {
		b.a.dtoh(unsafe.Pointer(&info[0]), b.bufD.ptr, uintptr(nb)*4)
	}
	for k := range nb {
		if info[k] < 0 {
			panic(&Error{Call: "cusolverDnDpotrf (invalid parameter)", Code: int(-info[k])})
		}
	}
	return info
}

// potrfLoop factors the nb matrices in bufA one at a time with Dpotrf
// (infos into bufD as DpotrfBatched writes them) and, with solve, solves
// each right-hand side in bufB with Dpotrs (its parameter info into the
// slot after them), as Cholesky does for one matrix. Worker thread only.
func (b *Backend) potrfLoop(n, nb int, solve bool) {
	const upper = 1
	w := b.w
	w.out[0] = 0
	st := call(b.a.cusolverDnDpotrfBufferSize, b.solver, upper, uintptr(n), b.bufA.ptr, uintptr(n), uintptr(unsafe.Pointer(&w.out[0])))
	if st != 0 {
		panic(&Error{Call: "cusolverDnDpotrf_bufferSize", Code: st})
	}
	lwork := int(int32(w.out[0]))
	b.grow(&b.bufW, uintptr(max(lwork, 1))*8)
	for k := range nb {
		ak := b.bufA.ptr + uintptr(k*n*n)*8
		st := call(b.a.cusolverDnDpotrf, b.solver, upper, uintptr(n), ak, uintptr(n), b.bufW.ptr, uintptr(lwork), b.bufD.ptr+uintptr(k)*4)
		if st != 0 {
			panic(&Error{Call: "cusolverDnDpotrf", Code: st})
		}
		if !solve {
			continue
		}
		st = call(b.a.cusolverDnDpotrs, b.solver, upper, uintptr(n), 1, ak, uintptr(n), b.bufB.ptr+uintptr(k*n)*8, uintptr(n), b.bufD.ptr+uintptr(nb)*4)
		if st != 0 {
			panic(&Error{Call: "cusolverDnDpotrs", Code: st})
		}
	}
}
