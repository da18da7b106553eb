package solve

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/kernels/cuda"
)

// oneByOne hides the optional interfaces of a backend (kernels.BatchedCholesky,
// DeviceSolver), so SolveRows takes the host PCG and the one-by-one fallback
// through Cholesky.
type oneByOne struct{ kernels.Backend }

// countingBatched is the CPU backend counting its CholeskySolveBatched
// calls and matrices; fail, when set, is returned instead of solving.
type countingBatched struct {
	*cpu.Backend
	calls, matrices atomic.Int64
	fail            error
}

func (c *countingBatched) CholeskySolveBatched(a []float64, n, batch int, x []float64) error {
	c.calls.Add(1)
	c.matrices.Add(int64(batch))
	if c.fail != nil {
		return c.fail
	}
	return c.Backend.CholeskySolveBatched(a, n, batch, x)
}

// mixedCase is a problem whose rows keep between 1/6 and 4/6 of the inputs
// (several |S| groups), with fewer tokens than inputs (H singular: only the
// damping makes H_SS definite).
func mixedCase() (h []float64, w []float32, pruned []bool, in, rows int) {
	in, rows = 40, 36
	rng := rand.New(rand.NewPCG(41, 42))
	h, _ = genHessian(rng, in, 30, logNormal)
	w = genWeights(rng, rows, in)
	pruned = make([]bool, rows*in)
	for i := range rows {
		keep := (i%4 + 1) * in / 6
		for k, j := range rng.Perm(in) {
			pruned[i*in+j] = k >= keep
		}
	}
	return h, w, pruned, in, rows
}

// indefiniteCase is a 3-input Hessian with corr(0, 1) = 1.05 > 1: rows
// keeping {0, 1} need damping above 0.05, so the batched call at 0.01 fails
// for them and the one-by-one retry solves them at 0.1.
func indefiniteCase() (h []float64, w []float32, pruned []bool, in, rows int) {
	h = []float64{1, 1.05, 0.5, 1.05, 1, 0, 0.5, 0, 1}
	pruned = []bool{
		false, false, true,
		false, true, false,
		true, false, false,
		false, false, true,
	}
	w = []float32{1, 1, 1, 0.5, -1, 2, 1, 1, 1, -3, 2, 1}
	return h, w, pruned, 3, 4
}

// TestFallbackBatchedMatchesOneByOne forces the rows through the fallback
// (MaxIter 2, or 0 for the 3-input case) and checks that SolveRows with the
// batched Cholesky of kernels/cpu gives exactly the weights and statistics of
// the one-by-one path (same factorization and the same substitution order,
// so bit for bit), in both GEMM precisions, with the default batch size and
// with batches of at most 20000 bytes (several calls per |S| group); that
// every fallback row went through CholeskySolveBatched; and that rows whose
// H_SS is not definite at the base damping are retried with more damping.
func TestFallbackBatchedMatchesOneByOne(t *testing.T) {
	type tc struct {
		name    string
		maxIter int
		build   func() ([]float64, []float32, []bool, int, int)
		damped  int // Stats.DampedRows wanted
	}
	var cases []tc
	for _, c := range problemCases {
		cases = append(cases, tc{c.name, 2, func() ([]float64, []float32, []bool, int, int) {
			h, w, pr := c.build()
			return h, w, pr, c.in, c.rows
		}, 0})
	}
	cases = append(cases, tc{"in40_mixed_sizes", 2, mixedCase, 0}, tc{"in3_indefinite", 0, indefiniteCase, 2})
	for _, c := range cases {
		for _, m := range modes() {
			for _, small := range []bool{false, true} {
				name := fmt.Sprintf("%s/%s/default_batch", c.name, m.name)
				if small {
					name = fmt.Sprintf("%s/%s/small_batch", c.name, m.name)
				}
				t.Run(name, func(t *testing.T) {
					if small {
						old := directBatchBytes
						directBatchBytes = 20000
						defer func() { directBatchBytes = old }()
					}
					h, w, pruned, in, rows := c.build()
					opts := DefaultOptions()
					opts.Float64 = m.float64
					opts.MaxIter = c.maxIter
					p, err := Prepare(h, in, opts)
					if err != nil {
						t.Fatal(err)
					}
					want := append([]float32(nil), w...)
					stWant, err := p.SolveRows(oneByOne{cpu.New(0)}, want, pruned, rows)
					if err != nil {
						t.Fatal(err)
					}
					be := &countingBatched{Backend: cpu.New(0)}
					got := append([]float32(nil), w...)
					stGot, err := p.SolveRows(be, got, pruned, rows)
					if err != nil {
						t.Fatal(err)
					}
					if stGot.FallbackRows == 0 || stGot.FallbackRows < (rows-stGot.EmptyRows)/2 {
						t.Fatalf("only %d of %d rows took the fallback", stGot.FallbackRows, rows)
					}
					if got := be.matrices.Load(); got != int64(stGot.FallbackRows) {
						t.Errorf("CholeskySolveBatched got %d matrices, want the %d fallback rows", got, stGot.FallbackRows)
					}
					if small && be.calls.Load() <= int64(len(sizes(pruned, in, rows))) && rows*in > 1000 {
						t.Errorf("%d batched calls with 20000-byte batches for %d sizes: not chunked", be.calls.Load(), len(sizes(pruned, in, rows)))
					}
					if d := cmp.Diff(want, got); d != "" {
						t.Errorf("weights (-one by one +batched):\n%s", d)
					}
					if d := cmp.Diff(stWant, stGot); d != "" {
						t.Errorf("stats (-one by one +batched):\n%s", d)
					}
					if stGot.DampedRows != c.damped {
						t.Errorf("DampedRows = %d, want %d", stGot.DampedRows, c.damped)
					}
				})
			}
		}
	}
}

