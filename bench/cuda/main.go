// Command cudabench times OPTIMA's exact row re-fit (stages/solve on the
// kernels/cuda backend, device-resident PCG) on a Llama-3.1-8B-shaped model:
// hidden 4096, intermediate 14336, 32 KV-grouped blocks (32 query heads, 8 KV
// heads of 128), i.e. 7 linears per block, 224 in all. Weights are random
// (N(0, 0.02²), 1% ten times larger), Hessians are XᵀX of synthetic
// activations with heavy-tailed per-channel scales (log-normal, σ = 1.5) on
// a rank-64 shared component plus noise, formed on the GPU
// (AccumulateGram), and masks are 50% unstructured Wanda masks chosen by
// stages/mask. Linears reading the same input share one Hessian and one
// prepared Problem (q/k/v; gate/up), as in the pipeline.
//
// It reports per layer type: seconds (prepare on the host, device PCG,
// statistics), CG iterations, fallback rows, the objective gap of sampled
// rows to a float64 direct solve (cuSOLVER Cholesky of H_SS), and the GEMM
// floor: the products the PCG ran (Σ rows × [in, in]) timed alone as
// device-resident cuBLAS SGEMMs of the layer's full shape in the same run.
//
// Usage (on a GPU machine; see run.sh):
//
//	cudabench --layers 32 --out results.json
//
// --dump DIR also writes block 0's Hessians, weights, masks and re-fitted
// weights as .npy files with a manifest.json (dump.go), the input of the
// Python anchors (anchors.py: PyTorch PCG, SparseGPT, MPAX raPDHG).
// --backend cpu runs the same code on kernels/cpu at small shapes (to test
// the dump and the anchors without a GPU; its timings mean nothing).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/kernels/cuda"
	"github.com/optima-llm/optima/stages/mask"
	"github.com/optima-llm/optima/stages/solve"
)

type linear struct {
	name     string // q_proj, ...
	group    string // the Hessian it reads: attn_in, attn_out, mlp_in, mlp_out
	rows, in int
}

// shape8B lists one block's linears of Llama-3.1-8B.
func shape8B(hidden, inter, kvDim int) []linear {
	return []linear{
		{"q_proj", "attn_in", hidden, hidden},
		{"k_proj", "attn_in", kvDim, hidden},
		{"v_proj", "attn_in", kvDim, hidden},
		{"o_proj", "attn_out", hidden, hidden},
		{"gate_proj", "mlp_in", inter, hidden},
		{"up_proj", "mlp_in", inter, hidden},
		{"down_proj", "mlp_out", hidden, inter},
	}
}

// typeResult accumulates one layer type over blocks.
type typeResult struct {
	Name           string  `json:"name"`
	Rows           int     `json:"rows"`
	In             int     `json:"in"`
	Layers         int     `json:"layers"`
	PrepareSec     float64 `json:"prepare_sec"`
	SolveSec       float64 `json:"solve_sec"` // whole SolveRows (PCG + fallback + statistics)
	PCGSec         float64 `json:"pcg_sec"`   // device PCG loop only
	UploadSec      float64 `json:"upload_sec"`
	MeanIterations float64 `json:"mean_iterations"` // mean over layers of the per-layer mean
	MaxIterations  int     `json:"max_iterations"`
	FallbackRows   int     `json:"fallback_rows"`
	GEMMRows       int64   `json:"gemm_rows"`
	FloorSec       float64 `json:"gemm_floor_sec"`      // GEMMRows × (FP32 SGEMM seconds per row)
	SecPerRow      float64 `json:"sgemm_sec_per_row"`   // FP32 SGEMM [rows, in]×[in, in] seconds / rows
	FloorTF32Sec   float64 `json:"gemm_floor_tf32_sec"` // the same with TF32
	RelErrBefore   float64 `json:"rel_err_mask_only"`   // mean over layers
	RelErrAfter    float64 `json:"rel_err_after"`
	GapMax         float64 `json:"gap_max"` // sampled rows, damped objective vs float64 direct
	GapRows        int     `json:"gap_rows"`
}

