package prune

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/optima-llm/optima/internal/tinymodel"
	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/kernels/cuda"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/llama"
	"github.com/optima-llm/optima/stages/eval"
	"github.com/optima-llm/optima/stages/solve"
)

// gemmShape is one recorded Sgemm call.
type gemmShape struct{ M, N, K int }

// sgemmRecorder records the shapes of its Sgemm calls and runs them on run
// (nil: it multiplies by nothing and writes 7 into C, so a result that
// reaches the output is visibly the fake's); every other operation panics
// (the embedded Backend is nil), so a Gram product, Dgemm or Cholesky routed
// to it fails the test.
type sgemmRecorder struct {
	kernels.Backend // nil
	run             kernels.Backend
	mu              sync.Mutex
	calls           []gemmShape
}

func (r *sgemmRecorder) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	r.mu.Lock()
	r.calls = append(r.calls, gemmShape{m, n, k})
	r.mu.Unlock()
	if r.run != nil {
		r.run.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	for i := range m {
		for j := range n {
			c[i*ldc+j] = 7
		}
	}
}

// cpuRecorder is the CPU backend with its Sgemm calls recorded.
type cpuRecorder struct {
	kernels.Backend
	mu    sync.Mutex
	calls []gemmShape
}

func (r *cpuRecorder) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	r.mu.Lock()
	r.calls = append(r.calls, gemmShape{m, n, k})
	r.mu.Unlock()
	r.Backend.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func TestGemmRouteToGPU(t *testing.T) {
	for _, tc := range []struct {
		name    string
		r       GemmRoute
		m, n, k int
		beta    float32
		want    bool
	}{
		// DefaultGemmRoute on the shapes its doc names.
		{"q_proj 2048 tokens", DefaultGemmRoute, 2048, 576, 576, 0, true},
		{"k_proj 2048 tokens", DefaultGemmRoute, 2048, 192, 576, 0, true},
		{"gate_proj 2048 tokens", DefaultGemmRoute, 2048, 1536, 576, 0, true},
		{"down_proj 2048 tokens", DefaultGemmRoute, 2048, 576, 1536, 0, true},
		{"attention scores", DefaultGemmRoute, 128, 2048, 64, 0, false},
		{"attention values", DefaultGemmRoute, 128, 64, 2048, 0, false},
		{"gate_proj 100 tokens: weight upload dominates", DefaultGemmRoute, 100, 1536, 576, 0, false},
		{"k_proj 512 tokens", DefaultGemmRoute, 512, 192, 576, 0, false},
		{"LM head 256 rows", DefaultGemmRoute, 256, 49152, 576, 0, true},
		{"LM head 16 rows", DefaultGemmRoute, 16, 49152, 576, 0, false},
		{"empty", DefaultGemmRoute, 0, 576, 576, 0, false},
		// Edges of each threshold.
		{"mnk just below MinMNK", GemmRoute{MinMNK: 1000}, 10, 10, 9, 0, false},
		{"mnk at MinMNK", GemmRoute{MinMNK: 1000}, 10, 10, 10, 0, true},
		// 10×10×10: 2000 FLOP over 4·300 = 1200 bytes: 1.667 FLOP/B.
		{"intensity above threshold", GemmRoute{MinFlopsPerByte: 1.6}, 10, 10, 10, 0, true},
		{"intensity below threshold", GemmRoute{MinFlopsPerByte: 1.7}, 10, 10, 10, 0, false},
		// beta ≠ 0 uploads C too: 4·400 = 1600 bytes, 1.25 FLOP/B.
		{"beta≠0 counts C's upload", GemmRoute{MinFlopsPerByte: 1.3}, 10, 10, 10, 1, false},
		{"beta≠0 at threshold", GemmRoute{MinFlopsPerByte: 1.25}, 10, 10, 10, 1, true},
	} {
		if got := tc.r.ToGPU(tc.m, tc.n, tc.k, tc.beta); got != tc.want {
			t.Errorf("%s: %+v.ToGPU(%d, %d, %d, beta %g) = %v, want %v", tc.name, tc.r, tc.m, tc.n, tc.k, tc.beta, got, tc.want)
		}
	}
}

