package update

import (
	"fmt"
	"math"
	"slices"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/stages/mask"
	"github.com/optima-llm/optima/stages/quant"
)

// Options configure the selectors of this package. Zero fields take the
// defaults of DefaultOptions for the selector.
type Options struct {
	// BlockSize is the number of columns per block (SparseGPT, Thanos);
	// default 128. For N:M it must be a multiple of M.
	BlockSize int `json:"block_size,omitempty"`
	// Damping is the relative damping λ: H + λ·mean(diag H)·I. Defaults:
	// 0.01 (SparseGPT, Thanos: percdamp in their reference code), 0.1 (ADMM:
	// percdamp in its reference code, applied to the normalised Hessian).
	Damping float64 `json:"damping,omitempty"`
	// Iters is the number of ADMM iterations (default 20) and PruneIters
	// the first iterations that re-select the mask on the cubic schedule
	// (default 15, at most Iters).
	Iters      int `json:"iters,omitempty"`
	PruneIters int `json:"prune_iters,omitempty"`
	// Rho is ADMM's penalty ρ on the normalised problem (default 1).
	Rho float64 `json:"rho,omitempty"`
	// Quant, when not nil, makes SparseGPT quantize inside its sweep
	// (SparseGPT's joint sparsification and quantization, see SparseGPT);
	// only Bits, GroupSize and ScaleImportant are read. Thanos and ADMM
	// ignore it.
	Quant *quant.Options `json:"quant,omitempty"`
}

// Result is what a selector reports about one layer.
type Result struct {
	// Damping is the relative damping λ actually used (the configured one
	// unless the Hessian needed more to be positive definite).
	Damping float64
	// Quantized holds the codes and steps of SparseGPT's joint sweep
	// (Options.Quant); nil otherwise.
	Quantized *quant.Quantized
}

func checkShapes(name string, w []float64, rows, cols int, h []float64, p mask.Pattern, pruned []bool) {
	if rows <= 0 || cols <= 0 || len(w) != rows*cols {
		panic(fmt.Sprintf("update.%s: len(w) = %d, want rows×cols = %d×%d", name, len(w), rows, cols))
	}
	if len(h) != cols*cols {
		panic(fmt.Sprintf("update.%s: len(h) = %d, want %d×%d", name, len(h), cols, cols))
	}
	if len(pruned) != rows*cols {
		panic(fmt.Sprintf("update.%s: len(pruned) = %d, want %d", name, len(pruned), rows*cols))
	}
	if err := p.Check(cols); err != nil {
		panic(fmt.Sprintf("update.%s: %v", name, err))
	}
}

// blockPrunedCount is int(numel·sparsity), as the reference codes compute it
// in Python (float product truncated toward zero).
func blockPrunedCount(numel int, sparsity float64) int {
	return int(float64(numel) * sparsity)
}

