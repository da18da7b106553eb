// Package quant quantizes linear-layer weights after pruning: symmetric
// AbsMax with one scale per tensor, SLiM-Quant (one per-tensor cap chosen to
// minimise the expected quantization error of the weight distribution),
// group ("tiled") AbsMax with one scale per row and group of input columns,
// and GPTQ/OPTQ, which quantizes column by column and compensates each
// column's error on the columns after it through the inverse Hessian.
//
// Every method keeps pruned weights exactly zero: a zero weight has code 0.
//
// Sources: SLiM (Mozaffari et al., "SLiM: One-shot Quantized Sparse Plus
// Low-rank Approximation of LLMs", 2025) and its code (quantization.py:
// Quantizer.quantize_weight, find_optimal_quantiztion_cap); GPTQ (Frantar et
// al., "OPTQ: Accurate Quantization for Generative Pre-trained Transformers",
// ICLR 2023), as SparseGPT's fasterprune runs it jointly with a mask.
package quant

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"
)

// Method names a quantizer.
type Method string

// The quantizers.
const (
	// AbsMax scales by the largest magnitude: step = max|w| / (2^(b−1)−1).
	AbsMax Method = "absmax"
	// SLiM scales by the SLiM-Quant cap α: step = α / (2^(b−1)−1), values
	// beyond ±α clip.
	SLiM Method = "slim"
	// GPTQ quantizes on AbsMax's grid, column by column with OBS error
	// compensation through the layer Hessian.
	GPTQ Method = "gptq"
)

// ErrOptions is wrapped by every error about bad quantization options.
var ErrOptions = errors.New("quant: bad options")

// Options configures weight quantization.
type Options struct {
	// Bits is the signed integer width, 2 to 8: codes lie in
	// [−2^(b−1), 2^(b−1)−1].
	Bits int `json:"bits"`
	// Method is absmax, slim or gptq.
	Method Method `json:"method"`
	// GroupSize, when > 0, gives each row's run of GroupSize consecutive
	// input columns its own AbsMax scale (SLiM's "weight tiled
	// quantization" with column-wise grouping, tiles of 1×GroupSize). 0 is
	// one scale for the whole tensor.
	GroupSize int `json:"group_size,omitempty"`
	// ScaleImportant quantizes the important input columns (see
	// ImportantColumns) with half the step of their group, as SLiM's
	// scale_important_weights does; they clip at half the range.
	ScaleImportant bool `json:"scale_important_weights,omitempty"`
}

// Validate checks the options alone; errors wrap ErrOptions and name the
// option as the CLI spells it.
func (o Options) Validate() error {
	if o.Bits < 2 || o.Bits > 8 {
		return fmt.Errorf("%w: --bits %d is outside 2..8", ErrOptions, o.Bits)
	}
	switch o.Method {
	case AbsMax, GPTQ:
	case SLiM:
		if o.GroupSize > 0 {
			return fmt.Errorf("%w: --quant slim chooses one cap per tensor; it does not combine with --group-size %d (use --quant absmax or gptq for groups)", ErrOptions, o.GroupSize)
		}
	default:
		return fmt.Errorf("%w: --quant %q is not one of absmax, slim, gptq", ErrOptions, o.Method)
	}
	if o.GroupSize < 0 {
		return fmt.Errorf("%w: --group-size %d is negative", ErrOptions, o.GroupSize)
	}
	return nil
}

// CheckShape reports whether a [rows, cols] weight named layer can be
// quantized with o: the group size must divide cols.
func (o Options) CheckShape(layer string, rows, cols int) error {
	if o.GroupSize > 0 && cols%o.GroupSize != 0 {
		return fmt.Errorf("%w: --group-size %d does not divide the %d input columns of %s", ErrOptions, o.GroupSize, cols, layer)
	}
	return nil
}

// MaxCode is 2^(bits−1)−1, the largest positive code.
func MaxCode(bits int) int { return 1<<(bits-1) - 1 }

