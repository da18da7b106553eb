package solve

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/optima-llm/optima/kernels"
)

// Stats describes one SolveRows call. Objectives use the undamped H given to
// Prepare (any positive scale; ratios are scale-free): the relative
// reconstruction error of the layer is ObjBefore/Denom (mask only) and
// ObjAfter/Denom (after the re-fit).
type Stats struct {
	Rows int
	// Iterations is the largest PCG iteration count over rows; MeanIterations
	// the mean over rows with a non-empty kept set (rows that need no update,
	// w_P = 0, count 0; rows sent to the fallback count the iterations they ran).
	Iterations     int
	MeanIterations float64
	// FallbackRows were solved directly (not converged within MaxIter, or PCG
	// broke down on pᵀHp ≤ 0). NotConverged rows kept their last PCG iterate
	// because Options.Fallback was off.
	FallbackRows, NotConverged int
	// EmptyRows had every input pruned; they are set to all zeros (the only
	// feasible point).
	EmptyRows int
	// Damping is the largest relative damping used by any row (Options.Damping
	// unless a row needed more); DampedRows counts the rows that needed more.
	Damping    float64
	DampedRows int
	// ObjBefore = Σ_rows (w_masked − w)ᵀH(w_masked − w), ObjAfter =
	// Σ (ŵ − w)ᵀH(ŵ − w), Denom = Σ wᵀHw, in float64 with the undamped H.
	ObjBefore, ObjAfter, Denom float64
}

// Row status during SolveRows.
const (
	stActive uint8 = iota
	stConverged
	stFallback
	stEmpty
)

