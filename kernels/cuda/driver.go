package cuda

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// api holds the resolved entry points of libcuda, libcublas, libcusolver and
// libnvrtc. It is filled once per process (loadAPI).
type api struct {
	cuInit, cuDeviceGetCount, cuDeviceGet, cuDeviceGetName, cuDeviceGetAttribute uintptr
	cuDevicePrimaryCtxRetain, cuDevicePrimaryCtxRelease, cuCtxSetCurrent         uintptr
	cuCtxSynchronize, cuMemAlloc, cuMemFree, cuMemcpyHtoD, cuMemcpyDtoH          uintptr
	cuMemcpy2D, cuMemsetD8, cuMemGetInfo, cuModuleLoadData, cuModuleGetFunction  uintptr
	cuLaunchKernel, cuGetErrorName                                               uintptr

	// Page-locked host memory for Options.PinnedStaging (optional: without
	// these symbols every copy goes through pageable memory).
	pinnedOK                      bool
	cuMemHostAlloc, cuMemFreeHost uintptr

	cublasCreate, cublasDestroy, cublasSgemm, cublasDgemm, cublasSetMathMode uintptr

	// cuSOLVER is optional: without it Cholesky runs on the CPU.
	cusolverOK                                                     bool
	cusolverDnCreate, cusolverDnDpotrfBufferSize, cusolverDnDpotrf uintptr
	// The batched Cholesky (optional too: without it CholeskyBatched and
	// CholeskySolveBatched run on the CPU).
	cusolverBatchedOK                                                  bool
	cusolverDnDpotrfBatched, cusolverDnDpotrsBatched, cusolverDnDpotrs uintptr

	nvrtcCreateProgram, nvrtcCompileProgram, nvrtcGetProgramLogSize, nvrtcGetProgramLog uintptr
	nvrtcGetCUBINSize, nvrtcGetCUBIN, nvrtcDestroyProgram                               uintptr

	libs []string // paths opened, for Capabilities and errors
}

var (
	apiOnce sync.Once
	apiVal  *api
	apiErr  error
)

// loadAPI opens the CUDA libraries and calls cuInit once per process.
func loadAPI() (*api, error) {
	apiOnce.Do(func() { apiVal, apiErr = openAPI() })
	return apiVal, apiErr
}