type report struct {
	Device       string        `json:"device"`
	Blocks       int           `json:"blocks"`
	Tokens       int           `json:"tokens"`
	HessianSets  int           `json:"hessian_sets"` // 0: one per block
	TF32         bool          `json:"tf32"`
	Options      solve.Options `json:"solve_options"`
	TotalSec     float64       `json:"total_solve_sec"` // Σ prepare + solve over all linears
	GenSec       float64       `json:"generate_sec"`    // synthetic weights, Hessians, masks (not part of the solve)
	GapSec       float64       `json:"gap_check_sec"`
	FloorSec     float64       `json:"gemm_floor_sec"`
	FloorTF32Sec float64       `json:"gemm_floor_tf32_sec"`
	SgemmTFLOPS  map[string]float64
	Types        []*typeResult `json:"types"`
}

func main() {
	layers := flag.Int("layers", 32, "transformer blocks to solve (Llama-3.1-8B has 32)")
	hidden := flag.Int("hidden", 4096, "hidden size")
	inter := flag.Int("intermediate", 14336, "MLP intermediate size")
	kvDim := flag.Int("kv-dim", 1024, "KV projection rows (8 KV heads × 128)")
	tokens := flag.Int("tokens", 8192, "synthetic calibration tokens per Hessian")
	tf32 := flag.Bool("tf32", false, "TF32 tensor cores for the PCG products")
	gapRows := flag.Int("gap-rows", 4, "rows per linear checked against the float64 direct solve")
	gapBlocks := flag.Int("gap-blocks", 2, "blocks whose sampled rows are checked (the first ones)")
	hBlocks := flag.Int("hessian-blocks", 0, "distinct Hessian sets, cycled over blocks (0: fresh Hessians for every block)")
	out := flag.String("out", "", "write the JSON report here as well")
	seed := flag.Uint64("seed", 1, "seed")
	backend := flag.String("backend", "cuda", "cuda, or cpu (kernels/cpu, small shapes: tests the dump and the anchors)")
	dump := flag.String("dump", "", "write block 0's H, W, mask and re-fitted W of --dump-types to this folder (.npy + manifest.json)")
	dumpTypes := flag.String("dump-types", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", "comma-separated linears to dump")
	fbBench := flag.Bool("fallback-bench", false, "instead of the solve benchmark: --fallback-rows rows of the q_proj shape through the one-by-one and the batched Cholesky fallback, and AccumulateGram of --tokens × --hidden and × --intermediate against its SGEMM floor")
	fbRows := flag.Int("fallback-rows", 512, "rows of --fallback-bench")
	fwdBench := flag.Bool("forward-bench", false, "instead of the solve benchmark: one SmolLM2-135M-shaped block forward (random weights, --forward-nseq × --forward-seqlen tokens) on kernels/cpu with --threads goroutines vs with its large GEMMs on the GPU (prune.WithGPUGemm, --forward-route), and its GEMM shapes alone on both")
	fwdRoute := flag.String("forward-route", "threads", "route of --forward-bench: threads (prune.GemmRouteFor(--threads), what optima uses) or default (prune.DefaultGemmRoute: every linear of 8×2048 tokens to the GPU)")
	fwdNSeq := flag.Int("forward-nseq", 8, "sequences of --forward-bench")
	fwdSeqLen := flag.Int("forward-seqlen", 2048, "tokens per sequence of --forward-bench")
	fwdReps := flag.Int("forward-reps", 5, "timed repetitions of --forward-bench (median reported, after one warm-up)")
	threads := flag.Int("threads", 0, "CPU backend goroutines of --forward-bench (0: GOMAXPROCS)")
	flag.Parse()
	if *fwdBench {
		err := func() error {
			be, cb, name, err := openBackend(*backend, false)
			if err != nil {
				return err
			}
			if cb != nil {
				defer cb.Close()
			}
			t := *threads
			if t <= 0 {
				t = runtime.GOMAXPROCS(0)
			}
			return runForward(be, name, t, *fwdRoute, *fwdNSeq, *fwdSeqLen, max(1, *fwdReps), *seed, true, *out)
		}()
		if err != nil {
			fmt.Fprintln(os.Stderr, "cudabench:", err)
			os.Exit(1)
		}
		return
	}
	if *fbBench {
		err := func() error {
			be, cb, name, err := openBackend(*backend, false)
			if err != nil {
				return err
			}
			if cb != nil {
				defer cb.Close()
			}
			return runFallback(be, cb, name, *hidden, *inter, *tokens, *fbRows, *seed, *out)
		}()
		if err != nil {
			fmt.Fprintln(os.Stderr, "cudabench:", err)
			os.Exit(1)
		}
		return
	}
	d, err := newDumper(*dump, *dumpTypes)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cudabench:", err)
		os.Exit(2)
	}
	if err := run(*backend, *layers, *hidden, *inter, *kvDim, *tokens, *tf32, *gapRows, *gapBlocks, *hBlocks, *out, *seed, d); err != nil {
		fmt.Fprintln(os.Stderr, "cudabench:", err)
		os.Exit(1)
	}
}