// SolveRows re-fits rows of w in place (on be, or on the backend that
// Options.Device opened; a DeviceSolver backend runs the whole PCG on its
// device): w is [rows, in] row-major float32,
// pruned is [rows, in] row-major with true = pruned. Afterwards pruned entries
// are exactly 0 and kept entries hold the minimiser of the damped objective
// (to Options.Tol, or exactly through the fallback). A row whose kept set is
// empty becomes all zeros (counted in Stats.EmptyRows); a row with w_P = 0 is
// left unchanged.
//
// Algorithm: batched Jacobi-PCG on δ = ŵ_S − w_S for H_SS δ = (H_d w_P)_S,
// started at δ = 0; each iteration gathers the search directions of the
// still-active rows into one [active, in] matrix and multiplies it by H_d with
// be.Dgemm (Options.Float64) or be.Sgemm; everything else is per-row float64
// arithmetic in a fixed order, so a row's result does not depend on the other
// rows in the call (given a backend whose GEMM rows are independent). A row
// stops when ‖r_S‖ ≤ Tol·‖b_S‖. Rows that fail (MaxIter reached, or pᵀHp ≤ 0)
// are solved by float64 Cholesky of H_SS when Options.Fallback is set: in
// batches of equal |S| through kernels.BatchedCholesky when be implements it
// (kernels/cpu and kernels/cuda do; same result as one by one; on the device
// path a DeviceGather backend forms the H_SS blocks itself), else one row
// at a time through be.Cholesky, raising the damping ×10 (from at least
// MinRetryDamping) up to MaxDamping, one row at a time, for rows whose H_SS
// is not positive definite. The
// statistics cost three extra float64 GEMMs of [rows, in] × [in, in].
//
// Errors (w may then be partly updated): *NonFiniteError for NaN/Inf in w
// (checked before anything is written); *NotPositiveDefiniteError when a row
// cannot be factored even at MaxDamping, or when a PCG breakdown occurs with
// Fallback off. It panics when len(w) or len(pruned) != rows*in. Safe for
// concurrent use on disjoint slices.
func (p *Problem) SolveRows(be kernels.Backend, w []float32, pruned []bool, rows int) (Stats, error) {
	in := p.in
	if rows < 0 || len(w) != rows*in || len(pruned) != rows*in {
		panic(fmt.Sprintf("solve: SolveRows: len(w) = %d, len(pruned) = %d, want rows*in = %d*%d", len(w), len(pruned), rows, in))
	}
	st := Stats{Rows: rows, Damping: p.opts.Damping}
	if err := checkFinite(w, in); err != nil {
		return st, err
	}
	if rows == 0 || in == 0 {
		return st, nil
	}
	if p.dev != nil {
		be = p.dev // Options.Device
	}
	dev, onDevice := be.(DeviceSolver)
	onDevice = onDevice && !p.opts.Float64
	var w0 []float64 // original weights (host path), for the statistics
	if !onDevice {
		w0 = make([]float64, rows*in)
		for i, v := range w {
			w0[i] = float64(v)
		}
	}
	var s *pcg
	if onDevice {
		s = &pcg{status: make([]uint8, rows)}
	} else {
		s = newPCG(p, rows)
	}
	status := s.status
	// Right-hand sides b = (H_d (w ⊙ 1_P))_S in the working precision: the
	// first GEMM. Rows with an empty kept set, or nothing pruned, need none.
	var first []int
	for i := range rows {
		mask := pruned[i*in : i*in+in]
		nk, np := 0, 0
		for _, pr := range mask {
			if pr {
				np++
			} else {
				nk++
			}
		}
		switch {
		case nk == 0:
			status[i] = stEmpty
			st.EmptyRows++
		case np == 0:
			status[i] = stConverged
		default:
			first = append(first, i)
		}
	}
	var obj []float64 // device path: per-row objectives (RowObjectives layout)
	if onDevice {
		// The device writes the re-fitted rows into w (leaving rows for
		// the fallback unchanged) and returns their objectives.
		var err error
		if obj, err = p.pcgDevice(dev, s, w, pruned, rows); err != nil {
			return st, err
		}
	} else {
		p.pcgHost(be, s, w0, pruned, first)
	}

	// Write the PCG results; collect the rows for the direct solve.
	var fallback []int
	for i := range rows {
		wi := w[i*in : i*in+in]
		mask := pruned[i*in : i*in+in]
		switch status[i] {
		case stEmpty:
			clear(wi)
			continue
		case stFallback:
			if p.opts.Fallback {
				fallback = append(fallback, i)
				continue
			}
			if s.broke[i] {
				return st, &NotPositiveDefiniteError{Row: i, Damping: p.opts.Damping}
			}
			st.NotConverged++
		}
		if onDevice {
			continue // written by the device
		}
		xi := s.x[i*in : i*in+in]
		for j, pr := range mask {
			if pr {
				wi[j] = 0
			} else {
				wi[j] = float32(w0[i*in+j] + xi[j])
			}
		}
	}
	var iterSum int
	nonEmpty := 0
	for i := range rows {
		if status[i] == stEmpty {
			continue
		}
		nonEmpty++
		iterSum += s.iters[i]
		st.Iterations = max(st.Iterations, s.iters[i])
	}
	if nonEmpty > 0 {
		st.MeanIterations = float64(iterSum) / float64(nonEmpty)
	}
	st.FallbackRows = len(fallback)
	var fbOrig []float32 // device path: the fallback rows' original weights
	if onDevice {
		for _, i := range fallback {
			fbOrig = append(fbOrig, w[i*in:i*in+in]...)
		}
	}
	if len(fallback) > 0 {
		used, err := p.solveDirect(be, w, pruned, fallback, onDevice)
		for _, d := range used {
			if d > p.opts.Damping {
				st.DampedRows++
				st.Damping = max(st.Damping, d)
			}
		}
		if err != nil {
			return st, err
		}
	}

	// Statistics with the undamped H: three float64 GEMMs.
	if onDevice {
		err := p.statsDevice(dev, &st, obj, fallback, fbOrig, w, pruned, rows)
		return st, err
	}
	buf := make([]float64, rows*in)
	out := make([]float64, rows*in)
	quad := func() float64 {
		be.Dgemm(false, false, rows, in, in, 1, buf, in, p.hd, in, 0, out, in)
		var sum float64
		for i := range rows {
			var q, n2 float64
			for j := i * in; j < i*in+in; j++ {
				q += buf[j] * out[j]
				n2 += buf[j] * buf[j]
			}
			sum += q - p.shift*n2
		}
		return sum
	}
	copy(buf, w0)
	st.Denom = quad()
	for i, v := range w0 {
		buf[i] = 0
		if pruned[i] {
			buf[i] = -v
		}
	}
	st.ObjBefore = quad()
	for i, v := range w0 {
		buf[i] = float64(w[i]) - v
	}
	st.ObjAfter = quad()
	return st, nil
}

// pcgHost runs the batched PCG on the host side of be: the GEMMs through
// be.Sgemm/be.Dgemm, the per-row arithmetic in Go.
func (p *Problem) pcgHost(be kernels.Backend, s *pcg, w0 []float64, pruned []bool, first []int) {
	in := p.in
	status := s.status
	for k, i := range first {
		row := s.gatherRow(k)
		wi := w0[i*in : i*in+in]
		mask := pruned[i*in : i*in+in]
		for j, pr := range mask {
			v := 0.0
			if pr {
				v = wi[j]
			}
			s.setGather(row, j, v)
		}
	}
	s.gemm(be, len(first))
	for k, i := range first {
		s.initRow(i, k, pruned[i*in:i*in+in])
	}

	// PCG iterations on the active rows.
	active := first[:0:0]
	for _, i := range first {
		if status[i] == stActive {
			active = append(active, i)
		}
	}
	for it := 1; it <= p.opts.MaxIter && len(active) > 0; it++ {
		for k, i := range active {
			row := s.gatherRow(k)
			pi := s.pd[i*in : i*in+in]
			for j, v := range pi {
				s.setGather(row, j, v)
			}
		}
		s.gemm(be, len(active))
		next := active[:0]
		for k, i := range active {
			s.step(i, k, it, pruned[i*in:i*in+in])
			if status[i] == stActive {
				next = append(next, i)
			}
		}
		active = next
	}
	for _, i := range active {
		status[i] = stFallback
	}
}