func openAPI() (*api, error) {
	a := &api{}
	h, p, err := openLib("libcuda.so.1", "libcuda.so")
	if err != nil {
		return nil, err
	}
	a.libs = append(a.libs, p)
	if err := resolve(h, p,
		sym{&a.cuInit, "cuInit"}, sym{&a.cuDeviceGetCount, "cuDeviceGetCount"}, sym{&a.cuDeviceGet, "cuDeviceGet"},
		sym{&a.cuDeviceGetName, "cuDeviceGetName"}, sym{&a.cuDeviceGetAttribute, "cuDeviceGetAttribute"},
		sym{&a.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"}, sym{&a.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"},
		sym{&a.cuCtxSetCurrent, "cuCtxSetCurrent"}, sym{&a.cuCtxSynchronize, "cuCtxSynchronize"},
		sym{&a.cuMemAlloc, "cuMemAlloc_v2"}, sym{&a.cuMemFree, "cuMemFree_v2"},
		sym{&a.cuMemcpyHtoD, "cuMemcpyHtoD_v2"}, sym{&a.cuMemcpyDtoH, "cuMemcpyDtoH_v2"}, sym{&a.cuMemcpy2D, "cuMemcpy2D_v2"},
		sym{&a.cuMemsetD8, "cuMemsetD8_v2"}, sym{&a.cuMemGetInfo, "cuMemGetInfo_v2"},
		sym{&a.cuModuleLoadData, "cuModuleLoadData"}, sym{&a.cuModuleGetFunction, "cuModuleGetFunction"},
		sym{&a.cuLaunchKernel, "cuLaunchKernel"}, sym{&a.cuGetErrorName, "cuGetErrorName"},
	); err != nil {
		return nil, err
	}
	a.pinnedOK = resolve(h, p, sym{&a.cuMemHostAlloc, "cuMemHostAlloc"}, sym{&a.cuMemFreeHost, "cuMemFreeHost"}) == nil
	if st := call(a.cuInit, 0); st != 0 {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, a.cuErr("cuInit", st))
	}
	out := heapOut()
	if st := call(a.cuDeviceGetCount, uintptr(unsafe.Pointer(&out[0]))); st != 0 {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, a.cuErr("cuDeviceGetCount", st))
	}
	if int32(out[0]) == 0 {
		return nil, fmt.Errorf("%w: cuDeviceGetCount found no device", ErrUnavailable)
	}

	h, p, err = openLib("libcublas.so.13", "libcublas.so.12", "libcublas.so")
	if err != nil {
		return nil, err
	}
	a.libs = append(a.libs, p)
	if err := resolve(h, p,
		sym{&a.cublasCreate, "cublasCreate_v2"}, sym{&a.cublasDestroy, "cublasDestroy_v2"},
		sym{&a.cublasSgemm, "cublasSgemm_v2"}, sym{&a.cublasDgemm, "cublasDgemm_v2"},
		sym{&a.cublasSetMathMode, "cublasSetMathMode"},
	); err != nil {
		return nil, err
	}

	h, p, err = openLib("libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so")
	if err != nil {
		return nil, err
	}
	a.libs = append(a.libs, p)
	if err := resolve(h, p,
		sym{&a.nvrtcCreateProgram, "nvrtcCreateProgram"}, sym{&a.nvrtcCompileProgram, "nvrtcCompileProgram"},
		sym{&a.nvrtcGetProgramLogSize, "nvrtcGetProgramLogSize"}, sym{&a.nvrtcGetProgramLog, "nvrtcGetProgramLog"},
		sym{&a.nvrtcGetCUBINSize, "nvrtcGetCUBINSize"}, sym{&a.nvrtcGetCUBIN, "nvrtcGetCUBIN"},
		sym{&a.nvrtcDestroyProgram, "nvrtcDestroyProgram"},
	); err != nil {
		return nil, err
	}

	if h, p, err := openLib("libcusolver.so.12", "libcusolver.so.11", "libcusolver.so.13", "libcusolver.so"); err == nil {
		if resolve(h, p, sym{&a.cusolverDnCreate, "cusolverDnCreate"},
			sym{&a.cusolverDnDpotrfBufferSize, "cusolverDnDpotrf_bufferSize"}, sym{&a.cusolverDnDpotrf, "cusolverDnDpotrf"}) == nil {
			a.cusolverOK = true
			a.libs = append(a.libs, p)
			a.cusolverBatchedOK = resolve(h, p, sym{&a.cusolverDnDpotrfBatched, "cusolverDnDpotrfBatched"},
				sym{&a.cusolverDnDpotrsBatched, "cusolverDnDpotrsBatched"}, sym{&a.cusolverDnDpotrs, "cusolverDnDpotrs"}) == nil
		}
	}
	return a, nil
}

// cuErr wraps a CUresult with the driver's name for it.
func (a *api) cuErr(fn string, st int) error {
	e := &Error{Call: fn, Code: st}
	out := heapOut()
	if a.cuGetErrorName != 0 && call(a.cuGetErrorName, uintptr(st), uintptr(unsafe.Pointer(&out[0]))) == 0 {
		e.Name = goString(uintptr(out[0]))
	}
	return e
}

// heapOut returns zeroed out-parameter slots that are certainly on the heap:
// C writes through their address, which must not move with a goroutine
// stack while the call is being set up.
func heapOut() *[8]uint64 {
	p := new([8]uint64)
	escape.Store(p)
	return p
}

var escape atomic.Pointer[[8]uint64]

// worker owns the OS thread on which every CUDA call of a Backend runs: a
// CUDA context is current per OS thread, so the goroutine is locked to its
// thread and all work is sent to it (DESIGN.md §3).
type worker struct {
	jobs chan func()
	// params and ptrs hold kernel arguments for cuLaunchKernel on the heap,
	// so the pointers handed to C stay valid.
	params [24]uint64
	ptrs   [24]uintptr
	out    [8]uint64 // out-parameters of C calls
	m2d    memcpy2D
}

