package cuda

import (
	"fmt"
	"time"
	"unsafe"
)

// Row status codes of PCG32 (the same as stages/solve.DeviceSolver's).
const (
	StatusActive       = 0 // on input: solve this row
	StatusConverged    = 1 // ‖r_S‖ ≤ tol·‖b_S‖ (or b_S = 0)
	StatusMaxIter      = 2 // maxIter iterations without converging
	StatusBrokeDown    = 3 // pᵀH_SS p ≤ 0 or not finite
	maxResident        = 2 // Hessians kept on the device between calls
	pcgBytesPerElement = 4 + 1 + 4 + 4 + 3*8
)

// resident is a Hessian kept on the device between calls, by key.
type resident struct {
	key      uint64
	in       int
	h32, h64 devBuf
	last     uint64
}

func (r *resident) free(a *api) {
	a.free(&r.h32)
	a.free(&r.h64)
}

// pcgBufs are the row-batch buffers of PCG32 and QuadForms, reused.
type pcgBufs struct {
	w, mask, a, q, x, r, p, rz, bnorm, iters, status, act, out devBuf
}

// hessian returns the resident copy of H under key (0: no caching; the
// caller frees it), uploading h32 or h64 when given and not yet there.
// Worker thread only.
func (b *Backend) hessian(key uint64, in int, h32 []float32, h64 []float64) *resident {
	b.tick++
	var r *resident
	for _, c := range b.cache {
		if key != 0 && c.key == key && c.in == in {
			r = c
		}
	}
	if r == nil {
		if key != 0 && len(b.cache) >= maxResident {
			old := 0
			for i, c := range b.cache {
				if c.last < b.cache[old].last {
					old = i
				}
			}
			b.cache[old].free(b.a)
			b.cache = append(b.cache[:old], b.cache[old+1:]...)
		}
		r = &resident{key: key, in: in}
		if key != 0 {
			b.cache = append(b.cache, r)
		}
	}
	r.last = b.tick
	nn := uintptr(in * in)
	if h32 != nil && r.h32.ptr == 0 {
		b.grow(&r.h32, nn*4)
		b.htodStaged(r.h32.ptr, unsafe.Pointer(&h32[0]), nn*4)
	}
	if h64 != nil && r.h64.ptr == 0 {
		b.grow(&r.h64, nn*8)
		b.htodStaged(r.h64.ptr, unsafe.Pointer(&h64[0]), nn*8)
	}
	return r
}

// Release frees the device copy of the Hessian stored under key, if any.
func (b *Backend) Release(key uint64) {
	b.w.do(func() {
		for i, c := range b.cache {
			if c.key == key {
				c.free(b.a)
				b.cache = append(b.cache[:i], b.cache[i+1:]...)
				return
			}
		}
	})
}

// chunkRows is how many rows of width in fit in the free device memory with
// bytesPerElem bytes per element, keeping 512 MiB spare. Worker thread only.
func (b *Backend) chunkRows(rows, in, bytesPerElem int) int {
	out := &b.w.out
	if st := call(b.a.cuMemGetInfo, uintptr(unsafe.Pointer(&out[0])), uintptr(unsafe.Pointer(&out[1]))); st != 0 {
		panic(b.a.cuErr("cuMemGetInfo", st))
	}
	free := int64(out[0]) - 512<<20
	n := int(free / int64(bytesPerElem*in+64))
	return max(1, min(rows, n))
}

// PCGStats are timings of the last PCG32 call, for benchmarks.
type PCGStats struct {
	Chunks     int           // row batches the call was split into
	GEMMs      int           // cuBLAS products run
	GEMMRows   int64         // Σ rows over those products (each [rows, in] × [in, in])
	Upload     time.Duration // H and row uploads
	Iterations time.Duration // the PCG loop, final weights and objectives, synchronised
}

