package blockops

import (
	"fmt"
	"sync"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/kernels/cpu/vec"
	"github.com/optima-llm/optima/model"
)

// Layout says where the tokens of a block's input sit: NSeq sequences of
// SeqLen tokens, each from position 0 (Family.ForwardBlock; Spans nil), or
// spans that continue prefixes held in a KV cache
// (model.PrefixForwarder.ForwardSpans). The families write their forward
// pass once against a Layout.
type Layout struct {
	NSeq, SeqLen int
	Spans        []model.Span
	KV           *model.KVCache
	// pos is each token's position (span layouts only).
	pos    []int32
	maxPos int
}

// SeqLayout is the layout of nseq sequences of seqlen tokens.
func SeqLayout(nseq, seqlen int) *Layout {
	if nseq < 0 || seqlen < 0 {
		panic(fmt.Sprintf("blockops: SeqLayout(%d, %d)", nseq, seqlen))
	}
	return &Layout{NSeq: nseq, SeqLen: seqlen, maxPos: seqlen}
}

// BlockSpanLayout is SpanLayout for a family's ForwardSpans of block i
// (model.PrefixForwarder): it panics, naming family, when i is outside
// [0, nblocks) or len(x) is not the spans' tokens times hidden.
func BlockSpanLayout(family string, i, nblocks, hidden int, x []float32, spans []model.Span, kv *model.KVCache) *Layout {
	if i < 0 || i >= nblocks {
		panic(fmt.Sprintf("%s: ForwardSpans: block %d outside [0, %d)", family, i, nblocks))
	}
	lay := SpanLayout(spans, kv)
	if len(x) != lay.Tokens()*hidden {
		panic(fmt.Sprintf("%s: ForwardSpans: len(x) = %d, want %d span tokens · hidden %d", family, len(x), lay.Tokens(), hidden))
	}
	return lay
}

// SpanLayout is the layout of spans over kv. It panics on a negative Start
// or Len, and when a span needs kv (Start > 0 or Keep) and kv is nil or
// lacks the slot.
func SpanLayout(spans []model.Span, kv *model.KVCache) *Layout {
	l := &Layout{Spans: spans, KV: kv}
	n := 0
	for i, s := range spans {
		if s.Start < 0 || s.Len < 0 {
			panic(fmt.Sprintf("blockops: span %d: Start %d, Len %d", i, s.Start, s.Len))
		}
		if (s.Start > 0 || s.Keep) && (kv == nil || s.Seq < 0 || s.Seq >= len(kv.K)) {
			panic(fmt.Sprintf("blockops: span %d reads or keeps slot %d of a KV cache that lacks it", i, s.Seq))
		}
		n += s.Len
		l.maxPos = max(l.maxPos, s.Start+s.Len)
	}
	l.pos = make([]int32, 0, n)
	for _, s := range spans {
		for p := s.Start; p < s.Start+s.Len; p++ {
			l.pos = append(l.pos, int32(p))
		}
	}
	return l
}

// Tokens is the number of tokens (rows of x) the layout describes.
func (l *Layout) Tokens() int {
	if l.Spans == nil {
		return l.NSeq * l.SeqLen
	}
	return len(l.pos)
}

// MaxPos is one more than the largest position of a token (the length of
// the RoPE or position table the layout needs).
func (l *Layout) MaxPos() int { return l.maxPos }

// Pos is the position of token t.
func (l *Layout) Pos(t int) int {
	if l.Spans == nil {
		return t % l.SeqLen
	}
	return int(l.pos[t])
}

// Rope rotates x [tokens, nh·hd] in place at each token's position
// (ApplyRope / ApplyRopeAt); cos and sin cover MaxPos positions.
func (l *Layout) Rope(x []float32, nh, hd int, cos, sin []float32, workers int) {
	if l.Spans == nil {
		ApplyRope(x, l.Tokens(), l.SeqLen, nh, hd, cos, sin, workers)
		return
	}
	ApplyRopeAt(x, l.pos, nh, hd, cos, sin, workers)
}

// Attention is Attention over the layout: for a sequence layout it sets
// a.NSeq and a.SeqLen and calls Attention; for a span layout it calls
// AttentionSpans.
func (l *Layout) Attention(be kernels.Backend, q, k, v, out []float32, a Attn, workers int) {
	if l.Spans == nil {
		a.NSeq, a.SeqLen = l.NSeq, l.SeqLen
		Attention(be, q, k, v, out, a, workers)
		return
	}
	AttentionSpans(be, q, k, v, out, l.Spans, l.KV, a, workers)
}

