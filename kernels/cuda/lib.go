package cuda

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/ebitengine/purego"
)

// ErrUnavailable is wrapped by Available and New when no usable GPU is
// present: a CUDA library cannot be opened, a symbol is missing, cuInit fails
// or no device is visible. The message names the library or call at fault.
var ErrUnavailable = errors.New("cuda: no usable GPU")

// Error is a failed CUDA, cuBLAS, cuSOLVER or NVRTC call: Call names the
// function, Code is its status (CUresult, cublasStatus_t, cusolverStatus_t,
// nvrtcResult) and Name the driver's name for it when known.
type Error struct {
	Call string
	Code int
	Name string
}

func (e *Error) Error() string {
	if e.Name != "" {
		return fmt.Sprintf("cuda: %s failed: %s (%d)", e.Call, e.Name, e.Code)
	}
	return fmt.Sprintf("cuda: %s failed with status %d", e.Call, e.Code)
}

// libDirs are searched after the dynamic loader's own path when a library is
// not found by its bare name. OPTIMA_CUDA_LIB_DIR (a colon-separated list)
// comes first.
func libDirs() []string {
	var dirs []string
	if d := os.Getenv("OPTIMA_CUDA_LIB_DIR"); d != "" {
		dirs = append(dirs, filepath.SplitList(d)...)
	}
	return append(dirs, "/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib",
		"/usr/lib/x86_64-linux-gnu", "/usr/local/nvidia/lib64", "/usr/lib64")
}

// openLib dlopens the first of names that loads, by bare name (LD_LIBRARY_PATH,
// the loader cache) and then in libDirs. The error lists what was tried.
func openLib(names ...string) (uintptr, string, error) {
	var tried []string
	for _, n := range names {
		h, err := purego.Dlopen(n, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err == nil {
			return h, n, nil
		}
		tried = append(tried, n)
	}
	for _, d := range libDirs() {
		for _, n := range names {
			p := filepath.Join(d, n)
			if _, err := os.Stat(p); err != nil {
				continue
			}
			h, err := purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_GLOBAL)
			if err == nil {
				return h, p, nil
			}
			tried = append(tried, fmt.Sprintf("%s (%v)", p, err))
		}
	}
	return 0, "", fmt.Errorf("%w: cannot open %s (tried %s; set OPTIMA_CUDA_LIB_DIR to the directory holding it)",
		ErrUnavailable, names[0], strings.Join(tried, ", "))
}

// sym names one C function to resolve into *dst.
type sym struct {
	dst  *uintptr
	name string
}

// resolve looks up every symbol in library h (opened from path lib).
func resolve(h uintptr, lib string, syms ...sym) error {
	for _, s := range syms {
		a, err := purego.Dlsym(h, s.name)
		if err != nil {
			return fmt.Errorf("%w: %s has no symbol %s: %v", ErrUnavailable, lib, s.name, err)
		}
		*s.dst = a
	}
	return nil
}

// call invokes the C function fn with integer/pointer arguments and returns
// its int status (the low 32 bits of the result register).
func call(fn uintptr, args ...uintptr) int {
	r, _, _ := purego.SyscallN(fn, args...)
	return int(int32(uint32(r)))
}

// cString returns a NUL-terminated copy of s.
func cString(s string) []byte {
	b := heapBytes(len(s) + 1)
	copy(b, s)
	return b
}

// goString reads the NUL-terminated C string at p (nil → "").
func goString(p uintptr) string {
	if p == 0 {
		return ""
	}
	var b []byte
	for i := uintptr(0); i < 4096; i++ {
		c := *(*byte)(ptrOf(p + i))
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	return string(b)
}

// ptrOf turns an address of C memory into an unsafe.Pointer without the
// uintptr→Pointer conversion that go vet cannot prove safe.
func ptrOf(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }

// heapBytes returns n zero bytes that are certainly on the heap (C keeps
// their address during a call; a goroutine stack may move).
func heapBytes(n int) []byte {
	b := make([]byte, n)
	escapeB.Store(&b)
	return b
}

var escapeB atomic.Pointer[[]byte]

// ptr returns the address of b's first byte.
func ptr(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }
