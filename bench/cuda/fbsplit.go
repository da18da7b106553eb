package main

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/optima-llm/optima/kernels"
)

// fallbackSplit splits the time per row of the batched Cholesky fallback
// into its parts, on one chunk of Batch rows as stages/solve forms it.
type fallbackSplit struct {
	Batch int `json:"batch"` // rows per CholeskySolveBatched call: 256 MiB of H_SS blocks, as stages/solve (directBatchBytes)
	N     int `json:"n"`     // |S|
	// BuildMs is the host work per row: H_SS (lower triangle) and
	// (H w_P)_S gathered from H [in, in] float64, Batch rows on Batch
	// goroutines (stages/solve's directScratch.build loops).
	BuildMs float64 `json:"host_build_ms_per_row"`
	// UploadMs is |S|²·8 bytes through pageable host memory: half of one
	// Dgemm whose two operands are |S|² float64 each (64 × |S|²/64 and
	// |S|²/64 × 64: 2·64²·|S|²/64 FLOP, negligible on the device) and whose
	// result is 64×64.
	UploadMs float64 `json:"upload_ms_per_row"`
	// CallMs is one CholeskySolveBatched of the built chunk per row
	// (upload of the blocks, factor and solve on the device, download of x),
	// per backend variant ("batched", "batched_loop").
	CallMs map[string]float64 `json:"call_ms_per_row"`
	// The gathered path (cuda.Options.DeviceGather): RHSMs is its host
	// work per row, (H w_P)_S and the kept indices as int32 (the blocks
	// are not built), timed as BuildMs; GatherCallMs one
	// CholeskySolveGathered of the chunk per row (kept indices and x up,
	// gather, factor and solve, x down; the Hessian already resident), per
	// variant; GatherMaxDiff the largest |x − x_batched| over max |x_batched|
	// against the "batched" variant's solution of the host-built blocks
	// (0 expected: the same lower triangles and cuSOLVER calls).
	RHSMs         float64            `json:"host_rhs_ms_per_row,omitempty"`
	GatherCallMs  map[string]float64 `json:"gather_call_ms_per_row,omitempty"`
	GatherMaxDiff map[string]float64 `json:"gather_max_rel_diff,omitempty"`
}

// gatherer is the gathered batched Cholesky of kernels/cuda.Backend.
type gatherer interface {
	CholeskySolveGathered(key uint64, in int, h []float64, n, batch int, kept []int32, x []float64) error
	Release(key uint64)
}

