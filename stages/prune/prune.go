// Package prune holds the per-step operations of one-shot pruning as plain Go
// functions over values, so that the Beam transforms (package transforms) and
// the plain sequential reference run (Sequential) execute exactly the same
// code. The steps follow DESIGN.md §2, per transformer block:
//
//	Calibrate:         run the dense block on its calibration inputs, capture
//	                   each input group's activations into partial Hessians
//	AccumulateHessian: add partial Hessians of all sample shards
//	SelectMask:        per row batch, a selector (magnitude, wanda) picks the
//	                   pruned set from the weights and ‖X_j‖₂; a layer
//	                   selector (sparsegpt, thanos, admm: stages/update)
//	                   gets all rows of a linear and its Hessian, and also
//	                   computes its own update
//	SolveRowQPs:       per row batch, the exact OPTIMA re-fit (stages/solve)
//	Propagate:         run the pruned block to make the next block's inputs
//
// Hidden states between blocks live in files ("shards"), never in memory of
// the pipeline's elements: a shard file holds [nseq·seqlen, hidden] float32
// little-endian with a small header.
package prune

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/stages/compress"
	"github.com/optima-llm/optima/stages/hessian"
	"github.com/optima-llm/optima/stages/mask"
	"github.com/optima-llm/optima/stages/report"
	"github.com/optima-llm/optima/stages/solve"
	"github.com/optima-llm/optima/stages/update" // also registers sparsegpt, thanos, admm
)

// Update names the weight update applied after masking.
const (
	// UpdateOptima re-fits every row exactly on its mask (DESIGN.md §1).
	UpdateOptima = "optima"
	// UpdateNone only zeroes the pruned weights.
	UpdateNone = "none"
	// UpdateOwn keeps the weights the selector itself updated (SparseGPT's,
	// Thanos' or ADMM's own update). Magnitude and Wanda have no update of
	// their own: Validate rejects UpdateOwn for them (use UpdateNone).
	UpdateOwn = "own"
)

// Config is everything that decides a pruning run's result. Its Hash keys the
// work directory, so that a resumed run never reuses work of another
// configuration.
type Config struct {
	// Model is the GGUF file or Hugging Face directory to prune.
	Model string `json:"model"`
	// Method is the mask selector's registered name ("magnitude", "wanda",
	// "sparsegpt", "thanos", "admm"; mask.Names).
	Method string `json:"method"`
	// MethodParams are the selector's parameters (e.g. "blocksize",
	// "damping" for sparsegpt; see update.ParseOptions), nil for defaults.
	MethodParams map[string]string `json:"method_params,omitempty"`
	// Sparsity is the unstructured ratio per output row in [0, 1), used when
	// Pattern is empty.
	Sparsity float64 `json:"sparsity"`
	// Pattern is an N:M pattern such as "2:4", or empty.
	Pattern string `json:"pattern,omitempty"`
	// Update is UpdateOptima, UpdateNone or UpdateOwn.
	Update string `json:"update"`
	// Calib is the calibration corpus (JSON Lines with a "text" field).
	Calib string `json:"calib"`
	// NSamples windows of SeqLen tokens are drawn with Seed.
	NSamples int    `json:"nsamples"`
	SeqLen   int    `json:"seqlen"`
	Seed     uint64 `json:"seed"`
	// Shards is the number of calibration sample shards processed in
	// parallel. Results agree across shard counts to float64 rounding of the
	// Hessian sums (see TestShardInvariance).
	Shards int `json:"shards"`
	// RowBatch is the number of weight rows per mask/solve element (0: all
	// rows of a linear in one element, capped by RowBatchBytes).
	RowBatch int `json:"row_batch"`
	// SkipAttention leaves the attention projections (q, k, v, o) dense.
	SkipAttention bool `json:"skip_attention"`
	// Solve configures the OPTIMA row solve.
	Solve solve.Options `json:"solve"`
	// ForwardDevice is where the large GEMMs of each block's forward pass
	// (calibration and propagation) run: "" (the CPU, the default;
	// --forward-device cpu is stored as "" so the hash of CPU runs is
	// unchanged) or "cuda" (ForwardBackend). GPU products differ from the
	// CPU's by float32 rounding, so it is part of the hash.
	ForwardDevice string `json:"forward_device,omitempty"`
	// ShiftZeroMetrics adds the smallest positive squared input norm (or 1
	// when all exceed 1) to every ‖X_j‖²/NSamples before Wanda's score, so
	// that channels no calibration token activated are still ranked by
	// |W_ij| (SLiM's slim/utils.py shift_zeros, the reference's
	// shift_zero_metrics). Wanda only.
	ShiftZeroMetrics bool `json:"shift_zero_metrics,omitempty"`
	// Compress quantizes the weights and fits low-rank adapters after the
	// mask and update of each linear (stages/compress); nil compresses
	// nothing. omitempty keeps the work-directory hash of runs without it.
	Compress *compress.Options `json:"compress,omitempty"`
}

