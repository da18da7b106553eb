package model

import (
	"fmt"

	"github.com/optima-llm/optima/kernels"
)

// Span is a run of consecutive tokens of one sequence in a span-layout
// forward pass (PrefixForwarder.ForwardSpans). Spans let a caller run a
// shared prefix once, keep its keys and values, and then run only the
// tokens that follow it, possibly several different continuations of the
// same prefix in one call.
type Span struct {
	// Seq is the sequence's slot in the KVCache.
	Seq int
	// Start is the position of the span's first token (RoPE angle, learned
	// position). The span attends to the cached positions [0, Start) of Seq
	// and causally to its own tokens; query position p sees key position j
	// when j ≤ p (and p−window < j on a sliding-window layer).
	Start int
	// Len is the number of tokens (rows of x) of the span.
	Len int
	// Keep stores the span's keys and values in the cache at positions
	// [Start, Start+Len) of Seq, for spans of later calls.
	Keep bool
}

// KVCache holds one block's attention keys (after RoPE, as the attention
// reads them) and values, per sequence slot. A caller that runs blocks one
// after another can reuse one cache for every block: each block overwrites
// what the previous block stored, as long as the prefix spans of block i are
// run (with Keep) before the spans that read them.
type KVCache struct {
	// K and V hold, per slot, [positions, kvDim] row-major float32 where
	// kvDim = key/value heads · head dim (OPT: hidden). Only positions that
	// a Keep span or CopyPrefix stored are meaningful.
	K, V [][]float32
	// kvDim is the row width of the last Put (0 before any).
	kvDim int
}

// NewKVCache returns an empty cache with nseq sequence slots.
func NewKVCache(nseq int) *KVCache {
	return &KVCache{K: make([][]float32, nseq), V: make([][]float32, nseq)}
}

// Put stores keys and values k, v ([n, kvDim] each, n = len(k)/kvDim) at
// positions [start, start+n) of slot seq, growing the slot as needed. It
// panics on a slot outside the cache or mismatched lengths.
func (c *KVCache) Put(seq, start, kvDim int, k, v []float32) {
	if seq < 0 || seq >= len(c.K) || start < 0 || kvDim <= 0 || len(k) != len(v) || len(k)%kvDim != 0 {
		panic(fmt.Sprintf("model: KVCache.Put: slot %d of %d, start %d, kvDim %d, len(k) %d, len(v) %d", seq, len(c.K), start, kvDim, len(k), len(v)))
	}
	end := start*kvDim + len(k)
	grow := func(b []float32) []float32 {
		if len(b) >= end {
			return b
		}
		if cap(b) >= end {
			return b[:end]
		}
		nb := make([]float32, end, max(end, 2*cap(b)))
		copy(nb, b)
		return nb
	}
	c.K[seq], c.V[seq] = grow(c.K[seq]), grow(c.V[seq])
	copy(c.K[seq][start*kvDim:], k)
	copy(c.V[seq][start*kvDim:], v)
	c.kvDim = kvDim
}

// CopyPrefix copies positions [0, n) of slot src into slot dst (growing
// dst), so that a Keep span of dst starting at n continues the prefix src
// holds: a tree of shared prefixes gives each branch that has branches of
// its own a slot. Rows are as wide as the last Put's. It panics when src
// holds fewer than n positions or a slot is outside the cache.
func (c *KVCache) CopyPrefix(dst, src, n int) {
	if n == 0 {
		return
	}
	if c.kvDim == 0 {
		panic("model: KVCache.CopyPrefix before any Put")
	}
	k, v := c.Prefix(src, n, c.kvDim)
	if dst == src {
		return
	}
	c.Put(dst, 0, c.kvDim, k, v)
}

// Prefix returns the keys and values of positions [0, n) of slot seq
// ([n, kvDim] each, aliasing the cache). It panics when the slot holds
// fewer than n positions.
func (c *KVCache) Prefix(seq, n, kvDim int) (k, v []float32) {
	if seq < 0 || seq >= len(c.K) || n < 0 || len(c.K[seq]) < n*kvDim {
		held := 0
		if seq >= 0 && seq < len(c.K) && kvDim > 0 {
			held = len(c.K[seq]) / kvDim
		}
		panic(fmt.Sprintf("model: KVCache.Prefix: slot %d of %d holds %d positions, want %d", seq, len(c.K), held, n))
	}
	return c.K[seq][:n*kvDim], c.V[seq][:n*kvDim]
}

// PrefixForwarder is implemented by families that can run a block on spans
// of tokens that continue cached prefixes (llama, gemma, opt). Scorers use
// it to run the context shared by several continuations once
// (stages/eval.LogLikelihoods) and fall back to Family.ForwardBlock for
// families without it.
type PrefixForwarder interface {
	Family
	// ForwardSpans runs block i in place on x ([Σ Len, hidden] float32, the
	// spans' tokens one span after another), exactly as ForwardBlock would
	// on the whole sequences: span s's tokens take positions Start…
	// Start+Len−1 and attend to the keys and values of positions [0, Start)
	// of slot Seq in kv plus their own (causal; sliding windows and
	// soft-capping as in ForwardBlock). Keep spans first store their keys
	// and values in kv, so a later call can continue them. kv may be nil
	// when no span has Start > 0 or Keep. Missing or misshapen tensors are
	// errors, as in ForwardBlock, and so is a position beyond a learned
	// position table (OPT); a wrong len(x), a negative Start or Len, or a
	// Start beyond what kv holds for the slot panic.
	ForwardSpans(be kernels.Backend, i int, w Weights, x []float32, spans []Span, kv *KVCache) error
}
