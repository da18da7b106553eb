package solve

import (
	"errors"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/kernels/cuda"
)

// hostDevice is a DeviceSolver that runs the host PCG with the CPU backend,
// so the device plumbing of SolveRows (status codes, fallback, statistics)
// is tested without a GPU: its results must equal the host path bit for bit.
type hostDevice struct {
	*cpu.Backend
	keys              map[uint64]int
	pcgCalls, quads   int
	released          []uint64
	failPCG, failQuad error
}

func (d *hostDevice) PCG32(key uint64, in int, h32 []float32, h64 []float64, invD []float64, rows int, w []float32, pruned []bool, tol float64, maxIter int,
	keepFailed bool, status []uint8, iters []int32, obj []float64) error {
	d.pcgCalls++
	d.keys[key]++
	if d.failPCG != nil {
		return d.failPCG
	}
	p := &Problem{in: in, opts: Options{Tol: tol, MaxIter: maxIter}, hd32: h32, invD: invD}
	s := newPCG(p, rows)
	w0 := make([]float64, len(w))
	orig := append([]float32(nil), w...)
	var first []int
	for i := range rows {
		if status[i] == 0 {
			first = append(first, i)
		} else {
			s.status[i] = stEmpty
		}
	}
	for i, v := range w {
		w0[i] = float64(v)
	}
	p.pcgHost(d.Backend, s, w0, pruned, first)
	for _, i := range first {
		switch {
		case s.status[i] == stConverged:
			status[i] = devConverged
		case s.broke[i]:
			status[i] = devBroke
		default:
			status[i] = devMaxIter
		}
		iters[i] = int32(s.iters[i])
	}
	for i := range rows {
		if keepFailed && (status[i] == devMaxIter || status[i] == devBroke) {
			continue
		}
		for j := i * in; j < i*in+in; j++ {
			if pruned[j] {
				w[j] = 0
			} else {
				w[j] = float32(w0[j] + s.x[j])
			}
		}
	}
	rowObjectives(d.Backend, in, h64, rows, orig, w, pruned, obj)
	return nil
}

func (d *hostDevice) RowObjectives(key uint64, in int, h []float64, rows int, w0, w1 []float32, pruned []bool, out []float64) error {
	d.quads++
	d.keys[key]++
	if d.failQuad != nil {
		return d.failQuad
	}
	rowObjectives(d.Backend, in, h, rows, w0, w1, pruned, out)
	return nil
}

func rowObjectives(be *cpu.Backend, in int, h []float64, rows int, w0, w1 []float32, pruned []bool, out []float64) {
	v := make([]float64, rows*in)
	q := make([]float64, rows*in)
	for mode := range 3 {
		for i := range v {
			a := float64(w0[i])
			switch mode {
			case 0:
				v[i] = a
			case 1:
				v[i] = 0
				if pruned[i] {
					v[i] = -a
				}
			case 2:
				v[i] = float64(w1[i]) - a
			}
		}
		be.Dgemm(false, false, rows, in, in, 1, v, in, h, in, 0, q, in)
		for i := range rows {
			var s, n2 float64
			for j := i * in; j < i*in+in; j++ {
				s += v[j] * q[j]
				n2 += v[j] * v[j]
			}
			out[6*i+2*mode] = s
			out[6*i+2*mode+1] = n2
		}
	}
}

func (d *hostDevice) Release(key uint64) { d.released = append(d.released, key) }

