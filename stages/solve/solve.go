// Package solve is OPTIMA's exact row re-fit: with the sparsity mask fixed, each
// output row w (length in) of a linear weight W [out, in] is replaced by
//
//	ŵ = argmin (ŵ − w)ᵀ H (ŵ − w)  s.t.  ŵ_P = 0,
//
// where H [in, in] is the layer's input Hessian (XᵀX, any positive scale), P the
// row's pruned set and S its kept set. The closed form (DESIGN.md §1) is
//
//	ŵ_S = H_SS⁻¹ (H w)_S = w_S + H_SS⁻¹ H_SP w_P,
//
// the multi-weight OBS update δ = −H⁻¹_{:,P} [(H⁻¹)_PP]⁻¹ w_P written in the
// kept coordinates. All rows share H, so the solver runs batched
// Jacobi-preconditioned conjugate gradients (PCG) on all rows at once: every
// iteration is one [active rows, in] × [in, in] GEMM through a
// kernels.Backend, masked to each row's S, with a per-row convergence test;
// converged rows are frozen and leave the GEMM. Rows that do not converge
// within Options.MaxIter are solved directly (Cholesky of H_SS in float64).
//
// GPU: a backend implementing DeviceSolver (kernels/cuda) runs the whole
// float32 PCG on its device with H and the row batch resident, computes the
// final weights and the statistics there, and solves fallback rows through
// its Cholesky; Options.Device "cuda" selects the process's shared CUDA
// backend whatever backend SolveRows is given. Results agree with the CPU
// path to the PCG tolerance, not bit for bit (bench/cuda/README.md).
//
// Damping: the solve uses H_d = H + λ·mean(diag H)·I with λ = Options.Damping
// (relative, as SparseGPT). The objectives reported in Stats always use the
// undamped H.
//
// Batch invariance: the result of a row depends only on that row (its weights,
// its mask), H and the options, not on which other rows are solved with it,
// provided the backend's GEMM computes each output row independently of the
// other rows of A (true for the gonum-based CPU backend; kernels/kerneltest is
// the place to require it). TestBatchInvariance checks it bit for bit.
package solve

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/optima-llm/optima/kernels"
)

// Damping retries: when H_SS + λ·mean(diag H)·I is not positive definite for a
// row (PCG breaks down and the Cholesky fallback fails), λ is raised to
// max(10·λ, MinRetryDamping) and the row is solved again directly, up to
// MaxDamping; beyond that SolveRows returns *NotPositiveDefiniteError.
const (
	MinRetryDamping = 1e-6
	MaxDamping      = 1.0
)

// Options configure the row solve.
type Options struct {
	// Damping is the relative damping λ ≥ 0: the solve uses
	// H + λ·mean(diag H)·I. Default 0.01 (see DefaultOptions).
	Damping float64 `json:"damping"`
	// Float64 selects float64 GEMMs (be.Dgemm) for the PCG matrix products;
	// false uses float32 GEMMs (be.Sgemm) with H rounded to float32. In both
	// modes the per-row vectors, dot products and scalars are float64.
	Float64 bool `json:"float64"`
	// MaxIter is the most PCG iterations per row (≥ 0; 0 sends every row with
	// a non-zero right-hand side to the direct solve when Fallback is set).
	MaxIter int `json:"max_iter"`
	// Tol is the per-row convergence threshold on the relative residual
	// ‖r_S‖₂ / ‖b_S‖₂ of the system H_SS δ = b_S, b_S = (H_d (w ⊙ 1_P))_S,
	// δ = ŵ_S − w_S (so the start ŵ = w masked has relative residual 1).
	Tol float64 `json:"tol"`
	// Fallback solves rows that did not converge within MaxIter directly
	// (float64 Cholesky of H_SS through be.Cholesky). Without it such rows
	// keep their last PCG iterate and are counted in Stats.NotConverged.
	Fallback bool `json:"fallback"`
	// Device says where SolveRows runs: "" or "cpu" on the kernels.Backend
	// it is given; "cuda" on the process's shared kernels/cuda backend
	// (GPU 0, opened by the first Prepare that asks for it, kept for the
	// process's life), with the device-resident PCG (DeviceSolver). Prepare
	// returns an error wrapping cuda.ErrUnavailable when no GPU is usable:
	// never a silent CPU run. Omitted from JSON when empty, so CPU
	// configurations hash as before.
	Device string `json:"device,omitempty"`
}

