package cuda_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/kernels/cuda"
	"github.com/optima-llm/optima/kernels/kerneltest"
)

// spd returns a symmetric positive definite [in, in] float64 matrix XᵀX/t +
// 0.01·I (X [t, in] standard normal, t = in/2: singular without the
// shift, as a damped calibration Hessian), both triangles equal bit for bit.
func spd(rng *rand.Rand, in int) []float64 {
	t := max(1, in/2)
	x := make([]float64, t*in)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	h := make([]float64, in*in)
	for i := range in {
		for j := i; j < in; j++ {
			var s float64
			for k := range t {
				s += x[k*in+i] * x[k*in+j]
			}
			s /= float64(t)
			if i == j {
				s += 0.01
			}
			h[i*in+j], h[j*in+i] = s, s
		}
	}
	return h
}

// keptSets returns batch ascending random subsets of n of [0, in), packed
// [batch, n] int32.
func keptSets(rng *rand.Rand, in, n, batch int) []int32 {
	kept := make([]int32, 0, batch*n)
	for range batch {
		p := rng.Perm(in)[:n]
		slices.Sort(p)
		for _, j := range p {
			kept = append(kept, int32(j))
		}
	}
	return kept
}

// forceInput3 makes the even kept sets of kept [batch, n] contain input 3
// and the odd ones not (replacing another index, keeping them ascending
// and distinct), so that exactly the even matrices of the indefinite case
// fail.
func forceInput3(kept []int32, n, batch int) {
	for k := range batch {
		kk := kept[k*n : (k+1)*n]
		has := slices.Contains(kk, 3)
		switch {
		case k%2 == 0 && !has:
			kk[0] = 3
		case k%2 == 1 && has:
			free := int32(0)
			for slices.Contains(kk, free) || free == 3 {
				free++
			}
			kk[slices.Index(kk, 3)] = free
		}
		slices.Sort(kk)
	}
}

// hostBlocks forms H_SS for every kept set on the host (both triangles).
func hostBlocks(h []float64, in, n, batch int, kept []int32) []float64 {
	a := make([]float64, batch*n*n)
	for k := range batch {
		kk := kept[k*n : (k+1)*n]
		for r, i := range kk {
			for c, j := range kk {
				a[k*n*n+r*n+c] = h[int(i)*in+int(j)]
			}
		}
	}
	return a
}

