package gemma

import "math"

// vecLen returns the prefix of an n-element slice that the AVX2 kernels
// process: n rounded down to a multiple of 8, or 0 without AVX2+FMA.
func vecLen(n int) int {
	if !hasAVX2 {
		return 0
	}
	return n &^ 7
}

// softmaxRow overwrites row (float32, at least one element) with
// softmax(row) = exp(row - max(row)) / Σ exp(row - max(row)), in float32
// as transformers' eager attention does after its float32 upcast. The bulk
// runs in AVX2 (8 lanes, so the sum is accumulated in another order than a
// sequential loop); the tail and non-AVX2 machines use expf.
func softmaxRow(row []float32) {
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
		e := expf(row[j] - mx)
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

// Constants of gelu_tanh(x) = x / (1 + exp(x·(geluC1 + geluC2·x²))).
const (
	geluC1 = -2 * 0.7978845608028654            // -2·sqrt(2/π)
	geluC2 = -2 * 0.7978845608028654 * 0.044715 // -2·sqrt(2/π)·0.044715
)

// geluMul overwrites g with gelu_tanh(g)·u elementwise, where gelu_tanh(x)
// = 0.5·x·(1 + tanh(u)), u = sqrt(2/π)·(x + 0.044715·x³) (torch's
// gelu(approximate="tanh"), ACT2FN["gelu_pytorch_tanh"]). It is evaluated
// in float32 as the equal x / (1 + e^{-2u}) (0.5·(1 + tanh u) is the
// logistic function of 2u) with expf; AVX2 for the bulk, where the
// exponent is clamped at 88.37, so very negative x give a tiny negative
// value instead of -0. It panics if len(u) < len(g).
func geluMul(g, u []float32) {
	u = u[:len(g)]
	n8 := vecLen(len(g))
	if n8 > 0 {
		geluMulAVX2(g[:n8], u[:n8])
	}
	for j := n8; j < len(g); j++ {
		x := g[j]
		g[j] = x / (1 + expf(x*(geluC1+geluC2*x*x))) * u[j]
	}
}