// threadsFake is a fake CPU backend for the route of withDevices: its
// Capabilities report threads, its Sgemm calls are recorded (and write 7s),
// and everything else panics.
type threadsFake struct {
	sgemmRecorder
	threads int
}

func (f *threadsFake) Capabilities() kernels.Capabilities {
	return kernels.Capabilities{Device: "cpu", Threads: f.threads}
}

// SmolLM2-135M's forward GEMMs over 8×2048 tokens (and the LM head over 256
// rows, one query block of the attention) and Llama-3.1-8B's linears over
// 16384 tokens, as (m, n, k) of x·Wᵀ.
var (
	smolQ     = gemmShape{16384, 576, 576}    // q_proj/o_proj, 141.5 FLOP/B
	smolK     = gemmShape{16384, 192, 576}    // k_proj/v_proj, 71.4
	smolGate  = gemmShape{16384, 1536, 576}   // gate_proj/up_proj, 204.2
	smolDown  = gemmShape{16384, 576, 1536}   // down_proj, 204.2
	smolHead  = gemmShape{256, 49152, 576}    // LM head, 88.3
	smolAttn  = gemmShape{128, 2048, 64}      // attention scores, 20.9
	llamaQ    = gemmShape{16384, 4096, 4096}  // q_proj/o_proj, 910
	llamaK    = gemmShape{16384, 1024, 4096}  // k_proj/v_proj, 390
	llamaGate = gemmShape{16384, 14336, 4096} // gate_proj/up_proj, 1333
	llamaDown = gemmShape{16384, 4096, 14336} // down_proj, 1333
)

func TestGemmRouteFor(t *testing.T) {
	for _, tc := range []struct {
		threads int
		want    float64 // MinFlopsPerByte
	}{
		{1, 64}, {4, 64}, {8, 64}, {9, 72}, {16, 128}, {32, 256}, {128, 1024},
	} {
		got := GemmRouteFor(tc.threads)
		if want := (GemmRoute{MinMNK: 1 << 25, MinFlopsPerByte: tc.want}); got != want {
			t.Errorf("GemmRouteFor(%d) = %+v, want %+v", tc.threads, got, want)
		}
	}
	for _, th := range []int{0, -3} {
		if got, want := GemmRouteFor(th), GemmRouteFor(runtime.GOMAXPROCS(0)); got != want {
			t.Errorf("GemmRouteFor(%d) = %+v, want GemmRouteFor(GOMAXPROCS) %+v", th, got, want)
		}
	}
	if got := GemmRouteFor(8); got != DefaultGemmRoute {
		t.Errorf("GemmRouteFor(8) = %+v, want the floor DefaultGemmRoute %+v", got, DefaultGemmRoute)
	}

	for _, tc := range []struct {
		name    string
		threads int
		s       gemmShape
		want    bool
	}{
		// 32 threads (256 FLOP/B): SmolLM2 stays on the CPU, as measured.
		{"smol q_proj 32t", 32, smolQ, false},
		{"smol k_proj 32t", 32, smolK, false},
		{"smol gate_proj 32t", 32, smolGate, false},
		{"smol down_proj 32t", 32, smolDown, false},
		{"smol lm_head 32t", 32, smolHead, false},
		{"smol attention 32t", 32, smolAttn, false},
		// 16 threads (128 FLOP/B): the q/o and MLP products go.
		{"smol q_proj 16t", 16, smolQ, true},
		{"smol k_proj 16t", 16, smolK, false},
		{"smol gate_proj 16t", 16, smolGate, true},
		{"smol down_proj 16t", 16, smolDown, true},
		{"smol lm_head 16t", 16, smolHead, false},
		// 4 threads (the 64 FLOP/B floor): every linear goes, not the attention.
		{"smol q_proj 4t", 4, smolQ, true},
		{"smol k_proj 4t", 4, smolK, true},
		{"smol gate_proj 4t", 4, smolGate, true},
		{"smol down_proj 4t", 4, smolDown, true},
		{"smol lm_head 4t", 4, smolHead, true},
		{"smol attention 4t (below MinMNK)", 4, smolAttn, false},
		{"smol attention 1t (below MinMNK)", 1, smolAttn, false},
		// Llama-3.1-8B at 32 threads: all linears go; at 64, k/v stays.
		{"8B q_proj 32t", 32, llamaQ, true},
		{"8B k_proj 32t", 32, llamaK, true},
		{"8B gate_proj 32t", 32, llamaGate, true},
		{"8B down_proj 32t", 32, llamaDown, true},
		{"8B k_proj 64t", 64, llamaK, false},
		{"8B gate_proj 128t", 128, llamaGate, true},
	} {
		if got := GemmRouteFor(tc.threads).ToGPU(tc.s.M, tc.s.N, tc.s.K, 0); got != tc.want {
			t.Errorf("%s: GemmRouteFor(%d).ToGPU(%v) = %v, want %v", tc.name, tc.threads, tc.s, got, tc.want)
		}
	}
}