// DefaultOptions returns the measured defaults: λ = 0.01, float32 GEMMs,
// Tol = 1e-6, MaxIter = 300, Fallback on.
//
// Why (measurements in the package tests and BenchmarkSolveLayer):
//   - Damping 0.01 is SparseGPT's value; it keeps H_SS well conditioned when
//     the calibration set has fewer tokens than inputs, and the proof in
//     TestNeverWorseThanMasking shows the re-fit never does worse than
//     masking on the undamped objective whatever λ is. On real SmolLM2
//     block-10 Hessians (2048 WikiText-2 tokens, tools/oracle/solve_hessians.py,
//     50% Wanda, 96 rows) the undamped relative error after the re-fit was
//     down_proj 0.01222 / 0.01222 / 0.01233 / 0.01451 and q_proj 0.00350 /
//     0.00350 / 0.00353 / 0.00412 at λ = 1e-4 / 1e-3 / 1e-2 / 1e-1 (mask only:
//     0.0483 and 0.00895), with mean iterations 125 / 124 / 113 / 79 on
//     down_proj: 0.01 costs under 1% of error against smaller λ.
//   - The objective gap of a PCG iterate is rᵀH_SS⁻¹r, quadratic in the
//     residual. On the heavy-tailed test Hessians (in 64-320) the worst
//     per-row relative gap to the exact optimum was 1.1e-5 at Tol 1e-4,
//     6.7e-8 at 1e-5 and 8.7e-10 at 1e-6 (float64 and float32 alike); on
//     the SmolLM2 Hessians 2.5e-8 at 1e-5 and 1.5e-10 at 1e-6. So 1e-6 keeps
//     the required 1e-6 three orders below the limit for about 15-20% more
//     iterations than 1e-5.
//   - Float32 GEMMs floor the gap near 2e-12 (the vectors and scalars stay
//     float64, only H·p is float32) and ran 4-10× faster than float64 on the
//     gonum CPU backend (576×1536 layer: 28 ms/row against 316 ms/row).
//   - MaxIter 300 is over 2× the most iterations seen (real down_proj 126,
//     synthetic 576×1536 64); a row beyond it costs more in PCG than its
//     direct Cholesky would, so it is sent to the fallback.
func DefaultOptions() Options {
	return Options{Damping: 0.01, Float64: false, MaxIter: 200, Tol: 1e-6, Fallback: true}
}

// NotPositiveDefiniteError reports that the damped Hessian restricted to a
// row's kept set was not positive definite even at damping Damping (relative,
// the largest tried). It wraps kernels.ErrNotPositiveDefinite. Row is the row
// index within the call (−1 when the whole Hessian is at fault); the caller
// adds the layer name.
type NotPositiveDefiniteError struct {
	Row     int
	Damping float64
}

func (e *NotPositiveDefiniteError) Error() string {
	if e.Row < 0 {
		return fmt.Sprintf("solve: hessian not positive definite at relative damping %g", e.Damping)
	}
	return fmt.Sprintf("solve: row %d: H_SS not positive definite at relative damping %g", e.Row, e.Damping)
}

// Unwrap returns kernels.ErrNotPositiveDefinite.
func (e *NotPositiveDefiniteError) Unwrap() error { return kernels.ErrNotPositiveDefinite }

// NonFiniteError reports a NaN or ±Inf input value. Operand is "hessian" or
// "weight"; Row and Col locate it (for the Hessian, its row and column; for
// weights, the row within the call and the input column).
type NonFiniteError struct {
	Operand  string
	Row, Col int
	Value    float64
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("solve: non-finite %s value %v at [%d, %d]", e.Operand, e.Value, e.Row, e.Col)
}

// ErrInvalidOptions is wrapped by Prepare for out-of-range options.
var ErrInvalidOptions = errors.New("solve: invalid options")

// Problem is a prepared Hessian for one input group: the symmetrized, damped
// H_d in float64 (and float32 when Options.Float64 is false) and its Jacobi
// preconditioner. It is immutable after Prepare and safe for concurrent
// SolveRows calls on disjoint weight rows.
type Problem struct {
	id    uint64 // unique, for DeviceSolver keys
	in    int
	opts  Options
	shift float64         // absolute damping λ·mean(diag H)
	mean  float64         // mean(diag H), undamped
	hd    []float64       // [in, in] H + shift·I, symmetrized
	hd32  []float32       // [in, in] float32 copy of hd (Float32 mode only)
	dev   kernels.Backend // the backend of Options.Device "cuda", else nil
	invD  []float64       // [in] 1 / diag(hd)
}

// In returns the input dimension.
func (p *Problem) In() int { return p.in }

// Options returns the options the problem was prepared with.
func (p *Problem) Options() Options { return p.opts }