// openBackend opens the --backend: the CUDA backend (cb, which the caller
// closes) or kernels/cpu (cb nil), and a name for the reports.
func openBackend(backend string, tf32 bool) (be kernels.Backend, cb *cuda.Backend, name string, err error) {
	switch backend {
	case "cuda":
		if cb, err = cuda.New(cuda.Options{TF32: tf32}); err != nil {
			return nil, nil, "", err
		}
		var libs []string
		name, libs = cb.DeviceName()
		free, total, _ := cb.MemInfo()
		fmt.Printf("device %s (%s), %.1f/%.1f GiB free, libraries %v\n", name, cb.Capabilities().SIMD, float64(free)/(1<<30), float64(total)/(1<<30), libs)
		return cb, cb, name, nil
	case "cpu":
		be = cpu.New(0)
		name = "cpu " + be.Capabilities().SIMD
		fmt.Printf("device %s (timings are not the benchmark's)\n", name)
		return be, nil, name, nil
	}
	return nil, nil, "", fmt.Errorf("--backend %q: want cuda or cpu", backend)
}

func run(backend string, blocks, hidden, inter, kvDim, tokens int, tf32 bool, gapRows, gapBlocks, hBlocks int, out string, seed uint64, dump *dumper) error {
	be, cb, name, err := openBackend(backend, tf32)
	if err != nil {
		return err
	}
	if cb != nil {
		defer cb.Close()
	}

	opts := solve.DefaultOptions()
	rep := &report{Device: name, Blocks: blocks, Tokens: tokens, HessianSets: hBlocks, TF32: tf32, Options: opts, SgemmTFLOPS: map[string]float64{}}
	lins := shape8B(hidden, inter, kvDim)
	types := map[string]*typeResult{}
	for _, l := range lins {
		tr := &typeResult{Name: l.name, Rows: l.rows, In: l.in}
		types[l.name] = tr
		rep.Types = append(rep.Types, tr)
	}
	sel, err := mask.New("wanda", nil)
	if err != nil {
		return err
	}
	pat := mask.Pattern{Sparsity: 0.5}

	cache := map[int]map[string][]float64{}
	for blk := range blocks {
		tb := time.Now()
		rng := rand.New(rand.NewPCG(seed, uint64(blk)))
		// Hessians per input group, formed on the GPU.
		tg := time.Now()
		set := blk
		if hBlocks > 0 {
			set = blk % hBlocks
		}
		hs := cache[set]
		if hs == nil {
			hs = map[string][]float64{}
			hr := rand.New(rand.NewPCG(seed, uint64(set)+1<<32))
			for _, g := range []struct {
				name string
				in   int
			}{{"attn_in", hidden}, {"attn_out", hidden}, {"mlp_in", hidden}, {"mlp_out", inter}} {
				hs[g.name] = genHessian(be, hr.Uint64(), g.in, tokens)
			}
			if hBlocks > 0 {
				cache[set] = hs
			}
		}
		rep.GenSec += time.Since(tg).Seconds()
		probs := map[string]*solve.Problem{}
		for _, l := range lins {
			tr := types[l.name]
			tg := time.Now()
			h := hs[l.group]
			w := genWeights(rng.Uint64(), l.rows, l.in)
			norms := make([]float64, l.in)
			for j := range norms {
				norms[j] = math.Sqrt(h[j*l.in+j])
			}
			m, err := selectMask(sel, pat, "model.layers."+fmt.Sprint(blk)+".x."+l.name, w, l.rows, l.in, norms)
			if err != nil {
				return err
			}
			rep.GenSec += time.Since(tg).Seconds()

			tp := time.Now()
			p := probs[l.group]
			if p == nil {
				p, err = solve.Prepare(h, l.in, opts)
				if err != nil {
					return fmt.Errorf("block %d %s: %w", blk, l.name, err)
				}
				probs[l.group] = p
			}
			prep := time.Since(tp).Seconds()
			w0 := append([]float32(nil), w...)
			ts := time.Now()
			st, err := p.SolveRows(be, w, m.Pruned, l.rows)
			if err != nil {
				return fmt.Errorf("block %d %s: %w", blk, l.name, err)
			}
			sec := time.Since(ts).Seconds()
			var ps cuda.PCGStats
			if cb != nil {
				ps = cb.LastPCG()
			} else { // host PCG: one GEMM row per row and iteration, plus the right-hand sides
				ps.GEMMRows = int64(math.Round(float64(l.rows) * (1 + st.MeanIterations)))
				ps.Iterations = time.Since(ts)
			}
			tr.Layers++
			tr.PrepareSec += prep
			tr.SolveSec += sec
			tr.PCGSec += ps.Iterations.Seconds()
			tr.UploadSec += ps.Upload.Seconds()
			tr.MeanIterations += st.MeanIterations
			tr.MaxIterations = max(tr.MaxIterations, st.Iterations)
			tr.FallbackRows += st.FallbackRows
			tr.GEMMRows += ps.GEMMRows
			tr.RelErrBefore += st.ObjBefore / st.Denom
			tr.RelErrAfter += st.ObjAfter / st.Denom
			rep.TotalSec += prep + sec
			fmt.Printf("block %2d %-9s %5d×%-5d prepare %6.3fs solve %6.3fs (pcg %6.3fs, %d chunks) iters mean %5.1f max %3d fallback %d err %.4f→%.4f\n",
				blk, l.name, l.rows, l.in, prep, sec, ps.Iterations.Seconds(), ps.Chunks, st.MeanIterations, st.Iterations, st.FallbackRows,
				st.ObjBefore/st.Denom, st.ObjAfter/st.Denom)
			if blk < gapBlocks && gapRows > 0 {
				tg := time.Now()
				g, err := gapCheck(be, h, l.in, opts.Damping, w0, w, m.Pruned, l.rows, gapRows, rng)
				if err != nil {
					return fmt.Errorf("block %d %s: gap check: %w", blk, l.name, err)
				}
				tr.GapMax = max(tr.GapMax, g)
				tr.GapRows += gapRows
				rep.GapSec += time.Since(tg).Seconds()
			}
			if blk == 0 {
				if err := dump.layer(l, h, w0, m.Pruned, w, dumpStats{PrepareSec: prep, SolveSec: sec, PCGSec: ps.Iterations.Seconds(),
					GEMMRows: ps.GEMMRows, MeanIterations: st.MeanIterations, MaxIterations: st.Iterations, FallbackRows: st.FallbackRows,
					RelErrMaskOnly: st.ObjBefore / st.Denom, RelErrAfter: st.ObjAfter / st.Denom}); err != nil {
					return err
				}
			}
		}
		for _, p := range probs {
			p.Release(be)
		}
		fmt.Printf("block %2d done in %.1fs (solve total so far %.1fs)\n", blk, time.Since(tb).Seconds(), rep.TotalSec)
	}

	// GEMM floor: each layer type's PCG products timed alone at full shape.
	for _, tr := range rep.Types {
		for _, t32 := range []bool{false, true} {
			s, err := timeSgemm(be, cb, tr.Rows, tr.In, tr.In, 5, t32)
			if err != nil {
				return err
			}
			key := fmt.Sprintf("%dx%dx%d", tr.Rows, tr.In, tr.In)
			if t32 {
				key += "_tf32"
			}
			rep.SgemmTFLOPS[key] = 2 * float64(tr.Rows) * float64(tr.In) * float64(tr.In) / s / 1e12
			perRow := s / float64(tr.Rows)
			if t32 {
				tr.FloorTF32Sec = float64(tr.GEMMRows) * perRow
				rep.FloorTF32Sec += tr.FloorTF32Sec
			} else {
				tr.FloorSec = float64(tr.GEMMRows) * perRow
				tr.SecPerRow = perRow
				rep.FloorSec += tr.FloorSec
			}
		}
		if tr.Layers > 0 {
			tr.MeanIterations /= float64(tr.Layers)
			tr.RelErrBefore /= float64(tr.Layers)
			tr.RelErrAfter /= float64(tr.Layers)
		}
	}

	fmt.Printf("\n%d blocks (%d linears), tokens %d, tf32 %v, tol %g, max iter %d\n", blocks, blocks*len(lins), tokens, tf32, opts.Tol, opts.MaxIter)
	fmt.Printf("%-9s %12s %7s %8s %8s %8s %7s %6s %6s %9s %9s %9s %9s\n", "type", "shape", "layers", "prep s", "solve s", "pcg s", "iters", "maxit", "fallbk", "floor s", "solve/fl", "gap max", "err")
	for _, tr := range rep.Types {
		fmt.Printf("%-9s %5d×%-6d %7d %8.2f %8.2f %8.2f %7.1f %6d %6d %9.2f %9.2f %9.2g %.4f→%.4f\n", tr.Name, tr.Rows, tr.In, tr.Layers,
			tr.PrepareSec, tr.SolveSec, tr.PCGSec, tr.MeanIterations, tr.MaxIterations, tr.FallbackRows, tr.FloorSec,
			tr.SolveSec/tr.FloorSec, tr.GapMax, tr.RelErrBefore, tr.RelErrAfter)
	}
	fmt.Printf("total solve %.1fs (prepare+SolveRows), GEMM floor FP32 %.1fs (ratio %.2f), TF32 floor %.1fs; generation %.1fs, gap checks %.1fs\n",
		rep.TotalSec, rep.FloorSec, rep.TotalSec/rep.FloorSec, rep.FloorTF32Sec, rep.GenSec, rep.GapSec)
	fmt.Printf("SGEMM TFLOP/s: %v\n", rep.SgemmTFLOPS)
	if err := dump.finish(rep); err != nil {
		return err
	}
	if out != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		tmp := out + ".tmp"
		if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
			return err
		}
		return os.Rename(tmp, out)
	}
	return nil
}

