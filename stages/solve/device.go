package solve

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/kernels/cuda"
)

// DeviceSolver is an optional interface of a kernels.Backend that runs the
// whole float32 batched PCG of SolveRows on its device, with the Hessian and
// the row batch resident there for all iterations (kernels/cuda.Backend
// implements it). SolveRows uses it when Options.Float64 is false; the
// direct fallback then runs through the backend's Cholesky and the
// statistics through QuadForms. Without it (or with Float64) every GEMM goes
// through be.Sgemm/be.Dgemm with host slices.
//
// Keys identify a prepared Problem (unique in the process, never 0): a
// device may keep the Hessian uploaded under a key between calls and drop it
// at any time; Release says it will not be used again.
type DeviceSolver interface {
	kernels.Backend
	// PCG32 runs the algorithm of SolveRows (float32 products with h32,
	// the damped Hessian [in, in]; float64 vectors and scalars; Jacobi
	// preconditioner invD [in]) for every row i of w [rows, in] whose
	// status[i] is 0, with right-hand side (h (w ⊙ 1_P))_S, pruned
	// [rows, in], stopping at ‖r_S‖ ≤ tol·‖b_S‖ or after maxIter
	// iterations. It sets status 1 (converged), 2 (maxIter reached) or 3
	// (pᵀHp ≤ 0: broke down) and iters for those rows, and overwrites every
	// row of w with float32(w + δ) on the kept set and 0 on the pruned set
	// (δ = 0 for rows not solved), except rows ending in status 2 or 3 when
	// keepFailed is set, which keep their input. obj [6·rows] receives
	// RowObjectives' values for the original and the written weights, with
	// h64 (h32 in float64).
	PCG32(key uint64, in int, h32 []float32, h64 []float64, invD []float64, rows int, w []float32, pruned []bool, tol float64, maxIter int,
		keepFailed bool, status []uint8, iters []int32, obj []float64) error
	// RowObjectives sets, in float64, out[6i : 6i+6] = (vᵀh v, vᵀv) for
	// v = w0_i, then v = −w0_i ⊙ 1_P (the pruned part), then v = w1_i − w0_i,
	// for the rows of w0 (original) and w1 (re-fitted) [rows, in] float32,
	// pruned [rows, in] and h [in, in] float64 (damped; the caller removes
	// the damping through vᵀv).
	RowObjectives(key uint64, in int, h []float64, rows int, w0, w1 []float32, pruned []bool, out []float64) error
	// Release drops what the device keeps under key.
	Release(key uint64)
}

// DeviceGather is an optional interface of a DeviceSolver backend
// (kernels/cuda.Backend implements it, active with its Options.DeviceGather)
// for the batched fallback on the device path: the backend forms each H_SS
// itself from the Hessian it keeps under key, so that no n×n block crosses
// from the host. SolveRows gives it the problem's key and damped Hessian
// (the h64 of PCG32), the kept indices of batch rows ([batch, n] int32,
// ascending per row) and their right-hand sides x = (H_d w_P)_S
// ([batch, n] float64, overwritten with H_SS⁻¹ x). Errors as
// kernels.BatchedCholesky (a *kernels.CholeskyBatchError for the rows
// whose H_SS is not positive definite); one wrapping
// kernels.ErrNotImplemented, with x unchanged, makes SolveRows build the
// blocks on the host (kernels.BatchedCholesky) for the rest of the call.
type DeviceGather interface {
	CholeskySolveGathered(key uint64, in int, h []float64, n, batch int, kept []int32, x []float64) error
}

// Device row status codes of DeviceSolver.PCG32.
const (
	devConverged = 1
	devMaxIter   = 2
	devBroke     = 3
)

var problemIDs atomic.Uint64

// Release lets a DeviceSolver backend free the device copy of the
// problem's Hessian; other backends ignore it. The Problem stays usable (a
// later SolveRows uploads it again).
func (p *Problem) Release(be kernels.Backend) {
	if d, ok := be.(DeviceSolver); ok {
		d.Release(p.id)
	}
}

