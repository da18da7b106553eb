// Package cuda is optima's NVIDIA GPU backend: a kernels.Backend whose GEMMs
// run on cuBLAS (SGEMM in plain FP32, DGEMM), whose Cholesky runs on cuSOLVER
// (Dpotrf, and DpotrfBatched/DpotrsBatched for kernels.BatchedCholesky; on
// the CPU backend when libcusolver is absent) and whose small
// kernels (masking, gathers, row reductions, the batched PCG step) are CUDA
// C++ compiled at start-up with NVRTC for the device's compute capability.
//
// Every library is opened at run time with dlopen through
// github.com/ebitengine/purego, so the package uses no cgo, builds with
// CGO_ENABLED=0 and needs no CUDA toolkit at build time; at run time it needs
// the driver (libcuda.so.1), libcublas, libnvrtc and optionally libcusolver
// (searched by bare name, then in OPTIMA_CUDA_LIB_DIR and /usr/local/cuda/lib64).
//
// All CUDA work of a Backend runs on one goroutine locked to its OS thread,
// on which the device's primary context is current (DESIGN.md §3: a context is
// per OS thread; CUDA 13 renamed cuCtxCreate, the primary-context API is
// stable). Calls from other goroutines are queued to it, so a Backend is safe
// for concurrent use and its operations run one at a time. Device memory is
// allocated explicitly (cuMemAlloc, never managed memory) and reused between
// calls.
//
// The kernels.Backend methods take host slices: each call uploads its
// operands and downloads its result, which suits occasional products. The
// OPTIMA row solve instead keeps the Hessian and the row batch resident for
// the whole PCG: see PCG32 and RowObjectives, which stages/solve uses through its
// DeviceSolver interface.
//
// Errors: Available and New return errors wrapping ErrUnavailable; a CUDA
// call that fails inside a kernels.Backend method (which returns no error)
// panics with an *Error naming the call.
package cuda

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"unsafe"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/kernels/cpu"
)

// Options configure New.
type Options struct {
	// Device is the CUDA device ordinal (0 for the first GPU).
	Device int
	// TF32 lets the PCG products of PCG32 use TF32 tensor cores
	// (CUBLAS_TF32_TENSOR_OP_MATH: inputs rounded to 10-bit mantissas, FP32
	// accumulation). Sgemm always runs in plain FP32.
	TF32 bool
	// CholeskyLoopAbove makes CholeskyBatched and CholeskySolveBatched
	// factor (and solve) matrices larger than this one at a time with
	// Dpotrf/Dpotrs on the uploaded chunk instead of DpotrfBatched/
	// DpotrsBatched, which cuSOLVER aims at small matrices. 0: always the
	// batched routines.
	CholeskyLoopAbove int
	// DeviceGather enables CholeskySolveGathered, the fallback's batched
	// Cholesky with every H_SS gathered on the device from the resident
	// Hessian (no H_SS crosses PCIe). Off, CholeskySolveGathered returns
	// an error wrapping kernels.ErrNotImplemented and stages/solve builds
	// the blocks on the host as before.
	DeviceGather bool
	// PinnedStaging sends large host↔device copies (4 MiB and more) of
	// AccumulateGram, of the compact operands of Sgemm and Dgemm and of the
	// Hessian uploads of PCG32 and RowObjectives through two reused
	// page-locked host buffers of 32 MiB (cuMemHostAlloc, freed by Close),
	// filled and emptied by goroutines while the driver copies the other
	// (staging.go). The device receives the same bytes: results are
	// identical. Off, every copy is pageable, as before.
	PinnedStaging bool
}

// Available reports why no GPU can be used (nil when device 0 can): it
// opens the CUDA libraries and calls cuInit. The error wraps ErrUnavailable.
func Available() error {
	_, err := loadAPI()
	return err
}