// solveDirect solves the listed rows of w exactly, raising the damping on
// failure. When be implements kernels.BatchedCholesky the rows are first
// solved in batches of equal |S| at Options.Damping (solveBatched); the rows
// whose H_SS is not positive definite there, or all rows for other backends,
// go one by one through be.Cholesky on GOMAXPROCS goroutines. With gather
// (the device path, where be holds the Hessian) and be a DeviceGather, the
// batches form their H_SS on the device. It returns the relative damping
// used per listed row (0 where not reached) and the first error by row
// order.
func (p *Problem) solveDirect(be kernels.Backend, w []float32, pruned []bool, rows []int, gather bool) ([]float64, error) {
	in := p.in
	used := make([]float64, len(rows))
	errs := make([]error, len(rows))
	todo := make([]int, len(rows)) // indices into rows for the one-by-one path
	for k := range todo {
		todo[k] = k
	}
	if bc, ok := be.(kernels.BatchedCholesky); ok {
		var err error
		var dg DeviceGather
		if gather {
			dg, _ = be.(DeviceGather)
		}
		if todo, err = p.solveBatched(bc, dg, w, pruned, rows, used); err != nil {
			return used, err
		}
	}
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	workers := min(runtime.GOMAXPROCS(0), len(todo))
	for range workers {
		wg.Go(func() {
			var sc directScratch
			for {
				mu.Lock()
				if next >= len(todo) {
					mu.Unlock()
					return
				}
				k := todo[next]
				next++
				mu.Unlock()
				i := rows[k]
				wi := w[i*in : i*in+in]
				lam := p.opts.Damping
				for {
					err := sc.solve(be.Cholesky, p.hd, in, (lam-p.opts.Damping)*p.mean, wi, pruned[i*in:i*in+in], wi)
					used[k] = lam
					if err == nil {
						break
					}
					if !errors.Is(err, kernels.ErrNotPositiveDefinite) {
						errs[k] = fmt.Errorf("solve: row %d: %w", i, err)
						break
					}
					if lam >= MaxDamping {
						errs[k] = &NotPositiveDefiniteError{Row: i, Damping: lam}
						break
					}
					lam = min(max(10*lam, MinRetryDamping), MaxDamping)
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return used, err
		}
	}
	return used, nil
}

// pcg is the state of one batched PCG run. Vectors are [rows, in] float64
// indexed by the caller's row; the GEMM operands are compacted to the rows
// taking part in an iteration.
type pcg struct {
	prob      *Problem
	x, r, pd  []float64 // δ, residual, search direction; zero on P
	rz, bnorm []float64
	iters     []int
	status    []uint8
	broke     []bool
	a64, q64  []float64 // GEMM operands (Float64 mode)
	a32, q32  []float32 // GEMM operands (float32 mode)
	zbuf      []float64
	opts      Options
	in        int
}

func newPCG(p *Problem, rows int) *pcg {
	in := p.in
	s := &pcg{
		prob: p, in: in, opts: p.opts,
		x:      make([]float64, rows*in),
		r:      make([]float64, rows*in),
		pd:     make([]float64, rows*in),
		rz:     make([]float64, rows),
		bnorm:  make([]float64, rows),
		iters:  make([]int, rows),
		status: make([]uint8, rows),
		broke:  make([]bool, rows),
		zbuf:   make([]float64, in),
	}
	if p.opts.Float64 {
		s.a64 = make([]float64, rows*in)
		s.q64 = make([]float64, rows*in)
	} else {
		s.a32 = make([]float32, rows*in)
		s.q32 = make([]float32, rows*in)
	}
	return s
}

// gatherRow returns the index of row k of the GEMM operand.
func (s *pcg) gatherRow(k int) int { return k * s.in }

func (s *pcg) setGather(off, j int, v float64) {
	if s.opts.Float64 {
		s.a64[off+j] = v
	} else {
		s.a32[off+j] = float32(v)
	}
}

// gemm computes Q = A·H_d for the first m rows of the operand.
func (s *pcg) gemm(be kernels.Backend, m int) {
	if m == 0 {
		return
	}
	in := s.in
	if s.opts.Float64 {
		be.Dgemm(false, false, m, in, in, 1, s.a64, in, s.prob.hd, in, 0, s.q64, in)
	} else {
		be.Sgemm(false, false, m, in, in, 1, s.a32, in, s.prob.hd32, in, 0, s.q32, in)
	}
}

func (s *pcg) q(off, j int) float64 {
	if s.opts.Float64 {
		return s.q64[off+j]
	}
	return float64(s.q32[off+j])
}

// initRow sets r = b = (GEMM row k) on S, z = M⁻¹r, p = z, and decides
// whether the row is already solved (b = 0).
func (s *pcg) initRow(i, k int, mask []bool) {
	in := s.in
	off := k * in
	r := s.r[i*in : i*in+in]
	pv := s.pd[i*in : i*in+in]
	var bb, rz float64
	for j, pr := range mask {
		if pr {
			continue
		}
		b := s.q(off, j)
		r[j] = b
		bb += b * b
		z := b * s.prob.invD[j]
		pv[j] = z
		rz += b * z
	}
	s.bnorm[i] = math.Sqrt(bb)
	s.rz[i] = rz
	if bb == 0 {
		s.status[i] = stConverged
	}
}

// step applies one PCG iteration to row i whose product q = H_d p is GEMM
// row k.
func (s *pcg) step(i, k, it int, mask []bool) {
	in := s.in
	off := k * in
	x := s.x[i*in : i*in+in]
	r := s.r[i*in : i*in+in]
	pv := s.pd[i*in : i*in+in]
	var pq float64
	for j, pr := range mask {
		if !pr {
			pq += pv[j] * s.q(off, j)
		}
	}
	s.iters[i] = it
	if !(pq > 0) || math.IsInf(pq, 0) {
		// H_SS is not (numerically) positive definite along p.
		s.status[i] = stFallback
		s.broke[i] = true
		return
	}
	alpha := s.rz[i] / pq
	var rr float64
	for j, pr := range mask {
		if pr {
			continue
		}
		x[j] += alpha * pv[j]
		r[j] -= alpha * s.q(off, j)
		rr += r[j] * r[j]
	}
	if math.Sqrt(rr) <= s.opts.Tol*s.bnorm[i] {
		s.status[i] = stConverged
		return
	}
	var rz float64
	z := s.zbuf
	for j, pr := range mask {
		if !pr {
			z[j] = r[j] * s.prob.invD[j]
			rz += r[j] * z[j]
		}
	}
	beta := rz / s.rz[i]
	s.rz[i] = rz
	for j, pr := range mask {
		if !pr {
			pv[j] = z[j] + beta*pv[j]
		}
	}
}

// Objective returns num = Σ_rows (w1 − w0)ᵀ H (w1 − w0) and den = Σ_rows
// w0ᵀ H w0 in float64, for w0, w1 [rows, in] row-major float32 and h
// [in, in] row-major float64 (used as given: no damping, no symmetrization
// needed since only quadratic forms are taken). num/den is the relative
// reconstruction error tr(ΔW H ΔWᵀ)/tr(W H Wᵀ) of DESIGN.md §1. Pure Go,
// O(rows·in²). It panics on wrong lengths.
func Objective(h []float64, in int, w0, w1 []float32, rows int) (num, den float64) {
	if in < 0 || rows < 0 || len(h) != in*in || len(w0) != rows*in || len(w1) != rows*in {
		panic(fmt.Sprintf("solve: Objective: lengths h=%d w0=%d w1=%d, want in*in, rows*in, rows*in with in = %d, rows = %d",
			len(h), len(w0), len(w1), in, rows))
	}
	nums := make([]float64, rows)
	dens := make([]float64, rows)
	var wg sync.WaitGroup
	workers := max(1, min(runtime.GOMAXPROCS(0), rows))
	for t := range workers {
		wg.Go(func() {
			d := make([]float64, in)
			v := make([]float64, in)
			for i := t; i < rows; i += workers {
				for j := range in {
					v[j] = float64(w0[i*in+j])
					d[j] = float64(w1[i*in+j]) - v[j]
				}
				nums[i] = quadForm(h, in, d)
				dens[i] = quadForm(h, in, v)
			}
		})
	}
	wg.Wait()
	for i := range rows {
		num += nums[i]
		den += dens[i]
	}
	return num, den
}

func quadForm(h []float64, in int, v []float64) float64 {
	var s float64
	for i, vi := range v {
		if vi == 0 {
			continue
		}
		var t float64
		for j, hv := range h[i*in : i*in+in] {
			t += hv * v[j]
		}
		s += vi * t
	}
	return s
}
