package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"time"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/kernels/cuda"
	"github.com/optima-llm/optima/stages/mask"
	"github.com/optima-llm/optima/stages/solve"
)

// gramResult is one AccumulateGram timing of --fallback-bench.
type gramResult struct {
	Tokens   int     `json:"tokens"`
	In       int     `json:"in"`
	Sec      float64 `json:"sec"`       // one AccumulateGram call: X and h uploaded, h downloaded
	FloorSec float64 `json:"floor_sec"` // device-resident FP32 SGEMM [in, tokens]·[tokens, in]
	Ratio    float64 `json:"ratio"`
	HostMiB  float64 `json:"host_transfer_mib"` // X up + h up + h down
	// The same calls on a backend with Options.PinnedStaging (CUDA only):
	// seconds, Sec / PinnedSec, and whether h came out bit-identical.
	PinnedSec       float64 `json:"pinned_sec,omitempty"`
	PinnedSpeedup   float64 `json:"pinned_speedup,omitempty"`
	PinnedIdentical bool    `json:"pinned_identical,omitempty"`
	// SetGram (kernels.GramSetter: h set, not uploaded) on the pinned
	// backend (the pageable one without pinned staging): seconds, the
	// AccumulateGram seconds of that backend over it, and whether h is bit
	// for bit AccumulateGram's on an all-zero h. Absent when the backend
	// has no SetGram.
	SetSec       float64 `json:"set_sec,omitempty"`
	SetSpeedup   float64 `json:"set_speedup,omitempty"`
	SetIdentical bool    `json:"set_identical,omitempty"`
}

// fallbackVariant is one way --fallback-bench solved the fallback rows.
type fallbackVariant struct {
	Name        string  `json:"name"`
	Sec         float64 `json:"sec"`          // SolveRows
	BaseSec     float64 `json:"base_sec"`     // SolveRows with Fallback off on this variant's backend
	FallbackSec float64 `json:"fallback_sec"` // Sec − BaseSec
	Speedup     float64 `json:"speedup"`      // one_by_one's FallbackSec / FallbackSec
	MaxRelDiff  float64 `json:"max_rel_diff"` // largest |w − w_one_by_one| / max|w_one_by_one| of a row
}

// fallbackResult is the report of --fallback-bench.
type fallbackResult struct {
	Device   string            `json:"device"`
	Rows     int               `json:"rows"`
	In       int               `json:"in"`
	Kept     int               `json:"kept"` // |S| of every row (50% per-row Wanda)
	MaxIter  int               `json:"max_iter"`
	Fallback int               `json:"fallback_rows"`
	BaseSec  float64           `json:"base_sec"` // SolveRows with Fallback off: PCG + statistics
	Variants []fallbackVariant `json:"variants"`
	Gram     []gramResult      `json:"gram"`
	Split    *fallbackSplit    `json:"split,omitempty"` // the batched fallback's time per row, by part
}

// noBatch hides kernels.BatchedCholesky of a backend (keeping
// solve.DeviceSolver where the backend is one), so SolveRows takes the
// one-by-one fallback.
func noBatch(be kernels.Backend) kernels.Backend {
	if d, ok := be.(solve.DeviceSolver); ok {
		return struct{ solve.DeviceSolver }{d}
	}
	return struct{ kernels.Backend }{be}
}