func newWorker(setup func(w *worker) error) (*worker, error) {
	w := &worker{jobs: make(chan func())}
	errc := make(chan error)
	go func() {
		runtime.LockOSThread()
		// The thread stays locked for the backend's life; the goroutine
		// ends when jobs is closed.
		if err := setup(w); err != nil {
			errc <- err
			return
		}
		errc <- nil
		for f := range w.jobs {
			f()
		}
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	return w, nil
}

// do runs f on the worker's thread and waits for it. A panic in f is
// re-raised in the caller.
func (w *worker) do(f func()) {
	done := make(chan any, 1)
	w.jobs <- func() {
		defer func() { done <- recover() }()
		f()
	}
	if p := <-done; p != nil {
		panic(p)
	}
}

// devBuf is a device allocation.
type devBuf struct {
	ptr   uintptr
	bytes uintptr
}

// mustCU panics with the driver's error name when st is not CUDA_SUCCESS:
// a failing driver call inside an operation that cannot return an error.
func (a *api) mustCU(fn string, st int) {
	if st != 0 {
		panic(a.cuErr(fn, st))
	}
}

func (a *api) alloc(bytes uintptr, out *uint64) (devBuf, error) {
	if bytes == 0 {
		bytes = 1
	}
	if st := call(a.cuMemAlloc, uintptr(unsafe.Pointer(out)), bytes); st != 0 {
		return devBuf{}, a.cuErr(fmt.Sprintf("cuMemAlloc(%d bytes)", bytes), st)
	}
	return devBuf{ptr: uintptr(*out), bytes: bytes}, nil
}

func (a *api) free(b *devBuf) {
	if b.ptr != 0 {
		call(a.cuMemFree, b.ptr)
	}
	*b = devBuf{}
}

// grow makes b at least bytes long (contents are not kept).
func (a *api) grow(b *devBuf, bytes uintptr, out *uint64) error {
	if b.ptr != 0 && b.bytes >= bytes {
		return nil
	}
	a.free(b)
	nb, err := a.alloc(max(bytes, 1), out)
	if err != nil {
		return err
	}
	*b = nb
	return nil
}

// htod copies n bytes from host address src to device address dst.
func (a *api) htod(dst uintptr, src unsafe.Pointer, n uintptr) {
	if n == 0 {
		return
	}
	a.mustCU("cuMemcpyHtoD", call(a.cuMemcpyHtoD, dst, uintptr(src), n))
}

// dtoh copies n bytes from device address src to host address dst.
func (a *api) dtoh(dst unsafe.Pointer, src uintptr, n uintptr) {
	if n == 0 {
		return
	}
	a.mustCU("cuMemcpyDtoH", call(a.cuMemcpyDtoH, uintptr(dst), src, n))
}

// memcpy2D mirrors CUDA_MEMCPY2D (16 eight-byte slots on 64-bit Linux; the
// memory-type enums are 4 bytes padded to 8).
type memcpy2D struct {
	srcX, srcY    uintptr
	srcType       uint32
	_             uint32
	srcHost       uintptr
	srcDev        uintptr
	srcArr        uintptr
	srcPitch      uintptr
	dstX, dstY    uintptr
	dstType       uint32
	_             uint32
	dstHost       uintptr
	dstDev        uintptr
	dstArr        uintptr
	dstPitch      uintptr
	width, height uintptr
}

const (
	memHost   = 1
	memDevice = 2
)

// upload2D copies rows×width bytes from host (row pitch hpitch bytes) to a
// compact device matrix (pitch width).
func (a *api) upload2D(dst uintptr, src unsafe.Pointer, hpitch, width, rows uintptr, m *memcpy2D) {
	if width == 0 || rows == 0 {
		return
	}
	*m = memcpy2D{srcType: memHost, srcHost: uintptr(src), srcPitch: hpitch,
		dstType: memDevice, dstDev: dst, dstPitch: width, width: width, height: rows}
	a.mustCU("cuMemcpy2D(upload)", call(a.cuMemcpy2D, uintptr(unsafe.Pointer(m))))
}

// download2D copies a compact device matrix (pitch width) into host rows of
// pitch hpitch bytes, writing only the width bytes of each row.
func (a *api) download2D(dst unsafe.Pointer, src uintptr, hpitch, width, rows uintptr, m *memcpy2D) {
	if width == 0 || rows == 0 {
		return
	}
	*m = memcpy2D{srcType: memDevice, srcDev: src, srcPitch: width,
		dstType: memHost, dstHost: uintptr(dst), dstPitch: hpitch, width: width, height: rows}
	a.mustCU("cuMemcpy2D(download)", call(a.cuMemcpy2D, uintptr(unsafe.Pointer(m))))
}