// Quantized is a quantized [Rows, Cols] weight: w ≈ Codes·Step, per group.
type Quantized struct {
	Rows, Cols, Bits int
	// GroupSize is the number of consecutive columns of a row that share a
	// step; it equals Cols·Rows (one group) for a per-tensor scale.
	GroupSize int
	// Codes are the integer codes, [Rows, Cols] row-major.
	Codes []int8
	// Steps is the step of each group in row-major group order: len 1 for a
	// per-tensor scale, Rows·Cols/GroupSize otherwise. A group whose
	// weights are all zero has step 0.
	Steps []float32
	// Important lists, sorted, the columns quantized with half their
	// group's step.
	Important []int
}

// Step is the step that applies to weight (i, j).
func (q *Quantized) Step(i, j int) float64 {
	s := float64(q.Steps[0])
	if len(q.Steps) > 1 {
		s = float64(q.Steps[(i*q.Cols+j)/q.GroupSize])
	}
	if q.Important != nil {
		if _, ok := slices.BinarySearch(q.Important, j); ok {
			s /= 2
		}
	}
	return s
}

// Dequantize writes Codes·Step into dst ([Rows, Cols] float32). It panics on
// a wrong length.
func (q *Quantized) Dequantize(dst []float32) {
	if len(dst) != q.Rows*q.Cols {
		panic(fmt.Sprintf("quant.Dequantize: len(dst) = %d, want %d×%d", len(dst), q.Rows, q.Cols))
	}
	for i := 0; i < q.Rows; i++ {
		for j := 0; j < q.Cols; j++ {
			dst[i*q.Cols+j] = float32(float64(q.Codes[i*q.Cols+j]) * q.Step(i, j))
		}
	}
}

// Bytes is the storage of the quantized weight: Bits per code, packed, plus
// one float16 per step, in bytes (rounded up).
func (q *Quantized) Bytes() int64 {
	return (int64(q.Rows)*int64(q.Cols)*int64(q.Bits)+7)/8 + 2*int64(len(q.Steps))
}

// Code is the code of x on a grid of the given step for bits-bit signed
// codes: x/step rounded to the nearest integer (ties to even, as
// torch.round) and clamped to [−2^(bits−1), 2^(bits−1)−1]; 0 for a zero
// step. The dequantized value is float64(Code(...))·step.
func Code(x, step float64, bits int) int8 { return code(x, step, MaxCode(bits)) }

// code rounds x/step to the nearest integer (ties to even, as torch.round)
// and clamps it to [−maxq−1, maxq]. A zero step gives 0.
func code(x, step float64, maxq int) int8 {
	if step == 0 {
		return 0
	}
	c := math.RoundToEven(x / step)
	c = max(c, float64(-maxq-1))
	c = min(c, float64(maxq))
	return int8(c)
}

// Quantize quantizes w ([rows, cols] float32, row-major) with AbsMax or SLiM
// per tensor, or AbsMax per group, leaving w unchanged. important are the
// columns to quantize at half step when o.ScaleImportant is set (see
// ImportantColumns); it is ignored otherwise. The cap and steps are computed
// on w as given, so zeros of a pruned w stay zero. GPTQ needs a Hessian: use
// GPTQQuantize. Errors wrap ErrOptions; a non-finite weight is an error.
func Quantize(w []float32, rows, cols int, o Options, important []int) (*Quantized, error) {
	if len(w) != rows*cols {
		panic(fmt.Sprintf("quant.Quantize: len(w) = %d, want %d×%d", len(w), rows, cols))
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Method == GPTQ {
		return nil, fmt.Errorf("%w: gptq needs the layer Hessian; call GPTQQuantize", ErrOptions)
	}
	if err := o.CheckShape("the weight", rows, cols); err != nil {
		return nil, err
	}
	for k, v := range w {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("quant: weight (%d, %d) is %v", k/cols, k%cols, v)
		}
	}
	q := newQuantized(rows, cols, o, important)
	maxq := MaxCode(o.Bits)
	switch {
	case o.GroupSize > 0:
		for g := range q.Steps {
			q.Steps[g] = float32(absMax(w[g*o.GroupSize:(g+1)*o.GroupSize]) / float64(maxq))
		}
	case o.Method == SLiM:
		q.Steps[0] = float32(SLiMCap(w, o.Bits) / float64(maxq))
	default:
		q.Steps[0] = float32(absMax(w) / float64(maxq))
	}
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			q.Codes[i*cols+j] = code(float64(w[i*cols+j]), q.Step(i, j), maxq)
		}
	}
	return q, nil
}

