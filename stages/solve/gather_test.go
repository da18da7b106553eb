package solve

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/kernels/cuda"
)

// gatherDevice is hostDevice with DeviceGather on the CPU: it forms each
// H_SS from h and the kept indices (both triangles, as the CUDA kernel
// does) and solves the batch with the CPU backend's CholeskySolveBatched,
// checking the arguments SolveRows passes.
type gatherDevice struct {
	*hostDevice
	t              *testing.T
	p              *Problem // the problem whose key and Hessian must come
	calls, rows    int
	fail           error // returned instead of solving
	failAfterCalls int   // fail only from this call on (0: from the first)
}

func (g *gatherDevice) CholeskySolveGathered(key uint64, in int, h []float64, n, batch int, kept []int32, x []float64) error {
	g.calls++
	if key != g.p.id || in != g.p.in || len(h) != in*in || &h[0] != &g.p.hd[0] {
		g.t.Errorf("CholeskySolveGathered(key %d, in %d, len(h) %d): want the problem's key %d, in %d and damped Hessian", key, in, len(h), g.p.id, g.p.in)
	}
	if len(kept) != batch*n || len(x) != batch*n {
		g.t.Errorf("CholeskySolveGathered: len(kept) = %d, len(x) = %d, want batch·n = %d", len(kept), len(x), batch*n)
	}
	if g.fail != nil && g.calls > g.failAfterCalls {
		return g.fail
	}
	g.rows += batch
	a := make([]float64, batch*n*n)
	for k := range batch {
		kk := kept[k*n : (k+1)*n]
		if !slices.IsSorted(kk) {
			g.t.Errorf("kept indices of matrix %d not ascending: %v", k, kk)
		}
		for r, i := range kk {
			for c, j := range kk {
				a[k*n*n+r*n+c] = h[int(i)*in+int(j)]
			}
		}
	}
	return g.hostDevice.CholeskySolveBatched(a, n, batch, x)
}

// TestFallbackDeviceGather checks the device path's batched fallback with
// DeviceGather (gatherDevice: the blocks formed from the kept indices)
// against the same device path with host-built blocks: weights and
// statistics equal bit for bit, every fallback row through
// CholeskySolveGathered (several calls with small batches), and rows whose
// H_SS is not definite retried one by one with more damping.
func TestFallbackDeviceGather(t *testing.T) {
	type tc struct {
		name    string
		maxIter int
		build   func() ([]float64, []float32, []bool, int, int)
		damped  int
	}
	cases := []tc{{"in40_mixed_sizes", 2, mixedCase, 0}, {"in3_indefinite", 0, indefiniteCase, 2}}
	for _, c := range problemCases {
		cases = append(cases, tc{c.name, 2, func() ([]float64, []float32, []bool, int, int) {
			h, w, pr := c.build()
			return h, w, pr, c.in, c.rows
		}, 0})
	}
	for _, c := range cases {
		for _, small := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/small=%v", c.name, small), func(t *testing.T) {
				if small {
					old := directBatchBytes
					directBatchBytes = 20000
					defer func() { directBatchBytes = old }()
				}
				h, w, pruned, in, rows := c.build()
				opts := DefaultOptions()
				opts.MaxIter = c.maxIter
				p, err := Prepare(h, in, opts)
				if err != nil {
					t.Fatal(err)
				}
				want := append([]float32(nil), w...)
				stWant, err := p.SolveRows(&hostDevice{Backend: cpu.New(0), keys: map[uint64]int{}}, want, pruned, rows)
				if err != nil {
					t.Fatal(err)
				}
				g := &gatherDevice{hostDevice: &hostDevice{Backend: cpu.New(0), keys: map[uint64]int{}}, t: t, p: p}
				got := append([]float32(nil), w...)
				stGot, err := p.SolveRows(g, got, pruned, rows)
				if err != nil {
					t.Fatal(err)
				}
				if stGot.FallbackRows == 0 || g.rows != stGot.FallbackRows {
					t.Fatalf("CholeskySolveGathered solved %d rows in %d calls, FallbackRows %d", g.rows, g.calls, stGot.FallbackRows)
				}
				if small && rows*in > 1000 && g.calls <= len(sizes(pruned, in, rows)) {
					t.Errorf("%d gathered calls with 20000-byte batches for %d sizes: not chunked", g.calls, len(sizes(pruned, in, rows)))
				}
				if d := cmp.Diff(want, got); d != "" {
					t.Errorf("weights (-host-built blocks +gathered):\n%s", d)
				}
				if d := cmp.Diff(stWant, stGot); d != "" {
					t.Errorf("stats (-host-built blocks +gathered):\n%s", d)
				}
				if stGot.DampedRows != c.damped {
					t.Errorf("DampedRows = %d, want %d", stGot.DampedRows, c.damped)
				}
			})
		}
	}
}

