package vec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// paths runs f once on the machine's kernels and once with the scalar
// loops forced (hasAVX2 = false), so both are checked on AVX2 machines.
func paths(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	saved := hasAVX2
	t.Cleanup(func() { hasAVX2 = saved })
	for _, avx := range []bool{true, false} {
		if avx && !saved {
			continue
		}
		t.Run(fmt.Sprintf("avx2=%v", avx), func(t *testing.T) {
			hasAVX2 = avx
			defer func() { hasAVX2 = saved }()
			f(t)
		})
	}
}

func TestExpf(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	xs := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 0.5, -87.2, 88.6, -20, 20, 1e-8, -1e-8}
	for range 200000 {
		xs = append(xs, float32(r.Float64()*176-87.3))
	}
	var worst float64
	for _, x := range xs {
		got, want := float64(Expf(x)), math.Exp(float64(x))
		worst = max(worst, math.Abs(got-want)/want)
	}
	if worst > 3e-7 {
		t.Errorf("max relative error %.3g", worst)
	}
	for _, tc := range []struct{ x, want float32 }{
		{-100, 0}, {float32(math.Inf(-1)), 0}, {100, float32(math.Inf(1))}, {float32(math.Inf(1)), float32(math.Inf(1))},
	} {
		if got := Expf(tc.x); got != tc.want {
			t.Errorf("Expf(%g) = %g, want %g", tc.x, got, tc.want)
		}
	}
	if nan := float32(math.NaN()); !math.IsNaN(float64(Expf(nan))) {
		t.Error("Expf(NaN) not NaN")
	}
}

func TestTanhf(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	xs := []float32{0, 1e-30, -1e-30, 0.0625, -0.0625, 0.06249, 9.1, -9.1, 9.2, 50, -50, float32(math.Inf(1)), float32(math.Inf(-1))}
	for range 100000 {
		xs = append(xs, float32(r.NormFloat64()*3), float32(r.NormFloat64()*0.05))
	}
	var worstAbs, worstRel float64
	for _, x := range xs {
		got, want := float64(Tanhf(x)), math.Tanh(float64(x))
		worstAbs = max(worstAbs, math.Abs(got-want))
		if want != 0 {
			worstRel = max(worstRel, math.Abs(got-want)/math.Abs(want))
		}
		if math.Signbit(got) != math.Signbit(want) {
			t.Errorf("Tanhf(%g) = %g has the wrong sign", x, got)
		}
	}
	if worstAbs > 3e-7 || worstRel > 3e-6 {
		t.Errorf("max absolute error %.3g, relative %.3g", worstAbs, worstRel)
	}
	if nan := float32(math.NaN()); !math.IsNaN(float64(Tanhf(nan))) {
		t.Error("Tanhf(NaN) not NaN")
	}
}

// TestExpAVX2 checks the 8-lane exponential (expSubSumAVX2 with m = 0)
// against math.Exp over Expf's range and at its edges, and its lane sum.
func TestExpAVX2(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2+FMA: the scalar path is checked by TestExpf")
	}
	r := rand.New(rand.NewPCG(1, 3))
	xs := []float32{0, 1, -1, 0.5, -87.2, 88.3, -20, 20, 1e-8, -1e-8, -100, float32(math.Inf(-1)), float32(math.NaN())}
	for range 200000 {
		xs = append(xs, float32(r.Float64()*175.6-87.3))
	}
	xs = xs[:len(xs)&^7]
	got := append([]float32(nil), xs...)
	expSubSumAVX2(got, 0)
	var worst float64
	for i, x := range xs {
		w := math.Exp(float64(x))
		switch {
		case x != x:
			if got[i] == got[i] {
				t.Errorf("exp(NaN) = %g, want NaN", got[i])
			}
		case x < -87.3:
			if got[i] != 0 {
				t.Errorf("exp(%g) = %g, want 0", x, got[i])
			}
		default:
			worst = max(worst, math.Abs(float64(got[i])-w)/w)
		}
	}
	if worst > 3e-7 {
		t.Errorf("max relative error %.3g", worst)
	}
	small := make([]float32, 1000)
	var want float64
	for i := range small {
		small[i] = float32(r.Float64()*40 - 20)
		want += math.Exp(float64(small[i]) - 3)
	}
	if sum := float64(expSubSumAVX2(small, 3)); math.Abs(sum-want)/want > 1e-5 {
		t.Errorf("sum %g, want %g", sum, want)
	}
}

// softmax64 is the float64 reference softmax of row.
func softmax64(row []float32) []float64 {
	mx := math.Inf(-1)
	for _, v := range row {
		mx = math.Max(mx, float64(v))
	}
	out := make([]float64, len(row))
	var s float64
	for i, v := range row {
		out[i] = math.Exp(float64(v) - mx)
		s += out[i]
	}
	for i := range out {
		out[i] /= s
	}
	return out
}

