// Package lora fits low-rank adapters to the compression error of a linear
// layer, as SLiM (Mozaffari et al., "SLiM: One-shot Quantized Sparse Plus
// Low-rank Approximation of LLMs", 2025; its code lora.py:add_lora) does:
// the error E = W − Ŵ between the dense weight W and the compressed Ŵ
// ([out, in]) is approximated by B·A with A [rank, in] and B [out, rank]
// (PEFT's lora_A and lora_B, scaling 1), so the layer computes
// y = Ŵx + B(Ax).
//
// Three fits:
//   - svd: the truncated SVD of E (plain "naive" LoRA; minimises ‖E − BA‖_F);
//   - slim: SLiM-LoRA, the SVD of E·D with D = diag(√s_j), s_j = ‖X_j‖²/N the
//     input column norms (Wanda's scaler_row), then A ← A·D⁻¹; it minimises
//     ‖(E − BA)·D‖_F, the layer's output error under a diagonal Hessian;
//   - hessian: beyond the reference, the SVD of E·L with H = LLᵀ the damped
//     layer Hessian's Cholesky factor, then A ← A·L⁻¹; it minimises
//     tr((E − BA) H (E − BA)ᵀ), the objective OPTIMA's row solve uses, and is
//     the optimal rank-r correction for it (Eckart–Young in the H metric).
package lora

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"

	"github.com/optima-llm/optima/stages/quant"
)

// Mode names an adapter fit.
type Mode string

// The fits.
const (
	SVD     Mode = "svd"
	SLiM    Mode = "slim"
	Hessian Mode = "hessian"
)

// ErrOptions is wrapped by every error about bad adapter options.
var ErrOptions = errors.New("lora: bad options")

// Options configures the adapters.
type Options struct {
	// Rank is the adapter rank as a fraction of min(out, in), in (0, 1]:
	// rank = ⌊Rank·min(out, in)⌋ (SLiM's lora_rank).
	Rank float64 `json:"rank"`
	// Mode is svd, slim or hessian.
	Mode Mode `json:"mode"`
	// TileSize, when > 0, pads the rank up to a multiple of it (SLiM's
	// pad_lora; needed by QuantBits).
	TileSize int `json:"tile_size,omitempty"`
	// Prune24 prunes A 2:4 along its input dimension (SLiM's prune_lora) and
	// refits B by least squares on the pruned A (SLiM fits both with Adam
	// instead). Not with Mode hessian, whose A·L⁻¹ would fill the zeros.
	Prune24 bool `json:"prune_lora,omitempty"`
	// QuantBits, when > 0, quantizes A and B with group AbsMax, groups of
	// TileSize consecutive entries of a row (SLiM's quantize_lora).
	QuantBits int `json:"quantize_lora_bits,omitempty"`
}

// Validate checks the options alone; errors wrap ErrOptions and name the
// CLI flag.
func (o Options) Validate() error {
	if !(o.Rank > 0 && o.Rank <= 1) {
		return fmt.Errorf("%w: --lora-rank %v is outside (0, 1]", ErrOptions, o.Rank)
	}
	switch o.Mode {
	case SVD, SLiM, Hessian:
	default:
		return fmt.Errorf("%w: lora mode %q is not one of svd, slim, hessian", ErrOptions, o.Mode)
	}
	if o.TileSize < 0 {
		return fmt.Errorf("%w: --lora-tile-size %d is negative", ErrOptions, o.TileSize)
	}
	if o.Prune24 && o.Mode == Hessian {
		return fmt.Errorf("%w: --prune-lora needs --lora-fit svd or slim: the Hessian fit's A·L⁻¹ is dense", ErrOptions)
	}
	if o.QuantBits != 0 {
		if o.QuantBits < 2 || o.QuantBits > 8 {
			return fmt.Errorf("%w: adapter bits %d outside 2..8", ErrOptions, o.QuantBits)
		}
		if o.TileSize == 0 {
			return fmt.Errorf("%w: --quantize-lora needs --lora-tile-size", ErrOptions)
		}
	}
	return nil
}

// RankFor is the adapter rank of an [out, in] layer: ⌊Rank·min(out, in)⌋,
// at least 1, padded up to a multiple of TileSize.
func (o Options) RankFor(out, in int) int {
	r := max(int(o.Rank*float64(min(out, in))), 1)
	if o.TileSize > 0 && r%o.TileSize != 0 {
		r += o.TileSize - r%o.TileSize
	}
	return r
}

