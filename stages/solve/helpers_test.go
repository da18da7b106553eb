package solve

import (
	"math"
	"math/rand/v2"
	"sort"
)

// scaleDist names the distribution of the per-channel activation scales.
type scaleDist int

const (
	logNormal scaleDist = iota // exp(N(0, 1.5²)): broad, LLM-like spread
	pareto                     // Pareto(α = 1.2): a few huge outlier channels
)

// genHessian returns the un-normalised H = XᵀX ([in, in] float64) of
// synthetic activations X [tokens, in]: a shared low-rank component (rank
// in/16) plus noise, times heavy-tailed per-channel scales, like the outlier
// channels of LLM activations. tokens < in makes H singular (only damping
// makes it definite). It also returns ‖X_j‖₂ per channel for Wanda scores.
func genHessian(rng *rand.Rand, in, tokens int, dist scaleDist) (h []float64, colNorm []float64) {
	scale := make([]float64, in)
	for j := range scale {
		switch dist {
		case logNormal:
			scale[j] = math.Exp(1.5 * rng.NormFloat64())
		case pareto:
			scale[j] = math.Pow(1-rng.Float64(), -1/1.2)
		}
	}
	rank := max(1, in/16)
	load := make([]float64, rank*in)
	for i := range load {
		load[i] = rng.NormFloat64()
	}
	x := make([]float64, tokens*in)
	f := make([]float64, rank)
	for t := range tokens {
		for r := range f {
			f[r] = rng.NormFloat64()
		}
		for j := range in {
			v := 0.5 * rng.NormFloat64()
			for r := range rank {
				v += f[r] * load[r*in+j] / math.Sqrt(float64(rank))
			}
			x[t*in+j] = v * scale[j]
		}
	}
	h = make([]float64, in*in)
	for t := range tokens {
		row := x[t*in : t*in+in]
		for i, a := range row {
			hr := h[i*in : i*in+in]
			for j, b := range row {
				hr[j] += a * b
			}
		}
	}
	colNorm = make([]float64, in)
	for j := range in {
		colNorm[j] = math.Sqrt(h[j*in+j])
	}
	return h, colNorm
}

// genWeights returns [rows, in] float32 weights, N(0, 0.02²) with 1% of
// entries ten times larger.
func genWeights(rng *rand.Rand, rows, in int) []float32 {
	w := make([]float32, rows*in)
	for i := range w {
		v := 0.02 * rng.NormFloat64()
		if rng.IntN(100) == 0 {
			v *= 10
		}
		w[i] = float32(v)
	}
	return w
}

// maskKind is a sparsity pattern.
type maskKind int

const (
	unstructured50 maskKind = iota // 50% per row by Wanda score
	nm24                           // 2:4 by Wanda score
	random50                       // 50% per row at random
)

// genMask prunes by the Wanda score |W_ij|·‖X_j‖ (lowest first) within each
// row: half of each row, or 2 of every 4 consecutive inputs; random50 ignores
// the score. Returns [rows, in] with true = pruned.
func genMask(rng *rand.Rand, w []float32, colNorm []float64, rows, in int, kind maskKind) []bool {
	pruned := make([]bool, rows*in)
	idx := make([]int, in)
	for i := range rows {
		score := func(j int) float64 { return math.Abs(float64(w[i*in+j])) * colNorm[j] }
		switch kind {
		case unstructured50, random50:
			for j := range idx {
				idx[j] = j
			}
			if kind == random50 {
				rng.Shuffle(in, func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
			} else {
				sort.SliceStable(idx, func(a, b int) bool { return score(idx[a]) < score(idx[b]) })
			}
			for _, j := range idx[:in/2] {
				pruned[i*in+j] = true
			}
		case nm24:
			for g := 0; g+4 <= in; g += 4 {
				grp := []int{g, g + 1, g + 2, g + 3}
				sort.SliceStable(grp, func(a, b int) bool { return score(grp[a]) < score(grp[b]) })
				pruned[i*in+grp[0]] = true
				pruned[i*in+grp[1]] = true
			}
		}
	}
	return pruned
}

// damped returns h + lam·mean(diag h)·I.
func damped(h []float64, in int, lam float64) []float64 {
	hd := append([]float64(nil), h...)
	m := meanDiag(h, in)
	for j := range in {
		hd[j*in+j] += lam * m
	}
	return hd
}

// maskedCopy returns w with the pruned entries zeroed.
func maskedCopy(w []float32, pruned []bool) []float32 {
	out := append([]float32(nil), w...)
	for i, p := range pruned {
		if p {
			out[i] = 0
		}
	}
	return out
}
