package blockops

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
)

// TestAttentionSpansMatchesAttention checks AttentionSpans against
// Attention on whole sequences, with prefixes and suffixes longer than one
// 128-row work item, GQA, sliding windows shorter and longer than the
// prefix, and soft-capping: the prefix is kept in one call and its
// continuations (of different lengths) run in a second call.
func TestAttentionSpansMatchesAttention(t *testing.T) {
	be := cpu.New(2)
	const nh, nkv, hd = 4, 2, 8
	qs, kvs := nh*hd, nkv*hd
	for _, c := range []struct {
		window  int
		softCap float32
	}{{0, 0}, {50, 0}, {200, 0}, {0, 5}, {37, 5}} {
		t.Run(fmt.Sprintf("window%d-cap%g", c.window, c.softCap), func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, uint64(c.window)))
			fill := func(n int) []float32 {
				x := make([]float32, n)
				for i := range x {
					x[i] = float32(r.NormFloat64())
				}
				return x
			}
			const pre = 150
			conts := []int{1, 140, 20}
			a := Attn{Heads: nh, KVHeads: nkv, HeadDim: hd, Scale: 0.35, Window: c.window, SoftCap: c.softCap}
			pq, pk, pv := fill(pre*qs), fill(pre*kvs), fill(pre*kvs)
			kv := model.NewKVCache(1)
			pout := make([]float32, pre*qs)
			AttentionSpans(be, pq, pk, pv, pout, []model.Span{{Seq: 0, Len: pre, Keep: true}}, kv, a, 3)
			var spans []model.Span
			var cq, ck, cv []float32
			for _, n := range conts {
				spans = append(spans, model.Span{Seq: 0, Start: pre, Len: n})
				cq, ck, cv = append(cq, fill(n*qs)...), append(ck, fill(n*kvs)...), append(cv, fill(n*kvs)...)
			}
			cout := make([]float32, len(cq))
			AttentionSpans(be, cq, ck, cv, cout, spans, kv, a, 3)
			off := 0
			for s, n := range conts {
				L := pre + n
				q := append(append([]float32(nil), pq...), cq[off*qs:(off+n)*qs]...)
				k := append(append([]float32(nil), pk...), ck[off*kvs:(off+n)*kvs]...)
				v := append(append([]float32(nil), pv...), cv[off*kvs:(off+n)*kvs]...)
				want := make([]float32, L*qs)
				a.NSeq, a.SeqLen = 1, L
				Attention(be, q, k, v, want, a, 3)
				got := append(append([]float32(nil), pout...), cout[off*qs:(off+n)*qs]...)
				for i := range want {
					if d := math.Abs(float64(got[i] - want[i])); !(d <= 1e-5*max(1, math.Abs(float64(want[i])))) {
						t.Fatalf("continuation %d: token %d col %d: %g, want %g", s, i/qs, i%qs, got[i], want[i])
					}
				}
				off += n
			}
		})
	}
}

// TestSpanLayoutPositions checks token positions, MaxPos and the panics
// for spans that need a cache slot that is not there.
func TestSpanLayoutPositions(t *testing.T) {
	l := SpanLayout([]model.Span{{Seq: 0, Start: 0, Len: 2}, {Seq: 1, Start: 3, Len: 2}}, model.NewKVCache(2))
	var pos []int
	for i := range l.Tokens() {
		pos = append(pos, l.Pos(i))
	}
	if fmt.Sprint(pos) != "[0 1 3 4]" || l.MaxPos() != 5 {
		t.Errorf("positions %v, MaxPos %d; want [0 1 3 4], 5", pos, l.MaxPos())
	}
	for _, c := range []struct {
		spans []model.Span
		kv    *model.KVCache
	}{
		{[]model.Span{{Start: 2, Len: 1}}, nil},
		{[]model.Span{{Len: 1, Keep: true}}, nil},
		{[]model.Span{{Seq: 1, Start: 1, Len: 1}}, model.NewKVCache(1)},
		{[]model.Span{{Len: -1}}, nil},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("SpanLayout(%+v, %v) did not panic", c.spans, c.kv)
				}
			}()
			SpanLayout(c.spans, c.kv)
		}()
	}
}