// TestGemmRouteForAgreesWithMeasurement: at the 32 threads of the
// measurement (bench/cuda/results/gpu-checks-2026-11-30/forward.json), the
// route sends a shape to the GPU exactly when it was faster there, and the
// per-thread break-even intensity of every measured shape (intensity ×
// gpu/cpu seconds ÷ threads) lies within 35% of GemmFlopsPerBytePerThread.
func TestGemmRouteForAgreesWithMeasurement(t *testing.T) {
	const threads = 32
	for _, tc := range []struct {
		name           string
		s              gemmShape
		cpuSec, gpuSec float64
	}{
		{"q_proj/o_proj", smolQ, 0.006340338, 0.008455228},
		{"k_proj/v_proj", smolK, 0.002697362, 0.006617437},
		{"gate_proj/up_proj", smolGate, 0.01417686, 0.014923979},
		{"down_proj", smolDown, 0.014617052, 0.018978467},
		{"lm_head 256 rows", smolHead, 0.008072642, 0.021131321},
	} {
		m, n, k := float64(tc.s.M), float64(tc.s.N), float64(tc.s.K)
		intensity := 2 * m * n * k / (4 * (m*k + k*n + m*n))
		if got, want := GemmRouteFor(threads).ToGPU(tc.s.M, tc.s.N, tc.s.K, 0), tc.gpuSec < tc.cpuSec; got != want {
			t.Errorf("%s: routed to the GPU %v, but measured cpu %.4f s gpu %.4f s", tc.name, got, tc.cpuSec, tc.gpuSec)
		}
		perThread := intensity * tc.gpuSec / tc.cpuSec / threads
		if r := perThread / GemmFlopsPerBytePerThread; r < 0.65 || r > 1.35 {
			t.Errorf("%s: break-even %.2f FLOP/B per thread, %.2f× GemmFlopsPerBytePerThread", tc.name, perThread, r)
		}
	}
}

// TestWithDevicesRouteFollowsThreads: the backend ForwardBackend builds
// routes by its CPU backend's thread count: a 512³ product (85 FLOP/B)
// goes to the GPU under 4 threads and stays on the CPU under 32; with no
// device, the backend itself comes back; a Gram-only backend keeps the
// same route field.
func TestWithDevicesRouteFollowsThreads(t *testing.T) {
	const s = 512
	c := make([]float32, s*s)
	ab := make([]float32, s*s)
	for _, tc := range []struct {
		threads int
		toGPU   bool
	}{{4, true}, {32, false}} {
		base := &threadsFake{threads: tc.threads}
		gpu := &sgemmRecorder{}
		be := withDevices(base, nil, gpu)
		if r, ok := be.(routed); !ok || r.route != GemmRouteFor(tc.threads) {
			t.Fatalf("withDevices(%d threads) = %#v, want a routed backend with GemmRouteFor(%d)", tc.threads, be, tc.threads)
		}
		be.Sgemm(false, true, s, s, s, 1, ab, s, ab, s, 0, c, s)
		want := []gemmShape{{s, s, s}}
		gotGPU, gotCPU := gpu.calls, base.calls
		if !tc.toGPU {
			gotGPU, gotCPU = gotCPU, gotGPU
		}
		if diff := cmp.Diff(want, gotGPU); diff != "" || len(gotCPU) != 0 {
			t.Errorf("%d threads: %d³ Sgemm on GPU %v, CPU %v; want it on the GPU = %v", tc.threads, s, gpu.calls, base.calls, tc.toGPU)
		}
	}
	base := &threadsFake{threads: 4}
	if be := withDevices(base, nil, nil); be != kernels.Backend(base) {
		t.Errorf("withDevices(be, nil, nil) = %#v, want be itself", be)
	}
	if r, ok := withDevices(base, &gramOnly{}, nil).(routed); !ok || r.gemm != nil || r.gram == nil {
		t.Errorf("withDevices(be, gram, nil) = %#v, want only the Gram routed", r)
	}
}

