package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/optima-llm/optima/internal/tinymodel"
	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model/llama"
	"github.com/optima-llm/optima/stages/prune"
)

// forwardShape is one Sgemm shape of --forward-bench timed alone on host
// slices through both backends (what the routing wrapper would pay).
type forwardShape struct {
	Name     string  `json:"name"`
	M        int     `json:"m"`
	N        int     `json:"n"`
	K        int     `json:"k"`
	FlopsPB  float64 `json:"flops_per_byte"` // 2mnk / 4(mk + kn + mn)
	Routed   bool    `json:"routed"`         // the run's route (Route) sends it to the GPU
	CPUSec   float64 `json:"cpu_sec"`
	GPUSec   float64 `json:"gpu_sec"` // kernels/cuda Sgemm: upload, cuBLAS, download
	CPUOverG float64 `json:"cpu_over_gpu"`
	// BreakEven is the intensity at which the two would tie, per CPU
	// thread: FlopsPB / CPUOverG / threads (FLOP/B; compare with
	// prune.GemmFlopsPerBytePerThread).
	BreakEven float64 `json:"break_even_flops_per_byte_per_thread"`
}

// forwardResult is the report of --forward-bench.
type forwardResult struct {
	Device      string          `json:"device"`
	Threads     int             `json:"threads"`
	NSeq        int             `json:"nseq"`
	SeqLen      int             `json:"seqlen"`
	Reps        int             `json:"reps"`
	CPUSec      float64         `json:"cpu_sec"`      // median block forward, kernels/cpu
	GPUGemmSec  float64         `json:"gpu_gemm_sec"` // median block forward, prune.WithGPUGemm(cpu, gpu, Route)
	Speedup     float64         `json:"speedup"`      // CPUSec / GPUGemmSec
	RoutedCalls int             `json:"routed_calls"` // Sgemm calls of one forward sent to the GPU
	CPUCalls    int             `json:"cpu_calls"`    // and kept on the CPU
	RoutedFrac  float64         `json:"routed_flops"` // fraction of the forward's GEMM FLOPs routed
	MaxRelDiff  float64         `json:"max_rel_diff"` // max|x_gpu − x_cpu| / max|x_cpu| of the block output
	Shapes      []forwardShape  `json:"shapes"`       // the block's GEMM shapes alone
	Route       prune.GemmRoute `json:"route"`
	RouteName   string          `json:"route_name"` // "threads" (prune.GemmRouteFor(Threads)) or "default" (prune.DefaultGemmRoute)
}

// countingBackend counts the Sgemm calls and multiply-adds that reach it.
type countingBackend struct {
	kernels.Backend
	mu       sync.Mutex
	calls    int
	multAdds float64
}

func (c *countingBackend) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, cc []float32, ldc int) {
	c.mu.Lock()
	c.calls++
	c.multAdds += float64(m) * float64(n) * float64(k)
	c.mu.Unlock()
	c.Backend.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, cc, ldc)
}