// RowBatchBytes caps a row batch element's weight payload (DESIGN.md §2:
// elements of tens of MiB at most).
const RowBatchBytes = 16 << 20

// Validate checks the configuration and returns an error naming the flag at
// fault.
func (c *Config) Validate() error {
	if c.Model == "" {
		return errors.New("--model is required")
	}
	if c.Calib == "" {
		return errors.New("--calib is required (a JSON Lines corpus; see --data-dir)")
	}
	sel, err := mask.New(c.Method, c.MethodParams)
	if err != nil {
		if c.Compress != nil && c.Compress.JointSweep && c.Compress.Quant != nil {
			// EnableJointSweep put the quantization flags into the
			// selector's parameters: name the flags the user gave.
			q := c.Compress.Quant
			return fmt.Errorf("--method %s --update own with --bits %d --quant gptq --group-size %d (one joint sweep): %w", c.Method, q.Bits, q.GroupSize, err)
		}
		return fmt.Errorf("--method: %w", err)
	}
	if _, err := c.MaskPattern(); err != nil {
		return err
	}
	_, layerSel := sel.(mask.LayerSelector)
	switch c.Update {
	case UpdateOptima, UpdateNone:
	case UpdateOwn:
		if !layerSel {
			return fmt.Errorf("--update own: selector %q has no weight update of its own (only sparsegpt, thanos and admm do); use --update none or optima", c.Method)
		}
	default:
		return fmt.Errorf("--update %q: want %q, %q or %q", c.Update, UpdateOptima, UpdateNone, UpdateOwn)
	}
	if c.NSamples <= 0 {
		return fmt.Errorf("--nsamples %d: must be positive", c.NSamples)
	}
	if c.SeqLen <= 1 {
		return fmt.Errorf("--seqlen %d: must be at least 2", c.SeqLen)
	}
	if c.Shards <= 0 {
		return fmt.Errorf("--shards %d: must be positive", c.Shards)
	}
	if c.Shards > c.NSamples {
		return fmt.Errorf("--shards %d: more shards than --nsamples %d", c.Shards, c.NSamples)
	}
	if c.RowBatch < 0 {
		return fmt.Errorf("--row-batch %d: must not be negative", c.RowBatch)
	}
	switch c.ForwardDevice {
	case "", "cpu", "cuda":
	default:
		return fmt.Errorf("--forward-device %q: unknown device (known: %v)", c.ForwardDevice, solve.Devices())
	}
	// The solve checks these too (solve.Prepare), but only once a layer's
	// Hessian is built: check them before any work, naming the flag.
	if !(c.Solve.Damping >= 0) || math.IsInf(c.Solve.Damping, 0) {
		return fmt.Errorf("--damping %g: must be a finite number, not negative", c.Solve.Damping)
	}
	if !(c.Solve.Tol >= 0) || math.IsInf(c.Solve.Tol, 0) {
		return fmt.Errorf("--cg-tol %g: must be a finite number, not negative", c.Solve.Tol)
	}
	if c.Solve.MaxIter < 0 {
		return fmt.Errorf("--cg-max-iter %d: must not be negative (0: direct solve of every row)", c.Solve.MaxIter)
	}
	if c.ShiftZeroMetrics && c.Method != "wanda" {
		return fmt.Errorf("--shift-zero-metrics changes only Wanda's score |W|·‖X‖; --method %s does not use it", c.Method)
	}
	if err := c.checkJointSweep(); err != nil {
		return err
	}
	if c.Compress != nil {
		if err := c.Compress.Validate(); err != nil {
			return err
		}
		if lo := c.Compress.LoRA; lo != nil && lo.Prune24 {
			if pat, err := c.MaskPattern(); err != nil || pat.N != 2 || pat.M != 4 {
				return fmt.Errorf("--prune-lora prunes the adapter's A 2:4 and needs --pattern 2:4 for the weights too (got %q), as the reference's prune_lora does", c.Pattern)
			}
		}
	}
	return nil
}