// SparseGPT prunes w ([rows, cols] row-major float64, overwritten with the
// updated weights, pruned entries exactly 0) with SparseGPT's algorithm and
// writes the mask into pruned ([rows, cols], true = pruned). h is the
// undamped Hessian ([cols, cols], both triangles, any positive scale), not
// modified.
//
// Following the reference fasterprune: dead channels (H_jj = 0) get H_jj = 1
// and W[:, j] = 0; H_d = H + λ·mean(diag H)·I; U is the upper Cholesky factor
// of H_d⁻¹ (H_d⁻¹ = UᵀU). Columns are processed in blocks of BlockSize.
// Unstructured: at the start of each block, scores s_ij = w_ij²/U_jj² over
// the whole block of all rows (weights as updated by the earlier blocks);
// with t the k-th smallest score (0-based k = int(rows·count·Sparsity)), every
// weight with s_ij ≤ t is pruned: the reference prunes k+1 weights per block
// (more on ties). One deviation: Sparsity 0 prunes nothing (the reference
// would still prune the smallest score of each block). N:M: at the first
// column of each group of M, the M−N smallest scores of the group (on the
// weights as updated so far inside the block) are pruned, ties to the lower
// column. Then for each column i of the block, with q_i = 0 if pruned else
// w_i, err = (w_i − q_i)/U_ii, the row's block columns j ≥ i get
// w_j −= err·U_ij, and after the block the trailing columns get
// W[:, i2:] −= Err·U[i1:i2, i2:].
//
// Joint quantization (o.Quant not nil; SparseGPT paper §3.5, the reference
// fasterprune with a quantizer): q_i is additionally rounded to the grid,
// q_i = Code(w_i, step)·step, before err is formed, so the error of
// quantization is compensated by later columns like that of pruning, and
// later masks are chosen on weights that already absorbed it. Pruned
// weights have code 0 and stay exactly 0. The grid is symmetric AbsMax with
// Bits-bit codes: per tensor (GroupSize 0), step = max|W|/(2^(Bits−1)−1)
// over the weights as given, before the sweep and before dead columns are
// zeroed (the reference's find_params(W) before its loop; the mask is not
// known yet, so unlike quant.GPTQQuantize on a fixed mask it includes the
// weights the sweep will prune); per group (1×GroupSize along the input),
// at the group's first column the step is max|w_ij| over the row's group
// columns as they stand then, compensated by every earlier column and not
// yet masked (GPTQ's groupsize rule: find_params(W[:, i:i+groupsize]) at
// each group start). Steps are rounded to float32 (quant.Quantized.Steps).
// With ScaleImportant the columns quant.ImportantColumns picks (on w as
// given and diag h) use half their step. GroupSize must divide cols, and
// GroupSize and BlockSize must divide one another (so that a group's columns
// are fully compensated at its start); violations panic (ParseOptions
// reports them as errors). The codes and steps are returned in
// Result.Quantized; w then holds Code·step exactly (in float64).
//
// It returns the damping used, or a *NotPositiveDefiniteError. It panics on
// mismatched shapes or a BlockSize that is not a multiple of M for N:M.
func SparseGPT(be kernels.Backend, w []float64, rows, cols int, h []float64, p mask.Pattern, o Options, pruned []bool) (Result, error) {
	checkShapes("SparseGPT", w, rows, cols, h, p, pruned)
	bs := o.BlockSize
	if bs <= 0 {
		bs = 128
	}
	if p.IsNM() && bs%p.M != 0 {
		panic(fmt.Sprintf("update.SparseGPT: block size %d is not a multiple of M = %d", bs, p.M))
	}
	jq := newJointQuant(w, rows, cols, h, bs, o.Quant)
	hh, dead := deadFix(h, cols)
	for _, j := range dead {
		for r := range rows {
			w[r*cols+j] = 0
		}
	}
	var u []float64
	_, lambda, err := dampedInverse(be, hh, cols, o.Damping, func(inv []float64) bool {
		var ok bool
		u, ok = upperCholesky(be, inv, cols)
		return ok
	})
	if err != nil {
		return Result{Damping: lambda}, err
	}
	clear(pruned)
	scores := make([]float64, 0, rows*bs)
	for i1 := 0; i1 < cols; i1 += bs {
		i2 := min(i1+bs, cols)
		count := i2 - i1
		if !p.IsNM() && p.Sparsity > 0 {
			scores = scores[:0]
			for r := range rows {
				for j := i1; j < i2; j++ {
					d := u[j*cols+j]
					v := w[r*cols+j]
					scores = append(scores, v*v/(d*d))
				}
			}
			sorted := slices.Clone(scores)
			k := min(blockPrunedCount(len(sorted), p.Sparsity), len(sorted)-1)
			t := kthSmallest(sorted, k)
			for r := range rows {
				for j := range count {
					if scores[r*count+j] <= t {
						pruned[r*cols+i1+j] = true
					}
				}
			}
		}
		errs := make([]float64, rows*count)
		parallelRows(rows, func(r int) {
			row := w[r*cols : (r+1)*cols]
			pr := pruned[r*cols : (r+1)*cols]
			er := errs[r*count : (r+1)*count]
			var idx []int
			if p.IsNM() {
				idx = make([]int, p.M)
			}
			for i := range count {
				c := i1 + i
				if p.IsNM() && i%p.M == 0 {
					nmSmallest(idx, c, p, func(j int) float64 {
						d := u[j*cols+j]
						return row[j] * row[j] / (d * d)
					}, pr)
				}
				if jq != nil && jq.group > 0 && c%jq.group == 0 {
					jq.groupStep(r, c, row)
				}
				d := u[c*cols+c]
				q := row[c]
				if pr[c] {
					q = 0
				} else if jq != nil {
					q = jq.round(r, c, q)
				}
				e := (row[c] - q) / d
				if e != 0 {
					urow := u[c*cols:]
					for j := c; j < i2; j++ {
						row[j] -= e * urow[j]
					}
				}
				row[c] = q
				er[i] = e
			}
		})
		// Lazy batch update of the trailing columns: W[:, i2:] −= Err·U[i1:i2, i2:].
		if i2 < cols {
			be.Dgemm(false, false, rows, cols-i2, count, -1, errs, count, u[i1*cols+i2:], cols, 1, w[i2:], cols)
		}
	}
	res := Result{Damping: lambda}
	if jq != nil {
		res.Quantized = jq.q
	}
	return res, nil
}