// AttentionSpans is Attention for spans that continue cached prefixes: q
// and out are [tokens, Heads·HeadDim], k and v [tokens, KVHeads·HeadDim],
// the spans' tokens one span after another (a.NSeq and a.SeqLen are
// ignored). First every Keep span's k and v rows are stored in kv at its
// positions; then span s's query at position p = Start+r attends to the
// keys of positions [0, Start) of slot Seq read from kv and to its own keys
// up to p (and only to keys j > p−Window when Window > 0), with the scores
// formed, soft-capped and soft-maxed as Attention does. Work items (span,
// head, block of 128 query rows) run on workers goroutines. It panics when
// kv holds fewer than Start positions of a span's slot.
func AttentionSpans(be kernels.Backend, q, k, v, out []float32, spans []model.Span, kv *model.KVCache, a Attn, workers int) {
	nh, nkv, hd, window := a.Heads, a.KVHeads, a.HeadDim, a.Window
	qs, kvs := nh*hd, nkv*hd
	rep := nh / nkv
	type item struct {
		s, h, r0, r1 int
	}
	off := make([]int, len(spans))
	var items []item
	tok := 0
	maxKeys := 0
	for i, s := range spans {
		off[i] = tok
		if s.Keep {
			kv.Put(s.Seq, s.Start, kvs, k[tok*kvs:(tok+s.Len)*kvs], v[tok*kvs:(tok+s.Len)*kvs])
		}
		for r0 := 0; r0 < s.Len; r0 += attnRowBlock {
			for h := range nh {
				items = append(items, item{i, h, r0, min(r0+attnRowBlock, s.Len)})
			}
		}
		tok += s.Len
		maxKeys = max(maxKeys, s.Start+s.Len)
	}
	if len(q) < tok*qs || len(out) < tok*qs || len(k) < tok*kvs || len(v) < tok*kvs {
		panic(fmt.Sprintf("blockops: AttentionSpans: %d tokens, len(q) %d, len(k) %d, len(v) %d, len(out) %d", tok, len(q), len(k), len(v), len(out)))
	}
	// Cached prefixes, looked up once (Prefix panics when one is short).
	pk := make([][]float32, len(spans))
	pv := make([][]float32, len(spans))
	for i, s := range spans {
		if s.Start > 0 {
			pk[i], pv[i] = kv.Prefix(s.Seq, s.Start, kvs)
		}
	}
	rb := min(attnRowBlock, maxKeys)
	var next sync.Mutex
	idx := 0
	var wg sync.WaitGroup
	for range min(workers, len(items)) {
		wg.Go(func() {
			sp, _ := scorePool.Get().(*[]float32)
			if sp == nil {
				sp = new([]float32)
			}
			scores := Grow(*sp, rb*maxKeys)
			defer func() { *sp = scores; scorePool.Put(sp) }()
			for {
				next.Lock()
				it := idx
				idx++
				next.Unlock()
				if it >= len(items) {
					return
				}
				w := items[it]
				s := spans[w.s]
				g := w.h / rep
				start := s.Start
				// Absolute key positions [k0, start+r1) are the ones rows
				// r0..r1-1 (positions start+r0…) can see.
				k0 := 0
				if window > 0 {
					k0 = max(0, start+w.r0-window+1)
				}
				m, n := w.r1-w.r0, start+w.r1-k0
				// Columns [0, nc) come from the cache (positions k0…start-1),
				// columns [nc, n) from the span's own keys (local rows o0…r1-1).
				nc := max(0, start-k0)
				o0 := max(k0, start) - start
				base := off[w.s]
				qh := q[(base+w.r0)*qs+w.h*hd:]
				sc := scores[:m*n]
				if nc > 0 {
					be.Sgemm(false, true, m, nc, hd, a.Scale, qh, qs, pk[w.s][k0*kvs+g*hd:], kvs, 0, sc, n)
				}
				be.Sgemm(false, true, m, n-nc, hd, a.Scale, qh, qs, k[(base+o0)*kvs+g*hd:], kvs, 0, sc[nc:], n)
				for i := range m {
					row := sc[i*n : (i+1)*n]
					p := start + w.r0 + i
					lo, hi := 0, p+1-k0 // visible columns [lo, hi) of this row
					if window > 0 {
						lo = max(0, p-window+1-k0)
					}
					vis := row[lo:hi]
					if a.SoftCap > 0 {
						SoftCap(vis, a.SoftCap)
					}
					vec.SoftmaxRow(vis)
					clear(row[:lo])
					clear(row[hi:])
				}
				dst := out[(base+w.r0)*qs+w.h*hd:]
				var beta float32
				if nc > 0 {
					be.Sgemm(false, false, m, hd, nc, 1, sc, n, pv[w.s][k0*kvs+g*hd:], kvs, 0, dst, qs)
					beta = 1
				}
				be.Sgemm(false, false, m, hd, n-nc, 1, sc[nc:], n, v[(base+o0)*kvs+g*hd:], kvs, beta, dst, qs)
			}
		})
	}
	wg.Wait()
}