// Backend is the CUDA implementation of kernels.Backend; see the package doc.
type Backend struct {
	a    *api
	opts Options
	w    *worker

	// Owned by the worker thread.
	dev        int32
	ctx        uintptr
	blas       uintptr
	solver     uintptr
	fn         map[string]uintptr
	bufA, bufB devBuf
	bufC, bufD devBuf
	bufW       devBuf // cuSOLVER workspace of the batched Cholesky's Dpotrf loop
	bufK       devBuf // kept indices of CholeskySolveGathered
	pin        [2]pinBuf
	pinOff     bool // a cuMemHostAlloc failed: no more staging
	// stagedCopies and stagedBytes count the copies through pin (Staged).
	stagedCopies, stagedBytes atomic.Int64
	// batchedErr holds the first cuSOLVER status error of a batched
	// Cholesky call (*Error); once set, batched calls run on the CPU.
	batchedErr atomic.Pointer[Error]
	cache      []*resident
	pcg        pcgBufs
	lastPCG    PCGStats
	tick       uint64
	closed     bool

	name  string
	major int
	minor int
	cpu   *cpu.Backend
}

var _ kernels.Backend = (*Backend)(nil)

// New opens device opts.Device: it retains the device's primary context,
// creates the cuBLAS (and cuSOLVER) handles and compiles the package's
// kernels with NVRTC. Errors wrap ErrUnavailable when the libraries or the
// device are missing; NVRTC compile errors carry the compiler log.
func New(opts Options) (*Backend, error) {
	a, err := loadAPI()
	if err != nil {
		return nil, err
	}
	b := &Backend{a: a, opts: opts, fn: map[string]uintptr{}, cpu: cpu.New(0)}
	b.w, err = newWorker(b.setup)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (b *Backend) setup(w *worker) error {
	a := b.a
	out := &w.out
	if st := call(a.cuDeviceGet, uintptr(unsafe.Pointer(&out[0])), uintptr(b.opts.Device)); st != 0 {
		return fmt.Errorf("%w: device %d: %v", ErrUnavailable, b.opts.Device, a.cuErr("cuDeviceGet", st))
	}
	b.dev = int32(out[0])
	name := heapBytes(256)
	if call(a.cuDeviceGetName, uintptr(unsafe.Pointer(&name[0])), 255, uintptr(b.dev)) == 0 {
		b.name = goString(uintptr(unsafe.Pointer(&name[0])))
	}
	const ccMajor, ccMinor = 75, 76 // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_*
	out[0], out[1] = 0, 0
	call(a.cuDeviceGetAttribute, uintptr(unsafe.Pointer(&out[0])), ccMajor, uintptr(b.dev))
	call(a.cuDeviceGetAttribute, uintptr(unsafe.Pointer(&out[1])), ccMinor, uintptr(b.dev))
	b.major, b.minor = int(int32(out[0])), int(int32(out[1]))
	if st := call(a.cuDevicePrimaryCtxRetain, uintptr(unsafe.Pointer(&out[0])), uintptr(b.dev)); st != 0 {
		return fmt.Errorf("%w: device %d: %v", ErrUnavailable, b.opts.Device, a.cuErr("cuDevicePrimaryCtxRetain", st))
	}
	b.ctx = uintptr(out[0])
	if st := call(a.cuCtxSetCurrent, b.ctx); st != 0 {
		return fmt.Errorf("%w: %v", ErrUnavailable, a.cuErr("cuCtxSetCurrent", st))
	}
	if st := call(a.cublasCreate, uintptr(unsafe.Pointer(&out[0]))); st != 0 {
		return fmt.Errorf("%w: %v", ErrUnavailable, &Error{Call: "cublasCreate", Code: st})
	}
	b.blas = uintptr(out[0])
	if a.cusolverOK {
		if st := call(a.cusolverDnCreate, uintptr(unsafe.Pointer(&out[0]))); st == 0 {
			b.solver = uintptr(out[0])
		}
	}
	return b.compile(w)
}

// compile builds kernelSource for this device with NVRTC and loads it.
func (b *Backend) compile(w *worker) error {
	a := b.a
	src := cString(kernelSource)
	pname := cString("optima_kernels.cu")
	out := &w.out
	if st := call(a.nvrtcCreateProgram, uintptr(unsafe.Pointer(&out[0])), uintptr(unsafe.Pointer(&src[0])),
		uintptr(unsafe.Pointer(&pname[0])), 0, 0, 0); st != 0 {
		return &Error{Call: "nvrtcCreateProgram", Code: st}
	}
	prog := out[0]
	defer func() {
		out[1] = prog
		call(a.nvrtcDestroyProgram, uintptr(unsafe.Pointer(&out[1])))
	}()
	opts := [][]byte{cString(fmt.Sprintf("--gpu-architecture=sm_%d%d", b.major, b.minor))}
	for i, o := range opts {
		w.ptrs[i] = uintptr(unsafe.Pointer(&o[0]))
	}
	if st := call(a.nvrtcCompileProgram, uintptr(prog), uintptr(len(opts)), uintptr(unsafe.Pointer(&w.ptrs[0]))); st != 0 {
		log := ""
		if call(a.nvrtcGetProgramLogSize, uintptr(prog), uintptr(unsafe.Pointer(&out[2]))) == 0 && out[2] > 0 {
			buf := make([]byte, out[2])
			call(a.nvrtcGetProgramLog, uintptr(prog), uintptr(unsafe.Pointer(&buf[0])))
			log = goString(uintptr(unsafe.Pointer(&buf[0])))
		}
		return fmt.Errorf("cuda: NVRTC compile for sm_%d%d: %w\n%s", b.major, b.minor, &Error{Call: "nvrtcCompileProgram", Code: st}, log)
	}
	if st := call(a.nvrtcGetCUBINSize, uintptr(prog), uintptr(unsafe.Pointer(&out[2]))); st != 0 {
		return &Error{Call: "nvrtcGetCUBINSize", Code: st}
	}
	cubin := make([]byte, out[2])
	if st := call(a.nvrtcGetCUBIN, uintptr(prog), uintptr(unsafe.Pointer(&cubin[0]))); st != 0 {
		return &Error{Call: "nvrtcGetCUBIN", Code: st}
	}
	if st := call(a.cuModuleLoadData, uintptr(unsafe.Pointer(&out[3])), uintptr(unsafe.Pointer(&cubin[0]))); st != 0 {
		return a.cuErr("cuModuleLoadData", st)
	}
	mod := uintptr(out[3])
	for _, n := range []string{"gather_rhs", "gather_p", "pcg_init", "pcg_step", "finish_w", "build_v", "row_dot2", "gram_add", "gather_hss"} {
		cn := cString(n)
		if st := call(a.cuModuleGetFunction, uintptr(unsafe.Pointer(&out[4])), mod, uintptr(unsafe.Pointer(&cn[0]))); st != 0 {
			return a.cuErr("cuModuleGetFunction("+n+")", st)
		}
		b.fn[n] = uintptr(out[4])
	}
	return nil
}

// Close frees the backend's device memory and handles and releases the
// primary context. The Backend must not be used afterwards.
func (b *Backend) Close() error {
	var err error
	b.w.do(func() {
		if b.closed {
			return
		}
		b.closed = true
		for _, r := range b.cache {
			r.free(b.a)
		}
		b.cache = nil
		pb := &b.pcg
		for _, d := range []*devBuf{&b.bufA, &b.bufB, &b.bufC, &b.bufD, &b.bufW, &b.bufK, &pb.w, &pb.mask, &pb.a, &pb.q, &pb.x, &pb.r, &pb.p,
			&pb.rz, &pb.bnorm, &pb.iters, &pb.status, &pb.act, &pb.out} {
			b.a.free(d)
		}
		b.a.freeHost(&b.pin[0])
		b.a.freeHost(&b.pin[1])
		if b.blas != 0 {
			call(b.a.cublasDestroy, b.blas)
		}
		if st := call(b.a.cuDevicePrimaryCtxRelease, uintptr(b.dev)); st != 0 {
			err = b.a.cuErr("cuDevicePrimaryCtxRelease", st)
		}
	})
	close(b.w.jobs)
	return err
}

// Name returns "cuda".
func (b *Backend) Name() string { return "cuda" }

// Capabilities reports Device "cuda", Threads 1 (one stream), SIMD the
// device's architecture ("sm_90") and Float64 true.
func (b *Backend) Capabilities() kernels.Capabilities {
	return kernels.Capabilities{Device: "cuda", Threads: 1, SIMD: fmt.Sprintf("sm_%d%d", b.major, b.minor), Float64: true}
}

// DeviceName returns the GPU's name as the driver reports it ("NVIDIA H200")
// and the libraries the backend opened.
func (b *Backend) DeviceName() (string, []string) { return b.name, b.a.libs }

// MemInfo returns the device's free and total memory in bytes.
func (b *Backend) MemInfo() (free, total uint64, err error) {
	b.w.do(func() {
		out := &b.w.out
		if st := call(b.a.cuMemGetInfo, uintptr(unsafe.Pointer(&out[0])), uintptr(unsafe.Pointer(&out[1]))); st != 0 {
			err = b.a.cuErr("cuMemGetInfo", st)
			return
		}
		free, total = out[0], out[1]
	})
	return free, total, err
}

// launch runs kernel name on grid×block threads (1-D) on the default stream
// with the given arguments (each 8-byte slot holds a pointer, an int or a
// float64's bits). Worker thread only.
func (b *Backend) launch(name string, grid, block int, args ...uint64) {
	w := b.w
	for i, v := range args {
		w.params[i] = v
		w.ptrs[i] = uintptr(unsafe.Pointer(&w.params[i]))
	}
	if grid == 0 {
		return
	}
	st := call(b.a.cuLaunchKernel, b.fn[name], uintptr(grid), 1, 1, uintptr(block), 1, 1, 0, 0,
		uintptr(unsafe.Pointer(&w.ptrs[0])), 0)
	b.a.mustCU("cuLaunchKernel("+name+")", st)
}

func (b *Backend) sync() { b.a.mustCU("cuCtxSynchronize", call(b.a.cuCtxSynchronize)) }

func (b *Backend) grow(d *devBuf, bytes uintptr) {
	if err := b.a.grow(d, bytes, &b.w.out[7]); err != nil {
		panic(err)
	}
}

const (
	opN = 0
	opT = 1
)

func op(t bool) uintptr {
	if t {
		return opT
	}
	return opN
}

func (b *Backend) checkBlas(fn string, st int) {
	if st != 0 {
		panic(&Error{Call: fn, Code: st})
	}
}

// sgemmDev computes, on device matrices stored compactly row-major, C (m×n)
// = alpha·op(A)·op(B) + beta·C where A is stored with row width ac and B with
// row width bc. Worker thread only.
func (b *Backend) sgemmDev(transA, transB bool, m, n, k int, alpha float32, a uintptr, ac int, bm uintptr, bc int, beta float32, c uintptr) {
	w := b.w
	w.out[5] = uint64(math.Float32bits(alpha))
	w.out[6] = uint64(math.Float32bits(beta))
	st := call(b.a.cublasSgemm, b.blas, op(transB), op(transA), uintptr(n), uintptr(m), uintptr(k),
		uintptr(unsafe.Pointer(&w.out[5])), bm, uintptr(max(1, bc)), a, uintptr(max(1, ac)),
		uintptr(unsafe.Pointer(&w.out[6])), c, uintptr(max(1, n)))
	b.checkBlas("cublasSgemm", st)
}

func (b *Backend) dgemmDev(transA, transB bool, m, n, k int, alpha float64, a uintptr, ac int, bm uintptr, bc int, beta float64, c uintptr) {
	w := b.w
	w.out[5] = math.Float64bits(alpha)
	w.out[6] = math.Float64bits(beta)
	st := call(b.a.cublasDgemm, b.blas, op(transB), op(transA), uintptr(n), uintptr(m), uintptr(k),
		uintptr(unsafe.Pointer(&w.out[5])), bm, uintptr(max(1, bc)), a, uintptr(max(1, ac)),
		uintptr(unsafe.Pointer(&w.out[6])), c, uintptr(max(1, n)))
	b.checkBlas("cublasDgemm", st)
}

// Sgemm implements kernels.Backend in plain FP32 on cuBLAS (no TF32):
// the operands are copied to the device, C is copied back (only its m×n
// elements; stride padding is not touched). It panics on bad shapes (as the
// CPU backend) and with an *Error when a CUDA call fails.
func (b *Backend) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, bm []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm("Sgemm", transA, transB, m, n, k, len(a), lda, len(bm), ldb, len(c), ldc)
	if m == 0 || n == 0 {
		return
	}
	gemmHost(b, transA, transB, m, n, k, a, lda, bm, ldb, c, ldc, beta != 0, func(dA uintptr, ac int, dB uintptr, bc int, dC uintptr) {
		b.sgemmDev(transA, transB, m, n, k, alpha, dA, ac, dB, bc, beta, dC)
	})
}

