package llama

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestExpAVX2 checks the 8-lane exponential (expSubSumAVX2 with m = 0)
// against math.Exp over expf's range and at its edges.
func TestExpAVX2(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2+FMA")
	}
	r := rand.New(rand.NewPCG(1, 3))
	xs := []float32{0, -0, 1, -1, 0.5, -87.2, 88.3, -20, 20, 1e-8, -1e-8}
	for range 200000 {
		xs = append(xs, float32(r.Float64()*175.6-87.3))
	}
	xs = xs[:len(xs)&^7]
	got := append([]float32(nil), xs...)
	sum := expSubSumAVX2(got, 0)
	var worst float64
	for i, x := range xs {
		w := math.Exp(float64(x))
		if e := math.Abs(float64(got[i])-w) / w; e > worst {
			worst = e
		}
	}
	if worst > 3e-7 {
		t.Errorf("max relative error %.3g", worst)
	}
	if !math.IsInf(float64(sum), 1) { // the sum of values up to e^88.3 overflows float32
		t.Errorf("sum %g, want +Inf", sum)
	}
	small := make([]float32, 1000)
	var wantSmall float64
	for i := range small {
		small[i] = float32(r.Float64()*40 - 20)
		wantSmall += math.Exp(float64(small[i]))
	}
	if s := expSubSumAVX2(small, 0); math.Abs(float64(s)-wantSmall)/wantSmall > 1e-5 {
		t.Errorf("sum %g, want %g", s, wantSmall)
	}
	nan := float32(math.NaN())
	top := float32(math.Exp(float64(float32(88.37))))
	edges := []struct{ x, want float32 }{
		{-87.4, 0}, {-100, 0}, {float32(math.Inf(-1)), 0}, {nan, nan},
		{88.37, top}, {100, top}, {float32(math.Inf(1)), top},
		{0, 1},
	}
	x := make([]float32, len(edges))
	for i, e := range edges {
		x[i] = e.x
	}
	expSubSumAVX2(x, 0)
	for i, e := range edges {
		if math.IsNaN(float64(e.want)) {
			if !math.IsNaN(float64(x[i])) {
				t.Errorf("exp(NaN) = %g, want NaN", x[i])
			}
			continue
		}
		if d := math.Abs(float64(x[i]-e.want)) / math.Max(float64(e.want), 1e-30); d > 1e-6 {
			t.Errorf("exp(%g) = %g, want %g", e.x, x[i], e.want)
		}
	}
}

// TestSoftmaxRow compares softmaxRow with a float64 softmax for lengths
// around the 8-lane blocks and score magnitudes of attention logits.
func TestSoftmaxRow(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 5))
	for _, tc := range []struct {
		n     int
		scale float64
	}{
		{1, 1}, {2, 3}, {7, 3}, {8, 3}, {9, 3}, {15, 10}, {16, 10}, {17, 0.1}, {100, 30}, {2048, 10}, {2047, 100},
	} {
		row := make([]float32, tc.n)
		for i := range row {
			row[i] = float32(r.NormFloat64() * tc.scale)
		}
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		want := make([]float64, tc.n)
		var s float64
		for i, v := range row {
			want[i] = math.Exp(float64(v) - mx)
			s += want[i]
		}
		softmaxRow(row)
		var total float64
		for i, v := range row {
			w := want[i] / s
			total += float64(v)
			if d := math.Abs(float64(v) - w); d > 1e-6*w+1e-9 {
				t.Errorf("n=%d scale=%g: p[%d] = %g, want %g", tc.n, tc.scale, i, v, w)
				break
			}
		}
		if math.Abs(total-1) > 1e-5 {
			t.Errorf("n=%d scale=%g: probabilities sum to %g", tc.n, tc.scale, total)
		}
	}
}

// TestSiluMul compares siluMul with silu(g)·u in float64, including inputs
// past the exponential's clamps.
func TestSiluMul(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 7))
	for _, n := range []int{1, 7, 8, 9, 33, 1536} {
		g := make([]float32, n)
		u := make([]float32, n+3) // longer u is allowed
		for i := range g {
			g[i] = float32(r.NormFloat64() * 4)
			u[i] = float32(r.NormFloat64())
		}
		for i, v := range []float32{-100, 100, -88.5, 89, 0} {
			if i < n {
				g[i] = v
			}
		}
		g0 := append([]float32(nil), g...)
		siluMul(g, u)
		for i, x := range g0 {
			w := float64(x) / (1 + math.Exp(-float64(x))) * float64(u[i])
			if d := math.Abs(float64(g[i]) - w); d > 1e-6*math.Abs(w)+1e-30 {
				t.Errorf("n=%d: silu(%g)·%g = %g, want %g", n, x, u[i], g[i], w)
			}
		}
	}
}

func BenchmarkSoftmaxRow(b *testing.B) {
	row := make([]float32, 2048)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range row {
		row[i] = float32(r.NormFloat64())
	}
	x := make([]float32, len(row))
	for b.Loop() {
		copy(x, row)
		softmaxRow(x)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(row)), "ns/elem")
}