// TestDeviceSolverPlumbing checks that SolveRows through a DeviceSolver gives
// the host path's weights and statistics exactly (float32 mode, with and
// without forced fallback rows), uses one key per Problem, and that Float64
// mode does not take the device path.
func TestDeviceSolverPlumbing(t *testing.T) {
	for _, c := range problemCases {
		for _, maxIter := range []int{200, 3} {
			t.Run(fmt.Sprintf("%s/maxiter=%d", c.name, maxIter), func(t *testing.T) {
				h, w, pruned := c.build()
				opts := DefaultOptions()
				opts.MaxIter = maxIter
				p, err := Prepare(h, c.in, opts)
				if err != nil {
					t.Fatal(err)
				}
				want := append([]float32(nil), w...)
				stWant, err := p.SolveRows(cpu.New(2), want, pruned, c.rows)
				if err != nil {
					t.Fatal(err)
				}
				dev := &hostDevice{Backend: cpu.New(2), keys: map[uint64]int{}}
				got := append([]float32(nil), w...)
				stGot, err := p.SolveRows(dev, got, pruned, c.rows)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("weights differ (-host +device):\n%s", diff)
				}
				if diff := cmp.Diff(stWant, stGot); diff != "" {
					t.Errorf("stats differ (-host +device):\n%s", diff)
				}
				wantQ := 0
				if stGot.FallbackRows > 0 {
					wantQ = 1
				}
				if dev.pcgCalls != 1 || dev.quads != wantQ || len(dev.keys) != 1 || dev.keys[p.id] != 1+wantQ {
					t.Errorf("device calls: PCG32 %d, RowObjectives %d, keys %v; want 1, %d, {%d: %d}", dev.pcgCalls, dev.quads, dev.keys, wantQ, p.id, 1+wantQ)
				}
				if maxIter == 3 && stGot.FallbackRows == 0 {
					t.Errorf("MaxIter 3 sent no row to the fallback: %+v", stGot)
				}
				p.Release(dev)
				if len(dev.released) != 1 || dev.released[0] != p.id {
					t.Errorf("Release sent keys %v, want [%d]", dev.released, p.id)
				}
			})
		}
	}
	t.Run("float64 stays on host", func(t *testing.T) {
		c := problemCases[0]
		h, w, pruned := c.build()
		opts := DefaultOptions()
		opts.Float64 = true
		p, err := Prepare(h, c.in, opts)
		if err != nil {
			t.Fatal(err)
		}
		dev := &hostDevice{Backend: cpu.New(1), keys: map[uint64]int{}}
		if _, err := p.SolveRows(dev, w, pruned, c.rows); err != nil {
			t.Fatal(err)
		}
		if dev.pcgCalls+dev.quads != 0 {
			t.Errorf("Float64 mode called the device %d times", dev.pcgCalls+dev.quads)
		}
	})
	t.Run("errors", func(t *testing.T) {
		c := problemCases[0]
		h, w, pruned := c.build()
		p, err := Prepare(h, c.in, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		boom := errors.New("device lost")
		popts := DefaultOptions()
		popts.MaxIter = 2 // fallback rows, so RowObjectives is called
		pf, err := Prepare(h, c.in, popts)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			p   *Problem
			dev *hostDevice
		}{
			{p, &hostDevice{Backend: cpu.New(1), keys: map[uint64]int{}, failPCG: boom}},
			{pf, &hostDevice{Backend: cpu.New(1), keys: map[uint64]int{}, failQuad: boom}},
		} {
			p, dev := tc.p, tc.dev
			if _, err := p.SolveRows(dev, append([]float32(nil), w...), pruned, c.rows); !errors.Is(err, boom) {
				t.Errorf("SolveRows error = %v, want one wrapping %v", err, boom)
			}
		}
	})
}

// requireGPU reports whether the CUDA tests must run: OPTIMA_REQUIRE_GPU=1
// turns a missing GPU into a failure (set it on GPU machines).
func requireGPU() bool { return os.Getenv("OPTIMA_REQUIRE_GPU") == "1" }

// newCUDA opens a CUDA backend with opts, closed when the test ends; the
// test is skipped without a GPU (a failure with OPTIMA_REQUIRE_GPU=1).
func newCUDA(t *testing.T, opts cuda.Options) *cuda.Backend {
	t.Helper()
	if err := cuda.Available(); err != nil {
		if requireGPU() {
			t.Fatalf("OPTIMA_REQUIRE_GPU=1 but %v", err)
		}
		t.Skipf("no GPU: %v", err)
	}
	be, err := cuda.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return be
}

// cudaCases are problemCases and a wider (in = 1024) case for the GPU tests.
func cudaCases() []problemCase {
	return append(append([]problemCase(nil), problemCases...),
		problemCase{name: "in1024_pareto_unstructured", in: 1024, rows: 300, tokens: 700, dist: pareto, mask: unstructured50, seed: 9, emptyRow: true, fullRow: true})
}

