package opt

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/optima-llm/optima/kernels/cpu"
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

// naiveAttention is a direct float64 transcription of HF's eager attention
// with q already scaled (OPTAttention passes scaling 1.0).
func naiveAttention(q, k, v []float32, nseq, seqlen, nh, hd int) []float64 {
	out := make([]float64, len(q))
	ld := nh * hd
	p := make([]float64, seqlen)
	for s := range nseq {
		for h := range nh {
			for i := range seqlen {
				qi := q[(s*seqlen+i)*ld+h*hd:][:hd]
				mx := math.Inf(-1)
				for j := 0; j <= i; j++ {
					kj := k[(s*seqlen+j)*ld+h*hd:][:hd]
					var dot float64
					for c := range hd {
						dot += float64(qi[c]) * float64(kj[c])
					}
					p[j] = dot
					mx = max(mx, dot)
				}
				var sum float64
				for j := 0; j <= i; j++ {
					p[j] = math.Exp(p[j] - mx)
					sum += p[j]
				}
				o := out[(s*seqlen+i)*ld+h*hd:][:hd]
				for c := range hd {
					var acc float64
					for j := 0; j <= i; j++ {
						acc += p[j] * float64(v[(s*seqlen+j)*ld+h*hd+c])
					}
					o[c] = acc / sum
				}
			}
		}
	}
	return out
}

// TestAttentionLong covers several query row blocks (seqlen >
// attnRowBlock), several sequences and more workers than items against a
// direct float64 transcription.
func TestAttentionLong(t *testing.T) {
	for _, tc := range []struct{ nseq, seqlen, nh, hd, workers int }{
		{2, attnRowBlock*2 + 37, 3, 8, 3},
		{3, 5, 4, 4, 2},
		{1, 1, 2, 2, 8},
	} {
		f := &Family{heads: tc.nh, headDim: tc.hd}
		r := rand.New(rand.NewPCG(7, uint64(tc.seqlen)))
		n := tc.nseq * tc.seqlen * tc.nh * tc.hd
		gen := func() []float32 {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(r.NormFloat64() * 2)
			}
			return x
		}
		q, k, v := gen(), gen(), gen()
		got := make([]float32, n)
		for i := range got {
			got[i] = float32(math.NaN())
		}
		f.attention(cpu.New(2), q, k, v, got, tc.nseq, tc.seqlen, tc.workers)
		want := naiveAttention(q, k, v, tc.nseq, tc.seqlen, tc.nh, tc.hd)
		var md, mr float64
		for i, w := range want {
			md = max(md, math.Abs(float64(got[i])-w))
			mr = max(mr, math.Abs(w))
		}
		if e := md / mr; !(e <= 1e-5) {
			t.Errorf("%+v: rel err %.3g", tc, e)
		}
	}
}