// genHessian returns XᵀX ([in, in] float64) of synthetic activations X
// [tokens, in]: (rank-64 shared factors + N(0, 0.25) noise) times per-channel
// scales exp(1.5·N(0,1)) (LLM-like outlier channels). The product runs on
// the GPU in 256-token FP32 blocks summed in float64.
func genHessian(be kernels.Backend, seed uint64, in, tokens int) []float64 {
	const rank = 64
	rng := rand.New(rand.NewPCG(seed, 7))
	scale := make([]float64, in)
	for j := range scale {
		scale[j] = math.Exp(1.5 * rng.NormFloat64())
	}
	load := make([]float32, rank*in)
	for i := range load {
		load[i] = float32(rng.NormFloat64() / math.Sqrt(rank))
	}
	f := make([]float32, tokens*rank)
	for i := range f {
		f[i] = float32(rng.NormFloat64())
	}
	x := make([]float32, tokens*in)
	be.Sgemm(false, false, tokens, in, rank, 1, f, rank, load, in, 0, x, in)
	parallelRows(tokens, func(t0, t1 int, r *rand.Rand) {
		for t := t0; t < t1; t++ {
			row := x[t*in : t*in+in]
			for j := range row {
				row[j] = float32((float64(row[j]) + 0.5*r.NormFloat64()) * scale[j])
			}
		}
	}, seed)
	h := make([]float64, in*in)
	be.AccumulateGram(h, x, tokens, in)
	return h
}