func newQuantized(rows, cols int, o Options, important []int) *Quantized {
	q := &Quantized{Rows: rows, Cols: cols, Bits: o.Bits, GroupSize: rows * cols, Codes: make([]int8, rows*cols)}
	if o.GroupSize > 0 {
		q.GroupSize = o.GroupSize
	}
	q.Steps = make([]float32, rows*cols/max(q.GroupSize, 1))
	if len(q.Steps) == 0 {
		q.Steps = make([]float32, 1)
	}
	if o.ScaleImportant && len(important) > 0 {
		q.Important = slices.Clone(important)
		slices.Sort(q.Important)
		q.Important = slices.Compact(q.Important)
		for _, j := range q.Important {
			if j < 0 || j >= cols {
				panic(fmt.Sprintf("quant: important column %d outside [0, %d)", j, cols))
			}
		}
	}
	return q
}

func absMax(w []float32) float64 {
	m := 0.0
	for _, v := range w {
		m = max(m, math.Abs(float64(v)))
	}
	return m
}

// ImportantColumns returns the top 1% (rounded down) of input columns by
// colNorms[j]·Σ_i |w_ij|, where colNorms are the squared input norms
// ‖X_j‖²/N (Wanda's scaler_row), as SLiM's scale_important_weights picks
// them. Ties keep the lower index. w is [rows, cols].
func ImportantColumns(w []float32, rows, cols int, colNorms []float64) []int {
	if len(w) != rows*cols || len(colNorms) != cols {
		panic(fmt.Sprintf("quant.ImportantColumns: len(w) = %d, len(colNorms) = %d for %d×%d", len(w), len(colNorms), rows, cols))
	}
	k := int(0.01 * float64(cols))
	if k == 0 {
		return nil
	}
	metric := make([]float64, cols)
	for i := 0; i < rows; i++ {
		for j, v := range w[i*cols : (i+1)*cols] {
			metric[j] += math.Abs(float64(v))
		}
	}
	idx := make([]int, cols)
	for j := range idx {
		idx[j] = j
		metric[j] *= colNorms[j]
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case metric[a] > metric[b]:
			return -1
		case metric[a] < metric[b]:
			return 1
		}
		return 0
	})
	out := slices.Clone(idx[:k])
	slices.Sort(out)
	return out
}

// SLiMCap is SLiM-Quant's clipping cap α for bits-bit symmetric
// quantization of w: the |w| histogram (bins = max(512, min(numel/1000,
// 20000)), density-normalised, bin centres v) gives the expected error
//
//	E(α) = Σ_{v<α} p(v)·(v − ⌊v/δ⌋δ)²·dv + Σ_{v≥α} p(v)·(v − α)²·dv,  δ = α/2^bits,
//
// which is minimised over α = v_k by a coarse pass over every tenth of the
// bins and a fine pass between the coarse minimum's neighbours, as
// find_optimal_quantiztion_cap (integrate=True) does. The result is the
// bin centre of the minimum; 0 for an all-zero w.
//
// One deliberate difference: when the coarse pass has only 10 points (bin
// counts like 1000 or 20000, where 10·(bins/10) = bins), the reference
// reads an unset 11th point as bin 0 and, if the minimum is the 10th point,
// searches an empty range and returns the first bin's centre, clipping
// nearly every weight. Here the fine pass then ends at the last coarse point.
func SLiMCap(w []float32, bits int) float64 {
	n := len(w)
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range w {
		a := math.Abs(float64(v))
		lo, hi = min(lo, a), max(hi, a)
	}
	if n == 0 || hi == 0 {
		return 0
	}
	nb := max(512, min(n/1000, 20000))
	count := make([]float64, nb)
	width := (hi - lo) / float64(nb)
	if width == 0 {
		return hi
	}
	for _, v := range w {
		b := int((math.Abs(float64(v)) - lo) / width)
		count[min(max(b, 0), nb-1)]++
	}
	pdf := make([]float64, nb)
	val := make([]float64, nb)
	for b := range pdf {
		pdf[b] = count[b] / (float64(n) * width)
		val[b] = lo + (float64(b)+0.5)*width
	}
	dx := width
	loss := func(index int) float64 {
		alpha := val[index]
		step := alpha / float64(int(1)<<bits)
		var ql, cl float64
		for b := 0; b < index; b++ {
			d := val[b] - math.Floor(val[b]/step)*step
			ql += pdf[b] * d * d
		}
		for b := index; b < nb; b++ {
			d := val[b] - alpha
			cl += pdf[b] * d * d
		}
		return ql*dx + cl*dx
	}
	var indices []int
	var losses []float64
	for i := 0; i < nb && len(indices) < 11; i += nb / 10 {
		indices = append(indices, i)
		losses = append(losses, loss(i))
	}
	tp := argmin(losses)
	start := indices[max(tp-1, 0)]
	end := indices[min(tp+1, len(indices)-1)]
	best, bestLoss := 0, math.Inf(1)
	for i := start; i < end; i++ {
		if l := loss(i); l < bestLoss {
			best, bestLoss = i, l
		}
	}
	return val[best]
}