// pcgDevice runs PCG32 for the rows whose status is stActive, writing the
// re-fitted rows into w (rows for the fallback keep their input when
// Options.Fallback is set), and fills s.iters, s.broke and s.status
// (stConverged or stFallback). It returns the per-row objectives.
func (p *Problem) pcgDevice(dev DeviceSolver, s *pcg, w []float32, pruned []bool, rows int) ([]float64, error) {
	in := p.in
	s.iters = make([]int, rows)
	s.broke = make([]bool, rows)
	st := make([]uint8, rows)
	for i, v := range s.status {
		if v != stActive {
			st[i] = 0xff // not to be solved
		}
	}
	it := make([]int32, rows)
	obj := make([]float64, 6*rows)
	if err := dev.PCG32(p.id, in, p.hd32, p.hd, p.invD, rows, w, pruned, p.opts.Tol, p.opts.MaxIter, p.opts.Fallback, st, it, obj); err != nil {
		return nil, fmt.Errorf("solve: device PCG: %w", err)
	}
	for i, v := range s.status {
		if v != stActive {
			continue
		}
		s.iters[i] = int(it[i])
		switch st[i] {
		case devConverged:
			s.status[i] = stConverged
		case devMaxIter:
			s.status[i] = stFallback
		case devBroke:
			s.status[i] = stFallback
			s.broke[i] = true
		default:
			panic(fmt.Sprintf("solve: device PCG left row %d with status %d", i, st[i]))
		}
	}
	return obj, nil
}

// statsDevice fills st.Denom, st.ObjBefore and st.ObjAfter from the
// per-row objectives obj of PCG32, after replacing those of the fallback
// rows (whose original weights are orig, [len(fallback), in]) through
// RowObjectives: each is Σ_rows (vᵀH_d v − shift·‖v‖²), i.e. the quadratic
// form with the undamped H, summed in row order as on the host path.
func (p *Problem) statsDevice(dev DeviceSolver, st *Stats, obj []float64, fallback []int, orig, w []float32, pruned []bool, rows int) error {
	in := p.in
	if len(fallback) > 0 {
		nf := len(fallback)
		w1 := make([]float32, 0, nf*in)
		pr := make([]bool, 0, nf*in)
		for _, i := range fallback {
			w1 = append(w1, w[i*in:i*in+in]...)
			pr = append(pr, pruned[i*in:i*in+in]...)
		}
		fo := make([]float64, 6*nf)
		if err := dev.RowObjectives(p.id, in, p.hd, nf, orig, w1, pr, fo); err != nil {
			return fmt.Errorf("solve: device objectives: %w", err)
		}
		for k, i := range fallback {
			copy(obj[6*i:6*i+6], fo[6*k:6*k+6])
		}
	}
	for i := range rows {
		o := obj[6*i : 6*i+6]
		st.Denom += o[0] - p.shift*o[1]
		st.ObjBefore += o[2] - p.shift*o[3]
		st.ObjAfter += o[4] - p.shift*o[5]
	}
	return nil
}

// Devices lists the accepted values of Options.Device.
func Devices() []string { return []string{"cpu", "cuda"} }

// sharedCUDAOptions are the options of the shared CUDA backend
// (Options.Device "cuda", DeviceBackend). DeviceGather and PinnedStaging
// cut the host path of the fallback and of the Gram products
// (bench/cuda/README.md); set them false to return to the pageable,
// host-built paths. CholeskyLoopAbove 1024 factors fallback blocks larger
// than 1024 one at a time: on an H200 with |S| = 2048 (cudabench
// --fallback-bench, 2026-11-30) the loop took 2.48 ms/row against 3.83 for
// cuSOLVER's batched routine (gathered on the device), with the same
// weights; smaller blocks were not measured and stay batched.
var sharedCUDAOptions = cuda.Options{DeviceGather: true, PinnedStaging: true, CholeskyLoopAbove: 1024}

var sharedCUDA = sync.OnceValues(func() (*cuda.Backend, error) { return cuda.New(sharedCUDAOptions) })

// openDevice returns the backend Options.Device names (nil for the CPU).
func openDevice(name string) (kernels.Backend, error) {
	switch name {
	case "", "cpu":
		return nil, nil
	case "cuda":
		be, err := sharedCUDA()
		if err != nil {
			return nil, fmt.Errorf("solve: device cuda: %w", err)
		}
		return be, nil
	}
	return nil, fmt.Errorf("%w: unknown device %q (known: %v)", ErrInvalidOptions, name, Devices())
}

// DeviceBackend returns the backend that Options.Device name selects, for
// callers outside the solve that should share it (the calibration's Gram
// products, stages/prune.GramBackend): nil for "" and "cpu"; for "cuda" the
// process's shared kernels/cuda backend that Prepare and SolveRows use,
// opened on first use. Errors: one wrapping cuda.ErrUnavailable when no GPU
// is usable, ErrInvalidOptions for an unknown name.
func DeviceBackend(name string) (kernels.Backend, error) { return openDevice(name) }