// jointQuant is the grid of SparseGPT's joint sweep.
type jointQuant struct {
	q     *quant.Quantized
	cols  int
	group int // 0: one step per tensor
	bits  int
	half  []bool // important columns, at half step
}

// newJointQuant sets up the grid for o (nil: no quantization) on the weights
// w as given: the per-tensor step, the important columns. It panics on
// options that do not fit the layer (see SparseGPT).
func newJointQuant(w []float64, rows, cols int, h []float64, bs int, o *quant.Options) *jointQuant {
	if o == nil {
		return nil
	}
	g := o.GroupSize
	if g < 0 || o.Bits < 2 || o.Bits > 8 || (g > 0 && (cols%g != 0 || (bs%g != 0 && g%bs != 0))) {
		panic(fmt.Sprintf("update.SparseGPT: joint quantization with %d bits, group size %d does not fit %d columns in blocks of %d", o.Bits, g, cols, bs))
	}
	w32 := make([]float32, len(w))
	for k, v := range w {
		w32[k] = float32(v)
	}
	var imp []int
	if o.ScaleImportant {
		diag := make([]float64, cols)
		for j := range diag {
			diag[j] = h[j*cols+j]
		}
		imp = quant.ImportantColumns(w32, rows, cols, diag)
	}
	// Encode on all-zero weights gives the layout: codes 0, steps 0.
	q, err := quant.Encode(make([]float32, rows*cols), rows, cols, quant.Options{Bits: o.Bits, Method: quant.GPTQ, GroupSize: g, ScaleImportant: o.ScaleImportant}, imp)
	if err != nil {
		panic(fmt.Sprintf("update.SparseGPT: joint quantization: %v", err))
	}
	jq := &jointQuant{q: q, cols: cols, group: g, bits: o.Bits, half: make([]bool, cols)}
	for _, j := range q.Important {
		jq.half[j] = true
	}
	if g == 0 {
		m := 0.0
		for _, v := range w {
			m = max(m, math.Abs(v))
		}
		q.Steps[0] = float32(m / float64(quant.MaxCode(o.Bits)))
	}
	return jq
}

// groupStep sets the step of row r's group starting at column c from the
// row's current (compensated) weights.
func (jq *jointQuant) groupStep(r, c int, row []float64) {
	m := 0.0
	for _, v := range row[c : c+jq.group] {
		m = max(m, math.Abs(v))
	}
	jq.q.Steps[(r*jq.cols+c)/jq.group] = float32(m / float64(quant.MaxCode(jq.bits)))
}

// round quantizes x, weight (r, c), records its code and returns Code·step.
// Rows write disjoint codes and steps, so rows may run in parallel.
func (jq *jointQuant) round(r, c int, x float64) float64 {
	s := jq.q.Step(r, c)
	k := quant.Code(x, s, jq.bits)
	jq.q.Codes[r*jq.cols+c] = k
	return float64(k) * s
}

// nmSmallest marks as pruned the M−N columns of the group starting at base
// with the smallest score(j), ties to the lower column (idx is scratch of
// length M).
func nmSmallest(idx []int, base int, p mask.Pattern, score func(j int) float64, pr []bool) {
	s := make([]float64, p.M)
	for j := range idx {
		idx[j] = base + j
		s[j] = score(base + j)
	}
	// insertion sort by (score, column)
	for a := 1; a < p.M; a++ {
		for b := a; b > 0 && (s[idx[b]-base] < s[idx[b-1]-base]); b-- {
			idx[b-1], idx[b] = idx[b], idx[b-1]
		}
	}
	for _, j := range idx[:p.M-p.N] {
		pr[j] = true
	}
}