// Dgemm implements kernels.Backend in float64 on cuBLAS; see Sgemm.
func (b *Backend) Dgemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, bm []float64, ldb int, beta float64, c []float64, ldc int) {
	checkGemm("Dgemm", transA, transB, m, n, k, len(a), lda, len(bm), ldb, len(c), ldc)
	if m == 0 || n == 0 {
		return
	}
	gemmHost(b, transA, transB, m, n, k, a, lda, bm, ldb, c, ldc, beta != 0, func(dA uintptr, ac int, dB uintptr, bc int, dC uintptr) {
		b.dgemmDev(transA, transB, m, n, k, alpha, dA, ac, dB, bc, beta, dC)
	})
}

// gemmHost uploads op(A), op(B) (and C when readC) compactly, runs gemm and
// downloads C.
func gemmHost[T float32 | float64](b *Backend, transA, transB bool, m, n, k int, a []T, lda int, bm []T, ldb int, c []T, ldc int, readC bool,
	gemm func(dA uintptr, ac int, dB uintptr, bc int, dC uintptr)) {
	var z T
	es := unsafe.Sizeof(z)
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	b.w.do(func() {
		b.grow(&b.bufA, uintptr(ar*ac)*es)
		b.grow(&b.bufB, uintptr(br*bc)*es)
		b.grow(&b.bufC, uintptr(m*n)*es)
		if ar > 0 && ac > 0 {
			b.upload2D(b.bufA.ptr, unsafe.Pointer(&a[0]), uintptr(lda)*es, uintptr(ac)*es, uintptr(ar))
		}
		if br > 0 && bc > 0 {
			b.upload2D(b.bufB.ptr, unsafe.Pointer(&bm[0]), uintptr(ldb)*es, uintptr(bc)*es, uintptr(br))
		}
		if readC {
			b.upload2D(b.bufC.ptr, unsafe.Pointer(&c[0]), uintptr(ldc)*es, uintptr(n)*es, uintptr(m))
		}
		gemm(b.bufA.ptr, ac, b.bufB.ptr, bc, b.bufC.ptr)
		b.download2D(unsafe.Pointer(&c[0]), b.bufC.ptr, uintptr(ldc)*es, uintptr(n)*es, uintptr(m))
	})
}