func argmin(x []float64) int {
	k := 0
	for i, v := range x {
		if v < x[k] {
			k = i
		}
	}
	return k
}

// GPTQQuantize quantizes w ([rows, cols] float32) on AbsMax's grid (per
// tensor, or per group of o.GroupSize columns) column by column, in place:
// column j is rounded (pruned entries, pruned[i·cols+j] true, are set to 0)
// and its error e_i = (w_ij − q_ij)/U_jj is subtracted from the later
// columns as w_ik −= e_i·U_jk, where U is the upper Cholesky factor of the
// inverse of the damped Hessian h ([cols, cols] float64, symmetric positive
// definite), as GPTQ (Frantar et al. 2023, Algorithm 1) and SparseGPT's
// joint mode do. The per-tensor step comes from the masked w before the
// sweep; a group's step comes from its columns when the sweep reaches the
// group, after the earlier columns' compensation (GPTQ's groupsize rule).
// pruned may be nil. On return w holds the dequantized weights; the codes
// and steps are returned. A non-positive-definite h is an error.
func GPTQQuantize(w []float32, rows, cols int, h []float64, pruned []bool, o Options, important []int) (*Quantized, error) {
	if len(w) != rows*cols || len(h) != cols*cols || (pruned != nil && len(pruned) != rows*cols) {
		panic(fmt.Sprintf("quant.GPTQQuantize: len(w) = %d, len(h) = %d, len(pruned) = %d for %d×%d", len(w), len(h), len(pruned), rows, cols))
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if err := o.CheckShape("the weight", rows, cols); err != nil {
		return nil, err
	}
	u, err := InverseCholeskyUpper(h, cols)
	if err != nil {
		return nil, err
	}
	q := newQuantized(rows, cols, o, important)
	maxq := MaxCode(o.Bits)
	// Work in float64, one row at a time: rows are independent.
	row := make([]float64, cols)
	if o.GroupSize == 0 {
		m := 0.0
		for k, v := range w {
			if pruned == nil || !pruned[k] {
				m = max(m, math.Abs(float64(v)))
			}
		}
		q.Steps[0] = float32(m / float64(maxq))
	}
	for i := 0; i < rows; i++ {
		for j := range row {
			row[j] = float64(w[i*cols+j])
		}
		for j := 0; j < cols; j++ {
			if o.GroupSize > 0 && j%o.GroupSize == 0 {
				m := 0.0
				for k := j; k < j+o.GroupSize; k++ {
					if pruned == nil || !pruned[i*cols+k] {
						m = max(m, math.Abs(row[k]))
					}
				}
				q.Steps[(i*cols+j)/o.GroupSize] = float32(m / float64(maxq))
			}
			var dq float64
			if pruned == nil || !pruned[i*cols+j] {
				s := q.Step(i, j)
				c := code(row[j], s, maxq)
				q.Codes[i*cols+j] = c
				dq = float64(c) * s
			}
			e := (row[j] - dq) / u[j*cols+j]
			row[j] = dq
			if e != 0 {
				uj := u[j*cols : (j+1)*cols]
				for k := j + 1; k < cols; k++ {
					row[k] -= e * uj[k]
				}
			}
		}
		for j, v := range row {
			w[i*cols+j] = float32(v)
		}
	}
	return q, nil
}

// ErrNotOnGrid is wrapped by Encode when a weight is not on any grid of the
// requested layout.
var ErrNotOnGrid = errors.New("quant: weights are not on a quantization grid")

// Encode finds codes and steps for w ([rows, cols] float32), weights that
// already lie on a grid of o's layout (one step per tensor, or per row and
// group of o.GroupSize columns; the important columns, when
// o.ScaleImportant, at half step) but whose steps were not kept: SparseGPT's
// joint sweep (stages/update) quantizes inside the sweep and hands on only
// the dequantized weights. For each group it takes m, the largest |w_ij| (×2
// in an important column), and the largest step m/c, c = 1 … 2^(bits−1),
// on which every weight of the group is a code within range to 1e−5 of a
// step. Any such step represents the weights (the steps found may be an
// integer fraction of the sweep's own when all its codes share a factor), so
// Dequantize reproduces w to float32 rounding and Bytes is exact. w is not
// modified. A weight on no grid is an error wrapping ErrNotOnGrid and naming
// the group; bad options wrap ErrOptions. Panics on a wrong length.
func Encode(w []float32, rows, cols int, o Options, important []int) (*Quantized, error) {
	if len(w) != rows*cols {
		panic(fmt.Sprintf("quant.Encode: len(w) = %d, want %d×%d", len(w), rows, cols))
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if err := o.CheckShape("the weight", rows, cols); err != nil {
		return nil, err
	}
	q := newQuantized(rows, cols, o, important)
	maxq := MaxCode(o.Bits)
	imp := make([]bool, cols)
	for _, j := range q.Important {
		imp[j] = true
	}
	size := q.GroupSize
	for g := range q.Steps {
		lo, hi := g*size, min((g+1)*size, rows*cols)
		factor := func(k int) float64 {
			if imp[k%cols] {
				return 2
			}
			return 1
		}
		m := 0.0
		for k := lo; k < hi; k++ {
			m = max(m, math.Abs(float64(w[k]))*factor(k))
		}
		if m == 0 {
			continue
		}
		found := false
		for c := 1; c <= maxq+1 && !found; c++ {
			s := float64(float32(m / float64(c)))
			ok := true
			for k := lo; k < hi && ok; k++ {
				st := s / factor(k)
				x := float64(w[k]) / st
				r := math.RoundToEven(x)
				ok = r >= float64(-maxq-1) && r <= float64(maxq) && math.Abs(x-r) <= 1e-5
			}
			if ok {
				found = true
				q.Steps[g] = float32(s)
				for k := lo; k < hi; k++ {
					q.Codes[k] = code(float64(w[k]), s/factor(k), maxq)
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: group %d (rows×cols %d×%d, group size %d) has no %d-bit step", ErrNotOnGrid, g, rows, cols, size, o.Bits)
		}
	}
	return q, nil
}

// ErrNotPositiveDefinite is wrapped when a Hessian given to GPTQQuantize is
// not positive definite.
var ErrNotPositiveDefinite = errors.New("quant: Hessian is not positive definite")

// InverseCholeskyUpper returns U ([n, n] float64 row-major, upper
// triangular) with H⁻¹ = UᵀU, for a symmetric positive definite h ([n, n]
// float64): GPTQ's and SparseGPT's Hinv = cholesky(cholesky_inverse(
// cholesky(H)), upper=True). An error wraps ErrNotPositiveDefinite.
func InverseCholeskyUpper(h []float64, n int) ([]float64, error) {
	if len(h) != n*n {
		panic(fmt.Sprintf("quant.InverseCholeskyUpper: len(h) = %d, want %d²", len(h), n))
	}
	var c mat.Cholesky
	if ok := c.Factorize(mat.NewSymDense(n, slices.Clone(h))); !ok {
		return nil, ErrNotPositiveDefinite
	}
	var inv mat.SymDense
	if err := c.InverseTo(&inv); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotPositiveDefinite, err)
	}
	var c2 mat.Cholesky
	if ok := c2.Factorize(&inv); !ok {
		return nil, ErrNotPositiveDefinite
	}
	var u mat.TriDense
	c2.UTo(&u)
	out := make([]float64, n*n)
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			out[i*n+j] = u.At(i, j)
		}
	}
	return out, nil
}