// tinyBlock returns the tiny Llama family, its weights and hidden states of
// 2 sequences of 24 tokens.
func tinyBlock(t *testing.T) (model.Family, model.Weights, []float32, int, int) {
	t.Helper()
	o := tinymodel.Default()
	fam, err := llama.New(tinymodel.Config(o))
	if err != nil {
		t.Fatal(err)
	}
	const nseq, seqlen = 2, 24
	rng := rand.New(rand.NewPCG(7, 8))
	x := make([]float32, nseq*seqlen*o.Hidden)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return fam, tinymodel.Weights(o), x, nseq, seqlen
}

// TestWithGPUGemmRoutesLargeGemms runs one tiny block forward through
// WithGPUGemm with a threshold between the linears' and the attention's
// products: the "GPU" (the CPU backend behind a recorder) gets exactly the
// calls the route accepts, the base backend all others, and the output is
// bit-identical to the CPU backend's; with a fake whose products are all
// 7s, the output differs (the routed products reach it).
func TestWithGPUGemmRoutesLargeGemms(t *testing.T) {
	c := cpu.New(2)
	fam, w, x0, nseq, seqlen := tinyBlock(t)
	want := append([]float32(nil), x0...)
	plain := &cpuRecorder{Backend: c}
	if err := fam.ForwardBlock(plain, 0, w, want, nseq, seqlen, nil); err != nil {
		t.Fatal(err)
	}
	// Tiny model: 48 tokens, hidden 64, 4 heads of 16, 2 KV heads,
	// intermediate 128. q/o 48×64×64 (196608), k/v 48×32×64 (98304),
	// gate/up 48×128×64, down 48×64×128 (393216), attention 24×24×16.
	route := GemmRoute{MinMNK: 100000}
	wantGPU := []gemmShape{{48, 64, 64}, {48, 64, 64}, {48, 128, 64}, {48, 128, 64}, {48, 64, 128}}

	base := &cpuRecorder{Backend: c}
	gpu := &sgemmRecorder{run: c}
	got := append([]float32(nil), x0...)
	if err := fam.ForwardBlock(WithGPUGemm(base, gpu, route), 0, w, got, nseq, seqlen, nil); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("block output through WithGPUGemm (GPU = the CPU backend) differs from the CPU's (-want +got):\n%s", diff)
	}
	sortShapes := cmpopts.SortSlices(func(a, b gemmShape) bool {
		return a.M < b.M || a.M == b.M && (a.N < b.N || a.N == b.N && a.K < b.K)
	})
	if diff := cmp.Diff(wantGPU, gpu.calls, sortShapes); diff != "" {
		t.Errorf("Sgemm calls routed to the GPU (-want +got):\n%s", diff)
	}
	for _, s := range base.calls {
		if route.ToGPU(s.M, s.N, s.K, 0) {
			t.Errorf("Sgemm %v ran on the base backend, but the route sends it to the GPU", s)
		}
	}
	if diff := cmp.Diff(plain.calls, append(append([]gemmShape(nil), base.calls...), gpu.calls...), sortShapes); diff != "" {
		t.Errorf("GPU + base calls are not the plain forward's calls (-plain +routed):\n%s", diff)
	}

	marked := append([]float32(nil), x0...)
	if err := fam.ForwardBlock(WithGPUGemm(c, &sgemmRecorder{}, route), 0, w, marked, nseq, seqlen, nil); err != nil {
		t.Fatal(err)
	}
	if cmp.Equal(want, marked) {
		t.Error("a fake GPU writing 7s left the block output unchanged: routed products do not reach it")
	}
}