// CheckShape reports whether an [out, in] layer named layer can take an
// adapter with o: the quantization groups must divide in and the rank.
func (o Options) CheckShape(layer string, out, in int) error {
	if o.QuantBits > 0 && in%o.TileSize != 0 {
		return fmt.Errorf("%w: --lora-tile-size %d does not divide the %d input columns of %s", ErrOptions, o.TileSize, in, layer)
	}
	if r := o.RankFor(out, in); r > min(out, in) {
		return fmt.Errorf("%w: rank %d (padded to --lora-tile-size %d) exceeds min(%d, %d) of %s", ErrOptions, r, o.TileSize, out, in, layer)
	}
	return nil
}

// Adapter is a fitted low-rank adapter of an [Out, In] layer.
type Adapter struct {
	Rank, Out, In int
	// A is [Rank, In] row-major float32 (PEFT lora_A).
	A []float32
	// B is [Out, Rank] row-major float32 (PEFT lora_B).
	B []float32
}

// Delta returns B·A ([Out, In] float64 row-major).
func (a *Adapter) Delta() []float64 {
	d := make([]float64, a.Out*a.In)
	for i := 0; i < a.Out; i++ {
		for k := 0; k < a.Rank; k++ {
			b := float64(a.B[i*a.Rank+k])
			if b == 0 {
				continue
			}
			row := a.A[k*a.In : (k+1)*a.In]
			for j, v := range row {
				d[i*a.In+j] += b * float64(v)
			}
		}
	}
	return d
}

// Merge adds B·A to w ([Out, In] float32), the merged (not separate)
// adapter.
func (a *Adapter) Merge(w []float32) {
	if len(w) != a.Out*a.In {
		panic(fmt.Sprintf("lora.Merge: len(w) = %d, want %d×%d", len(w), a.Out, a.In))
	}
	for k, d := range a.Delta() {
		w[k] += float32(d)
	}
}

// Bytes is the adapter's storage: float16 entries, or QuantBits-bit codes
// plus a float16 step per group when quantized.
func (a *Adapter) Bytes(o Options) int64 {
	n := int64(a.Rank) * int64(a.In+a.Out)
	if o.QuantBits == 0 {
		return 2 * n
	}
	return (n*int64(o.QuantBits)+7)/8 + 2*(n/int64(o.TileSize))
}