// TestSoftmaxRow compares SoftmaxRow with a float64 softmax for lengths
// around the 8-lane blocks and score magnitudes of attention logits,
// including masked (−Inf) scores.
func TestSoftmaxRow(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(4, 5))
		for _, tc := range []struct {
			n      int
			scale  float64
			masked int // leading elements set to −Inf
		}{
			{1, 1, 0}, {2, 3, 0}, {7, 3, 0}, {8, 3, 0}, {9, 3, 0}, {15, 10, 0}, {16, 10, 0}, {17, 0.1, 0},
			{100, 30, 0}, {2048, 10, 0}, {2047, 100, 0}, {41, 5, 20}, {64, 5, 63},
		} {
			row := make([]float32, tc.n)
			for i := range row {
				row[i] = float32(r.NormFloat64() * tc.scale)
				if i < tc.masked {
					row[i] = float32(math.Inf(-1))
				}
			}
			want := softmax64(row)
			SoftmaxRow(row)
			var total float64
			for i, v := range row {
				total += float64(v)
				if d := math.Abs(float64(v) - want[i]); d > 1e-6*want[i]+1e-9 {
					t.Errorf("n=%d scale=%g: p[%d] = %g, want %g", tc.n, tc.scale, i, v, want[i])
					break
				}
			}
			if math.Abs(total-1) > 1e-5 {
				t.Errorf("n=%d scale=%g: probabilities sum to %g", tc.n, tc.scale, total)
			}
		}
		SoftmaxRow(nil) // must not panic
	})
}

// gatedCase checks an in-place gated activation against its float64
// reference ref(x)·u for lengths around the 8-lane blocks and inputs past
// the exponential's clamps.
func gatedCase(t *testing.T, name string, f func(g, u []float32), ref func(x float64) float64) {
	r := rand.New(rand.NewPCG(6, 7))
	for _, n := range []int{1, 7, 8, 9, 33, 1536} {
		g := make([]float32, n)
		u := make([]float32, n+3) // a longer u is allowed
		for i := range g {
			g[i] = float32(r.NormFloat64() * 4)
			u[i] = float32(r.NormFloat64())
		}
		for i, v := range []float32{-100, 100, -88.5, 89, 0, -9, 9} {
			if i < n {
				g[i] = v
			}
		}
		g0 := append([]float32(nil), g...)
		f(g, u)
		for i, x := range g0 {
			w := ref(float64(x)) * float64(u[i])
			if d := math.Abs(float64(g[i]) - w); d > 1e-6*math.Max(1, math.Abs(w)) {
				t.Errorf("n=%d: %s(%g)·%g = %g, want %g", n, name, x, u[i], g[i], w)
			}
		}
	}
}

func TestSiLUMul(t *testing.T) {
	paths(t, func(t *testing.T) {
		gatedCase(t, "silu", SiLUMul, func(x float64) float64 { return x / (1 + math.Exp(-x)) })
	})
}

func TestGELUTanhMul(t *testing.T) {
	paths(t, func(t *testing.T) {
		gatedCase(t, "gelu_tanh", GELUTanhMul, func(x float64) float64 {
			return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
		})
	})
}

func TestGatedPanics(t *testing.T) {
	for name, f := range map[string]func(g, u []float32){"SiLUMul": SiLUMul, "GELUTanhMul": GELUTanhMul} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic for len(u) < len(g)")
				}
			}()
			f(make([]float32, 9), make([]float32, 8))
		})
	}
}

// BenchmarkSoftmaxRow times a 2048-score row with the AVX2 kernels and with
// the scalar loops. Sample (go test -run '^$' -bench SoftmaxRow -benchtime
// 20000x ./kernels/cpu/vec; Intel Xeon, 2 shared vCPUs, load average 4.5):
//
//	BenchmarkSoftmaxRow/avx2=true-2    20000   2579 ns/op   1.259 ns/elem
//	BenchmarkSoftmaxRow/avx2=false-2   20000  25253 ns/op  12.33 ns/elem
func BenchmarkSoftmaxRow(b *testing.B) {
	row := make([]float32, 2048)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range row {
		row[i] = float32(r.NormFloat64())
	}
	x := make([]float32, len(row))
	saved := hasAVX2
	defer func() { hasAVX2 = saved }()
	for _, avx := range []bool{true, false} {
		if avx && !saved {
			continue
		}
		b.Run(fmt.Sprintf("avx2=%v", avx), func(b *testing.B) {
			hasAVX2 = avx
			for b.Loop() {
				copy(x, row)
				SoftmaxRow(x)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(row)), "ns/elem")
		})
	}
}