// TestCholeskySolveGathered compares CholeskySolveGathered (H_SS gathered
// on the device) with CholeskySolveBatched on the same blocks built on the
// host: solutions within 1e-12 of the largest |x| (the same cuSOLVER calls
// on the same lower triangles: 0 expected, logged), the same failed
// matrices for an indefinite Hessian, with DpotrfBatched and with the
// Dpotrf loop, default and 20000-byte chunks, cached (key 7, twice) and
// uncached (key 0) Hessians. Skipped without a GPU.
func TestCholeskySolveGathered(t *testing.T) {
	for _, loop := range []int{0, 4} {
		ref := gpu(t, cuda.Options{CholeskyLoopAbove: loop})
		gat := gpu(t, cuda.Options{CholeskyLoopAbove: loop, DeviceGather: true})
		rng := rand.New(rand.NewPCG(7, uint64(loop)))
		const in = 160
		h := spd(rng, in)
		bad := slices.Clone(h)
		bad[3*in+3] = -1 // every H_SS keeping input 3 is indefinite
		for _, small := range []bool{false, true} {
			for _, c := range []struct {
				name     string
				h        []float64
				n, batch int
				key      uint64
			}{
				{"n1", h, 1, 9, 7}, {"n7", h, 7, 5, 7}, {"n64", h, 64, 33, 0}, {"n150", h, 150, 4, 7},
				{"n40_indefinite", bad, 40, 12, 0}, {"n160_all", h, 160, 2, 0},
			} {
				t.Run(fmt.Sprintf("loop=%d/small=%v/%s", loop, small, c.name), func(t *testing.T) {
					if small {
						defer cuda.SetMaxBatchBytes(20000)()
					}
					kept := keptSets(rng, in, c.n, c.batch)
					if c.h[3*in+3] < 0 {
						forceInput3(kept, c.n, c.batch)
					}
					x0 := make([]float64, c.batch*c.n)
					for i := range x0 {
						x0[i] = rng.NormFloat64()
					}
					xr := slices.Clone(x0)
					errRef := ref.CholeskySolveBatched(hostBlocks(c.h, in, c.n, c.batch, kept), c.n, c.batch, xr)
					for rep := range 2 { // the second call finds the Hessian resident (key 7)
						xg := slices.Clone(x0)
						errGat := gat.CholeskySolveGathered(c.key, in, c.h, c.n, c.batch, kept, xg)
						if fmt.Sprint(errRef) != fmt.Sprint(errGat) {
							t.Fatalf("call %d: errors: host-built %v, gathered %v", rep, errRef, errGat)
						}
						var failed []int
						var be *kernels.CholeskyBatchError
						if errors.As(errRef, &be) {
							failed = be.Failed
						} else if errRef != nil {
							t.Fatal(errRef)
						}
						if c.h[3*in+3] < 0 && len(failed) != (c.batch+1)/2 {
							t.Fatalf("indefinite case: failed %v, want the even matrices", failed)
						}
						var xmax, dmax float64
						same := true
						for k := range c.batch {
							if slices.Contains(failed, k) {
								continue
							}
							for i := k * c.n; i < (k+1)*c.n; i++ {
								xmax = max(xmax, math.Abs(xr[i]))
								dmax = max(dmax, math.Abs(xg[i]-xr[i]))
								same = same && math.Float64bits(xg[i]) == math.Float64bits(xr[i])
							}
						}
						if !(dmax <= 1e-12*xmax) {
							t.Fatalf("call %d: largest difference %.3g of max |x| %.3g", rep, dmax, xmax)
						}
						if rep == 0 {
							t.Logf("%d matrices of %d×%d, %d failed: largest difference %.3g (bit-identical: %v)", c.batch, c.n, c.n, len(failed), dmax, same)
						}
						if c.key == 0 {
							break
						}
					}
				})
			}
		}
		gat.Release(7)
		requireDeviceBatched(t, ref)
		requireDeviceBatched(t, gat)
	}
}

// TestCholeskySolveGatheredOff checks that without Options.DeviceGather
// the call answers kernels.ErrNotImplemented and leaves x unchanged.
func TestCholeskySolveGatheredOff(t *testing.T) {
	b := gpu(t, cuda.Options{})
	h := spd(rand.New(rand.NewPCG(1, 2)), 8)
	x := []float64{1, 2, 3}
	err := b.CholeskySolveGathered(1, 8, h, 3, 1, []int32{0, 4, 7}, x)
	if !errors.Is(err, kernels.ErrNotImplemented) {
		t.Fatalf("error = %v, want kernels.ErrNotImplemented", err)
	}
	if !slices.Equal(x, []float64{1, 2, 3}) {
		t.Errorf("x changed to %v", x)
	}
}