// genWeights returns [rows, in] N(0, 0.02²) weights with 1% ten times larger.
func genWeights(seed uint64, rows, in int) []float32 {
	w := make([]float32, rows*in)
	parallelRows(rows, func(r0, r1 int, r *rand.Rand) {
		for i := r0 * in; i < r1*in; i++ {
			v := 0.02 * r.NormFloat64()
			if r.IntN(100) == 0 {
				v *= 10
			}
			w[i] = float32(v)
		}
	}, seed)
	return w
}

// timeSgemm returns the seconds of one FP32 (or TF32) SGEMM [m, k] × [k, n]:
// device-resident cuBLAS on CUDA; on the CPU the backend's Sgemm on
// host slices (reps timed after one warm-up), for the --backend cpu tests.
func timeSgemm(be kernels.Backend, cb *cuda.Backend, m, n, k, reps int, tf32 bool) (float64, error) {
	if cb != nil {
		return cb.TimeSgemm(m, n, k, reps, tf32)
	}
	a := make([]float32, m*k)
	b := make([]float32, k*n)
	c := make([]float32, m*n)
	for i := range a {
		a[i] = float32(i%7) - 3
	}
	for i := range b {
		b[i] = float32(i%5) - 2
	}
	be.Sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
	t := time.Now()
	for range reps {
		be.Sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
	}
	return time.Since(t).Seconds() / float64(reps), nil
}

