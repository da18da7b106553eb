package gemma

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestExpf(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	xs := []float32{0, 1, -1, 0.5, -87.2, 88.6, -20, 20, 1e-8, -1e-8}
	for range 100000 {
		xs = append(xs, float32(r.Float64()*176-87.3))
	}
	var worst float64
	for _, x := range xs {
		got, want := float64(expf(x)), math.Exp(float64(x))
		worst = max(worst, math.Abs(got-want)/want)
	}
	if worst > 3e-7 {
		t.Errorf("max relative error %.3g", worst)
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
		got, want := float64(tanhf(x)), math.Tanh(float64(x))
		worstAbs = max(worstAbs, math.Abs(got-want))
		if want != 0 {
			worstRel = max(worstRel, math.Abs(got-want)/math.Abs(want))
		}
		if math.Signbit(got) != math.Signbit(want) {
			t.Errorf("tanhf(%g) = %g has the wrong sign", x, got)
		}
	}
	if worstAbs > 3e-7 || worstRel > 3e-6 {
		t.Errorf("max absolute error %.3g, relative %.3g", worstAbs, worstRel)
	}
	if nan := float32(math.NaN()); !math.IsNaN(float64(tanhf(nan))) {
		t.Error("tanhf(NaN) not NaN")
	}
}

// TestGeglu compares geglu with the tanh form torch evaluates, in float64.
func TestGeglu(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	n := 50000
	g, u := make([]float32, n), make([]float32, n)
	for i := range g {
		g[i], u[i] = float32(r.NormFloat64()*4), float32(r.NormFloat64())
	}
	g[0], g[1] = -100, 100
	want := make([]float64, n)
	for i, x := range g {
		x := float64(x)
		want[i] = 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x))) * float64(u[i])
	}
	geglu(g, u, 2)
	for i, w := range want {
		if math.Abs(float64(g[i])-w) > 1e-6*math.Max(1, math.Abs(w)) {
			t.Fatalf("geglu[%d] = %g, want %g", i, g[i], w)
		}
	}
}

// TestSoftmaxRow compares softmaxRow (AVX2 bulk and scalar tail) with a
// float64 softmax for lengths around the 8-lane boundary.
func TestSoftmaxRow(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for n := 1; n <= 41; n++ {
		row := make([]float32, n)
		for i := range row {
			row[i] = float32(r.NormFloat64() * 6)
		}
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		want := make([]float64, n)
		var sum float64
		for i, v := range row {
			want[i] = math.Exp(float64(v) - mx)
			sum += want[i]
		}
		softmaxRow(row)
		for i := range want {
			if w := want[i] / sum; math.Abs(float64(row[i])-w) > 1e-6*math.Max(w, 1e-3) {
				t.Fatalf("n=%d: softmax[%d] = %g, want %g", n, i, row[i], w)
			}
		}
	}
}