// TestPinnedStaging compares a backend with Options.PinnedStaging against
// one without on AccumulateGram, Sgemm and Dgemm: the device gets the same
// bytes and runs the same cuBLAS calls, so results must be equal bit for
// bit. Staging pieces of 1 MiB + 12 bytes (pieces end inside elements, the
// last piece is short) and the default 32 MiB pieces; strided operands
// (not staged) as well. Skipped without a GPU.
func TestPinnedStaging(t *testing.T) {
	pag := gpu(t, cuda.Options{})
	pin := gpu(t, cuda.Options{PinnedStaging: true})
	defer func() {
		copies, bytes := pin.Staged()
		if c, _ := pag.Staged(); c != 0 || copies < 20 {
			t.Errorf("staged copies: pinned backend %d (%d bytes), pageable %d; want ≥ 20 and 0", copies, bytes, c)
		}
		t.Logf("%d staged copies, %.1f MiB", copies, float64(bytes)/(1<<20))
	}()
	rng := rand.New(rand.NewPCG(11, 12))
	normal32 := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	normal64 := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = rng.NormFloat64()
		}
		return v
	}
	for _, small := range []bool{true, false} {
		t.Run(fmt.Sprintf("small_pieces=%v", small), func(t *testing.T) {
			if small {
				defer cuda.SetStaging(1<<20+12, 1)()
			}
			for _, g := range []struct{ tokens, in int }{{1000, 700}, {3000, 3000}} {
				x := normal32(g.tokens * g.in)
				h0 := normal64(g.in * g.in)
				hp, hq := slices.Clone(h0), slices.Clone(h0)
				for range 2 {
					pag.AccumulateGram(hp, x, g.tokens, g.in)
					pin.AccumulateGram(hq, x, g.tokens, g.in)
				}
				if i := firstDiff64(hp, hq); i >= 0 {
					t.Fatalf("AccumulateGram %d×%d: element %d pageable %v, pinned %v", g.tokens, g.in, i, hp[i], hq[i])
				}
			}
			for _, c := range []struct {
				transA, transB bool
				m, n, k, pad   int
				beta           float32
			}{{false, false, 1500, 1000, 1200, 0, 0}, {true, false, 700, 900, 1300, 0, 0.5}, {false, true, 1200, 1100, 800, 3, 1}} {
				ar, ac := c.m, c.k
				if c.transA {
					ar, ac = c.k, c.m
				}
				br, bc := c.k, c.n
				if c.transB {
					br, bc = c.n, c.k
				}
				lda, ldb, ldc := ac+c.pad, bc+c.pad, c.n+c.pad
				a := normal32(ar * lda)
				bm := normal32(br * ldb)
				c0 := normal32(c.m * ldc)
				cp, cq := slices.Clone(c0), slices.Clone(c0)
				pag.Sgemm(c.transA, c.transB, c.m, c.n, c.k, 1.5, a, lda, bm, ldb, c.beta, cp, ldc)
				pin.Sgemm(c.transA, c.transB, c.m, c.n, c.k, 1.5, a, lda, bm, ldb, c.beta, cq, ldc)
				for i := range cp {
					if math.Float32bits(cp[i]) != math.Float32bits(cq[i]) {
						t.Fatalf("Sgemm %+v: element %d pageable %v, pinned %v", c, i, cp[i], cq[i])
					}
				}
				a64, b64, c64 := normal64(ar*lda), normal64(br*ldb), normal64(c.m*ldc)
				dp, dq := slices.Clone(c64), slices.Clone(c64)
				pag.Dgemm(c.transA, c.transB, c.m, c.n, c.k, -0.5, a64, lda, b64, ldb, float64(c.beta), dp, ldc)
				pin.Dgemm(c.transA, c.transB, c.m, c.n, c.k, -0.5, a64, lda, b64, ldb, float64(c.beta), dq, ldc)
				if i := firstDiff64(dp, dq); i >= 0 {
					t.Fatalf("Dgemm %+v: element %d pageable %v, pinned %v", c, i, dp[i], dq[i])
				}
			}
		})
	}
}

// firstDiff64 returns the first index where a and b differ in bits, or −1.
func firstDiff64(a, b []float64) int {
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return i
		}
	}
	return -1
}

// TestConformancePinned runs the conformance suite on a backend with
// PinnedStaging and DeviceGather, with 1028-byte staging pieces and every
// copy staged, so that all of its GEMM and Gram cases copy through the
// pinned buffers in many pieces.
func TestConformancePinned(t *testing.T) {
	b := gpu(t, cuda.Options{PinnedStaging: true, DeviceGather: true})
	defer cuda.SetStaging(1<<10+4, 1)()
	kerneltest.Run(t, b)
	requireDeviceBatched(t, b)
	if c, _ := b.Staged(); c == 0 {
		t.Errorf("no copy went through the pinned buffers")
	}
}