// MaskPattern parses Sparsity/Pattern into a mask.Pattern.
func (c *Config) MaskPattern() (mask.Pattern, error) {
	if c.Pattern != "" {
		return mask.ParsePattern(0, c.Pattern)
	}
	return mask.ParsePattern(c.Sparsity, "")
}

// Hash is a short hex digest of the configuration's JSON form, used to name
// the work directory.
func (c *Config) Hash() string {
	b, _ := json.Marshal(c)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Prunable reports whether the linear is pruned under this configuration.
func (c *Config) Prunable(l model.Linear) bool {
	return !(c.SkipAttention && l.Attention)
}

// LayerWide reports whether the method is a mask.LayerSelector, whose mask
// needs all rows of a linear at once.
func (c *Config) LayerWide() bool { return mask.IsLayerSelector(c.Method) }

// RowBatches splits a linear of out rows and in columns into [start, end)
// row ranges honouring c.RowBatch and RowBatchBytes. For a layer-wide method
// (LayerWide) it returns one range of all rows whatever RowBatch and
// RowBatchBytes say: SparseGPT's and Thanos' unstructured thresholds compare
// scores over all rows of a column block (ADMM's over the whole layer), so the
// mask cannot be computed on row batches; such an element carries the whole
// weight (out·in·4 bytes).
func (c *Config) RowBatches(out, in int) [][2]int {
	if c.LayerWide() {
		return [][2]int{{0, out}}
	}
	n := out
	if c.RowBatch > 0 {
		n = c.RowBatch
	}
	if maxRows := RowBatchBytes / (4 * max(in, 1)); maxRows >= 1 && n > maxRows {
		n = maxRows
	}
	var r [][2]int
	for s := 0; s < out; s += n {
		r = append(r, [2]int{s, min(s+n, out)})
	}
	return r
}

// CalibrateShard runs block b of fam with weights w on the hidden states x
// ([nseq·seqlen, hidden] float32, overwritten: the callers read x from its
// shard file and need only the Hessians) and returns the partial Hessian of
// every input group, keyed by group name.
func CalibrateShard(be kernels.Backend, fam model.Family, b int, w model.Weights, x []float32, nseq, seqlen int) (map[string]*hessian.Hessian, error) {
	hs := map[string]*hessian.Hessian{}
	var capErr error
	capture := func(group string, _ []string, in []float32, tokens, width int) {
		if capErr != nil {
			return
		}
		h, ok := hs[group]
		if !ok {
			h = hessian.New(group, width)
			hs[group] = h
		}
		if err := h.Add(be, in, tokens); err != nil {
			capErr = err
		}
	}
	if err := fam.ForwardBlock(be, b, w, x, nseq, seqlen, capture); err != nil {
		return nil, fmt.Errorf("calibrate block %d: %w", b, err)
	}
	if capErr != nil {
		return nil, fmt.Errorf("calibrate block %d: %w", b, capErr)
	}
	return hs, nil
}

// BatchResult is what SelectAndSolve reports for one row batch.
type BatchResult struct {
	// Pruned is the number of weights set to zero.
	Pruned int
	// Stats are the solver's statistics; for UpdateNone only the objectives
	// are filled.
	Stats solve.Stats
	// Mask is the batch's pruned set ([rows, in], true = pruned), filled by
	// SelectAndUpdate for the compression step; not serialised (the
	// pipeline's RowBatch carries its own mask).
	Mask []bool `json:"-"`
}

// SelectMask picks the pruned set of rows [firstRow, firstRow+rows) of a
// linear, w being those rows ([rows, in]), with selector sel. h supplies
// ‖X_j‖₂; errors name the linear and the row.
func SelectMask(sel mask.Selector, p mask.Pattern, linear string, firstRow int, w []float32, rows, in int, h *hessian.Hessian) (*mask.Mask, error) {
	var norms []float64
	if h != nil {
		norms = h.ColumnNorms()
	}
	return SelectMaskNorms(sel, p, linear, firstRow, w, rows, in, norms)
}

// MaskNorms returns the input norms the mask selector sees for h:
// ‖X_j‖₂ (h.ColumnNorms), or with ShiftZeroMetrics
// sqrt(‖X_j‖²/NSamples + s), s the smallest ‖X_j‖²/NSamples with zeros
// counted as 1 (SLiM's slim/utils.py shift_zeros on Wanda's scaler_row,
// which the reference normalises by the number of calibration sequences).
// nil for a nil h.
func (c *Config) MaskNorms(h *hessian.Hessian) []float64 {
	if h == nil {
		return nil
	}
	norms := h.ColumnNorms()
	if !c.ShiftZeroMetrics {
		return norms
	}
	n := float64(max(c.NSamples, 1))
	s := math.Inf(1)
	for j, v := range norms {
		norms[j] = v * v / n
		if norms[j] == 0 {
			s = min(s, 1) // shift_zeros counts a zero as 1
		} else {
			s = min(s, norms[j])
		}
	}
	for j, v := range norms {
		norms[j] = math.Sqrt(v + s)
	}
	return norms
}

// SelectMaskNorms is SelectMask with the input norms given (length in, nil
// for selectors that do not read them).
func SelectMaskNorms(sel mask.Selector, p mask.Pattern, linear string, firstRow int, w []float32, rows, in int, norms []float64) (*mask.Mask, error) {
	m := mask.NewMask(rows, in)
	if err := mask.SelectLayer(sel, linear, firstRow, w, rows, in, norms, p, m); err != nil {
		return nil, err
	}
	return m, nil
}

// SelectLayer runs a layer selector (mask.LayerSelector, e.g. sparsegpt) on
// all rows of a linear: w is the dense weight [rows, in] (not modified), h
// its input group's Hessian. It returns the mask, the selector's own updated
// weights ([rows, in], pruned entries 0) and the relative damping the
// selector used. Errors name the linear (a not positive definite Hessian
// wraps kernels.ErrNotPositiveDefinite and reports the largest damping tried).
func SelectLayer(be kernels.Backend, sel mask.LayerSelector, p mask.Pattern, linear string, w []float32, rows, in int, h *hessian.Hessian) (*mask.Mask, []float32, float64, error) {
	if err := p.Check(in); err != nil {
		return nil, nil, 0, fmt.Errorf("mask: %s: %w", linear, err)
	}
	if h == nil || h.Tokens == 0 {
		return nil, nil, 0, fmt.Errorf("mask: %s: %s needs the layer Hessian (none given)", linear, sel.Name())
	}
	m := mask.NewMask(rows, in)
	upd := make([]float32, len(w))
	lambda, err := sel.SelectUpdate(be, w, rows, in, h.H(), p, m, upd)
	if err != nil {
		if nf, ok := errors.AsType[*mask.NonFiniteError](err); ok {
			nf.Layer = linear
			return nil, nil, lambda, nf
		}
		if npd, ok := errors.AsType[*update.NotPositiveDefiniteError](err); ok {
			npd.Layer = linear
			return nil, nil, lambda, npd
		}
		return nil, nil, lambda, fmt.Errorf("mask: %s: %s: %w", linear, sel.Name(), err)
	}
	return m, upd, lambda, nil
}

// ApplyOwn replaces the rows w ([rows, in], in place) by the selector's own
// update own (same shape) and reports its objectives against h's undamped
// Hessian: ObjBefore for masking w alone, ObjAfter for own, Denom = tr(WHWᵀ).
// damping is the selector's relative damping, reported in Stats.Damping.
func ApplyOwn(be kernels.Backend, w, own []float32, m *mask.Mask, h *hessian.Hessian, damping float64) BatchResult {
	rows, in := m.Rows, m.Cols
	if len(w) != rows*in || len(own) != rows*in {
		panic(fmt.Sprintf("prune.ApplyOwn: len(w) = %d, len(own) = %d, want %d×%d", len(w), len(own), rows, in))
	}
	H := h.H()
	res := BatchResult{Pruned: m.Count()}
	delta := make([]float32, len(w))
	for i, p := range m.Pruned {
		if p {
			delta[i] = w[i]
		}
	}
	before := report.Quadratic(be, delta, rows, in, H)
	for i := range w {
		delta[i] = own[i] - w[i]
	}
	after := report.Quadratic(be, delta, rows, in, H)
	den := report.Quadratic(be, w, rows, in, H)
	copy(w, own)
	res.Stats = solve.Stats{Rows: rows, ObjBefore: before, ObjAfter: after, Denom: den, Damping: damping}
	return res
}

// SolveRows applies mask m to the rows w ([rows, in], in place) and, for
// UpdateOptima, re-fits the kept weights exactly against h's Hessian.
// Objectives in the result use the undamped Hessian.
func SolveRows(be kernels.Backend, update string, opts solve.Options, linear string, w []float32, m *mask.Mask, h *hessian.Hessian) (BatchResult, error) {
	rows, in := m.Rows, m.Cols
	res := BatchResult{}
	for _, p := range m.Pruned {
		if p {
			res.Pruned++
		}
	}
	H := h.H()
	switch update {
	case UpdateOptima:
		prob, err := solve.Prepare(H, in, opts)
		if err != nil {
			return res, fmt.Errorf("%s: %w", linear, err)
		}
		st, err := prob.SolveRows(be, w, m.Pruned, rows)
		if err != nil {
			return res, fmt.Errorf("%s: %w", linear, err)
		}
		res.Stats = st
	case UpdateOwn:
		return res, fmt.Errorf("%s: update %q needs the selector's own weights (SelectLayer, ApplyOwn)", linear, update)
	case UpdateNone:
		// ΔW is −W on the pruned set: tr(ΔW H ΔWᵀ) through GEMMs.
		delta := make([]float32, len(w))
		for i, p := range m.Pruned {
			if p {
				delta[i] = w[i]
			}
		}
		num := report.Quadratic(be, delta, rows, in, H)
		den := report.Quadratic(be, w, rows, in, H)
		m.Apply(w)
		res.Stats = solve.Stats{Rows: rows, ObjBefore: num, ObjAfter: num, Denom: den}
	default:
		return res, fmt.Errorf("unknown update %q", update)
	}
	return res, nil
}

// BlockOf returns the block index of a Hugging Face module path such as
// "model.layers.3.mlp.down_proj", or -1.
func BlockOf(name string) int {
	const p = "model.layers."
	i := strings.Index(name, p)
	if i < 0 {
		return -1
	}
	rest := name[i+len(p):]
	n := 0
	j := 0
	for ; j < len(rest) && rest[j] >= '0' && rest[j] <= '9'; j++ {
		n = n*10 + int(rest[j]-'0')
	}
	if j == 0 {
		return -1
	}
	return n
}
