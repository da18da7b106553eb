package prune

import (
	"runtime"

	"github.com/optima-llm/optima/kernels"
)

// GemmFlopsPerBytePerThread is the arithmetic intensity (FLOP per byte moved
// between host and device) per CPU thread above which an Sgemm is faster on
// the GPU through kernels/cuda's host-slice Sgemm than on kernels/cpu with
// that many threads: GemmRouteFor's threshold is threads times this.
//
// Fit (bench/cuda/results/gpu-checks-2026-11-30/forward.json, cudabench
// --forward-bench of main 1c9ffe3 on the device machine: 2× NVIDIA H200
// (one used), 32 CPU threads of an AVX-512 Xeon): the five routed shapes
// of a SmolLM2 block over 8×2048 tokens and the LM head over 256 rows,
// each timed alone on host slices, give
//
//   - CPU: 1.34-2.05 TFLOP/s at 32 threads (42-64 GFLOP/s per thread),
//     pooled 1.89 TFLOP/s (59.2 GFLOP/s per thread): FLOP / CPU seconds;
//   - GPU: 7.5-9.5 GB/s of host↔device traffic, pooled 8.2 GB/s: bytes
//     moved (op(A), op(B) up, C down) / GPU seconds. A least-squares split
//     gives 6.7 GB/s up and 11.7 GB/s down (pageable memory); the cuBLAS
//     product itself (~50 TFLOP/s FP32) is under 4% of it;
//   - break-even intensity = CPU FLOP/s ÷ GPU bytes/s: 175-265 FLOP/B per
//     shape (k_proj 175, q_proj 189, gate_proj 215, lm_head 231, down_proj
//     265), pooled 231, i.e. 5.5-8.3 FLOP/B per thread, pooled 7.2.
//
// 8 is the pooled fit rounded up to cover the most CPU-favourable shape
// (down_proj, 8.3) within 4%: 256 FLOP/B at 32 threads. The CPU's rate
// scales with its threads while the copy rate does not, hence the
// proportionality; it ignores the GPU's compute time, which holds while
// threads × 59 GFLOP/s is far below the GPU's FP32 rate (a few hundred
// threads).
const GemmFlopsPerBytePerThread = 8

// GemmRouteFor returns the route of ForwardBackend for a CPU backend that
// runs its GEMMs on threads goroutines (kernels.Capabilities.Threads;
// threads ≤ 0 means runtime.GOMAXPROCS(0), as kernels/cpu.New reads it):
// MinMNK of DefaultGemmRoute (2²⁵ multiply-adds: the per-call fixed cost),
// and MinFlopsPerByte = threads × GemmFlopsPerBytePerThread, but at least
// DefaultGemmRoute's 64 FLOP/B. The floor keeps products whose estimated
// gain is small on the CPU at low thread counts, where the fit (made at 32
// threads) is extrapolated: the per-thread CPU rate is higher with fewer
// threads (less memory contention, turbo).
//
// Decisions (intensity 2mnk / 4(mk + kn + mn)): at 32 threads (256 FLOP/B)
// no GEMM of a SmolLM2-135M block goes to the GPU (q/o 2048·8 × 576 × 576:
// 142 FLOP/B; gate/up/down: 204; LM head over 256 rows: 88), which matches
// the measurement (every shape slower on the GPU, cpu/gpu 0.38-0.95), while
// Llama-3.1-8B's linears over 16384 tokens (q/o 16384×4096×4096: 910 FLOP/B;
// gate/up 16384×14336×4096: 1333) do; at 4 threads (the 64 FLOP/B floor)
// SmolLM2's q/k/v/o, MLP and LM-head products go to the GPU, the attention
// products (21 FLOP/B) stay on the CPU. bench/cuda/README.md has the
// measurement.
func GemmRouteFor(threads int) GemmRoute {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	return GemmRoute{
		MinMNK:          DefaultGemmRoute.MinMNK,
		MinFlopsPerByte: max(DefaultGemmRoute.MinFlopsPerByte, float64(threads)*GemmFlopsPerBytePerThread),
	}
}

// withDevices is ForwardBackend once its devices are resolved: be itself
// when gram and gemm are both nil, else be with AccumulateGram on gram (when
// not nil) and the Sgemm calls GemmRouteFor(be.Capabilities().Threads)
// accepts on gemm (when not nil).
func withDevices(be, gram, gemm kernels.Backend) kernels.Backend {
	if gram == nil && gemm == nil {
		return be
	}
	return routed{Backend: be, gram: gram, gemm: gemm, route: GemmRouteFor(be.Capabilities().Threads)}
}
