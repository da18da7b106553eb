package prune

import (
	"fmt"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/stages/solve"
)

// GramBackend returns the backend to give CalibrateShard in a run whose row
// solve runs on device (solve.Options.Device): be itself for "" and "cpu",
// so the CPU path is unchanged bit for bit; for "cuda", WithGram(be, the
// process's shared CUDA backend (solve.DeviceBackend)): the block's forward
// pass stays on be and only the Gram products XᵀX of hessian.Add run on the
// GPU (kernels/cuda AccumulateGram: FP32 products of 256-token blocks summed
// in float64, the CPU backend's contract). Errors are solve.DeviceBackend's:
// one wrapping cuda.ErrUnavailable without a usable GPU (never a silent CPU
// run), solve.ErrInvalidOptions for an unknown device. It is
// ForwardBackend(be, device, "").
func GramBackend(be kernels.Backend, device string) (kernels.Backend, error) {
	return ForwardBackend(be, device, "")
}

// ForwardBackend returns the backend for a block's forward pass (calibration
// and propagation) in a run whose row solve runs on solveDevice
// (Config.Solve.Device) and whose forward GEMMs run on forwardDevice
// (Config.ForwardDevice). Each is "" or "cpu" (nothing moves: with both,
// ForwardBackend returns be itself, bit-identical to a CPU run) or "cuda":
// solveDevice "cuda" sends the Gram products to the GPU (GramBackend),
// forwardDevice "cuda" sends the large Sgemm calls of the forward to it
// (WithGPUGemm with GemmRouteFor(be.Capabilities().Threads): the fewer CPU
// threads, the more of them). Both use the process's shared CUDA
// backend (solve.DeviceBackend), so forwardDevice "cuda" works without
// solveDevice "cuda". Errors: one wrapping cuda.ErrUnavailable when no GPU is
// usable (never a silent CPU run), solve.ErrInvalidOptions for an unknown
// device; a forward-device error is prefixed "forward device".
func ForwardBackend(be kernels.Backend, solveDevice, forwardDevice string) (kernels.Backend, error) {
	gram, err := solve.DeviceBackend(solveDevice)
	if err != nil {
		return be, err
	}
	gemm, err := solve.DeviceBackend(forwardDevice)
	if err != nil {
		return be, fmt.Errorf("forward device: %w", err)
	}
	return withDevices(be, gram, gemm), nil
}

// WithGram returns a kernels.Backend that runs AccumulateGram on gram and
// every other operation (Name and Capabilities included) on be. Both must
// be safe for concurrent use, as kernels.Backend requires.
func WithGram(be, gram kernels.Backend) kernels.Backend {
	return routed{Backend: be, gram: gram}
}

// WithGPUGemm returns a kernels.Backend that runs the Sgemm calls that
// route.ToGPU accepts on gpu and every other operation (the other Sgemm
// calls, Dgemm, AccumulateGram, Cholesky, Name and Capabilities) on be.
// Applied to a backend that WithGram (or ForwardBackend) returned, it keeps
// that backend's Gram routing: there is one wrapper type, so the layers do
// not nest.
//
// Concurrency: the forward calls Sgemm from several goroutines (the
// attention's work items; calibration shards in parallel DoFns). be and gpu
// must both be safe for concurrent use, as kernels.Backend requires; the
// kernels/cuda backend is, by queueing every call to its one worker thread,
// so concurrent GPU calls run one after another while their callers block
// (their host slices stay valid for the whole call, which the CUDA backend
// needs). The cost: a caller whose product is routed to the GPU waits for
// those queued ahead of it (other shards' GEMMs, Gram products, row-solve
// work on the shared backend) instead of running on idle CPU cores; with
// DefaultGemmRoute or GemmRouteFor only the large linear products of a
// forward are routed, and the attention products (many small calls from
// many goroutines) stay on be. A CUDA failure panics with the GPU backend's *cuda.Error, as its
// Sgemm documents; it is not retried on the CPU.
func WithGPUGemm(be, gpu kernels.Backend, route GemmRoute) kernels.Backend {
	if r, ok := be.(routed); ok {
		r.gemm, r.route = gpu, route
		return r
	}
	return routed{Backend: be, gemm: gpu, route: route}
}