// TestWithGPUGemmOtherOps: everything but Sgemm stays on the base backend
// (the fake GPU panics on any other method), and WithGPUGemm over WithGram
// keeps the Gram routing.
func TestWithGPUGemmOtherOps(t *testing.T) {
	c := cpu.New(1)
	gpu := &sgemmRecorder{run: c}
	be := WithGPUGemm(c, gpu, GemmRoute{})
	if be.Name() != c.Name() || be.Capabilities() != c.Capabilities() {
		t.Errorf("WithGPUGemm: Name %q Capabilities %+v, want the base backend's", be.Name(), be.Capabilities())
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 6
	x := make([]float32, 3*n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	h := make([]float64, n*n)
	be.AccumulateGram(h, x, 3, n)
	hw := make([]float64, n*n)
	c.AccumulateGram(hw, x, 3, n)
	if diff := cmp.Diff(hw, h); diff != "" {
		t.Errorf("AccumulateGram (-cpu +wrapped):\n%s", diff)
	}
	for i := range n {
		h[i*n+i] += 1
	}
	if err := be.Cholesky(h, n); err != nil {
		t.Error(err)
	}
	a := []float64{1, 2, 3, 4}
	cd := make([]float64, 4)
	be.Dgemm(false, false, 2, 2, 2, 1, a, 2, a, 2, 0, cd, 2)
	if diff := cmp.Diff([]float64{7, 10, 15, 22}, cd); diff != "" {
		t.Errorf("Dgemm (-want +got):\n%s", diff)
	}
	cs := make([]float32, 4)
	be.Sgemm(false, false, 2, 2, 2, 1, []float32{1, 2, 3, 4}, 2, []float32{1, 2, 3, 4}, 2, 0, cs, 2)
	if len(gpu.calls) != 1 || len(gpu.calls) == 1 && gpu.calls[0] != (gemmShape{2, 2, 2}) {
		t.Errorf("GPU calls %v, want the one Sgemm (route 0 accepts every non-empty product)", gpu.calls)
	}

	// Gram routing kept; the Sgemm goes to the GPU fake, not to gram.
	gram := &gramOnly{cpu: c, scale: 2}
	both := WithGPUGemm(WithGram(c, gram), gpu, GemmRoute{})
	h2 := make([]float64, n*n)
	both.AccumulateGram(h2, x, 3, n)
	if len(gram.widths) != 1 {
		t.Errorf("WithGPUGemm(WithGram(…)) lost the Gram routing: %d Gram calls reached gram", len(gram.widths))
	}
	both.Sgemm(false, false, 2, 2, 2, 1, []float32{1, 2, 3, 4}, 2, []float32{1, 2, 3, 4}, 2, 0, cs, 2)
	if len(gpu.calls) != 2 {
		t.Errorf("WithGPUGemm(WithGram(…)) Sgemm: %d GPU calls, want 2", len(gpu.calls))
	}
}

func TestForwardBackend(t *testing.T) {
	c := cpu.New(1)
	for _, dev := range [][2]string{{"", ""}, {"cpu", ""}, {"", "cpu"}, {"cpu", "cpu"}} {
		got, err := ForwardBackend(c, dev[0], dev[1])
		if err != nil || got != kernels.Backend(c) {
			t.Errorf("ForwardBackend(cpu, %q, %q) = %v, %v; want the CPU backend itself", dev[0], dev[1], got, err)
		}
	}
	_, err := ForwardBackend(c, "", "tpu")
	if !errors.Is(err, solve.ErrInvalidOptions) || !strings.Contains(err.Error(), "forward device") {
		t.Errorf("ForwardBackend(forward tpu) error %v, want solve.ErrInvalidOptions naming the forward device", err)
	}
	got, err := ForwardBackend(c, "", "cuda")
	if gpuErr := cuda.Available(); gpuErr != nil {
		if !errors.Is(err, cuda.ErrUnavailable) || !strings.Contains(err.Error(), "forward device") {
			t.Errorf("ForwardBackend(forward cuda) without a GPU: error %v, want one wrapping cuda.ErrUnavailable naming the forward device", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	r, ok := got.(routed)
	if !ok || r.Backend != kernels.Backend(c) || r.gram != nil || r.route != GemmRouteFor(1) {
		t.Fatalf("ForwardBackend(forward cuda) = %#v, want the CPU backend with only the GEMMs routed (GemmRouteFor(1))", got)
	}
	if _, ok := r.gemm.(*cuda.Backend); !ok {
		t.Errorf("ForwardBackend(forward cuda) routes Sgemm to %T, want *cuda.Backend", r.gemm)
	}
}

// maxRelDiff is max|got − want| / max|want|.
func maxRelDiff(want, got []float32) float64 {
	var d, m float64
	for i, w := range want {
		d = max(d, math.Abs(float64(got[i])-float64(w)))
		m = max(m, math.Abs(float64(w)))
	}
	return d / m
}

// TestGPUForwardMatchesCPU is the GPU check of --forward-device cuda: a
// tiny-model block forward and calibration with every Sgemm on the GPU (a
// route of 1 multiply-add), against the CPU backend: activations within
// 1e-5 relative (max |Δ| / max |x|), Hessians within 1e-5 relative, and the
// tiny model's perplexity within 1e-5 relative. Skipped without a GPU;
// OPTIMA_REQUIRE_GPU=1 makes that a failure.
func TestGPUForwardMatchesCPU(t *testing.T) {
	if err := cuda.Available(); err != nil {
		if os.Getenv("OPTIMA_REQUIRE_GPU") == "1" {
			t.Fatalf("OPTIMA_REQUIRE_GPU=1 but %v", err)
		}
		t.Skipf("no GPU: %v", err)
	}
	dev, err := solve.DeviceBackend("cuda")
	if err != nil {
		t.Fatal(err)
	}
	checkForwardMatchesCPU(t, dev, 1e-5)
}

// TestForwardMatchesCPUWithCPUAsGPU runs the checks of
// TestGPUForwardMatchesCPU with the CPU backend standing in for the GPU,
// where the results must agree exactly (tolerance 0).
func TestForwardMatchesCPUWithCPUAsGPU(t *testing.T) {
	checkForwardMatchesCPU(t, cpu.New(2), 0)
}

// checkForwardMatchesCPU compares a tiny block forward, its calibration
// Hessians and the tiny model's perplexity with every Sgemm on dev against
// the CPU backend, within tol relative.
func checkForwardMatchesCPU(t *testing.T, dev kernels.Backend, tol float64) {
	t.Helper()
	c := cpu.New(2)
	gpu := &sgemmRecorder{run: dev}
	be := WithGPUGemm(c, gpu, GemmRoute{MinMNK: 1})

	fam, w, x0, nseq, seqlen := tinyBlock(t)
	want := append([]float32(nil), x0...)
	got := append([]float32(nil), x0...)
	if err := fam.ForwardBlock(c, 0, w, want, nseq, seqlen, nil); err != nil {
		t.Fatal(err)
	}
	if err := fam.ForwardBlock(be, 0, w, got, nseq, seqlen, nil); err != nil {
		t.Fatal(err)
	}
	if len(gpu.calls) == 0 {
		t.Fatal("no Sgemm reached the GPU")
	}
	if d := maxRelDiff(want, got); d > tol {
		t.Errorf("block output: GPU GEMMs differ from the CPU by %.3g relative, want ≤ %g", d, tol)
	} else {
		t.Logf("block output: %.3g relative", d)
	}

	hc := calibrateTiny(t, c)
	hg := calibrateTiny(t, be)
	for g, want := range hc {
		var d, m float64
		for i, v := range want {
			d = max(d, math.Abs(hg[g][i]-v))
			m = max(m, math.Abs(v))
		}
		if d/m > tol {
			t.Errorf("Hessian %s: %.3g relative, want ≤ %g", g, d/m, tol)
		}
	}

	o := tinymodel.Default()
	rng := rand.New(rand.NewPCG(3, 4))
	ids := make([]int32, 4*32)
	for i := range ids {
		ids[i] = int32(rng.IntN(o.Vocab))
	}
	load := eval.WeightsLoader(tinymodel.Weights(o))
	pc, err := eval.Perplexity(t.Context(), c, fam, load, ids, 32, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := eval.Perplexity(t.Context(), be, fam, load, ids, 32, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := math.Abs(pg.Perplexity-pc.Perplexity) / pc.Perplexity; d > tol {
		t.Errorf("perplexity: GPU GEMMs %v, CPU %v (%.3g relative), want ≤ %g", pg.Perplexity, pc.Perplexity, d, tol)
	}
	if math.IsNaN(pc.Perplexity) || pc.Perplexity <= 1 {
		t.Errorf("CPU perplexity %v of a random tiny model, want a finite value above 1", pc.Perplexity)
	}
}

// BenchmarkForwardGPUGemm times one SmolLM2-135M-shaped Llama block forward
// (random weights, 2×2048 tokens) on the CPU backend (GOMAXPROCS threads)
// and through ForwardBackend(cpu, "", "cuda") in the same run, and reports
// cpu_over_gpu_gemm, the ratio of their times per forward: sub-benchmark
// "threads" with ForwardBackend's route (GemmRouteFor(GOMAXPROCS)),
// "default" with DefaultGemmRoute (the linears on the GPU). Skipped without
// a GPU (OPTIMA_REQUIRE_GPU=1: a failure); cudabench --forward-bench is the
// fuller measurement.
func BenchmarkForwardGPUGemm(b *testing.B) {
	if err := cuda.Available(); err != nil {
		if os.Getenv("OPTIMA_REQUIRE_GPU") == "1" {
			b.Fatalf("OPTIMA_REQUIRE_GPU=1 but %v", err)
		}
		b.Skipf("no GPU: %v", err)
	}
	o := tinymodel.Options{Vocab: 256, Hidden: 576, Intermediate: 1536, Layers: 1, Heads: 9, KVHeads: 3,
		RopeTheta: 100000, RMSNormEps: 1e-5, Tied: true, Seed: 1}
	fam, err := llama.New(tinymodel.Config(o))
	if err != nil {
		b.Fatal(err)
	}
	w := tinymodel.Weights(o)
	const nseq, seqlen = 2, 2048
	rng := rand.New(rand.NewPCG(1, 1))
	x0 := make([]float32, nseq*seqlen*o.Hidden)
	for i := range x0 {
		x0[i] = float32(rng.NormFloat64())
	}
	c := cpu.New(0)
	fb, err := ForwardBackend(c, "", "cuda")
	if err != nil {
		b.Fatal(err)
	}
	x := make([]float32, len(x0))
	for _, bc := range []struct {
		name string
		gpu  kernels.Backend
	}{
		{"threads", fb},
		{"default", WithGPUGemm(c, fb.(routed).gemm, DefaultGemmRoute)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			forward := func(be kernels.Backend) {
				copy(x, x0)
				if err := fam.ForwardBlock(be, 0, w, x, nseq, seqlen, nil); err != nil {
					b.Fatal(err)
				}
			}
			forward(c)
			forward(bc.gpu)
			var tc, tg time.Duration
			for b.Loop() {
				t := time.Now()
				forward(c)
				tc += time.Since(t)
				t = time.Now()
				forward(bc.gpu)
				tg += time.Since(t)
			}
			b.ReportMetric(float64(tc)/float64(tg), "cpu_over_gpu_gemm")
		})
	}
}