// parallelRows splits [0, n) over GOMAXPROCS goroutines, each with its own
// generator seeded from seed and its chunk.
func parallelRows(n int, f func(r0, r1 int, r *rand.Rand), seed uint64) {
	workers := runtime.GOMAXPROCS(0)
	chunk := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for c := 0; c*chunk < n; c++ {
		wg.Go(func() {
			f(c*chunk, min(n, (c+1)*chunk), rand.New(rand.NewPCG(seed, uint64(c)+100)))
		})
	}
	wg.Wait()
}

// selectMask runs the Wanda selector on row chunks in parallel.
func selectMask(sel mask.Selector, pat mask.Pattern, layer string, w []float32, rows, in int, norms []float64) (*mask.Mask, error) {
	m := mask.NewMask(rows, in)
	workers := runtime.GOMAXPROCS(0)
	chunk := (rows + workers - 1) / workers
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for c := 0; c*chunk < rows; c++ {
		wg.Go(func() {
			r0, r1 := c*chunk, min(rows, (c+1)*chunk)
			sub := &mask.Mask{Rows: r1 - r0, Cols: in, Pruned: m.Pruned[r0*in : r1*in]}
			errs[c] = mask.SelectLayer(sel, layer, r0, w[r0*in:r1*in], r1-r0, in, norms, pat, sub)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}

// gapCheck solves k random rows exactly in float64 (damped H_SS factored by
// cuSOLVER, triangular solves on the host) and returns the largest relative
// gap of the damped objective (ŵ − w)ᵀH_d(ŵ − w) of the solved rows to it.
func gapCheck(be kernels.Backend, h []float64, in int, damping float64, w0, got []float32, pruned []bool, rows, k int, rng *rand.Rand) (float64, error) {
	var mean float64
	for j := range in {
		mean += h[j*in+j]
	}
	shift := damping * mean / float64(in)
	// h from AccumulateGram is exactly symmetric, so (h + hᵀ)/2 = h; rows
	// are read contiguously.
	hd := func(i, j int) float64 {
		v := h[i*in+j]
		if i == j {
			v += shift
		}
		return v
	}
	obj := func(d []float64) float64 {
		part := make([]float64, runtime.GOMAXPROCS(0))
		var wg sync.WaitGroup
		for c := range part {
			wg.Go(func() {
				var s float64
				for i := c; i < in; i += len(part) {
					if d[i] == 0 {
						continue
					}
					row := h[i*in : i*in+in]
					var t float64
					for j, dj := range d {
						t += row[j] * dj
					}
					s += d[i] * (t + shift*d[i])
				}
				part[c] = s
			})
		}
		wg.Wait()
		var s float64
		for _, v := range part {
			s += v
		}
		return s
	}
	var worst float64
	picks := rng.Perm(rows)[:min(k, rows)]
	sort.Ints(picks)
	for _, r := range picks {
		wr := w0[r*in : r*in+in]
		pr := pruned[r*in : r*in+in]
		var kept, drop []int
		for j, p := range pr {
			if p {
				drop = append(drop, j)
			} else {
				kept = append(kept, j)
			}
		}
		n := len(kept)
		a := make([]float64, n*n)
		rhs := make([]float64, n)
		for ri, i := range kept {
			for ci, j := range kept {
				a[ri*n+ci] = hd(i, j)
			}
			var b float64
			for _, j := range drop {
				b += hd(i, j) * float64(wr[j])
			}
			rhs[ri] = b
		}
		if err := be.Cholesky(a, n); err != nil {
			return 0, err
		}
		for i := range n { // L y = rhs
			v := rhs[i]
			for c := range i {
				v -= a[i*n+c] * rhs[c]
			}
			rhs[i] = v / a[i*n+i]
		}
		for i := n - 1; i >= 0; i-- { // Lᵀ x = y
			v := rhs[i]
			for c := i + 1; c < n; c++ {
				v -= a[c*n+i] * rhs[c]
			}
			rhs[i] = v / a[i*n+i]
		}
		dDir := make([]float64, in)
		dGot := make([]float64, in)
		for _, j := range drop {
			dDir[j] = -float64(wr[j])
		}
		for ri, j := range kept {
			dDir[j] = rhs[ri]
		}
		for j := range in {
			dGot[j] = float64(got[r*in+j]) - float64(wr[j])
		}
		fDir, fGot := obj(dDir), obj(dGot)
		gap := math.Abs(fGot - fDir)
		if fDir > 0 {
			gap /= fDir
		}
		worst = max(worst, gap)
	}
	return worst, nil
}