// PCG32 runs stages/solve's batched Jacobi-PCG (float32 products H·p, all
// vectors and scalars float64) on the device for every row i with
// status[i] == StatusActive, keeping H and the row batch resident: H [in, in]
// (h32 float32, damped, symmetric; h64 the same in float64 for the
// objectives) is uploaded once per key (key 0: not cached), the rows in
// batches sized to the free device memory.
//
// Shapes: w [rows, in] float32; pruned [rows, in] (true = pruned); invD
// [in] the Jacobi preconditioner 1/diag(H); status and iters [rows]; obj
// [6·rows] or nil. The right-hand side of row i is b_S = (H (w ⊙ 1_P))_S and
// a row stops when ‖r_S‖ ≤ tol·‖b_S‖. On return a solved row's status is
// StatusConverged, StatusMaxIter or StatusBrokeDown and iters holds its
// iterations; every row of w is overwritten with float32(w + δ) on the kept
// set and 0 on the pruned set (δ = 0 for rows not solved), except failed
// rows (StatusMaxIter, StatusBrokeDown) when keepFailed is set, which keep
// their input. obj gets RowObjectives' values for the input and the written
// weights, computed on the device.
//
// With Options.TF32 the products use TF32 tensor cores. It panics on wrong
// lengths and returns an *Error when a CUDA call fails.
func (b *Backend) PCG32(key uint64, in int, h32 []float32, h64 []float64, invD []float64, rows int, w []float32, pruned []bool, tol float64, maxIter int,
	keepFailed bool, status []uint8, iters []int32, obj []float64) (err error) {
	if in < 0 || rows < 0 || len(h32) != in*in || len(h64) != in*in || len(invD) != in || len(w) != rows*in || len(pruned) != rows*in ||
		len(status) != rows || len(iters) != rows || (obj != nil && len(obj) != 6*rows) {
		panic(fmt.Sprintf("cuda: PCG32: lengths h32=%d h64=%d invD=%d w=%d pruned=%d status=%d iters=%d obj=%d, want in = %d, rows = %d",
			len(h32), len(h64), len(invD), len(w), len(pruned), len(status), len(iters), len(obj), in, rows))
	}
	if rows == 0 || in == 0 {
		return nil
	}
	st := PCGStats{}
	b.w.do(func() {
		defer func() {
			if p := recover(); p != nil {
				if e, ok := p.(error); ok {
					err = e
					return
				}
				panic(p)
			}
		}()
		if b.closed {
			err = errClosed
			return
		}
		t0 := time.Now()
		var h64arg []float64
		if obj != nil {
			h64arg = h64
		}
		res := b.hessian(key, in, h32, h64arg)
		if key == 0 {
			defer res.free(b.a)
		}
		dInvD := &b.bufD
		b.grow(dInvD, uintptr(in)*8)
		b.a.htod(dInvD.ptr, unsafe.Pointer(&invD[0]), uintptr(in)*8)
		if b.opts.TF32 {
			b.checkBlas("cublasSetMathMode", call(b.a.cublasSetMathMode, b.blas, 3))
			defer call(b.a.cublasSetMathMode, b.blas, 0)
		}
		chunk := b.chunkRows(rows, in, pcgBytesPerElement)
		pb := &b.pcg
		hostStatus := make([]uint8, chunk)
		act := make([]int32, chunk)
		st.Upload += time.Since(t0)
		for r0 := 0; r0 < rows; r0 += chunk {
			n := min(chunk, rows-r0)
			st.Chunks++
			t1 := time.Now()
			ne := uintptr(n * in)
			for _, g := range []struct {
				d  *devBuf
				by uintptr
			}{{&pb.w, ne * 4}, {&pb.mask, ne}, {&pb.a, ne * 4}, {&pb.q, ne * 4}, {&pb.x, ne * 8}, {&pb.r, ne * 8}, {&pb.p, ne * 8},
				{&pb.rz, uintptr(n) * 8}, {&pb.bnorm, uintptr(n) * 8}, {&pb.iters, uintptr(n) * 4}, {&pb.status, uintptr(n)}, {&pb.act, uintptr(n) * 4}} {
				b.grow(g.d, g.by)
			}
			b.a.htod(pb.w.ptr, unsafe.Pointer(&w[r0*in]), ne*4)
			b.a.htod(pb.mask.ptr, unsafe.Pointer(&pruned[r0*in]), ne)
			b.a.htod(pb.status.ptr, unsafe.Pointer(&status[r0]), uintptr(n))
			b.a.mustCU("cuMemsetD8", call(b.a.cuMemsetD8, pb.x.ptr, 0, ne*8))
			b.a.mustCU("cuMemsetD8", call(b.a.cuMemsetD8, pb.iters.ptr, 0, uintptr(n)*4))
			act = act[:0]
			for k := range n {
				if status[r0+k] == StatusActive {
					act = append(act, int32(k))
				}
			}
			first := append([]int32(nil), act...)
			st.Upload += time.Since(t1)
			t2 := time.Now()
			if len(act) > 0 {
				b.a.htod(pb.act.ptr, unsafe.Pointer(&act[0]), uintptr(len(act))*4)
				b.pcgChunk(&st, in, res, dInvD, act, hostStatus[:n], tol, maxIter)
			}
			b.a.dtoh(unsafe.Pointer(&hostStatus[0]), pb.status.ptr, uintptr(n))
			it32 := make([]int32, n)
			b.a.dtoh(unsafe.Pointer(&it32[0]), pb.iters.ptr, uintptr(n)*4)
			for _, k := range first {
				s := hostStatus[k]
				if s == StatusActive {
					s = StatusMaxIter
				}
				status[r0+int(k)] = s
				iters[r0+int(k)] = it32[k]
			}
			// Final weights into pb.a, then the objectives from pb.w, pb.a.
			keep := uint64(0)
			if keepFailed {
				keep = 1
			}
			b.launch("finish_w", n, 256, uint64(in), keep, uint64(pb.status.ptr), uint64(pb.mask.ptr), uint64(pb.w.ptr), uint64(pb.x.ptr), uint64(pb.a.ptr))
			b.a.dtoh(unsafe.Pointer(&w[r0*in]), pb.a.ptr, ne*4)
			if obj != nil {
				b.grow(&pb.out, uintptr(n)*6*8)
				b.objectives(n, in, res, pb.w.ptr, pb.a.ptr)
				b.a.dtoh(unsafe.Pointer(&obj[6*r0]), pb.out.ptr, uintptr(n)*6*8)
			}
			st.Iterations += time.Since(t2)
		}
		b.lastPCG = st
	})
	return err
}

