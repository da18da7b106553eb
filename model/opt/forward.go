package opt

import (
	"fmt"
	"math"
	"sync"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/internal/blockops"
)

// layerNormW is a LayerNorm's weight and bias ([hidden] each), both nil
// without elementwise affine parameters.
type layerNormW struct{ w, b []float32 }

func (f *Family) loadNorm(w model.Weights, prefix string) (layerNormW, error) {
	if !f.affine {
		return layerNormW{}, nil
	}
	var n layerNormW
	var err error
	if n.w, err = blockops.Tensor("opt", w, prefix+".weight", f.hidden); err != nil {
		return n, err
	}
	n.b, err = blockops.Tensor("opt", w, prefix+".bias", f.hidden)
	return n, err
}

// layerNorm writes dst[t] = (x[t] − mean)·rsqrt(var + eps)·weight + bias for
// each row of x [tokens, d] (torch.nn.LayerNorm: biased variance, eps
// LayerNormEps), with mean and variance accumulated in float64 and the
// normalisation in float32. dst may alias x.
func layerNorm(dst, x []float32, n layerNormW, tokens, d int, workers int) {
	blockops.ParallelFor(tokens, workers, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			row := x[t*d : (t+1)*d]
			var s float64
			for _, v := range row {
				s += float64(v)
			}
			mean := s / float64(d)
			var ss float64
			for _, v := range row {
				dv := float64(v) - mean
				ss += dv * dv
			}
			rstd := float32(1 / math.Sqrt(ss/float64(d)+LayerNormEps))
			m := float32(mean)
			out := dst[t*d : (t+1)*d]
			if n.w == nil {
				for j, v := range row {
					out[j] = (v - m) * rstd
				}
				continue
			}
			for j, v := range row {
				out[j] = (v-m)*rstd*n.w[j] + n.b[j]
			}
		}
	})
}

// scratch holds the per-call activation buffers of ForwardBlock and Logits.
type scratch struct {
	h, q, k, v, att, ffn []float32
}

// Family runs prefix-continuing spans (ForwardSpans).
var _ model.PrefixForwarder = (*Family)(nil)

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

var (
	embedBackendOnce sync.Once
	embedBackend     kernels.Backend
)

// Embed writes the token embeddings of ids into dst ([len(ids), hidden]):
// rows of model.decoder.embed_tokens.weight ([vocab, word_embed_proj_dim]),
// multiplied by model.decoder.project_in.weight ([hidden,
// word_embed_proj_dim]) when the widths differ (on a kernels/cpu backend).
// Positional embeddings are added by ForwardBlock(0), not here. An id
// outside [0, rows of embed_tokens) or a missing/misshapen tensor is an
// error. It panics if len(dst) != len(ids)·hidden.
func (f *Family) Embed(w model.Weights, ids []int32, dst []float32) error {
	d := f.hidden
	if len(dst) != len(ids)*d {
		panic(fmt.Sprintf("opt: Embed: len(dst) = %d, want %d·%d", len(dst), len(ids), d))
	}
	t, ok := w[EmbedTokens]
	if !ok || t == nil {
		return fmt.Errorf("opt: missing tensor %s", EmbedTokens)
	}
	p := f.proj
	if len(t.Shape) != 2 || t.Shape[1] != p || len(t.Data) != t.Shape[0]*p {
		return fmt.Errorf("opt: tensor %s: shape %v, want [vocab, %d]", EmbedTokens, t.Shape, p)
	}
	rows := t.Shape[0]
	for i, id := range ids {
		if id < 0 || int(id) >= rows {
			return fmt.Errorf("opt: Embed: token id %d at position %d outside the vocabulary [0, %d)", id, i, rows)
		}
	}
	if !f.projected() {
		for i, id := range ids {
			copy(dst[i*d:(i+1)*d], t.Data[int(id)*d:(int(id)+1)*d])
		}
		return nil
	}
	pin, err := blockops.Tensor("opt", w, ProjectIn, d, p)
	if err != nil {
		return err
	}
	embedBackendOnce.Do(func() { embedBackend = cpu.New(0) })
	// Project in chunks so the gathered rows stay small.
	const chunk = 1024
	buf := make([]float32, min(chunk, len(ids))*p)
	for r := 0; r < len(ids); r += chunk {
		n := min(chunk, len(ids)-r)
		for i := range n {
			id := int(ids[r+i])
			copy(buf[i*p:(i+1)*p], t.Data[id*p:(id+1)*p])
		}
		embedBackend.Sgemm(false, true, n, d, p, 1, buf, p, pin, p, 0, dst[r*d:(r+n)*d], d)
	}
	return nil
}

