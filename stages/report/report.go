// Package report holds the prune report (per linear reconstruction errors,
// solver statistics, timings, and totals) and the sparsity audit of a
// checkpoint, as JSON-serialisable values with text output.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/optima-llm/optima/kernels"
)

// LinearReport is what pruning did to one linear layer.
//
// The relative reconstruction error is tr(ΔW H ΔWᵀ) / tr(W H Wᵀ) (DESIGN.md
// §1) with H the layer's normalised Hessian (damped or not, as the caller
// chooses; say which in the config) and ΔW = Ŵ − W: "before" is the mask alone
// (Ŵ = W with the pruned weights zeroed), "after" is the masked weight after
// the OPTIMA update. The numerators and the denominator are kept so that
// totals can be formed as Σ num / Σ den (see Totalize).
type LinearReport struct {
	// Name is the module path, e.g. "model.layers.3.mlp.down_proj".
	Name string `json:"name"`
	// Group is the input group whose Hessian was used.
	Group string `json:"group"`
	// Out and In are the weight's shape [Out, In].
	Out int `json:"out"`
	In  int `json:"in"`
	// Sparsity is the fraction of the layer's weights pruned.
	Sparsity float64 `json:"sparsity"`
	// ErrBefore = NumBefore/Den and ErrAfter = NumAfter/Den (0 when Den is 0).
	ErrBefore float64 `json:"err_before"`
	ErrAfter  float64 `json:"err_after"`
	// NumBefore and NumAfter are tr(ΔW H ΔWᵀ) with the mask only and after
	// the update; Den is tr(W H Wᵀ) of the original weight.
	NumBefore float64 `json:"num_before"`
	NumAfter  float64 `json:"num_after"`
	Den       float64 `json:"den"`
	// CGIterations is the number of conjugate-gradient iterations the row
	// solve ran; FallbackRows the rows that fell back to the direct solve.
	CGIterations int `json:"cg_iterations"`
	FallbackRows int `json:"fallback_rows"`
	// Seconds is the wall time spent on this linear (mask and solve).
	Seconds float64 `json:"seconds"`
	// Damping is the relative damping λ the solve used (H + λ·mean(diag H)·I),
	// the largest over the layer's rows: above the configured value only when
	// a kept set needed more to be positive definite.
	Damping float64 `json:"damping"`
	// Compress is what quantization and the adapter did (stages/compress);
	// nil when the run compresses nothing.
	Compress *CompressReport `json:"compress,omitempty"`
}

// CompressReport is one linear's compression (stages/compress): the
// relative layer errors tr(D H Dᵀ)/tr(W₀ H W₀ᵀ), D = W₀ − Ŵ, against the
// damped Hessian after pruning and update, after quantization and after the
// adapter, the bit width (0: float), the adapter rank (0: none), and the
// storage in bytes of the layer as compressed (packed codes and scales or
// float16, plus a separate adapter) and as float16 dense.
type CompressReport struct {
	Pruned      float64 `json:"err_pruned"`
	Quantized   float64 `json:"err_quantized"`
	Adapter     float64 `json:"err_adapter"`
	Bits        int     `json:"bits,omitempty"`
	AdapterRank int     `json:"adapter_rank,omitempty"`
	Bytes       int64   `json:"bytes"`
	DenseBytes  int64   `json:"dense_bytes"`
}

// CompressTotals sums CompressReport over the compressed linears: the errors
// are means weighted by each layer's tr(W₀ H W₀ᵀ) (Den), so they read like
// Totals.ErrAfter; Bytes and DenseBytes are sums (float16 dense = 2 bytes
// per weight), Ratio = Bytes/DenseBytes.
type CompressTotals struct {
	Linears    int     `json:"linears"`
	Pruned     float64 `json:"err_pruned"`
	Quantized  float64 `json:"err_quantized"`
	Adapter    float64 `json:"err_adapter"`
	Bytes      int64   `json:"bytes"`
	DenseBytes int64   `json:"dense_bytes"`
	Ratio      float64 `json:"ratio"`
}

// SetErrors stores the numerators and denominator and derives ErrBefore and
// ErrAfter (0 when den is 0, so that the report stays JSON-encodable).
func (l *LinearReport) SetErrors(numBefore, numAfter, den float64) {
	l.NumBefore, l.NumAfter, l.Den = numBefore, numAfter, den
	l.ErrBefore, l.ErrAfter = ratio(numBefore, den), ratio(numAfter, den)
}

// Params is Out·In.
func (l *LinearReport) Params() int64 { return int64(l.Out) * int64(l.In) }

func ratio(num, den float64) float64 {
	if den == 0 {
		return 0
	}
	return num / den
}

// Totals sums a report over its linears.
type Totals struct {
	Linears int   `json:"linears"`
	Params  int64 `json:"params"`
	// Sparsity is Σ Sparsity·Params / Σ Params.
	Sparsity float64 `json:"sparsity"`
	// ErrBefore = Σ NumBefore / Σ Den, ErrAfter = Σ NumAfter / Σ Den.
	ErrBefore    float64 `json:"err_before"`
	ErrAfter     float64 `json:"err_after"`
	NumBefore    float64 `json:"num_before"`
	NumAfter     float64 `json:"num_after"`
	Den          float64 `json:"den"`
	CGIterations int     `json:"cg_iterations"`
	FallbackRows int     `json:"fallback_rows"`
	Seconds      float64 `json:"seconds"`
	// Compress totals the linears' compression; nil when none was compressed.
	Compress *CompressTotals `json:"compress,omitempty"`
}