// pcgChunk runs the PCG on the rows act (chunk-local, uploaded to pb.act)
// of the chunk in the pcg buffers. Worker thread only.
func (b *Backend) pcgChunk(st *PCGStats, in int, res *resident, dInvD *devBuf, act []int32, hostStatus []uint8, tol float64, maxIter int) {
	pb := &b.pcg
	n := len(hostStatus)
	var next []int32
	na := len(act)
	{
		b.launch("gather_rhs", na, 256, uint64(pb.act.ptr), uint64(in), uint64(pb.w.ptr), uint64(pb.mask.ptr), uint64(pb.a.ptr))
		b.sgemmDev(false, false, na, in, in, 1, pb.a.ptr, in, res.h32.ptr, in, 0, pb.q.ptr)
		st.GEMMs++
		st.GEMMRows += int64(na)
		b.launch("pcg_init", na, 256, uint64(pb.act.ptr), uint64(in), uint64(pb.q.ptr), uint64(pb.mask.ptr), uint64(dInvD.ptr),
			uint64(pb.r.ptr), uint64(pb.p.ptr), uint64(pb.rz.ptr), uint64(pb.bnorm.ptr), uint64(pb.status.ptr))
		for it := 1; it <= maxIter; it++ {
			b.a.dtoh(unsafe.Pointer(&hostStatus[0]), pb.status.ptr, uintptr(n))
			next = next[:0]
			for _, k := range act {
				if hostStatus[k] == StatusActive {
					next = append(next, k)
				}
			}
			act = append(act[:0], next...)
			if len(act) == 0 {
				break
			}
			na = len(act)
			b.a.htod(pb.act.ptr, unsafe.Pointer(&act[0]), uintptr(na)*4)
			b.launch("gather_p", na, 256, uint64(pb.act.ptr), uint64(in), uint64(pb.p.ptr), uint64(pb.a.ptr))
			b.sgemmDev(false, false, na, in, in, 1, pb.a.ptr, in, res.h32.ptr, in, 0, pb.q.ptr)
			st.GEMMs++
			st.GEMMRows += int64(na)
			b.launch("pcg_step", na, 256, uint64(pb.act.ptr), uint64(in), uint64(it), uint64(pb.q.ptr), uint64(pb.mask.ptr),
				uint64(dInvD.ptr), uint64(pb.x.ptr), uint64(pb.r.ptr), uint64(pb.p.ptr), uint64(pb.rz.ptr), uint64(pb.bnorm.ptr),
				f64bits(tol), uint64(pb.iters.ptr), uint64(pb.status.ptr))
		}
	}
}

// objectives writes RowObjectives' values for n rows of w0 and w1 (device,
// [n, in] float32) with the mask in pb.mask into pb.out, using pb.x and pb.r
// as scratch. Worker thread only.
func (b *Backend) objectives(n, in int, res *resident, w0, w1 uintptr) {
	pb := &b.pcg
	for mode := range 3 {
		b.launch("build_v", n, 256, uint64(mode), uint64(in), uint64(w0), uint64(w1), uint64(pb.mask.ptr), uint64(pb.x.ptr))
		b.dgemmDev(false, false, n, in, in, 1, pb.x.ptr, in, res.h64.ptr, in, 0, pb.r.ptr)
		b.launch("row_dot2", n, 256, uint64(in), uint64(pb.x.ptr), uint64(pb.r.ptr), uint64(pb.out.ptr), uint64(2*mode))
	}
}