// sizes returns the set of |S| over the rows.
func sizes(pruned []bool, in, rows int) map[int]bool {
	s := map[int]bool{}
	for i := range rows {
		n := 0
		for _, pr := range pruned[i*in : i*in+in] {
			if !pr {
				n++
			}
		}
		s[n] = true
	}
	return s
}

// TestFallbackBatchedDevice checks the device path (DeviceSolver through
// hostDevice, whose embedded CPU backend provides the batched Cholesky)
// against the host path with the one-by-one fallback: equal bit for bit.
func TestFallbackBatchedDevice(t *testing.T) {
	h, w, pruned, in, rows := mixedCase()
	opts := DefaultOptions()
	opts.MaxIter = 2
	p, err := Prepare(h, in, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]float32(nil), w...)
	stWant, err := p.SolveRows(oneByOne{cpu.New(0)}, want, pruned, rows)
	if err != nil {
		t.Fatal(err)
	}
	dev := &hostDevice{Backend: cpu.New(0), keys: map[uint64]int{}}
	got := append([]float32(nil), w...)
	stGot, err := p.SolveRows(dev, got, pruned, rows)
	if err != nil {
		t.Fatal(err)
	}
	if stGot.FallbackRows == 0 || dev.pcgCalls != 1 {
		t.Fatalf("FallbackRows = %d, PCG32 calls %d; want > 0, 1", stGot.FallbackRows, dev.pcgCalls)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("weights (-host one by one +device batched):\n%s", d)
	}
	if d := cmp.Diff(stWant, stGot); d != "" {
		t.Errorf("stats (-host one by one +device batched):\n%s", d)
	}
}

// TestFallbackBatchedError checks that an error of CholeskySolveBatched
// other than *kernels.CholeskyBatchError is returned by SolveRows, wrapped.
func TestFallbackBatchedError(t *testing.T) {
	h, w, pruned, in, rows := mixedCase()
	opts := DefaultOptions()
	opts.MaxIter = 2
	p, err := Prepare(h, in, opts)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("device lost")
	be := &countingBatched{Backend: cpu.New(0), fail: boom}
	if _, err := p.SolveRows(be, w, pruned, rows); !errors.Is(err, boom) {
		t.Fatalf("SolveRows error = %v, want one wrapping %v", err, boom)
	}
}

// noBatchDevice is a DeviceSolver without kernels.BatchedCholesky: the
// device PCG with the one-by-one fallback through Cholesky.
type noBatchDevice struct{ DeviceSolver }

// TestFallbackBatchedCUDA is TestFallbackBatchedMatchesOneByOne on the GPU
// (cuSOLVER DpotrfBatched/DpotrsBatched against Dpotrf one row at a time,
// both after the same device PCG with MaxIter 2): weights equal to float32
// rounding (the float64 solutions of the two cuSOLVER paths differ in the
// last bits), the same fallback rows and damping, and the undamped objective
// within 1e-7 relative. Skipped without a GPU (a failure with
// OPTIMA_REQUIRE_GPU=1).
func TestFallbackBatchedCUDA(t *testing.T) {
	be := newCUDA(t, cuda.Options{})
	cases := cudaCases()
	for _, c := range cases {
		for _, small := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/small=%v", c.name, small), func(t *testing.T) {
				if small {
					old := directBatchBytes
					directBatchBytes = 1 << 20 // in1024: 4 blocks per call
					defer func() { directBatchBytes = old }()
				}
				h, w, pruned := c.build()
				opts := DefaultOptions()
				opts.MaxIter = 2
				p, err := Prepare(h, c.in, opts)
				if err != nil {
					t.Fatal(err)
				}
				defer p.Release(be)
				want := append([]float32(nil), w...)
				stWant, err := p.SolveRows(noBatchDevice{be}, want, pruned, c.rows)
				if err != nil {
					t.Fatal(err)
				}
				got := append([]float32(nil), w...)
				stGot, err := p.SolveRows(be, got, pruned, c.rows)
				if err != nil {
					t.Fatal(err)
				}
				if stGot.FallbackRows == 0 || stGot.FallbackRows != stWant.FallbackRows || stGot.DampedRows != stWant.DampedRows {
					t.Fatalf("batched %+v, one by one %+v", stGot, stWant)
				}
				var worst float64
				for i := range want {
					d := math.Abs(float64(got[i] - want[i]))
					if d > 1e-6*math.Abs(float64(want[i]))+1e-9 {
						t.Fatalf("entry %d: batched %g, one by one %g", i, got[i], want[i])
					}
					worst = max(worst, d)
				}
				if r := math.Abs(stGot.ObjAfter-stWant.ObjAfter) / stWant.ObjAfter; !(r <= 1e-7) {
					t.Errorf("ObjAfter batched %.15g, one by one %.15g", stGot.ObjAfter, stWant.ObjAfter)
				}
				t.Logf("%d fallback rows, largest weight difference %.3g", stGot.FallbackRows, worst)
			})
		}
	}
	if err := be.BatchedErr(); err != nil {
		t.Fatalf("the batched Cholesky fell back to the CPU, so cuSOLVER's batched routines were not tested: %v", err)
	}
}
