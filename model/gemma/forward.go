package gemma

import (
	"fmt"
	"math"
	"sync"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/kernels/cpu/vec"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/internal/blockops"
)

// scratch holds the per-call activation buffers of ForwardBlock and Logits.
type scratch struct {
	h, q, k, v, att, gate, up []float32
}

// Family runs prefix-continuing spans (ForwardSpans).
var _ model.PrefixForwarder = (*Family)(nil)

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// rmsNorm writes dst[r] = (x[r] · rsqrt(mean(x[r]²) + eps)) · (1 + weight)
// for each of the rows rows of x [rows, d], as transformers' Gemma2RMSNorm /
// Gemma3RMSNorm do in float32 (the mean of squares is summed in float64 and
// rounded to float32; 1 + weight is formed in float32). dst may alias x.
func rmsNorm(dst, x, weight []float32, rows, d int, eps float32, workers int) {
	blockops.ParallelFor(rows, workers, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			row := x[t*d : (t+1)*d]
			var ss float64
			for _, v := range row {
				ss += float64(v) * float64(v)
			}
			variance := float32(ss / float64(d))
			r := float32(1 / math.Sqrt(float64(variance+eps)))
			out := dst[t*d : (t+1)*d]
			for j, v := range row {
				out[j] = float32(v*r) * (1 + weight[j])
			}
		}
	})
}

// geglu overwrites gate with gelu_tanh(gate)·up (vec.GELUTanhMul) on workers
// goroutines.
func geglu(gate, up []float32, workers int) {
	blockops.ParallelFor(len(gate), workers, func(lo, hi int) { vec.GELUTanhMul(gate[lo:hi], up[lo:hi]) })
}

// Embed writes the scaled embeddings of ids into dst ([len(ids), hidden]):
// row id of model.embed_tokens.weight times float32(sqrt(hidden_size)). An
// id outside the embedding's rows or a missing/misshapen embedding is an
// error. It panics if len(dst) != len(ids)·hidden.
func (f *Family) Embed(w model.Weights, ids []int32, dst []float32) error {
	d := f.hidden
	if len(dst) != len(ids)*d {
		panic(fmt.Sprintf("gemma: Embed: len(dst) = %d, want %d·%d", len(dst), len(ids), d))
	}
	t, ok := w[embedName]
	if !ok || t == nil {
		return fmt.Errorf("gemma: missing tensor %s", embedName)
	}
	if len(t.Shape) != 2 || t.Shape[1] != d || len(t.Data) != t.Shape[0]*d {
		return fmt.Errorf("gemma: tensor %s: shape %v, want [vocab, %d]", embedName, t.Shape, d)
	}
	rows := t.Shape[0]
	for i, id := range ids {
		if id < 0 || int(id) >= rows {
			return fmt.Errorf("gemma: Embed: token id %d at position %d outside the vocabulary [0, %d)", id, i, rows)
		}
		src := t.Data[int(id)*d : (int(id)+1)*d]
		out := dst[i*d : (i+1)*d]
		for j, v := range src {
			out[j] = v * f.embedScale
		}
	}
	return nil
}

// ForwardBlock runs block i in place on x ([nseq·seqlen, hidden] float32),
// each sequence starting at position 0. capture, when not nil, is called
// once for each of the groups ".self_attn.qkv" (input_layernorm output,
// [tokens, hidden]), ".self_attn.o_proj" (attention output, [tokens,
// heads·head_dim]), ".mlp.gate_up" (pre_feedforward_layernorm output) and
// ".mlp.down_proj" (gelu_tanh(gate)·up, [tokens, intermediate]), in that
// order. Missing or misshapen tensors are errors; len(x) !=
// nseq·seqlen·hidden or a block outside [0, NumBlocks) panics.
func (f *Family) ForwardBlock(be kernels.Backend, i int, w model.Weights, x []float32, nseq, seqlen int, capture model.CaptureFunc) error {
	if i < 0 || i >= f.NumBlocks() {
		panic(fmt.Sprintf("gemma: ForwardBlock: block %d outside [0, %d)", i, f.NumBlocks()))
	}
	if nseq < 0 || seqlen < 0 || len(x) != nseq*seqlen*f.hidden {
		panic(fmt.Sprintf("gemma: ForwardBlock: len(x) = %d, want nseq %d · seqlen %d · hidden %d", len(x), nseq, seqlen, f.hidden))
	}
	return f.forward(be, i, w, x, blockops.SeqLayout(nseq, seqlen), capture)
}

// ForwardSpans runs block i in place on x, the tokens of spans one span
// after another ([Σ Len, hidden] float32), each span continuing the cached
// keys and values of positions [0, Start) of its slot in kv
// (model.PrefixForwarder). The arithmetic is ForwardBlock's with RoPE at
// each token's position and the span attention of
// blockops.AttentionSpans (sliding windows and soft-capping honoured
// across the cached prefix). Errors and panics are ForwardBlock's and
// model.PrefixForwarder's.
func (f *Family) ForwardSpans(be kernels.Backend, i int, w model.Weights, x []float32, spans []model.Span, kv *model.KVCache) error {
	lay := blockops.BlockSpanLayout("gemma", i, f.NumBlocks(), f.hidden, x, spans, kv)
	return f.forward(be, i, w, x, lay, nil)
}