// GemmRoute decides which Sgemm calls WithGPUGemm sends to the GPU: those
// with m·n·k ≥ MinMNK whose arithmetic intensity 2·m·n·k / bytes moved is
// at least MinFlopsPerByte, where bytes moved = 4·(m·k + k·n + m·n), plus
// 4·m·n when beta ≠ 0 (C is uploaded too): the host↔device traffic of
// kernels/cuda's Sgemm, which uploads op(A) and op(B) compactly on every
// call and downloads C.
type GemmRoute struct {
	// MinMNK is the smallest m·n·k sent to the GPU (multiply-adds).
	MinMNK int64
	// MinFlopsPerByte is the smallest 2·m·n·k / bytes moved sent to the GPU.
	MinFlopsPerByte float64
}

// DefaultGemmRoute is the floor of GemmRouteFor (ForwardBackend's route:
// it is GemmRouteFor(t) for t ≤ 8 CPU threads) and was ForwardBackend's
// route before the measurement on the device machine, which found the
// break-even near 230 FLOP/B at 32 threads, not 64 (GemmRouteFor,
// bench/cuda/README.md). Its derivation, from the arithmetic below, assumed
// 16 cores and a faster link than the ~8 GB/s of pageable memory measured:
//
//   - CPU: a 2048×576×1536 product (3.6 GFLOP) takes ~5 ms on 16 cores
//     (bench/forward), F_cpu ≈ 700 GFLOP/s.
//   - Transfer: its ~21 MB (A 4.7 MB, B 3.5 MB, C 12.6 MB) through pageable
//     memory takes ~1-2 ms, B_link ≈ 12 GB/s.
//   - GPU compute: H200 plain FP32 ≈ 60 TFLOP/s, 0.06 ms here: negligible
//     next to the transfer for every intensity below ~5000 FLOP/byte.
//   - Fixed cost per call: the hand-off to the CUDA worker thread, three
//     cuMemcpy2D and one cuBLAS launch, synchronous: ~50 µs.
//
// The GPU wins when flops/F_cpu > bytes/B_link + 50 µs, i.e. roughly when
// flops/byte > F_cpu/B_link ≈ 60 (MinFlopsPerByte 64) and the product is
// well above 50 µs of CPU work, ~35 MFLOP (MinMNK 2²⁵ ≈ 33.5 M multiply-adds,
// 67 MFLOP, ~0.1 ms on the CPU). So a SmolLM2 block's linears over 2048 tokens
// (q/o 2048×576×576: 126 FLOP/B; k/v 2048×192×576: 67; gate/up
// 2048×1536×576 and down 2048×576×1536: 174) go to the GPU; the attention
// products (128×2048×64: 21 FLOP/B, 2²⁴ multiply-adds) and the linears of
// short zero-shot spans (gate/up/down under ~185 tokens, k/v under ~1150,
// where the weight upload dominates) stay on the CPU; the LM head over 256
// rows (256×49152×576: 88 FLOP/B) goes to the GPU.
var DefaultGemmRoute = GemmRoute{MinMNK: 1 << 25, MinFlopsPerByte: 64}

// ToGPU reports whether an Sgemm of op(A) m×k times op(B) k×n (reading C
// when beta ≠ 0) goes to the GPU under r.
func (r GemmRoute) ToGPU(m, n, k int, beta float32) bool {
	mnk := int64(m) * int64(n) * int64(k)
	if mnk <= 0 || mnk < r.MinMNK {
		return false
	}
	elems := int64(m)*int64(k) + int64(k)*int64(n) + int64(m)*int64(n)
	if beta != 0 {
		elems += int64(m) * int64(n)
	}
	return 2*float64(mnk) >= r.MinFlopsPerByte*4*float64(elems)
}

// routed is the one wrapper of this file: AccumulateGram on gram (when not
// nil), the Sgemm calls route accepts on gemm (when not nil), everything
// else on the embedded backend.
type routed struct {
	kernels.Backend
	gram  kernels.Backend
	gemm  kernels.Backend
	route GemmRoute
}

func (r routed) AccumulateGram(h []float64, x []float32, tokens, in int) {
	if r.gram == nil {
		r.Backend.AccumulateGram(h, x, tokens, in)
		return
	}
	r.gram.AccumulateGram(h, x, tokens, in)
}

// SetGram implements kernels.GramSetter on the backend AccumulateGram goes
// to (kernels.SetGram: its own SetGram, else zeroing h and accumulating).
func (r routed) SetGram(h []float64, x []float32, tokens, in int) {
	if r.gram == nil {
		kernels.SetGram(r.Backend, h, x, tokens, in)
		return
	}
	kernels.SetGram(r.gram, h, x, tokens, in)
}

func (r routed) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if r.gemm != nil && r.route.ToGPU(m, n, k, beta) {
		r.gemm.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	r.Backend.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