// runSplit measures fallbackSplit on the first rows of w [rows, in] with
// pruned [rows, in] and the Hessian h [in, in] (damped by 1% of its mean
// diagonal, as solve's default), with the batched backends of variants
// (those implementing kernels.BatchedCholesky), the gathered ones of
// gathers, and be for the upload. Each
// time is the median of 3 runs after a warm-up (restoring the blocks, the
// batched call's workspace, before each call, untimed).
func runSplit[G gatherer](be kernels.Backend, variants map[string]kernels.Backend, gathers map[string]G, h []float64, in int, w []float32, pruned []bool, rows int) (*fallbackSplit, error) {
	const batchBytes = 256 << 20
	kept := make([][]int, 0, rows)
	n := -1
	for i := range rows {
		var k []int
		for j, p := range pruned[i*in : i*in+in] {
			if !p {
				k = append(k, j)
			}
		}
		if n >= 0 && len(k) != n {
			break // one |S| per chunk, as stages/solve groups them
		}
		n = len(k)
		kept = append(kept, k)
	}
	if n <= 0 {
		return nil, fmt.Errorf("fallback split: the first row keeps no input")
	}
	nb := min(len(kept), max(1, batchBytes/(8*n*n)))
	sp := &fallbackSplit{Batch: nb, N: n, CallMs: map[string]float64{}}
	var mean float64
	for j := range in {
		mean += h[j*in+j]
	}
	damp := 0.01 * mean / float64(in)
	a := make([]float64, nb*n*n)
	x := make([]float64, nb*n)
	build := func() {
		var wg sync.WaitGroup
		for m := range nb {
			wg.Go(func() {
				i := m
				drop := make([]int, 0, in-n)
				for j, p := range pruned[i*in : i*in+in] {
					if p {
						drop = append(drop, j)
					}
				}
				am, xm := a[m*n*n:(m+1)*n*n], x[m*n:(m+1)*n]
				for r, ii := range kept[m] {
					row := h[ii*in : ii*in+in]
					for c, j := range kept[m][:r+1] {
						am[r*n+c] = row[j]
					}
					am[r*n+r] += damp
					var b float64
					for _, j := range drop {
						b += row[j] * float64(w[i*in+j])
					}
					xm[r] = b
				}
			})
		}
		wg.Wait()
	}
	median := func(prep func(), f func() error) (float64, error) {
		var secs []float64
		for r := range 4 {
			prep()
			t := time.Now()
			if err := f(); err != nil {
				return 0, err
			}
			if r > 0 {
				secs = append(secs, time.Since(t).Seconds())
			}
		}
		slices.Sort(secs)
		return secs[len(secs)/2], nil
	}
	none := func() {}
	sec, _ := median(none, func() error { build(); return nil })
	sp.BuildMs = 1e3 * sec / float64(nb)

	const e = 64
	kk := max(1, n*n/e)
	ua := make([]float64, e*kk)
	ub := make([]float64, kk*e)
	uc := make([]float64, e*e)
	sec, _ = median(none, func() error { be.Dgemm(false, false, e, e, kk, 1, ua, kk, ub, e, 0, uc, e); return nil })
	sp.UploadMs = 1e3 * sec / 2 * float64(n*n) / float64(e*kk)

	a0, x0 := slices.Clone(a), slices.Clone(x)
	for _, name := range slices.Sorted(maps.Keys(variants)) {
		bc, ok := variants[name].(kernels.BatchedCholesky)
		if !ok {
			continue
		}
		sec, err := median(func() { copy(a, a0); copy(x, x0) }, func() error { return bc.CholeskySolveBatched(a, n, nb, x) })
		if err != nil {
			return nil, fmt.Errorf("fallback split %s: %w", name, err)
		}
		sp.CallMs[name] = 1e3 * sec / float64(nb)
	}
	if len(gathers) == 0 {
		return sp, nil
	}

	// The gathered path: kept indices and right-hand sides on the host,
	// the blocks from the resident damped Hessian on the device.
	var xRef []float64
	if bc, ok := variants["batched"].(kernels.BatchedCholesky); ok {
		copy(a, a0)
		copy(x, x0)
		if err := bc.CholeskySolveBatched(a, n, nb, x); err != nil {
			return nil, fmt.Errorf("fallback split batched: %w", err)
		}
		xRef = slices.Clone(x)
	}
	hd := slices.Clone(h[:in*in])
	for j := range in {
		hd[j*in+j] += damp
	}
	keptI := make([]int32, nb*n)
	rhs := func() {
		var wg sync.WaitGroup
		for m := range nb {
			wg.Go(func() {
				i := m
				drop := make([]int, 0, in-n)
				for j, p := range pruned[i*in : i*in+in] {
					if p {
						drop = append(drop, j)
					}
				}
				xm := x[m*n : (m+1)*n]
				for r, ii := range kept[m] {
					keptI[m*n+r] = int32(ii)
					row := h[ii*in : ii*in+in]
					var b float64
					for _, j := range drop {
						b += row[j] * float64(w[i*in+j])
					}
					xm[r] = b
				}
			})
		}
		wg.Wait()
	}
	sec, _ = median(none, func() error { rhs(); return nil })
	sp.RHSMs = 1e3 * sec / float64(nb)
	sp.GatherCallMs, sp.GatherMaxDiff = map[string]float64{}, map[string]float64{}
	const key = 1 << 62 // not a solve.Problem's
	for _, name := range slices.Sorted(maps.Keys(gathers)) {
		g := gathers[name]
		sec, err := median(func() { copy(x, x0) }, func() error { return g.CholeskySolveGathered(key, in, hd, n, nb, keptI, x) })
		g.Release(key)
		if err != nil {
			return nil, fmt.Errorf("fallback split %s: %w", name, err)
		}
		sp.GatherCallMs[name] = 1e3 * sec / float64(nb)
		if xRef != nil {
			var xmax, dmax float64
			for i, v := range xRef {
				xmax = max(xmax, math.Abs(v))
				dmax = max(dmax, math.Abs(x[i]-v))
			}
			sp.GatherMaxDiff[name] = dmax / xmax
		}
	}
	return sp, nil
}