// TestCUDAMatchesCPU is the GPU acceptance check of issue 6: on the same
// inputs the device-resident solve leaves zeros exactly on the mask, weights
// within 1e-5 of the CPU solve (‖W_gpu − W_cpu‖_F / ‖W_cpu‖_F; the largest
// element difference is logged: both are PCG iterates at Tol 1e-6, so single
// elements of ill-conditioned rows can differ by more), the undamped
// objective within 1e-6 relative, and every row's damped objective within
// 1e-6 relative of the float64 direct solve. Skipped without a GPU.
func TestCUDAMatchesCPU(t *testing.T) {
	be := newCUDA(t, cuda.Options{})
	cases := cudaCases()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, w, pruned := c.build()
			opts := DefaultOptions()
			p, err := Prepare(h, c.in, opts)
			if err != nil {
				t.Fatal(err)
			}
			want := append([]float32(nil), w...)
			stWant, err := p.SolveRows(cpu.New(0), want, pruned, c.rows)
			if err != nil {
				t.Fatal(err)
			}
			got := append([]float32(nil), w...)
			stGot, err := p.SolveRows(be, got, pruned, c.rows)
			if err != nil {
				t.Fatal(err)
			}
			in := c.in
			hd := damped(h, in, opts.Damping)
			var worstW, worstGap, dW2, w2 float64
			for i := range c.rows {
				var wmax float64
				for j := range in {
					wmax = max(wmax, math.Abs(float64(want[i*in+j])))
				}
				for j := range in {
					g, e := got[i*in+j], want[i*in+j]
					if pruned[i*in+j] && g != 0 {
						t.Fatalf("row %d input %d pruned but GPU left %g", i, j, g)
					}
					d := float64(g - e)
					dW2 += d * d
					w2 += float64(e) * float64(e)
					if wmax > 0 {
						worstW = max(worstW, math.Abs(d)/wmax)
					}
				}
				dir := make([]float32, in)
				if err := DirectRow(h, in, w[i*in:i*in+in], pruned[i*in:i*in+in], dir, opts.Damping); err != nil {
					t.Fatal(err)
				}
				fGPU, _ := Objective(hd, in, w[i*in:i*in+in], got[i*in:i*in+in], 1)
				fDir, _ := Objective(hd, in, w[i*in:i*in+in], dir, 1)
				gap := math.Abs(fGPU - fDir)
				if fDir > 0 {
					gap /= fDir
				}
				worstGap = max(worstGap, gap)
			}
			relW := math.Sqrt(dW2 / max(w2, 1e-300))
			if relW > 1e-5 {
				t.Errorf("‖W_gpu − W_cpu‖_F / ‖W_cpu‖_F = %.3g > 1e-5", relW)
			}
			if worstGap > 1e-6 {
				t.Errorf("largest relative objective gap to the direct solve %.3g > 1e-6", worstGap)
			}
			if r := math.Abs(stGot.ObjAfter-stWant.ObjAfter) / stWant.ObjAfter; r > 1e-6 {
				t.Errorf("ObjAfter/Denom GPU %.12g, CPU %.12g", stGot.ObjAfter/stGot.Denom, stWant.ObjAfter/stWant.Denom)
			}
			if stGot.Rows != stWant.Rows || stGot.EmptyRows != stWant.EmptyRows {
				t.Errorf("stats GPU %+v, CPU %+v", stGot, stWant)
			}
			t.Logf("‖ΔW‖_F/‖W‖_F %.2g (largest element diff / row max %.2g), worst gap %.2g; iterations GPU max %d mean %.1f, CPU max %d mean %.1f",
				relW, worstW, worstGap, stGot.Iterations, stGot.MeanIterations, stWant.Iterations, stWant.MeanIterations)
		})
	}
}

// TestOptionsDevice checks Options.Device: "" and "cpu" run on the given
// backend, an unknown name is ErrInvalidOptions, and "cuda" without a GPU is
// an error wrapping cuda.ErrUnavailable (with a GPU, SolveRows runs there).
func TestOptionsDevice(t *testing.T) {
	c := problemCases[0]
	h, _, _ := c.build()
	for _, tc := range []struct {
		device string
		want   error
	}{
		{"", nil}, {"cpu", nil}, {"tpu", ErrInvalidOptions}, {"CUDA", ErrInvalidOptions},
	} {
		opts := DefaultOptions()
		opts.Device = tc.device
		p, err := Prepare(h, c.in, opts)
		if !errors.Is(err, tc.want) {
			t.Errorf("Prepare(Device %q) error = %v, want %v", tc.device, err, tc.want)
		}
		if err == nil && p.dev != nil {
			t.Errorf("Device %q opened a device backend", tc.device)
		}
	}
	opts := DefaultOptions()
	opts.Device = "cuda"
	p, err := Prepare(h, c.in, opts)
	if gpuErr := cuda.Available(); gpuErr != nil {
		if requireGPU() {
			t.Fatalf("OPTIMA_REQUIRE_GPU=1 but %v", gpuErr)
		}
		if !errors.Is(err, cuda.ErrUnavailable) {
			t.Fatalf("Prepare(Device cuda) without a GPU: error = %v, want cuda.ErrUnavailable", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("Prepare(Device cuda): %v", err)
	}
	if _, ok := p.dev.(DeviceSolver); !ok {
		t.Fatalf("Device cuda backend %T is not a DeviceSolver", p.dev)
	}
}

var _ DeviceSolver = (*cuda.Backend)(nil)