// Prepare checks and damps the Hessian h ([in, in] row-major float64, both
// triangles; any positive scale, e.g. the un-normalised XᵀX sum, because the
// damping is relative and the minimiser is scale-free). h is symmetrized as
// (h + hᵀ)/2, which leaves every quadratic form unchanged, and h itself is
// not modified or retained.
//
// Errors: *NonFiniteError for a NaN/Inf entry; *NotPositiveDefiniteError
// (Row −1) when mean(diag h) ≤ 0 (no calibration signal: the damping has no
// scale); ErrInvalidOptions for a negative or NaN Damping or Tol, or a
// negative MaxIter. Positive definiteness of each H_SS is only discovered
// by SolveRows. It panics when in < 0 or len(h) != in*in.
func Prepare(h []float64, in int, opts Options) (*Problem, error) {
	if in < 0 || len(h) != in*in {
		panic(fmt.Sprintf("solve: Prepare: len(h) = %d, want in*in with in = %d", len(h), in))
	}
	if !(opts.Damping >= 0) || math.IsInf(opts.Damping, 0) || !(opts.Tol >= 0) || opts.MaxIter < 0 {
		return nil, fmt.Errorf("%w: damping %v, tol %v, max iterations %d", ErrInvalidOptions, opts.Damping, opts.Tol, opts.MaxIter)
	}
	dev, err := openDevice(opts.Device)
	if err != nil {
		return nil, err
	}
	if i := firstNonFinite(h, in); i >= 0 {
		return nil, &NonFiniteError{Operand: "hessian", Row: i / in, Col: i % in, Value: h[i]}
	}
	mean := meanDiag(h, in)
	if in > 0 && !(mean > 0) {
		return nil, &NotPositiveDefiniteError{Row: -1, Damping: opts.Damping}
	}
	p := &Problem{id: problemIDs.Add(1), in: in, opts: opts, mean: mean, shift: opts.Damping * mean, dev: dev}
	p.hd = symmetrizedDamped(h, in, p.shift)
	p.invD = make([]float64, in)
	for j := range in {
		d := p.hd[j*in+j]
		if d > 0 {
			p.invD[j] = 1 / d
		} else {
			// Only possible with λ = 0 and a dead or negative diagonal entry:
			// scale such coordinates by the mean instead; PCG then detects any
			// indefiniteness through pᵀHp ≤ 0.
			p.invD[j] = 1 / mean
		}
	}
	if !opts.Float64 {
		p.hd32 = make([]float32, in*in)
		parallelRows(in, func(r0, r1 int) {
			for i := r0 * in; i < r1*in; i++ {
				p.hd32[i] = float32(p.hd[i])
			}
		})
	}
	return p, nil
}

func meanDiag(h []float64, in int) float64 {
	if in == 0 {
		return 0
	}
	var s float64
	for j := range in {
		s += h[j*in+j]
	}
	return s / float64(in)
}

// symmetrizedDamped returns (h + hᵀ)/2 + shift·I. It works on 64×64 tile
// pairs (i-tile ≤ j-tile) in parallel; every element is computed by the same
// expression whatever the order, so the result does not depend on it.
func symmetrizedDamped(h []float64, in int, shift float64) []float64 {
	const tile = 64
	hd := make([]float64, in*in)
	nt := (in + tile - 1) / tile
	parallelRows(nt, func(t0, t1 int) {
		for ti := t0; ti < t1; ti++ {
			for tj := ti; tj < nt; tj++ {
				for i := ti * tile; i < min(in, (ti+1)*tile); i++ {
					for j := max(i, tj*tile); j < min(in, (tj+1)*tile); j++ {
						v := h[i*in+j]
						if i != j {
							v = 0.5 * (h[i*in+j] + h[j*in+i])
						}
						hd[i*in+j] = v
						hd[j*in+i] = v
					}
				}
			}
		}
	})
	for i := range in {
		hd[i*in+i] += shift
	}
	return hd
}

// firstNonFinite returns the index of the first NaN or ±Inf of h ([in, in]),
// or −1, checking rows in parallel.
func firstNonFinite(h []float64, in int) int {
	var mu sync.Mutex
	first := -1
	parallelRows(in, func(r0, r1 int) {
		for i := r0 * in; i < r1*in; i++ {
			if v := h[i]; math.IsNaN(v) || math.IsInf(v, 0) {
				mu.Lock()
				if first < 0 || i < first {
					first = i
				}
				mu.Unlock()
				return
			}
		}
	})
	return first
}

// parallelRows calls f on contiguous ranges covering [0, n) from up to
// GOMAXPROCS goroutines (one call when n is small).
func parallelRows(n int, f func(r0, r1 int)) {
	workers := min(runtime.GOMAXPROCS(0), max(1, n/16))
	if workers <= 1 {
		f(0, n)
		return
	}
	chunk := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for r0 := 0; r0 < n; r0 += chunk {
		wg.Go(func() { f(r0, min(n, r0+chunk)) })
	}
	wg.Wait()
}
