// Package hessian accumulates the layer-input Gram matrices XᵀX that mask
// selection and the OPTIMA row solve read, merges partial sums from
// calibration shards, applies damping, and encodes them for transport
// between pipeline workers.
//
// DESIGN.md §1: for a linear layer Y = X Wᵀ with calibration inputs X
// ([N_tok, in]), H = XᵀX / N_tok ([in, in]). Linears that read the same input
// (q/k/v; gate/up) share one Hessian, named by its input group.
package hessian

import (
	"errors"
	"fmt"
	"math"

	"github.com/optima-llm/optima/kernels"
)

// ErrNonFinite is wrapped by errors about NaN or ±Inf values in calibration
// inputs or in a Hessian.
var ErrNonFinite = errors.New("hessian: non-finite value")

// Hessian is the un-normalised Gram matrix of one input group's calibration
// inputs.
//
// Sum is XᵀX summed over all tokens seen, In×In row-major float64, full
// matrix; Add and Merge keep it exactly symmetric. Tokens is the number of
// rows of X summed into it. The zero value is an empty accumulator whose
// group and width are taken from the first Merge (as a Beam CombineFn's
// CreateAccumulator needs).
type Hessian struct {
	// Group is the input group, e.g. "model.layers.3.self_attn.qkv".
	Group string
	// In is the input width (the linear's in dimension).
	In int
	// Tokens is the number of calibration tokens accumulated.
	Tokens int64
	// Sum is XᵀX, In×In row-major float64.
	Sum []float64
}

// New returns an empty Hessian for an input group of width in. It panics when
// in <= 0.
func New(group string, in int) *Hessian {
	if in <= 0 {
		panic(fmt.Sprintf("hessian.New(%q): input width must be positive, got %d", group, in))
	}
	return &Hessian{Group: group, In: in, Sum: make([]float64, in*in)}
}

// Add accumulates XᵀX of x (tokens×In row-major float32) into h.Sum with
// be.AccumulateGram (float32 products in blocks of at most 256 tokens, summed
// in float64), or kernels.SetGram while h.Tokens is 0 (the same values, with
// h.Sum not read: a Hessian with no tokens must be all zero, as New makes
// it), and adds tokens to h.Tokens. The lower triangle is then set to
// the upper one so that Sum stays exactly symmetric whatever the backend's
// rounding.
//
// x is scanned first: a NaN or ±Inf returns an error wrapping ErrNonFinite
// that names the group, token and channel, and h is left unchanged. It panics
// when tokens < 0, len(x) != tokens*h.In, or h has no width (zero value).
func (h *Hessian) Add(be kernels.Backend, x []float32, tokens int) error {
	if h.In <= 0 {
		panic("hessian: Add on a Hessian without a width (use New)")
	}
	if tokens < 0 || len(x) != tokens*h.In {
		panic(fmt.Sprintf("hessian %s: Add: len(x) = %d, want tokens*in = %d*%d", h.Group, len(x), tokens, h.In))
	}
	for i, v := range x {
		if v-v != 0 { // NaN or ±Inf
			return fmt.Errorf("%w: hessian %s: input %v at token %d, channel %d", ErrNonFinite, h.Group, v, i/h.In, i%h.In)
		}
	}
	if tokens == 0 {
		return nil
	}
	if h.Tokens == 0 {
		// Sum is all zero while no token is in it (New; Add and Merge
		// keep it so): set it instead of adding, which spares a backend
		// with its own memory (kernels/cuda) the upload of h.
		kernels.SetGram(be, h.Sum, x, tokens, h.In)
	} else {
		be.AccumulateGram(h.Sum, x, tokens, h.In)
	}
	h.symmetrize()
	h.Tokens += int64(tokens)
	return nil
}

// symmetrize copies the upper triangle of Sum into the lower one, in tiles
// so that the strided writes stay in cache.
func (h *Hessian) symmetrize() {
	const tile = 64
	n := h.In
	for i0 := 0; i0 < n; i0 += tile {
		for j0 := i0; j0 < n; j0 += tile {
			for i := i0; i < min(i0+tile, n); i++ {
				for j := max(j0, i+1); j < min(j0+tile, n); j++ {
					h.Sum[j*n+i] = h.Sum[i*n+j]
				}
			}
		}
	}
}