// forward is ForwardBlock and ForwardSpans over a layout.
func (f *Family) forward(be kernels.Backend, i int, w model.Weights, x []float32, lay *blockops.Layout, capture model.CaptureFunc) error {
	nn := f.normNames(i)
	norms := make([][]float32, len(nn))
	for j, name := range nn {
		size := f.hidden
		if j >= 4 {
			size = f.headDim
		}
		var err error
		if norms[j], err = blockops.Tensor("gemma", w, name, size); err != nil {
			return err
		}
	}
	ls := f.Linears(i)
	var lw [7]blockops.Linear
	for j, l := range ls {
		var err error
		if lw[j], err = blockops.LoadLinear("gemma", w, l, l.Attention && f.attnBias); err != nil {
			return err
		}
	}
	tokens := lay.Tokens()
	if tokens == 0 {
		return nil
	}
	workers := blockops.Threads(be)
	d, qd, kvd := f.hidden, f.heads*f.headDim, f.kvHeads*f.headDim
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	sc.h = blockops.Grow(sc.h, tokens*d)
	sc.q = blockops.Grow(sc.q, tokens*qd)
	sc.k = blockops.Grow(sc.k, tokens*kvd)
	sc.v = blockops.Grow(sc.v, tokens*kvd)
	sc.att = blockops.Grow(sc.att, tokens*qd)
	sc.gate = blockops.Grow(sc.gate, tokens*f.inter)
	sc.up = blockops.Grow(sc.up, tokens*f.inter)
	names := func(js ...int) []string {
		out := make([]string, len(js))
		for k, j := range js {
			out[k] = ls[j].Name
		}
		return out
	}
	layer := f.layers[i]

	// Attention.
	rmsNorm(sc.h, x, norms[0], tokens, d, f.eps, workers)
	if capture != nil {
		capture(ls[0].Group, names(0, 1, 2), sc.h, tokens, d)
	}
	lw[0].Apply(be, sc.h, tokens, sc.q)
	lw[1].Apply(be, sc.h, tokens, sc.k)
	lw[2].Apply(be, sc.h, tokens, sc.v)
	if f.gemma3 {
		rmsNorm(sc.q, sc.q, norms[4], tokens*f.heads, f.headDim, f.eps, workers)
		rmsNorm(sc.k, sc.k, norms[5], tokens*f.kvHeads, f.headDim, f.eps, workers)
	}
	cos, sin := layer.rope.tables(lay.MaxPos())
	lay.Rope(sc.q, f.heads, f.headDim, cos, sin, workers)
	lay.Rope(sc.k, f.kvHeads, f.headDim, cos, sin, workers)
	lay.Attention(be, sc.q, sc.k, sc.v, sc.att, blockops.Attn{Heads: f.heads, KVHeads: f.kvHeads,
		HeadDim: f.headDim, Scale: f.scale, Window: layer.window, SoftCap: f.attnCap}, workers)
	if capture != nil {
		capture(ls[3].Group, names(3), sc.att, tokens, qd)
	}
	lw[3].Apply(be, sc.att, tokens, sc.h)
	rmsNorm(sc.h, sc.h, norms[1], tokens, d, f.eps, workers)
	blockops.AddInto(x, sc.h, workers)

	// MLP.
	rmsNorm(sc.h, x, norms[2], tokens, d, f.eps, workers)
	if capture != nil {
		capture(ls[4].Group, names(4, 5), sc.h, tokens, d)
	}
	lw[4].Apply(be, sc.h, tokens, sc.gate)
	lw[5].Apply(be, sc.h, tokens, sc.up)
	geglu(sc.gate, sc.up, workers)
	if capture != nil {
		capture(ls[6].Group, names(6), sc.gate, tokens, f.inter)
	}
	lw[6].Apply(be, sc.gate, tokens, sc.h)
	rmsNorm(sc.h, sc.h, norms[3], tokens, d, f.eps, workers)
	blockops.AddInto(x, sc.h, workers)
	return nil
}

// Logits applies the final RMSNorm, the LM head (model.embed_tokens.weight
// when tied, else lm_head.weight) and, when final_logit_softcapping is set,
// cap·tanh(logits/cap), to x ([tokens, hidden], not modified) and writes
// dst ([tokens, vocab]). Missing or misshapen tensors are errors; wrong
// slice lengths panic.
func (f *Family) Logits(be kernels.Backend, w model.Weights, x []float32, tokens int, dst []float32) error {
	d := f.hidden
	if tokens < 0 || len(x) != tokens*d || len(dst) != tokens*f.vocab {
		panic(fmt.Sprintf("gemma: Logits: len(x) = %d, len(dst) = %d, want tokens %d · hidden %d and tokens · vocab %d", len(x), len(dst), tokens, d, f.vocab))
	}
	norm, err := blockops.Tensor("gemma", w, "model.norm.weight", d)
	if err != nil {
		return err
	}
	headName := "lm_head.weight"
	if f.tied {
		headName = embedName
	}
	head, err := blockops.Tensor("gemma", w, headName, f.vocab, d)
	if err != nil {
		return err
	}
	if tokens == 0 {
		return nil
	}
	workers := blockops.Threads(be)
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	sc.h = blockops.Grow(sc.h, tokens*d)
	rmsNorm(sc.h, x, norm, tokens, d, f.eps, workers)
	be.Sgemm(false, true, tokens, f.vocab, d, 1, sc.h, d, head, d, 0, dst, f.vocab)
	if f.finalCap > 0 {
		blockops.ParallelFor(len(dst), workers, func(lo, hi int) { blockops.SoftCap(dst[lo:hi], f.finalCap) })
	}
	return nil
}
