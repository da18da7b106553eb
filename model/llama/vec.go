package llama

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
// as HF's eager attention does after its float32 upcast. The bulk runs in
// AVX2 (8 lanes, so the sum is accumulated in a different order than a
// sequential loop); the tail and non-AVX2 machines use expf.
func softmaxRow(row []float32) {
	n8 := vecLen(len(row))
	mx := float32(math.Inf(-1))
	if n8 > 0 {
		mx = maxAVX2(row[:n8])
	}
	for _, x := range row[n8:] {
		if x > mx {
			mx = x
		}
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

// siluMul overwrites g with silu(g)·u elementwise, silu(x) = x/(1+exp(-x))
// in float32 as torch computes it (expf; AVX2 for the bulk, where inputs
// below -88.37 give x/(1+e^88.37) ≈ -0 instead of -0 exactly). It panics if
// len(u) < len(g).
func siluMul(g, u []float32) {
	u = u[:len(g)]
	n8 := vecLen(len(g))
	if n8 > 0 {
		siluMulAVX2(g[:n8], u[:n8])
	}
	for j := n8; j < len(g); j++ {
		x := g[j]
		g[j] = x / (1 + expf(-x)) * u[j]
	}
}
