package blockops

import (
	"sync"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/kernels/cpu/vec"
)

// attnRowBlock is the number of query rows whose scores one attention work
// item computes at once.
const attnRowBlock = 128

var scorePool sync.Pool

// Attn describes one causal attention call.
type Attn struct {
	// NSeq sequences of SeqLen tokens, each starting at position 0.
	NSeq, SeqLen int
	// Heads query heads and KVHeads key/value heads of HeadDim; query head h
	// reads key/value group h/(Heads/KVHeads) (HF's repeat_kv).
	Heads, KVHeads, HeadDim int
	// Scale multiplies q·kᵀ (head_dim^-0.5, Gemma's query_pre_attn_scalar^-0.5,
	// or 1 when q is already scaled, as OPT does).
	Scale float32
	// Window > 0 lets query i see only keys i−Window < j ≤ i
	// (transformers' sliding_window_overlay); 0 is full causal attention.
	Window int
	// SoftCap > 0 applies cap·tanh(s/cap) to the visible scores before the
	// softmax (Gemma 2's attn_logit_softcapping).
	SoftCap float32
}

// Attention computes out_h = softmax(mask(softcap(Scale·q_h·k_gᵀ)))·v_g per
// sequence and head, the softmax in float32 with max subtraction
// (vec.SoftmaxRow). q and out are [tokens, Heads·HeadDim], k and v [tokens,
// KVHeads·HeadDim], tokens = NSeq·SeqLen. Work items (sequence, head, block
// of 128 query rows) run on workers goroutines; only the keys a block can
// see are multiplied.
func Attention(be kernels.Backend, q, k, v, out []float32, a Attn, workers int) {
	nh, nkv, hd, seqlen, window := a.Heads, a.KVHeads, a.HeadDim, a.SeqLen, a.Window
	qs, kvs := nh*hd, nkv*hd
	rep := nh / nkv
	nblk := (seqlen + attnRowBlock - 1) / attnRowBlock
	items := a.NSeq * nh * nblk
	rb := min(attnRowBlock, seqlen)
	var next sync.Mutex
	idx := 0
	var wg sync.WaitGroup
	for range min(workers, items) {
		wg.Go(func() {
			sp, _ := scorePool.Get().(*[]float32)
			if sp == nil {
				sp = new([]float32)
			}
			scores := Grow(*sp, rb*seqlen)
			defer func() { *sp = scores; scorePool.Put(sp) }()
			for {
				next.Lock()
				it := idx
				idx++
				next.Unlock()
				if it >= items {
					return
				}
				blk := it % nblk
				h := (it / nblk) % nh
				s := it / (nblk * nh)
				g := h / rep
				r0 := blk * attnRowBlock
				r1 := min(r0+attnRowBlock, seqlen)
				// Keys k0..r1-1 are the ones rows r0..r1-1 can see.
				k0 := 0
				if window > 0 {
					k0 = max(0, r0-window+1)
				}
				m, n := r1-r0, r1-k0
				base := s * seqlen
				qh := q[(base+r0)*qs+h*hd:]
				kg := k[(base+k0)*kvs+g*hd:]
				vg := v[(base+k0)*kvs+g*hd:]
				sc := scores[:m*n]
				be.Sgemm(false, true, m, n, hd, a.Scale, qh, qs, kg, kvs, 0, sc, n)
				for i := range m {
					row := sc[i*n : (i+1)*n]
					lo, hi := 0, r0+i+1-k0 // visible keys [lo, hi) of this row
					if window > 0 {
						lo = max(0, r0+i-window+1-k0)
					}
					vis := row[lo:hi]
					if a.SoftCap > 0 {
						SoftCap(vis, a.SoftCap)
					}
					vec.SoftmaxRow(vis)
					clear(row[:lo])
					clear(row[hi:])
				}
				be.Sgemm(false, false, m, hd, n, 1, sc, n, vg, kvs, 0, out[(base+r0)*qs+h*hd:], qs)
			}
		})
	}
	wg.Wait()
}

// SoftCap overwrites each x with cap·tanh(x/cap) in float32 steps, as
// transformers does (x / cap; tanh; * cap), with vec.Tanhf. cap must be
// positive.
func SoftCap(x []float32, c float32) {
	for j, v := range x {
		x[j] = vec.Tanhf(v/c) * c
	}
}