// Fit fits an adapter to e = W − Ŵ ([out, in] float64 row-major).
// colNorms (‖X_j‖²/N, length in) is needed by Mode slim, h (the damped
// Hessian [in, in] float64) by Mode hessian; each may be nil otherwise.
// SLiM falls back to the plain SVD when a column norm is 0, as the reference
// does. Errors: bad options (ErrOptions), a non-positive-definite h.
func Fit(e []float64, out, in int, o Options, colNorms, h []float64) (*Adapter, error) {
	if len(e) != out*in {
		panic(fmt.Sprintf("lora.Fit: len(e) = %d, want %d×%d", len(e), out, in))
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if err := o.CheckShape("the layer", out, in); err != nil {
		return nil, err
	}
	r := o.RankFor(out, in)
	// scale is the right factor S with F = E·S; A is mapped back by S⁻¹.
	var scaleDiag []float64
	var chol *mat.Cholesky
	switch o.Mode {
	case SLiM:
		if len(colNorms) != in {
			panic(fmt.Sprintf("lora.Fit: len(colNorms) = %d, want %d", len(colNorms), in))
		}
		zero := false
		for _, s := range colNorms {
			zero = zero || s == 0
		}
		if !zero {
			scaleDiag = make([]float64, in)
			for j, s := range colNorms {
				scaleDiag[j] = math.Sqrt(s)
			}
		}
	case Hessian:
		if len(h) != in*in {
			panic(fmt.Sprintf("lora.Fit: len(h) = %d, want %d²", len(h), in))
		}
		chol = new(mat.Cholesky)
		if !chol.Factorize(mat.NewSymDense(in, append([]float64(nil), h...))) {
			return nil, errors.New("lora: the Hessian is not positive definite")
		}
	}
	f := mat.NewDense(out, in, append([]float64(nil), e...))
	var l mat.TriDense
	if scaleDiag != nil {
		for i := 0; i < out; i++ {
			for j := 0; j < in; j++ {
				f.Set(i, j, f.At(i, j)*scaleDiag[j])
			}
		}
	} else if chol != nil {
		chol.LTo(&l)
		var fl mat.Dense
		fl.Mul(f, &l)
		f = &fl
	}
	var svd mat.SVD
	if !svd.Factorize(f, mat.SVDThin) {
		return nil, errors.New("lora: SVD did not converge")
	}
	var u, v mat.Dense
	svd.UTo(&u)
	svd.VTo(&v)
	s := svd.Values(nil)
	// A' = S_r V_rᵀ [r, in]; B = U_r [out, r]. Ranks past the error's rank
	// (padding) get zero rows.
	ap := mat.NewDense(r, in, nil)
	b := mat.NewDense(out, r, nil)
	for k := 0; k < r && k < len(s); k++ {
		for j := 0; j < in; j++ {
			ap.Set(k, j, s[k]*v.At(j, k))
		}
		for i := 0; i < out; i++ {
			b.Set(i, k, u.At(i, k))
		}
	}
	if o.Prune24 {
		prune24(ap)
		refitB(f, ap, b)
	}
	// Map A back: A = A'·S⁻¹.
	switch {
	case scaleDiag != nil:
		for k := 0; k < r; k++ {
			for j := 0; j < in; j++ {
				ap.Set(k, j, ap.At(k, j)/scaleDiag[j])
			}
		}
	case chol != nil:
		// A = A'·L⁻¹ ⇔ Lᵀ·Aᵀ = A'ᵀ.
		var at mat.Dense
		if err := at.Solve(l.T(), ap.T()); err != nil {
			return nil, fmt.Errorf("lora: %w", err)
		}
		ap = mat.DenseCopyOf(at.T())
	}
	ad := &Adapter{Rank: r, Out: out, In: in, A: make([]float32, r*in), B: make([]float32, out*r)}
	for k := 0; k < r; k++ {
		for j := 0; j < in; j++ {
			ad.A[k*in+j] = float32(ap.At(k, j))
		}
	}
	for i := 0; i < out; i++ {
		for k := 0; k < r; k++ {
			ad.B[i*r+k] = float32(b.At(i, k))
		}
	}
	if o.QuantBits > 0 {
		qo := quant.Options{Bits: o.QuantBits, Method: quant.AbsMax, GroupSize: o.TileSize}
		for _, m := range []struct {
			w          []float32
			rows, cols int
		}{{ad.A, r, in}, {ad.B, out, r}} {
			q, err := quant.Quantize(m.w, m.rows, m.cols, qo, nil)
			if err != nil {
				return nil, fmt.Errorf("lora: quantize adapter: %w", err)
			}
			q.Dequantize(m.w)
		}
	}
	return ad, nil
}

// prune24 zeroes, in each row of a and each run of 4 columns, the 2 entries
// of smallest magnitude (ties: the lower index is pruned first).
func prune24(a *mat.Dense) {
	rows, cols := a.Dims()
	for k := 0; k < rows; k++ {
		for j := 0; j+4 <= cols; j += 4 {
			idx := [4]int{j, j + 1, j + 2, j + 3}
			for x := 1; x < 4; x++ {
				for y := x; y > 0 && math.Abs(a.At(k, idx[y])) < math.Abs(a.At(k, idx[y-1])); y-- {
					idx[y], idx[y-1] = idx[y-1], idx[y]
				}
			}
			a.Set(k, idx[0], 0)
			a.Set(k, idx[1], 0)
		}
	}
}

// refitB sets b to the least-squares B of ‖F − B·A‖_F: B = F·Aᵀ·(A·Aᵀ)⁺.
func refitB(f, a, b *mat.Dense) {
	var aat, fat mat.Dense
	aat.Mul(a, a.T())
	fat.Mul(f, a.T())
	// Solve B·(AAᵀ) = FAᵀ ⇔ (AAᵀ)·Bᵀ = (FAᵀ)ᵀ; AAᵀ is symmetric.
	var bt mat.Dense
	if err := bt.Solve(&aat, fat.T()); err != nil {
		return // singular A (zero padding rows): keep the SVD's B
	}
	b.Copy(bt.T())
}