// Merge adds o into h (Sum and Tokens). A zero-value h takes o's group and
// width (and a copy of its sum). It returns an error when the groups or widths
// differ; h is then unchanged.
//
// Exactness: Tokens add exactly. Each Sum entry is a float64 addition, which
// is commutative, so merging two partials gives bit-identical results in
// either order; merging three or more depends on the grouping only through
// float64 rounding (relative 1e-16 per addition). Callers that need
// bit-reproducible results merge in a fixed order (e.g. by shard index).
func (h *Hessian) Merge(o *Hessian) error {
	if h.In == 0 && h.Sum == nil {
		h.Group, h.In, h.Tokens = o.Group, o.In, o.Tokens
		h.Sum = append([]float64(nil), o.Sum...)
		return nil
	}
	if o.In == 0 && o.Sum == nil {
		return nil
	}
	if h.Group != o.Group {
		return fmt.Errorf("hessian: merge group %q into %q", o.Group, h.Group)
	}
	if h.In != o.In || len(o.Sum) != len(h.Sum) {
		return fmt.Errorf("hessian %s: merge width %d into width %d", h.Group, o.In, h.In)
	}
	for i, v := range o.Sum {
		h.Sum[i] += v
	}
	h.Tokens += o.Tokens
	return nil
}

// H returns the normalised Hessian Sum/Tokens (DESIGN.md §1: H = XᵀX / N_tok),
// a new In×In row-major float64 slice. It is all zeros when Tokens is 0.
func (h *Hessian) H() []float64 {
	out := make([]float64, len(h.Sum))
	if h.Tokens == 0 {
		return out
	}
	s := 1 / float64(h.Tokens)
	for i, v := range h.Sum {
		out[i] = v * s
	}
	return out
}

// ColumnNorms returns ‖X_j‖₂ = sqrt(Sum_jj) for each input channel j (length
// In, float64): the activation norms of Wanda's score |W_ij|·‖X_j‖₂ (Sun et
// al. 2023, "A Simple and Effective Pruning Approach for LLMs", eq. 1).
func (h *Hessian) ColumnNorms() []float64 {
	out := make([]float64, h.In)
	for j := range out {
		out[j] = math.Sqrt(max(h.Sum[j*h.In+j], 0))
	}
	return out
}

// Dead lists the input channels j with Sum_jj == 0 (no calibration token
// activated them), in increasing order.
func (h *Hessian) Dead() []int {
	var dead []int
	for j := range h.In {
		if h.Sum[j*h.In+j] == 0 {
			dead = append(dead, j)
		}
	}
	return dead
}

// Damp returns the damped normalised Hessian, a new In×In row-major float64
// slice: H = Sum/Tokens, then for every dead channel (H_jj == 0, see Dead)
// H_jj = 1, then H += λ·mean(diag H)·I. This is SparseGPT's rule (Frantar &
// Alistarh 2023, sparsegpt.py fasterprune: H[dead, dead] = 1 before the damp
// is computed, so dead channels count in the mean; λ = percdamp = 0.01 there).
// A dead channel has no off-diagonal terms, so its weights do not affect the
// objective through other channels; SparseGPT also zeroes W[:, dead], and the
// caller should do the same (they never affect the layer's output on the
// calibration data).
//
// It returns an error when λ is negative or not finite, Tokens is 0, Sum has a
// NaN or ±Inf (wrapping ErrNonFinite), or every channel is dead (all-zero
// Hessian); errors name the group.
func (h *Hessian) Damp(lambda float64) ([]float64, error) {
	if lambda < 0 || math.IsNaN(lambda) || math.IsInf(lambda, 0) {
		return nil, fmt.Errorf("hessian %s: damping must be a finite non-negative number, got %v", h.Group, lambda)
	}
	if h.Tokens <= 0 {
		return nil, fmt.Errorf("hessian %s: no calibration tokens", h.Group)
	}
	for i, v := range h.Sum {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%w: hessian %s: entry (%d, %d) is %v", ErrNonFinite, h.Group, i/h.In, i%h.In, v)
		}
	}
	out := h.H()
	n := h.In
	dead := 0
	mean := 0.0
	for j := range n {
		d := &out[j*n+j]
		if *d == 0 {
			*d = 1
			dead++
		}
		mean += *d
	}
	if dead == n {
		return nil, fmt.Errorf("hessian %s: all %d input channels are zero (all-zero Hessian)", h.Group, n)
	}
	mean /= float64(n)
	damp := lambda * mean
	for j := range n {
		out[j*n+j] += damp
	}
	return out, nil
}