// upload2D is api.upload2D, or htodStaged when the host rows are compact
// (hpitch = width) and the copy is staged. Worker thread only.
func (b *Backend) upload2D(dst uintptr, src unsafe.Pointer, hpitch, width, rows uintptr) {
	if hpitch == width && b.canStage(width*rows) {
		b.htodStaged(dst, src, width*rows)
		return
	}
	b.a.upload2D(dst, src, hpitch, width, rows, &b.w.m2d)
}

// download2D is api.download2D, or dtohStaged when the host rows are
// compact and the copy is staged. Worker thread only.
func (b *Backend) download2D(dst unsafe.Pointer, src uintptr, hpitch, width, rows uintptr) {
	if hpitch == width && b.canStage(width*rows) {
		b.dtohStaged(dst, src, width*rows)
		return
	}
	b.a.download2D(dst, src, hpitch, width, rows, &b.w.m2d)
}

// gramBlock is the number of tokens per float32 product in AccumulateGram.
const gramBlock = 256

// AccumulateGram implements kernels.Backend: h += XᵀX with X uploaded in
// pieces, each 256-token block multiplied in FP32 by cuBLAS (no TF32) and
// added into the float64 h on the device symmetrically (element (i, j) and
// (j, i) get the same value). It panics when len(h) < in*in or len(x) <
// tokens*in. With Options.PinnedStaging the copies of X and h go through
// the pinned buffers (identical results).
func (b *Backend) AccumulateGram(h []float64, x []float32, tokens, in int) {
	b.gram("AccumulateGram", h, x, tokens, in, false)
}

