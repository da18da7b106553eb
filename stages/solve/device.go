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
	// PCG32 runs the algorithm of SolveRows (float32 products with h, the
	// damped Hessian [in, in]; float64 vectors and scalars; Jacobi
	// preconditioner invD [in]) for every row i of w [rows, in] whose
	// status[i] is 0, with right-hand side (h (w ⊙ 1_P))_S, pruned
	// [rows, in], stopping at ‖r_S‖ ≤ tol·‖b_S‖ or after maxIter
	// iterations. It writes δ = ŵ_S − w_S into x [rows, in] (0 on P), the
	// iterations into iters [rows] and status 1 (converged), 2 (maxIter
	// reached) or 3 (pᵀHp ≤ 0: broke down) for those rows.
	PCG32(key uint64, in int, h []float32, invD []float64, rows int, w []float32, pruned []bool, tol float64, maxIter int,
		status []uint8, x []float64, iters []int32) error
	// RowObjectives sets, in float64, out[6i : 6i+6] = (vᵀh v, vᵀv) for
	// v = w0_i, then v = −w0_i ⊙ 1_P (the pruned part), then v = w1_i − w0_i,
	// for the rows of w0 (original) and w1 (re-fitted) [rows, in] float32,
	// pruned [rows, in] and h [in, in] float64 (damped; the caller removes
	// the damping through vᵀv).
	RowObjectives(key uint64, in int, h []float64, rows int, w0, w1 []float32, pruned []bool, out []float64) error
	// Release drops what the device keeps under key.
	Release(key uint64)
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

// pcgDevice fills s.x, s.iters, s.broke and s.status (stConverged or
// stFallback) for the rows whose status is stActive.
func (p *Problem) pcgDevice(dev DeviceSolver, s *pcg, w []float32, pruned []bool, rows int) error {
	in := p.in
	s.x = make([]float64, rows*in)
	s.iters = make([]int, rows)
	s.broke = make([]bool, rows)
	st := make([]uint8, rows)
	for i, v := range s.status {
		if v != stActive {
			st[i] = 0xff // not to be solved
		}
	}
	it := make([]int32, rows)
	if err := dev.PCG32(p.id, in, p.hd32, p.invD, rows, w, pruned, p.opts.Tol, p.opts.MaxIter, st, s.x, it); err != nil {
		return fmt.Errorf("solve: device PCG: %w", err)
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
	return nil
}

// statsDevice fills st.Denom, st.ObjBefore and st.ObjAfter through
// RowObjectives: each is Σ_rows (vᵀH_d v − shift·‖v‖²), i.e. the quadratic
// form with the undamped H, summed in row order as on the host path.
func (p *Problem) statsDevice(dev DeviceSolver, st *Stats, w0, w1 []float32, pruned []bool, rows int) error {
	out := make([]float64, 6*rows)
	if err := dev.RowObjectives(p.id, p.in, p.hd, rows, w0, w1, pruned, out); err != nil {
		return fmt.Errorf("solve: device objectives: %w", err)
	}
	for i := range rows {
		o := out[6*i : 6*i+6]
		st.Denom += o[0] - p.shift*o[1]
		st.ObjBefore += o[2] - p.shift*o[3]
		st.ObjAfter += o[4] - p.shift*o[5]
	}
	return nil
}

// Devices lists the accepted values of Options.Device.
func Devices() []string { return []string{"cpu", "cuda"} }

var sharedCUDA = sync.OnceValues(func() (*cuda.Backend, error) { return cuda.New(cuda.Options{}) })

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
