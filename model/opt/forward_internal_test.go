package opt

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestExpNeg compares expNeg with math.Exp over the softmax's range, at the
// edges and on NaN.
func TestExpNeg(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	xs := []float32{0, -0, -1e-30, -0.3465736, -0.6931472, -1, -10, -86.99, -87, -87.01, -100, float32(math.Inf(-1))}
	for range 100000 {
		xs = append(xs, -float32(r.Float64()*87))
	}
	var worst float64
	for _, x := range xs {
		got := float64(expNeg(x))
		if x < -87 {
			if got != 0 {
				t.Errorf("expNeg(%g) = %g, want 0", x, got)
			}
			continue
		}
		want := math.Exp(float64(x))
		e := math.Abs(got-want) / want
		worst = max(worst, e)
		if e > 1e-7 {
			t.Errorf("expNeg(%g) = %g, want %g (rel err %.3g)", x, got, want, e)
		}
	}
	t.Logf("worst rel err %.3g", worst)
	if v := expNeg(float32(math.NaN())); v == v {
		t.Errorf("expNeg(NaN) = %g", v)
	}
}

// TestSoftmaxRow checks softmaxRow against a float64 softmax for odd and
// even lengths.
func TestSoftmaxRow(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 7, 64, 129} {
		row := make([]float32, n)
		for i := range row {
			row[i] = float32(r.NormFloat64() * 5)
		}
		want := make([]float64, n)
		mx := math.Inf(-1)
		for _, v := range row {
			mx = max(mx, float64(v))
		}
		var s float64
		for i, v := range row {
			want[i] = math.Exp(float64(v) - mx)
			s += want[i]
		}
		softmaxRow(row)
		for i := range row {
			if e := math.Abs(float64(row[i]) - want[i]/s); e > 1e-6*want[i]/s+1e-12 {
				t.Errorf("n %d: p[%d] = %g, want %g", n, i, row[i], want[i]/s)
			}
		}
	}
}

// BenchmarkSoftmaxRow measures the softmax of a 2048-score row.
func BenchmarkSoftmaxRow(b *testing.B) {
	row := make([]float32, 2048)
	src := make([]float32, len(row))
	for i := range src {
		src[i] = float32(i%17) - 8
	}
	for b.Loop() {
		copy(row, src)
		softmaxRow(row)
	}
	b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(b.N*len(row)), "ns/elem")
}