// Totalize computes the totals of ls (all zeros for none).
func Totalize(ls []LinearReport) Totals {
	var t Totals
	var pruned float64
	for i := range ls {
		l := &ls[i]
		t.Linears++
		t.Params += l.Params()
		pruned += l.Sparsity * float64(l.Params())
		t.NumBefore += l.NumBefore
		t.NumAfter += l.NumAfter
		t.Den += l.Den
		t.CGIterations += l.CGIterations
		t.FallbackRows += l.FallbackRows
		t.Seconds += l.Seconds
		if c := l.Compress; c != nil {
			if t.Compress == nil {
				t.Compress = &CompressTotals{}
			}
			tc := t.Compress
			tc.Linears++
			tc.Pruned += c.Pruned * l.Den
			tc.Quantized += c.Quantized * l.Den
			tc.Adapter += c.Adapter * l.Den
			tc.Bytes += c.Bytes
			tc.DenseBytes += c.DenseBytes
		}
	}
	if tc := t.Compress; tc != nil {
		var den float64
		for i := range ls {
			if ls[i].Compress != nil {
				den += ls[i].Den
			}
		}
		tc.Pruned, tc.Quantized, tc.Adapter = ratio(tc.Pruned, den), ratio(tc.Quantized, den), ratio(tc.Adapter, den)
		tc.Ratio = ratio(float64(tc.Bytes), float64(tc.DenseBytes))
	}
	if t.Params > 0 {
		t.Sparsity = pruned / float64(t.Params)
	}
	t.ErrBefore, t.ErrAfter = ratio(t.NumBefore, t.Den), ratio(t.NumAfter, t.Den)
	return t
}

// Report is the prune report of a run: its configuration (any
// JSON-serialisable value, typically the pipeline config), one entry per
// linear in pruning order, and the totals.
type Report struct {
	Config  any            `json:"config"`
	Linears []LinearReport `json:"linears"`
	Totals  Totals         `json:"totals"`
	// ZeroShot holds zero-shot accuracies when the run asked for them
	// (AddZeroShot adds them to a written report.json).
	ZeroShot *ZeroShot `json:"zero_shot,omitempty"`
}

// New returns a report over linears with its totals computed.
func New(config any, linears []LinearReport) *Report {
	return &Report{Config: config, Linears: linears, Totals: Totalize(linears)}
}

// WriteJSON writes r as indented JSON. It fails (encoding/json) when a
// value is NaN or ±Inf.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// WriteText writes r as an aligned table, one line per linear and a total.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "linear\tshape\tsparsity\terr before\terr after\tCG iters\tfallback\tseconds\t")
	for _, l := range r.Linears {
		fmt.Fprintf(tw, "%s\t%d×%d\t%.2f%%\t%.4g\t%.4g\t%d\t%d\t%.3f\t\n",
			l.Name, l.Out, l.In, 100*l.Sparsity, l.ErrBefore, l.ErrAfter, l.CGIterations, l.FallbackRows, l.Seconds)
	}
	t := r.Totals
	fmt.Fprintf(tw, "total (%d linears)\t%d params\t%.2f%%\t%.4g\t%.4g\t%d\t%d\t%.3f\t\n",
		t.Linears, t.Params, 100*t.Sparsity, t.ErrBefore, t.ErrAfter, t.CGIterations, t.FallbackRows, t.Seconds)
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if c := t.Compress; c != nil {
		fmt.Fprintf(w, "compressed %d linears: err pruned %.4g, quantized %.4g, adapter %.4g; %d of %d float16 bytes (%.3f)\n",
			c.Linears, c.Pruned, c.Quantized, c.Adapter, c.Bytes, c.DenseBytes, c.Ratio)
	}
	if r.ZeroShot != nil {
		return r.ZeroShot.WriteText(w)
	}
	return nil
}

// Quadratic returns tr(D H Dᵀ) = Σ_i d_i H d_iᵀ for d ([rows, cols] row-major
// float32, e.g. ΔW) and h ([cols, cols] row-major float64, symmetric), in
// float64 with be.Dgemm on row blocks of at most 256 rows. Use it for the
// numerators and denominators of LinearReport. It panics on mismatched
// lengths.
func Quadratic(be kernels.Backend, d []float32, rows, cols int, h []float64) float64 {
	if rows < 0 || cols <= 0 || len(d) != rows*cols || len(h) != cols*cols {
		panic(fmt.Sprintf("report.Quadratic: len(d) = %d, len(h) = %d for %d×%d", len(d), len(h), rows, cols))
	}
	const block = 256
	br := min(block, rows)
	d64 := make([]float64, br*cols)
	dh := make([]float64, br*cols)
	var sum float64
	for r0 := 0; r0 < rows; r0 += block {
		n := min(block, rows-r0)
		for i, v := range d[r0*cols : (r0+n)*cols] {
			d64[i] = float64(v)
		}
		be.Dgemm(false, false, n, cols, cols, 1, d64, cols, h, cols, 0, dh, cols)
		for i := range n * cols {
			sum += dh[i] * d64[i]
		}
	}
	return sum
}
