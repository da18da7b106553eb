// Package vec holds the row kernels of the models' forward passes that are
// not matrix products: the attention softmax over one row of scores, the
// float32 exponential and tanh, and the gated activations SiLU·up
// (Llama, Mistral, Qwen2) and GELU-tanh·up (Gemma 2/3). Each family package
// (model/llama, model/opt, model/gemma) calls these functions instead of
// keeping its own copy.
//
// On amd64 with AVX2 and FMA the bulk of a slice (its length rounded down
// to a multiple of 8) runs in the Go assembly of vec_amd64.s and the tail
// in scalar Go; other machines run scalar Go throughout. Both evaluate the
// same float32 formulas (the AVX2 exponential rounds n to even instead of
// half away from zero and uses fused multiply-adds), so results agree with
// a float64 reference to about 1e-6 relative (see the tests).
//
// All functions work in place on caller-owned slices and do not allocate.
package vec

import "math"

// HasAVX2 reports whether the AVX2+FMA kernels are in use on this machine.
func HasAVX2() bool { return hasAVX2 }

// vecLen returns the prefix of an n-element slice that the AVX2 kernels
// process: n rounded down to a multiple of 8, or 0 without AVX2+FMA.
func vecLen(n int) int {
	if !hasAVX2 {
		return 0
	}
	return n &^ 7
}

// SoftmaxRow overwrites row (float32, any length; an empty row is left
// alone) with softmax(row)_i = exp(row_i − max(row)) / Σ_j exp(row_j −
// max(row)), in float32 as torch's softmax after transformers' eager
// attention upcasts the scores (transformers models/llama/modeling_llama.py
// eager_attention_forward; models/opt/modeling_opt.py). The bulk runs in
// AVX2, which accumulates the sum in 8 lanes (another order than a
// sequential loop); the tail and non-AVX2 machines use Expf. A row whose
// elements are all −Inf gives NaN, as torch does.
func SoftmaxRow(row []float32) {
	if len(row) == 0 {
		return
	}
	n8 := vecLen(len(row))
	mx := float32(math.Inf(-1))
	if n8 > 0 {
		mx = maxAVX2(row[:n8])
	}
	for _, x := range row[n8:] {
		mx = max(mx, x)
	}
	var sum float32
	if n8 > 0 {
		sum = expSubSumAVX2(row[:n8], mx)
	}
	for j := n8; j < len(row); j++ {
		e := Expf(row[j] - mx)
		row[j] = e
		sum += e
	}
	inv := 1 / sum
	if n8 > 0 {
		scaleAVX2(row[:n8], inv)
	}
	for j := n8; j < len(row); j++ {
		row[j] *= inv
	}
}

// SiLUMul overwrites g with silu(g)·u elementwise, silu(x) = x/(1+exp(−x))
// in float32 as torch computes it (transformers ACT2FN["silu"], the
// SwiGLU MLP of models/llama/modeling_llama.py: down(silu(gate)·up)). The
// AVX2 bulk clamps the exponent at 88.37, so inputs below −88.37 give
// x/(1+e^88.37) ≈ −0 instead of −0 exactly. It panics if len(u) < len(g).
func SiLUMul(g, u []float32) {
	if len(u) < len(g) {
		panic("vec: SiLUMul: len(u) < len(g)")
	}
	u = u[:len(g)]
	n8 := vecLen(len(g))
	if n8 > 0 {
		siluMulAVX2(g[:n8], u[:n8])
	}
	for j := n8; j < len(g); j++ {
		x := g[j]
		g[j] = x / (1 + Expf(-x)) * u[j]
	}
}

// Constants of gelu_tanh(x) = x / (1 + exp(x·(geluC1 + geluC2·x²))).
const (
	geluC1 = -2 * 0.7978845608028654            // −2·sqrt(2/π)
	geluC2 = -2 * 0.7978845608028654 * 0.044715 // −2·sqrt(2/π)·0.044715
)

// GELUTanhMul overwrites g with gelu_tanh(g)·u elementwise, where
// gelu_tanh(x) = 0.5·x·(1 + tanh(v)), v = sqrt(2/π)·(x + 0.044715·x³)
// (torch's gelu(approximate="tanh"), transformers
// ACT2FN["gelu_pytorch_tanh"], the GeGLU MLP of models/gemma2). It is
// evaluated in float32 as the equal x / (1 + e^{−2v}) (0.5·(1 + tanh v) is
// the logistic function of 2v) with Expf; the AVX2 bulk clamps the
// exponent at 88.37, so very negative x give a tiny negative value instead
// of −0. It panics if len(u) < len(g).
func GELUTanhMul(g, u []float32) {
	if len(u) < len(g) {
		panic("vec: GELUTanhMul: len(u) < len(g)")
	}
	u = u[:len(g)]
	n8 := vecLen(len(g))
	if n8 > 0 {
		geluMulAVX2(g[:n8], u[:n8])
	}
	for j := n8; j < len(g); j++ {
		x := g[j]
		g[j] = x / (1 + Expf(x*(geluC1+geluC2*x*x))) * u[j]
	}
}