// TestFallbackDeviceGatherErrors checks the answers of DeviceGather that
// are not solutions: kernels.ErrNotImplemented (at the first call, or
// after some) moves the rest of the call to host-built blocks with the
// same result; another error is returned by SolveRows, wrapped; and the
// host path (Options.Float64: the backend does not hold the Hessian)
// never calls it.
func TestFallbackDeviceGatherErrors(t *testing.T) {
	h, w, pruned, in, rows := mixedCase()
	opts := DefaultOptions()
	opts.MaxIter = 2
	p, err := Prepare(h, in, opts)
	if err != nil {
		t.Fatal(err)
	}
	old := directBatchBytes
	directBatchBytes = 20000
	defer func() { directBatchBytes = old }()
	want := append([]float32(nil), w...)
	stWant, err := p.SolveRows(&hostDevice{Backend: cpu.New(0), keys: map[uint64]int{}}, want, pruned, rows)
	if err != nil {
		t.Fatal(err)
	}
	notImpl := fmt.Errorf("gather off: %w", kernels.ErrNotImplemented)
	for _, after := range []int{0, 2} {
		t.Run(fmt.Sprintf("not_implemented_after_%d", after), func(t *testing.T) {
			g := &gatherDevice{hostDevice: &hostDevice{Backend: cpu.New(0), keys: map[uint64]int{}}, t: t, p: p, fail: notImpl, failAfterCalls: after}
			got := append([]float32(nil), w...)
			st, err := p.SolveRows(g, got, pruned, rows)
			if err != nil {
				t.Fatal(err)
			}
			if g.calls != after+1 {
				t.Errorf("%d gathered calls, want %d (none after ErrNotImplemented)", g.calls, after+1)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("weights (-host-built +after ErrNotImplemented):\n%s", d)
			}
			if d := cmp.Diff(stWant, st); d != "" {
				t.Errorf("stats (-host-built +after ErrNotImplemented):\n%s", d)
			}
		})
	}
	t.Run("device_error", func(t *testing.T) {
		boom := errors.New("device lost")
		g := &gatherDevice{hostDevice: &hostDevice{Backend: cpu.New(0), keys: map[uint64]int{}}, t: t, p: p, fail: boom}
		if _, err := p.SolveRows(g, append([]float32(nil), w...), pruned, rows); !errors.Is(err, boom) {
			t.Fatalf("SolveRows error = %v, want one wrapping %v", err, boom)
		}
	})
	t.Run("host_path", func(t *testing.T) {
		o := opts
		o.Float64 = true
		p64, err := Prepare(h, in, o)
		if err != nil {
			t.Fatal(err)
		}
		g := &gatherDevice{hostDevice: &hostDevice{Backend: cpu.New(0), keys: map[uint64]int{}}, t: t, p: p64}
		st, err := p64.SolveRows(g, append([]float32(nil), w...), pruned, rows)
		if err != nil {
			t.Fatal(err)
		}
		if st.FallbackRows == 0 || g.calls != 0 {
			t.Errorf("Float64 path: %d fallback rows, %d gathered calls; want > 0 and 0", st.FallbackRows, g.calls)
		}
	})
}

// TestPackKept checks the packing of a row's kept inputs into int32 and
// buildRHS against build: the same right-hand side bit for bit.
func TestPackKept(t *testing.T) {
	h, w, pruned, in, rows := mixedCase()
	hd := damped(h, in, 0.01)
	var sc directScratch
	for i := range rows {
		n := sc.split(pruned[i*in : i*in+in])
		kept := make([]int32, n)
		sc.packKept(kept)
		var wantKept []int32
		for j, pr := range pruned[i*in : i*in+in] {
			if !pr {
				wantKept = append(wantKept, int32(j))
			}
		}
		if d := cmp.Diff(wantKept, kept); d != "" {
			t.Errorf("row %d kept (-want +got):\n%s", i, d)
		}
		a := make([]float64, n*n)
		want := make([]float64, n)
		sc.build(hd, in, 0, w[i*in:i*in+in], a, want)
		got := make([]float64, n)
		sc.buildRHS(hd, in, w[i*in:i*in+in], got)
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("row %d right-hand side (-build +buildRHS):\n%s", i, d)
		}
	}
	defer func() {
		if recover() == nil {
			t.Errorf("packKept into a short slice did not panic")
		}
	}()
	sc.packKept(make([]int32, 1))
}