// ForwardBlock runs OPTDecoderLayer i in place on x ([nseq·seqlen, hidden]
// float32), each sequence starting at position 0. Block 0 first adds the
// learned positional embeddings (row position+2 of
// model.decoder.embed_positions.weight, which must have at least seqlen+2
// rows). capture, when not nil, is called once for each of the groups
// ".self_attn.qkv" (the LayerNorm output for pre-LN, the block input for
// post-LN; [tokens, hidden]), ".self_attn.out_proj" (attention output,
// [tokens, hidden]), ".fc1" ([tokens, hidden]) and ".fc2" (activation
// output, [tokens, ffn_dim]), in that order. Missing or misshapen tensors
// and too short a positional table are errors; len(x) !=
// nseq·seqlen·hidden panics. Activation buffers come from a pool and hold
// about tokens·(5·hidden + ffn_dim) float32 values.
func (f *Family) ForwardBlock(be kernels.Backend, i int, w model.Weights, x []float32, nseq, seqlen int, capture model.CaptureFunc) error {
	if i < 0 || i >= f.NumBlocks() {
		panic(fmt.Sprintf("opt: ForwardBlock: block %d outside [0, %d)", i, f.NumBlocks()))
	}
	if nseq < 0 || seqlen < 0 || len(x) != nseq*seqlen*f.hidden {
		panic(fmt.Sprintf("opt: ForwardBlock: len(x) = %d, want nseq %d · seqlen %d · hidden %d", len(x), nseq, seqlen, f.hidden))
	}
	return f.forward(be, i, w, x, blockops.SeqLayout(nseq, seqlen), capture)
}

// ForwardSpans runs OPTDecoderLayer i in place on x, the tokens of spans
// one span after another ([Σ Len, hidden] float32), each span continuing
// the cached keys and values of positions [0, Start) of its slot in kv
// (model.PrefixForwarder). Block 0 adds the learned positional embedding
// of each token's position (Start+r+2); a position beyond the table is an
// error. Otherwise it is ForwardBlock with the span attention of
// blockops.AttentionSpans; errors and panics are ForwardBlock's and
// model.PrefixForwarder's.
func (f *Family) ForwardSpans(be kernels.Backend, i int, w model.Weights, x []float32, spans []model.Span, kv *model.KVCache) error {
	lay := blockops.BlockSpanLayout("opt", i, f.NumBlocks(), f.hidden, x, spans, kv)
	return f.forward(be, i, w, x, lay, nil)
}

// forward is ForwardBlock and ForwardSpans over a layout.
func (f *Family) forward(be kernels.Backend, i int, w model.Weights, x []float32, lay *blockops.Layout, capture model.CaptureFunc) error {
	d := f.hidden
	p := blockPrefix(i)
	var pos []float32
	if i == 0 {
		t, ok := w[EmbedPositions]
		if !ok || t == nil {
			return fmt.Errorf("opt: missing tensor %s", EmbedPositions)
		}
		if len(t.Shape) != 2 || t.Shape[1] != d || len(t.Data) != t.Shape[0]*d {
			return fmt.Errorf("opt: tensor %s: shape %v, want [max_position_embeddings+2, %d]", EmbedPositions, t.Shape, d)
		}
		if rows := t.Shape[0]; lay.MaxPos()+positionOffset > rows {
			return fmt.Errorf("opt: sequence length %d exceeds the %d positions of %s", lay.MaxPos(), rows-positionOffset, EmbedPositions)
		}
		pos = t.Data
	}
	attnNorm, err := f.loadNorm(w, p+"self_attn_layer_norm")
	if err != nil {
		return err
	}
	ffnNorm, err := f.loadNorm(w, p+"final_layer_norm")
	if err != nil {
		return err
	}
	ls := f.Linears(i)
	var lw [6]blockops.Linear
	for j, l := range ls {
		if lw[j], err = blockops.LoadLinear("opt", w, l, f.bias); err != nil {
			return err
		}
	}
	tokens := lay.Tokens()
	if tokens == 0 {
		return nil
	}
	workers := blockops.Threads(be)
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	sc.h = blockops.Grow(sc.h, tokens*d)
	sc.q = blockops.Grow(sc.q, tokens*d)
	sc.k = blockops.Grow(sc.k, tokens*d)
	sc.v = blockops.Grow(sc.v, tokens*d)
	sc.att = blockops.Grow(sc.att, tokens*d)
	sc.ffn = blockops.Grow(sc.ffn, tokens*f.ffn)
	names := func(js ...int) []string {
		out := make([]string, len(js))
		for k, j := range js {
			out[k] = ls[j].Name
		}
		return out
	}

	if pos != nil {
		// HF: hidden_states = inputs_embeds + embed_positions(position_ids + 2).
		blockops.ParallelFor(tokens, workers, func(lo, hi int) {
			for t := lo; t < hi; t++ {
				pr := pos[(lay.Pos(t)+positionOffset)*d:][:d]
				row := x[t*d : (t+1)*d]
				for j := range row {
					row[j] += pr[j]
				}
			}
		})
	}

	// Attention.
	in := x
	if f.preLN {
		layerNorm(sc.h, x, attnNorm, tokens, d, workers)
		in = sc.h
	}
	if capture != nil {
		capture(ls[0].Group, names(0, 1, 2), in, tokens, d)
	}
	lw[0].Apply(be, in, tokens, sc.q)
	lw[1].Apply(be, in, tokens, sc.k)
	lw[2].Apply(be, in, tokens, sc.v)
	// HF: query_states = self.q_proj(hidden_states) * self.scaling, a float32
	// product after the bias.
	scale := float32(math.Pow(float64(f.headDim), -0.5))
	blockops.ParallelFor(len(sc.q), workers, func(lo, hi int) {
		for j := lo; j < hi; j++ {
			sc.q[j] *= scale
		}
	})
	// q is already scaled by head_dim^-0.5 (OPTAttention scales q and calls
	// the attention with scaling 1.0).
	lay.Attention(be, sc.q, sc.k, sc.v, sc.att, blockops.Attn{Heads: f.heads, KVHeads: f.heads,
		HeadDim: f.headDim, Scale: 1}, workers)
	if capture != nil {
		capture(ls[3].Group, names(3), sc.att, tokens, d)
	}
	lw[3].Apply(be, sc.att, tokens, sc.q)
	blockops.AddInto(x, sc.q, workers)
	if !f.preLN {
		layerNorm(x, x, attnNorm, tokens, d, workers)
	}

	// Feed-forward.
	in = x
	if f.preLN {
		layerNorm(sc.h, x, ffnNorm, tokens, d, workers)
		in = sc.h
	}
	if capture != nil {
		capture(ls[4].Group, names(4), in, tokens, d)
	}
	lw[4].Apply(be, in, tokens, sc.ffn)
	f.activate(sc.ffn, workers)
	if capture != nil {
		capture(ls[5].Group, names(5), sc.ffn, tokens, f.ffn)
	}
	lw[5].Apply(be, sc.ffn, tokens, sc.q)
	blockops.AddInto(x, sc.q, workers)
	if !f.preLN {
		layerNorm(x, x, ffnNorm, tokens, d, workers)
	}
	return nil
}