// runForward times one SmolLM2-135M-shaped Llama block (hidden 576,
// intermediate 1536, 9 heads, 3 KV heads of 64; random weights) forward on
// nseq×seqlen tokens, on kernels/cpu with threads goroutines and through
// prune.WithGPUGemm(cpu, gpu, route), in the same process, reps times each
// after one warm-up, and the block's GEMM shapes alone on both backends.
// routeName "threads" is prune.GemmRouteFor(threads) (what ForwardBackend
// uses), "default" prune.DefaultGemmRoute (the linears routed). gpu is the CUDA backend, or kernels/cpu for --backend cpu
// (then the "GPU" timings mean nothing and the outputs must be equal).
// withShapes false skips the shapes (tests).
func runForward(gpu kernels.Backend, device string, threads int, routeName string, nseq, seqlen, reps int, seed uint64, withShapes bool, out string) error {
	var route prune.GemmRoute
	switch routeName {
	case "threads":
		route = prune.GemmRouteFor(threads)
	case "default":
		route = prune.DefaultGemmRoute
	default:
		return fmt.Errorf("--forward-route %q: want threads or default", routeName)
	}
	o := tinymodel.Options{Vocab: 256, Hidden: 576, Intermediate: 1536, Layers: 1, Heads: 9, KVHeads: 3,
		RopeTheta: 100000, RMSNormEps: 1e-5, Tied: true, Seed: seed}
	fam, err := llama.New(tinymodel.Config(o))
	if err != nil {
		return err
	}
	w := tinymodel.Weights(o)
	rng := rand.New(rand.NewPCG(seed, 99))
	x0 := make([]float32, nseq*seqlen*o.Hidden)
	for i := range x0 {
		x0[i] = float32(rng.NormFloat64())
	}
	c := cpu.New(threads)
	routedGPU := &countingBackend{Backend: gpu}
	routedCPU := &countingBackend{Backend: c}
	fwd := prune.WithGPUGemm(routedCPU, routedGPU, route)

	x := make([]float32, len(x0))
	timeIt := func(be kernels.Backend) (float64, []float32, error) {
		var secs []float64
		for r := range reps + 1 {
			copy(x, x0)
			t := time.Now()
			if err := fam.ForwardBlock(be, 0, w, x, nseq, seqlen, nil); err != nil {
				return 0, nil, err
			}
			if r > 0 {
				secs = append(secs, time.Since(t).Seconds())
			}
		}
		slices.Sort(secs)
		return secs[len(secs)/2], slices.Clone(x), nil
	}
	res := forwardResult{Device: device, Threads: threads, NSeq: nseq, SeqLen: seqlen, Reps: reps, Route: route, RouteName: routeName}
	var xc, xg []float32
	if res.CPUSec, xc, err = timeIt(c); err != nil {
		return err
	}
	if res.GPUGemmSec, xg, err = timeIt(fwd); err != nil {
		return err
	}
	res.Speedup = res.CPUSec / res.GPUGemmSec
	runs := float64(reps + 1)
	res.RoutedCalls = int(float64(routedGPU.calls) / runs)
	res.CPUCalls = int(float64(routedCPU.calls) / runs)
	if tot := routedGPU.multAdds + routedCPU.multAdds; tot > 0 {
		res.RoutedFrac = routedGPU.multAdds / tot
	}
	var d, m float64
	for i, v := range xc {
		d = max(d, math.Abs(float64(xg[i])-float64(v)))
		m = max(m, math.Abs(float64(v)))
	}
	res.MaxRelDiff = d / m

	T := nseq * seqlen
	kv := o.KVHeads * o.Hidden / o.Heads
	shapes := []forwardShape{
		{Name: "q_proj/o_proj", M: T, N: o.Hidden, K: o.Hidden},
		{Name: "k_proj/v_proj", M: T, N: kv, K: o.Hidden},
		{Name: "gate_proj/up_proj", M: T, N: o.Intermediate, K: o.Hidden},
		{Name: "down_proj", M: T, N: o.Hidden, K: o.Intermediate},
		{Name: "attention scores", M: min(128, seqlen), N: seqlen, K: o.Hidden / o.Heads},
		{Name: "lm_head 256 rows", M: 256, N: 49152, K: o.Hidden},
	}
	if !withShapes {
		shapes = nil
	}
	for _, s := range shapes {
		s.FlopsPB = 2 * float64(s.M) * float64(s.N) * float64(s.K) / (4 * float64(s.M*s.K+s.K*s.N+s.M*s.N))
		s.Routed = route.ToGPU(s.M, s.N, s.K, 0)
		s.CPUSec = timeHostSgemm(c, s.M, s.N, s.K, reps)
		s.GPUSec = timeHostSgemm(gpu, s.M, s.N, s.K, reps)
		s.CPUOverG = s.CPUSec / s.GPUSec
		s.BreakEven = s.FlopsPB / s.CPUOverG / float64(threads)
		res.Shapes = append(res.Shapes, s)
	}

	fmt.Printf("forward of one SmolLM2-shaped block, %d×%d tokens, %d CPU threads, median of %d; route %s (m·n·k ≥ %d, ≥ %g FLOP/B):\n",
		nseq, seqlen, threads, reps, routeName, route.MinMNK, route.MinFlopsPerByte)
	fmt.Printf("  cpu            %8.1f ms\n", 1e3*res.CPUSec)
	fmt.Printf("  gpu-gemm       %8.1f ms   speedup ×%.2f   (%d Sgemm calls on the GPU, %d on the CPU; %.1f%% of GEMM FLOPs routed)\n",
		1e3*res.GPUGemmSec, res.Speedup, res.RoutedCalls, res.CPUCalls, 100*res.RoutedFrac)
	fmt.Printf("  output max rel diff %.3g\n", res.MaxRelDiff)
	fmt.Printf("  %-18s %6s %6s %6s %8s %6s %10s %10s %8s %10s\n", "shape", "m", "n", "k", "FLOP/B", "routed", "cpu ms", "gpu ms", "cpu/gpu", "tie/thread")
	for _, s := range res.Shapes {
		fmt.Printf("  %-18s %6d %6d %6d %8.1f %6v %10.3f %10.3f %8.2f %10.2f\n", s.Name, s.M, s.N, s.K, s.FlopsPB, s.Routed, 1e3*s.CPUSec, 1e3*s.GPUSec, s.CPUOverG, s.BreakEven)
	}
	if len(res.Shapes) > 0 {
		fmt.Printf("  (tie/thread: the FLOP/B per CPU thread at which CPU and GPU would tie; the route uses %d per thread, at least %g)\n",
			prune.GemmFlopsPerBytePerThread, prune.DefaultGemmRoute.MinFlopsPerByte)
	}
	if out != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(out+".tmp", append(b, '\n'), 0o644); err != nil {
			return err
		}
		return os.Rename(out+".tmp", out)
	}
	return nil
}

// timeHostSgemm is the median seconds of be.Sgemm(false, true, m, n, k) on
// host slices (x·Wᵀ as blockops.Linear calls it), reps runs after one
// warm-up.
func timeHostSgemm(be kernels.Backend, m, n, k, reps int) float64 {
	a := make([]float32, m*k)
	b := make([]float32, n*k)
	c := make([]float32, m*n)
	for i := range a {
		a[i] = float32(i%7) - 3
	}
	for i := range b {
		b[i] = float32(i%5) - 2
	}
	var secs []float64
	for r := range reps + 1 {
		t := time.Now()
		be.Sgemm(false, true, m, n, k, 1, a, k, b, k, 0, c, n)
		if r > 0 {
			secs = append(secs, time.Since(t).Seconds())
		}
	}
	slices.Sort(secs)
	return secs[len(secs)/2]
}