// countingGather is a kernels/cuda backend counting its
// CholeskySolveGathered calls and its kernels.ErrNotImplemented answers.
type countingGather struct {
	*cuda.Backend
	calls, notImpl, rows int
}

func (c *countingGather) CholeskySolveGathered(key uint64, in int, h []float64, n, batch int, kept []int32, x []float64) error {
	c.calls++
	err := c.Backend.CholeskySolveGathered(key, in, h, n, batch, kept, x)
	if errors.Is(err, kernels.ErrNotImplemented) {
		c.notImpl++
	} else {
		c.rows += batch
	}
	return err
}

// TestFallbackDeviceGatherCUDA is TestFallbackDeviceGather on the GPU:
// SolveRows on a backend with DeviceGather and PinnedStaging (H_SS formed
// on the device, Hessian uploads staged) against one without (host-built
// blocks, pageable copies), both through the device PCG with MaxIter 2:
// every fallback row through CholeskySolveGathered with no
// ErrNotImplemented, the same fallback rows and damping, weights equal to
// one float32 rounding (the float64 solutions are expected bit-identical:
// the number of differing weights is logged) and ObjAfter within 1e-9
// relative. Skipped without a GPU (a failure with OPTIMA_REQUIRE_GPU=1).
func TestFallbackDeviceGatherCUDA(t *testing.T) {
	off := newCUDA(t, cuda.Options{})
	cb := newCUDA(t, cuda.Options{DeviceGather: true, PinnedStaging: true})
	on := &countingGather{Backend: cb}
	cases := cudaCases()
	for _, c := range cases {
		for _, small := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/small=%v", c.name, small), func(t *testing.T) {
				if small {
					old := directBatchBytes
					directBatchBytes = 1 << 20
					defer func() { directBatchBytes = old }()
				}
				h, w, pruned := c.build()
				opts := DefaultOptions()
				opts.MaxIter = 2
				p, err := Prepare(h, c.in, opts)
				if err != nil {
					t.Fatal(err)
				}
				defer p.Release(off)
				defer p.Release(cb)
				want := append([]float32(nil), w...)
				stWant, err := p.SolveRows(off, want, pruned, c.rows)
				if err != nil {
					t.Fatal(err)
				}
				calls0, rows0 := on.calls, on.rows
				got := append([]float32(nil), w...)
				stGot, err := p.SolveRows(on, got, pruned, c.rows)
				if err != nil {
					t.Fatal(err)
				}
				if on.notImpl != 0 {
					t.Fatalf("CholeskySolveGathered answered ErrNotImplemented %d times", on.notImpl)
				}
				if stGot.FallbackRows == 0 || on.rows-rows0 != stGot.FallbackRows {
					t.Fatalf("gathered %d rows in %d calls; stats %+v", on.rows-rows0, on.calls-calls0, stGot)
				}
				if stGot.FallbackRows != stWant.FallbackRows || stGot.DampedRows != stWant.DampedRows || stGot.Iterations != stWant.Iterations {
					t.Fatalf("gathered %+v, host-built %+v", stGot, stWant)
				}
				differ := 0
				for i := range want {
					if got[i] == want[i] {
						continue
					}
					differ++
					if d := math.Abs(float64(got[i] - want[i])); d > 1.2e-7*math.Abs(float64(want[i])) {
						t.Fatalf("entry %d: gathered %g, host-built %g", i, got[i], want[i])
					}
				}
				if r := math.Abs(stGot.ObjAfter-stWant.ObjAfter) / stWant.ObjAfter; !(r <= 1e-9) {
					t.Errorf("ObjAfter gathered %.15g, host-built %.15g", stGot.ObjAfter, stWant.ObjAfter)
				}
				t.Logf("%d fallback rows in %d gathered calls, %d of %d weights differ", stGot.FallbackRows, on.calls-calls0, differ, len(want))
			})
		}
	}
	if err := cb.BatchedErr(); err != nil {
		t.Fatalf("the batched Cholesky fell back to the CPU: %v", err)
	}
	if c, _ := cb.Staged(); c == 0 {
		t.Errorf("PinnedStaging: no Hessian upload went through the pinned buffers")
	}
}