// runFallback is --fallback-bench: rows rows of the q_proj shape (in =
// hidden, 50% per-row Wanda mask, so every row has |S| = hidden/2), solved
// with MaxIter 2 so that (nearly) all of them fall back, once with Fallback
// off (the PCG and statistics alone), once through the one-by-one Cholesky
// and once through the batched one; then AccumulateGram of tokens × hidden
// and tokens × intermediate against the SGEMM of the same product. On CUDA
// also: the batched fallback with Dpotrf/Dpotrs one matrix at a time
// (batched_loop), the same two with H_SS gathered on the device and pinned
// staging (device_gather, device_gather_loop: cuda.Options.DeviceGather,
// PinnedStaging), and AccumulateGram with pinned staging next to the
// pageable one.
func runFallback(be kernels.Backend, cb *cuda.Backend, name string, hidden, inter, tokens, rows int, seed uint64, out string) error {
	rep := &fallbackResult{Device: name, Rows: rows, In: hidden, MaxIter: 2}
	in := hidden
	h := genHessian(be, seed, in, tokens)
	w := genWeights(seed+1, rows, in)
	norms := make([]float64, in)
	for j := range norms {
		norms[j] = math.Sqrt(h[j*in+j])
	}
	sel, err := mask.New("wanda", nil)
	if err != nil {
		return err
	}
	m, err := selectMask(sel, mask.Pattern{Sparsity: 0.5}, "model.layers.0.self_attn.q_proj", w, rows, in, norms)
	if err != nil {
		return err
	}
	for j := range in {
		if !m.Pruned[j] {
			rep.Kept++
		}
	}
	opts := solve.DefaultOptions()
	opts.MaxIter = rep.MaxIter
	solveOnce := func(b kernels.Backend, fallback bool) ([]float32, solve.Stats, float64, error) {
		o := opts
		o.Fallback = fallback
		p, err := solve.Prepare(h, in, o)
		if err != nil {
			return nil, solve.Stats{}, 0, err
		}
		defer p.Release(b)
		wc := append([]float32(nil), w...)
		t := time.Now()
		st, err := p.SolveRows(b, wc, m.Pruned, rows)
		return wc, st, time.Since(t).Seconds(), err
	}
	if _, _, _, err := solveOnce(be, false); err != nil { // warm-up: NVRTC modules, buffers
		return err
	}
	if _, _, rep.BaseSec, err = solveOnce(be, false); err != nil {
		return err
	}
	type variant struct {
		name string
		be   kernels.Backend
		base float64 // SolveRows without fallback on be
	}
	variants := []variant{{"one_by_one", noBatch(be), rep.BaseSec}, {"batched", be, rep.BaseSec}}
	gathers := map[string]*cuda.Backend{}
	var pinned *cuda.Backend
	if cb != nil {
		// The same batched call with Dpotrf/Dpotrs one matrix at a time on
		// the device (cuSOLVER's batched routines aim at small matrices);
		// then both with H_SS gathered on the device from the resident
		// Hessian and pinned staging of the large copies.
		for _, o := range []struct {
			name string
			opts cuda.Options
		}{
			{"batched_loop", cuda.Options{CholeskyLoopAbove: 64}},
			{"device_gather", cuda.Options{DeviceGather: true, PinnedStaging: true}},
			{"device_gather_loop", cuda.Options{CholeskyLoopAbove: 64, DeviceGather: true, PinnedStaging: true}},
		} {
			cl, err := cuda.New(o.opts)
			if err != nil {
				return err
			}
			defer cl.Close()
			if _, _, _, err := solveOnce(cl, false); err != nil {
				return err
			}
			v := variant{o.name, cl, rep.BaseSec}
			if o.opts.PinnedStaging {
				// Its own base: the staged Hessian uploads of the PCG are
				// not the fallback's.
				if _, _, v.base, err = solveOnce(cl, false); err != nil {
					return err
				}
				gathers[o.name] = cl
				if pinned == nil {
					pinned = cl
				}
			}
			variants = append(variants, v)
		}
	}
	var wOne []float32
	fmt.Printf("%d rows of %d inputs (|S| = %d, MaxIter %d); SolveRows without fallback %.3fs\n", rows, in, rep.Kept, rep.MaxIter, rep.BaseSec)
	for _, v := range variants {
		wv, st, sec, err := solveOnce(v.be, true)
		if err != nil {
			return fmt.Errorf("%s fallback: %w", v.name, err)
		}
		r := fallbackVariant{Name: v.name, Sec: sec, BaseSec: v.base, FallbackSec: sec - v.base}
		if wOne == nil {
			wOne, rep.Fallback = wv, st.FallbackRows
		} else if st.FallbackRows != rep.Fallback {
			return fmt.Errorf("fallback rows: one by one %d, %s %d", rep.Fallback, v.name, st.FallbackRows)
		}
		r.Speedup = rep.speedup(r.FallbackSec)
		for i := range rows {
			var wmax, dmax float64
			for j := i * in; j < i*in+in; j++ {
				wmax = max(wmax, math.Abs(float64(wOne[j])))
				dmax = max(dmax, math.Abs(float64(wv[j]-wOne[j])))
			}
			if wmax > 0 {
				r.MaxRelDiff = max(r.MaxRelDiff, dmax/wmax)
			}
		}
		rep.Variants = append(rep.Variants, r)
		fmt.Printf("fallback %-12s %d rows: SolveRows %.3fs, fallback alone %.3fs (%.2f ms/row), speedup %.2f, largest row difference %.2g of the row's max |w|\n",
			v.name, st.FallbackRows, sec, r.FallbackSec, 1e3*r.FallbackSec/float64(max(1, st.FallbackRows)), r.Speedup, r.MaxRelDiff)
	}

	batched := map[string]kernels.Backend{}
	for _, v := range variants[1:] {
		if gathers[v.name] == nil {
			batched[v.name] = v.be
		}
	}
	if rep.Split, err = runSplit(be, batched, gathers, h, in, w, m.Pruned, rows); err != nil {
		return err
	}
	fmt.Printf("fallback split, %d rows of |S| = %d per batched call: host build %.2f ms/row, pageable upload of H_SS %.2f ms/row,",
		rep.Split.Batch, rep.Split.N, rep.Split.BuildMs, rep.Split.UploadMs)
	for _, v := range variants[1:] {
		if c, ok := rep.Split.CallMs[v.name]; ok {
			fmt.Printf(" CholeskySolveBatched %s %.2f ms/row", v.name, c)
		}
	}
	fmt.Println(" (the device's part ≈ call − upload)")
	if len(gathers) > 0 {
		fmt.Printf("fallback split, gathered on the device: host right-hand sides and kept indices %.2f ms/row,", rep.Split.RHSMs)
		for _, name := range []string{"device_gather", "device_gather_loop"} {
			if c, ok := rep.Split.GatherCallMs[name]; ok {
				fmt.Printf(" CholeskySolveGathered %s %.2f ms/row (largest difference to the host-built blocks' solution %.2g of max |x|)", name, c, rep.Split.GatherMaxDiff[name])
			}
		}
		fmt.Println()
	}

	for _, n := range []int{hidden, inter} {
		x := make([]float32, tokens*n)
		parallelRows(tokens, func(t0, t1 int, r *rand.Rand) {
			for i := t0 * n; i < t1*n; i++ {
				x[i] = float32(r.NormFloat64())
			}
		}, seed+uint64(n))
		g := make([]float64, n*n)
		be.AccumulateGram(g, x, tokens, n) // warm-up
		const reps = 2
		t := time.Now()
		for range reps {
			be.AccumulateGram(g, x, tokens, n)
		}
		gr := gramResult{Tokens: tokens, In: n, Sec: time.Since(t).Seconds() / reps,
			HostMiB: (float64(tokens*n)*4 + 2*float64(n*n)*8) / (1 << 20)}
		if gr.FloorSec, err = timeSgemm(be, cb, n, n, tokens, 3, false); err != nil {
			return err
		}
		gr.Ratio = gr.Sec / gr.FloorSec
		pinNote := ""
		if pinned != nil {
			gp := make([]float64, n*n)
			pinned.AccumulateGram(gp, x, tokens, n) // warm-up: pinned buffers
			t := time.Now()
			for range reps {
				pinned.AccumulateGram(gp, x, tokens, n)
			}
			gr.PinnedSec = time.Since(t).Seconds() / reps
			gr.PinnedSpeedup = gr.Sec / gr.PinnedSec
			gr.PinnedIdentical = true
			for i := range g {
				if math.Float64bits(g[i]) != math.Float64bits(gp[i]) {
					gr.PinnedIdentical = false
					break
				}
			}
			pinNote = fmt.Sprintf("; pinned staging %.3fs (ratio %.2f, speedup %.2f), h bit-identical to pageable: %v",
				gr.PinnedSec, gr.PinnedSec/gr.FloorSec, gr.PinnedSpeedup, gr.PinnedIdentical)
		}
		sb, accSec := be, gr.Sec
		if pinned != nil {
			sb, accSec = pinned, gr.PinnedSec
		}
		if setter, ok := sb.(kernels.GramSetter); ok {
			ref := make([]float64, n*n)
			sb.AccumulateGram(ref, x, tokens, n)
			gs := make([]float64, n*n)
			setter.SetGram(gs, x, tokens, n) // warm-up
			t := time.Now()
			for range reps {
				setter.SetGram(gs, x, tokens, n)
			}
			gr.SetSec = time.Since(t).Seconds() / reps
			gr.SetSpeedup = accSec / gr.SetSec
			gr.SetIdentical = true
			for i := range ref {
				if math.Float64bits(ref[i]) != math.Float64bits(gs[i]) {
					gr.SetIdentical = false
					break
				}
			}
			pinNote += fmt.Sprintf("; SetGram %.3fs (ratio %.2f, speedup %.2f over AccumulateGram), h bit-identical to AccumulateGram on zeros: %v",
				gr.SetSec, gr.SetSec/gr.FloorSec, gr.SetSpeedup, gr.SetIdentical)
		}
		rep.Gram = append(rep.Gram, gr)
		fmt.Printf("AccumulateGram %d tokens × %d: %.3fs (host transfers %.0f MiB), FP32 SGEMM floor %.3fs, ratio %.2f%s\n",
			tokens, n, gr.Sec, gr.HostMiB, gr.FloorSec, gr.Ratio, pinNote)
	}
	if out == "" {
		return nil
	}
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

// speedup returns the first variant's (one by one) fallback
// seconds over sec (1 for the first variant itself).
func (r *fallbackResult) speedup(sec float64) float64 {
	if len(r.Variants) == 0 {
		return 1
	}
	return r.Variants[0].FallbackSec / sec
}