// activate applies activation_function in place: relu max(x, 0), or gelu
// x·½·(1 + erf(x/√2)) (torch's exact GELU; computed in float64, rounded).
func (f *Family) activate(x []float32, workers int) {
	blockops.ParallelFor(len(x), workers, func(lo, hi int) {
		xs := x[lo:hi]
		if f.act == "gelu" {
			for j, v := range xs {
				xv := float64(v)
				xs[j] = float32(xv * 0.5 * (1 + math.Erf(xv/math.Sqrt2)))
			}
			return
		}
		for j, v := range xs {
			if !(v > 0) && v == v {
				xs[j] = 0
			}
		}
	})
}

// Logits applies model.decoder.final_layer_norm (pre-LN models),
// project_out ([word_embed_proj_dim, hidden], when the widths differ) and
// the LM head (lm_head.weight or, when tie_word_embeddings,
// model.decoder.embed_tokens.weight; [vocab, word_embed_proj_dim]) to x
// ([tokens, hidden], not modified) and writes dst ([tokens, vocab]).
// Callers bound memory by passing a few rows of x at a time. Missing or
// misshapen tensors are errors; wrong slice lengths panic.
func (f *Family) Logits(be kernels.Backend, w model.Weights, x []float32, tokens int, dst []float32) error {
	d, p := f.hidden, f.proj
	if tokens < 0 || len(x) != tokens*d || len(dst) != tokens*f.vocab {
		panic(fmt.Sprintf("opt: Logits: len(x) = %d, len(dst) = %d, want tokens %d · hidden %d and tokens · vocab %d", len(x), len(dst), tokens, d, f.vocab))
	}
	var norm layerNormW
	var err error
	if f.finalLN {
		if norm, err = f.loadNorm(w, FinalNorm); err != nil {
			return err
		}
	}
	var pout []float32
	if f.projected() {
		if pout, err = blockops.Tensor("opt", w, ProjectOut, p, d); err != nil {
			return err
		}
	}
	headName := LMHead
	if f.tied {
		headName = EmbedTokens
	}
	head, err := blockops.Tensor("opt", w, headName, f.vocab, p)
	if err != nil {
		return err
	}
	if tokens == 0 {
		return nil
	}
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	h := x
	if f.finalLN {
		sc.h = blockops.Grow(sc.h, tokens*d)
		layerNorm(sc.h, x, norm, tokens, d, blockops.Threads(be))
		h = sc.h
	}
	if pout != nil {
		sc.q = blockops.Grow(sc.q, tokens*p)
		be.Sgemm(false, true, tokens, p, d, 1, h, d, pout, d, 0, sc.q, p)
		h = sc.q
	}
	be.Sgemm(false, true, tokens, f.vocab, p, 1, h, p, head, p, 0, dst, f.vocab)
	return nil
}
