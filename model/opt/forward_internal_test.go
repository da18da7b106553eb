package opt

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model/internal/blockops"
)

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
	const attnRowBlock = 128 // blockops.Attention's query rows per work item
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
		blockops.Attention(cpu.New(2), q, k, v, got, blockops.Attn{NSeq: tc.nseq, SeqLen: tc.seqlen, Heads: f.heads, KVHeads: f.heads,
			HeadDim: f.headDim, Scale: 1}, tc.workers)
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