// LastPCG returns the timings of the last PCG32 call.
func (b *Backend) LastPCG() (st PCGStats) {
	b.w.do(func() { st = b.lastPCG })
	return st
}

// RowObjectives sets, in float64, out[6i : 6i+6] = (vᵀH v, vᵀv) for
// v = w0_i, then v = −w0_i ⊙ 1_P, then v = w1_i − w0_i, for the rows of w0
// and w1 [rows, in] float32 with pruned [rows, in] and H [in, in] float64
// (uploaded once per key; key 0: not cached): one cuBLAS DGEMM and one row
// reduction per form and row batch. It panics on wrong lengths and returns
// an *Error when a CUDA call fails.
func (b *Backend) RowObjectives(key uint64, in int, h []float64, rows int, w0, w1 []float32, pruned []bool, out []float64) (err error) {
	if in < 0 || rows < 0 || len(h) != in*in || len(w0) != rows*in || len(w1) != rows*in || len(pruned) != rows*in || len(out) != 6*rows {
		panic(fmt.Sprintf("cuda: RowObjectives: lengths h=%d w0=%d w1=%d pruned=%d out=%d, want in = %d, rows = %d",
			len(h), len(w0), len(w1), len(pruned), len(out), in, rows))
	}
	if rows == 0 {
		return nil
	}
	if in == 0 {
		clear(out)
		return nil
	}
	b.w.do(func() {
		defer func() {
			if p := recover(); p != nil {
				if e, ok := p.(error); ok {
					err = e
					return
				}
				panic(p)
			}
		}()
		if b.closed {
			err = errClosed
			return
		}
		res := b.hessian(key, in, nil, h)
		if key == 0 {
			defer res.free(b.a)
		}
		pb := &b.pcg
		chunk := b.chunkRows(rows, in, 4+4+1+8+8)
		for r0 := 0; r0 < rows; r0 += chunk {
			n := min(chunk, rows-r0)
			ne := uintptr(n * in)
			b.grow(&pb.w, ne*4)
			b.grow(&pb.a, ne*4)
			b.grow(&pb.mask, ne)
			b.grow(&pb.x, ne*8)
			b.grow(&pb.r, ne*8)
			b.grow(&pb.out, uintptr(n)*6*8)
			b.a.htod(pb.w.ptr, unsafe.Pointer(&w0[r0*in]), ne*4)
			b.a.htod(pb.a.ptr, unsafe.Pointer(&w1[r0*in]), ne*4)
			b.a.htod(pb.mask.ptr, unsafe.Pointer(&pruned[r0*in]), ne)
			b.objectives(n, in, res, pb.w.ptr, pb.a.ptr)
			b.a.dtoh(unsafe.Pointer(&out[6*r0]), pb.out.ptr, uintptr(n)*6*8)
		}
	})
	return err
}

// TimeSgemm measures the device-resident product C [m, n] = A [m, k] · B
// [k, n] (FP32, or TF32 tensor cores when tf32) on constant non-zero data:
// one warm-up, then reps timed products, synchronised. It returns seconds
// per product. For the benchmark's GEMM floor.
func (b *Backend) TimeSgemm(m, n, k, reps int, tf32 bool) (sec float64, err error) {
	b.w.do(func() {
		defer func() {
			if p := recover(); p != nil {
				if e, ok := p.(error); ok {
					err = e
					return
				}
				panic(p)
			}
		}()
		var a, bb, c devBuf
		defer b.a.free(&a)
		defer b.a.free(&bb)
		defer b.a.free(&c)
		b.grow(&a, uintptr(m*k)*4)
		b.grow(&bb, uintptr(k*n)*4)
		b.grow(&c, uintptr(m*n)*4)
		b.a.mustCU("cuMemsetD8", call(b.a.cuMemsetD8, a.ptr, 0x3c, uintptr(m*k)*4))
		b.a.mustCU("cuMemsetD8", call(b.a.cuMemsetD8, bb.ptr, 0x3b, uintptr(k*n)*4))
		if tf32 {
			call(b.a.cublasSetMathMode, b.blas, 3)
			defer call(b.a.cublasSetMathMode, b.blas, 0)
		}
		b.sgemmDev(false, false, m, n, k, 1, a.ptr, k, bb.ptr, n, 0, c.ptr)
		b.sync()
		t := time.Now()
		for range reps {
			b.sgemmDev(false, false, m, n, k, 1, a.ptr, k, bb.ptr, n, 0, c.ptr)
		}
		b.sync()
		sec = time.Since(t).Seconds() / float64(max(reps, 1))
	})
	return sec, err
}

func f64bits(v float64) uint64 { return *(*uint64)(unsafe.Pointer(&v)) }