// SetGram implements kernels.GramSetter: h = XᵀX as AccumulateGram computes
// it on an all-zero h (bit for bit), with the device copy of h zeroed by
// cuMemsetD8 instead of uploaded from h, so only X goes up and h comes
// down. With tokens = 0 it zeroes h. It panics as AccumulateGram does.
func (b *Backend) SetGram(h []float64, x []float32, tokens, in int) {
	b.gram("SetGram", h, x, tokens, in, true)
}

// gram is AccumulateGram (set false: h += XᵀX) and SetGram (set true:
// h = XᵀX, h not read); op names the method in panics.
func (b *Backend) gram(op string, h []float64, x []float32, tokens, in int, set bool) {
	if tokens < 0 || in < 0 {
		panic(fmt.Sprintf("cuda: %s: negative dimension tokens=%d in=%d", op, tokens, in))
	}
	if len(h) < in*in {
		panic(fmt.Sprintf("cuda: %s: len(h) = %d < in*in = %d", op, len(h), in*in))
	}
	if len(x) < tokens*in {
		panic(fmt.Sprintf("cuda: %s: len(x) = %d < tokens*in = %d", op, len(x), tokens*in))
	}
	if in == 0 {
		return
	}
	if tokens == 0 {
		if set {
			clear(h[:in*in])
		}
		return
	}
	piece := max(gramBlock, (64<<20)/(4*in)/gramBlock*gramBlock) // about 64 MiB of X per upload
	b.w.do(func() {
		nn := uintptr(in * in)
		b.grow(&b.bufC, nn*8)
		b.grow(&b.bufB, nn*4)
		b.grow(&b.bufA, uintptr(min(piece, tokens)*in)*4)
		if set {
			b.a.mustCU("cuMemsetD8", call(b.a.cuMemsetD8, b.bufC.ptr, 0, nn*8))
		} else {
			b.htodStaged(b.bufC.ptr, unsafe.Pointer(&h[0]), nn*8)
		}
		grid := int(min((nn+255)/256, 8192))
		for t0 := 0; t0 < tokens; t0 += piece {
			nt := min(piece, tokens-t0)
			b.htodStaged(b.bufA.ptr, unsafe.Pointer(&x[t0*in]), uintptr(nt*in)*4)
			for s := 0; s < nt; s += gramBlock {
				nb := min(gramBlock, nt-s)
				xs := b.bufA.ptr + uintptr(s*in)*4
				// Column-major view: X is in×nb (ld in); G = X·Xᵀ.
				b.w.out[5] = uint64(math.Float32bits(1))
				b.w.out[6] = 0
				st := call(b.a.cublasSgemm, b.blas, opN, opT, uintptr(in), uintptr(in), uintptr(nb),
					uintptr(unsafe.Pointer(&b.w.out[5])), xs, uintptr(in), xs, uintptr(in),
					uintptr(unsafe.Pointer(&b.w.out[6])), b.bufB.ptr, uintptr(in))
				b.checkBlas("cublasSgemm", st)
				b.launch("gram_add", grid, 256, uint64(in), uint64(b.bufB.ptr), uint64(b.bufC.ptr))
			}
		}
		b.dtohStaged(unsafe.Pointer(&h[0]), b.bufC.ptr, nn*8)
	})
}

