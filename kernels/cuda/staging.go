package cuda

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Pinned staging (Options.PinnedStaging): large host↔device copies go
// through two page-locked host buffers (cuMemHostAlloc) of stagePiece
// bytes each, reused across calls and freed by Close. A copy of n bytes is
// cut into pieces; goroutines copy one piece between the Go slice and one
// buffer while the driver copies the previous piece between the other
// buffer and the device (cuMemcpyHtoD/DtoH from page-locked memory: DMA at
// the link's speed, synchronous with respect to the host, so a buffer is
// free again when the call returns). Pageable copies run through the
// driver's own single-threaded staging instead (measured 6.7 GB/s up,
// 11.7 GB/s down on the H200 machine, bench/cuda/README.md).
var (
	stagePiece atomic.Int64 // bytes per piece and per buffer
	stageMin   atomic.Int64 // smaller copies go directly from pageable memory
)

func init() {
	stagePiece.Store(32 << 20)
	stageMin.Store(4 << 20)
}

// pinBuf is page-locked host memory from cuMemHostAlloc.
type pinBuf struct {
	ptr   uintptr
	bytes uintptr
}

// slice returns the first n bytes of p as a Go slice (p is C memory: the
// garbage collector ignores it).
func (p pinBuf) slice(n uintptr) []byte { return unsafe.Slice((*byte)(ptrOf(p.ptr)), n) }

func (a *api) hostAlloc(bytes uintptr, out *uint64) (pinBuf, error) {
	*out = 0
	if st := call(a.cuMemHostAlloc, uintptr(unsafe.Pointer(out)), bytes, 0); st != 0 {
		return pinBuf{}, a.cuErr(fmt.Sprintf("cuMemHostAlloc(%d bytes)", bytes), st)
	}
	return pinBuf{ptr: uintptr(*out), bytes: bytes}, nil
}

func (a *api) freeHost(p *pinBuf) {
	if p.ptr != 0 {
		call(a.cuMemFreeHost, p.ptr)
	}
	*p = pinBuf{}
}

// canStage reports whether a copy of n bytes would go through the pinned
// buffers: Options.PinnedStaging set, the driver has cuMemHostAlloc, no
// allocation has failed, and n ≥ stageMin.
func (b *Backend) canStage(n uintptr) bool {
	return b.opts.PinnedStaging && b.a.pinnedOK && !b.pinOff && n >= uintptr(stageMin.Load()) && n > 0
}

// staging returns the piece size for a staged copy of n bytes, allocating
// (or growing) the two pinned buffers to it, and ok = false when the copy
// must go directly (canStage false, or cuMemHostAlloc failed: staging is
// then off for the backend's life, with a warning). Worker thread only.
func (b *Backend) staging(n uintptr) (piece uintptr, ok bool) {
	if !b.canStage(n) {
		return 0, false
	}
	piece = min(uintptr(max(stagePiece.Load(), 1)), n)
	for i := range b.pin {
		if b.pin[i].bytes >= piece {
			continue
		}
		b.a.freeHost(&b.pin[i])
		p, err := b.a.hostAlloc(piece, &b.w.out[7])
		if err != nil {
			b.pinOff = true
			b.a.freeHost(&b.pin[0])
			b.a.freeHost(&b.pin[1])
			fmt.Fprintf(os.Stderr, "optima: warning: %v; host copies use pageable memory from now on\n", err)
			return 0, false
		}
		b.pin[i] = p
	}
	return piece, true
}

// htodStaged copies n bytes from host src to device dst: through the
// pinned buffers when staging says so (goroutines fill piece i+1 into one
// buffer while the driver uploads piece i from the other), else with one
// pageable cuMemcpyHtoD. The device bytes are the same either way. Worker
// thread only; it panics with an *Error when a copy fails.
func (b *Backend) htodStaged(dst uintptr, src unsafe.Pointer, n uintptr) {
	piece, ok := b.staging(n)
	if !ok {
		b.a.htod(dst, src, n)
		return
	}
	b.stagedCopies.Add(1)
	b.stagedBytes.Add(int64(n))
	var wg [2]sync.WaitGroup
	defer func() { wg[0].Wait(); wg[1].Wait() }()
	fill := func(i int, off uintptr) {
		m := min(piece, n-off)
		hostCopy(&wg[i%2], b.pin[i%2].slice(m), unsafe.Slice((*byte)(unsafe.Add(src, off)), m))
	}
	fill(0, 0)
	for i, off := 0, uintptr(0); off < n; i, off = i+1, off+piece {
		m := min(piece, n-off)
		wg[i%2].Wait() // piece i is in buffer i%2
		if off+piece < n {
			// Buffer (i+1)%2 last held piece i−1, whose upload returned.
			fill(i+1, off+piece)
		}
		b.a.htod(dst+off, ptrOf(b.pin[i%2].ptr), m)
	}
}

// dtohStaged copies n bytes from device src to host dst, as htodStaged
// the other way: the driver downloads piece i into one buffer while
// goroutines copy piece i−1 out of the other. Worker thread only.
func (b *Backend) dtohStaged(dst unsafe.Pointer, src uintptr, n uintptr) {
	piece, ok := b.staging(n)
	if !ok {
		b.a.dtoh(dst, src, n)
		return
	}
	b.stagedCopies.Add(1)
	b.stagedBytes.Add(int64(n))
	var wg [2]sync.WaitGroup
	defer func() { wg[0].Wait(); wg[1].Wait() }()
	for i, off := 0, uintptr(0); off < n; i, off = i+1, off+piece {
		m := min(piece, n-off)
		wg[i%2].Wait() // piece i−2 has been copied out of buffer i%2
		b.a.dtoh(ptrOf(b.pin[i%2].ptr), src+off, m)
		hostCopy(&wg[i%2], unsafe.Slice((*byte)(unsafe.Add(dst, off)), m), b.pin[i%2].slice(m))
	}
}

// hostCopy copies src into dst (equal lengths) on up to min(GOMAXPROCS, 8)
// goroutines of at least 1 MiB each, added to wg.
func hostCopy(wg *sync.WaitGroup, dst, src []byte) {
	if len(dst) != len(src) {
		panic(fmt.Sprintf("cuda: hostCopy: lengths %d and %d", len(dst), len(src)))
	}
	for _, r := range copyParts(len(src), min(runtime.GOMAXPROCS(0), 8), 1<<20) {
		wg.Go(func() { copy(dst[r[0]:r[1]], src[r[0]:r[1]]) })
	}
}

// copyParts splits [0, n) into at most maxParts contiguous ranges of at
// least minPart bytes (one range when n < 2·minPart), covering it exactly.
func copyParts(n, maxParts, minPart int) [][2]int {
	if n <= 0 {
		return nil
	}
	parts := max(1, min(maxParts, n/max(minPart, 1)))
	step := (n + parts - 1) / parts
	var out [][2]int
	for s := 0; s < n; s += step {
		out = append(out, [2]int{s, min(n, s+step)})
	}
	return out
}

// Staged returns how many copies, and how many bytes, went through the
// pinned staging buffers since New (0 without Options.PinnedStaging). The
// GPU tests require it to grow, so that a backend whose staging silently
// stayed off cannot pass them.
func (b *Backend) Staged() (copies, bytes int64) {
	return b.stagedCopies.Load(), b.stagedBytes.Load()
}