// Cholesky implements kernels.Backend with cuSOLVER's Dpotrf (the row-major
// lower triangle is the column-major upper one), or the CPU backend's when
// libcusolver could not be opened. It returns an error wrapping
// kernels.ErrNotPositiveDefinite when a pivot is not positive (cuSOLVER's
// info > 0, or a non-finite or non-positive diagonal of the factor). It
// panics when n < 0 or len(a) < n*n.
func (b *Backend) Cholesky(a []float64, n int) error {
	if n < 0 {
		panic(fmt.Sprintf("cuda: Cholesky: negative n %d", n))
	}
	if len(a) < n*n {
		panic(fmt.Sprintf("cuda: Cholesky: len(a) = %d < n*n = %d", len(a), n*n))
	}
	if n == 0 {
		return nil
	}
	if b.solver == 0 {
		return b.cpu.Cholesky(a, n)
	}
	var info int32
	b.w.do(func() {
		w := b.w
		nn := uintptr(n * n)
		b.grow(&b.bufA, nn*8)
		b.a.htod(b.bufA.ptr, unsafe.Pointer(&a[0]), nn*8)
		const upper = 1
		w.out[0] = 0
		st := call(b.a.cusolverDnDpotrfBufferSize, b.solver, upper, uintptr(n), b.bufA.ptr, uintptr(n), uintptr(unsafe.Pointer(&w.out[0])))
		if st != 0 {
			panic(&Error{Call: "cusolverDnDpotrf_bufferSize", Code: st})
		}
		lwork := int(int32(w.out[0]))
		b.grow(&b.bufB, uintptr(max(lwork, 1))*8)
		b.grow(&b.bufD, 8)
		st = call(b.a.cusolverDnDpotrf, b.solver, upper, uintptr(n), b.bufA.ptr, uintptr(n), b.bufB.ptr, uintptr(lwork), b.bufD.ptr)
		if st != 0 {
			panic(&Error{Call: "cusolverDnDpotrf", Code: st})
		}
		w.out[0] = 0
		b.a.dtoh(unsafe.Pointer(&w.out[0]), b.bufD.ptr, 4)
		info = int32(w.out[0])
		if info == 0 {
			b.a.dtoh(unsafe.Pointer(&a[0]), b.bufA.ptr, nn*8)
		}
	})
	if info < 0 {
		panic(fmt.Sprintf("cuda: cusolverDnDpotrf: parameter %d invalid", -info))
	}
	if info > 0 {
		return fmt.Errorf("cuda: Cholesky: leading minor %d not positive definite: %w", info, kernels.ErrNotPositiveDefinite)
	}
	for i := range n {
		if d := a[i*n+i]; !(d > 0) || math.IsInf(d, 0) {
			return fmt.Errorf("cuda: Cholesky: pivot %d is %v: %w", i, d, kernels.ErrNotPositiveDefinite)
		}
		clear(a[i*n+i+1 : i*n+n])
	}
	return nil
}

// checkGemm panics unless the GEMM arguments describe valid row-major
// matrices (the same rules as kernels/cpu).
func checkGemm(op string, transA, transB bool, m, n, k, la, lda, lb, ldb, lc, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("cuda: %s: negative dimension m=%d n=%d k=%d", op, m, n, k))
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	checkMat(op, "A", ar, ac, la, lda)
	checkMat(op, "B", br, bc, lb, ldb)
	checkMat(op, "C", m, n, lc, ldc)
}

func checkMat(op, name string, rows, cols, length, ld int) {
	if ld < max(1, cols) {
		panic(fmt.Sprintf("cuda: %s: leading dimension of %s is %d, want >= %d (%d×%d as stored)", op, name, ld, max(1, cols), rows, cols))
	}
	if rows == 0 || cols == 0 {
		return
	}
	if need := (rows-1)*ld + cols; length < need {
		panic(fmt.Sprintf("cuda: %s: len(%s) = %d, want >= %d (%d×%d as stored, ld %d)", op, name, length, need, rows, cols, ld))
	}
}

// errClosed is returned by PCG32 and QuadForms after Close.
var errClosed = errors.New("cuda: backend closed")
