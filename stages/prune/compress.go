package prune

import (
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/stages/compress"
	"github.com/optima-llm/optima/stages/hessian"
	"github.com/optima-llm/optima/stages/lora"
	"github.com/optima-llm/optima/stages/quant"
	"github.com/optima-llm/optima/stages/report"
	"github.com/optima-llm/optima/stages/update"
)

// Adapter tensor suffixes in a block's work file and in the PEFT adapter
// (peft/tuners/lora/layer.py names lora_A [r, in] and lora_B [out, r]).
const (
	LoraASuffix = ".lora_A.weight"
	LoraBSuffix = ".lora_B.weight"
)

// CompressEnabled reports whether the run quantizes or fits adapters.
func (c *Config) CompressEnabled() bool { return c.Compress != nil && c.Compress.Enabled() }

// WantsJointSweep reports whether c asks for SparseGPT's joint sweep:
// --method sparsegpt --update own with --bits and --quant gptq. SparseGPT's
// own update then quantizes while it prunes (one sweep, SparseGPT §3.5)
// instead of a GPTQ sweep after it. With --update optima or none the mask
// is re-fitted (or only applied) first and GPTQ runs on the fixed mask, as
// OPTIMA's re-fit needs unquantized weights.
func (c *Config) WantsJointSweep() bool {
	return c.Method == "sparsegpt" && c.Update == UpdateOwn && c.Compress != nil && c.Compress.Quant != nil && c.Compress.Quant.Method == quant.GPTQ
}

// EnableJointSweep turns on the joint sweep when WantsJointSweep: it sets
// Compress.JointSweep and the sparsegpt selector's parameters bits,
// group_size and scale_important (MethodParams, so that every stage that
// builds the selector with mask.New gets the quantizing one). Call it once
// Compress is set, before Validate and Hash; otherwise it does nothing.
func (c *Config) EnableJointSweep() {
	if !c.WantsJointSweep() {
		return
	}
	q := c.Compress.Quant
	params := maps.Clone(c.MethodParams)
	if params == nil {
		params = map[string]string{}
	}
	params["bits"] = strconv.Itoa(q.Bits)
	delete(params, "group_size")
	delete(params, "scale_important")
	if q.GroupSize > 0 {
		params["group_size"] = strconv.Itoa(q.GroupSize)
	}
	if q.ScaleImportant {
		params["scale_important"] = "true"
	}
	c.MethodParams = params
	c.Compress.JointSweep = true
}

// checkJointSweep checks that the selector quantizes in its sweep exactly
// when Compress.JointSweep says so, on the same grid.
func (c *Config) checkJointSweep() error {
	var sq *quant.Options
	if c.Method == "sparsegpt" {
		o, err := update.ParseOptions(c.Method, c.MethodParams)
		if err != nil {
			return fmt.Errorf("--method-param: %w", err)
		}
		sq = o.Quant
	}
	joint := c.Compress != nil && c.Compress.JointSweep
	switch {
	case joint && !c.WantsJointSweep():
		return fmt.Errorf("the joint SparseGPT sweep needs --method sparsegpt --update own --quant gptq (got --method %s --update %s)", c.Method, c.Update)
	case !joint && sq != nil:
		return errors.New("--method-param bits/group_size/scale_important quantize inside SparseGPT's sweep; ask for it with --bits B --quant gptq --update own instead")
	case joint && (sq == nil || sq.Bits != c.Compress.Quant.Bits || sq.GroupSize != c.Compress.Quant.GroupSize || sq.ScaleImportant != c.Compress.Quant.ScaleImportant):
		return fmt.Errorf("the joint SparseGPT sweep's parameters %v do not match --bits %d --group-size %d --scale-important=%v", c.MethodParams, c.Compress.Quant.Bits, c.Compress.Quant.GroupSize, c.Compress.Quant.ScaleImportant)
	}
	return nil
}

// CheckCompressShapes checks the compression options against every linear
// the run prunes (group and tile sizes that divide it, adapter ranks that
// fit), so that a bad --group-size fails before any work. Errors name the
// flag and the linear.
func (c *Config) CheckCompressShapes(fam model.Family) error {
	if !c.CompressEnabled() {
		return nil
	}
	for b := range fam.NumBlocks() {
		for _, l := range fam.Linears(b) {
			if !c.Prunable(l) {
				continue
			}
			if err := c.Compress.CheckShape(l.Name, l.Out, l.In); err != nil {
				return err
			}
		}
	}
	return nil
}

// DampedHessian returns h's normalised Hessian symmetrized and damped as the
// OPTIMA row solve damps it (stages/solve.Prepare): (H + Hᵀ)/2 +
// λ·mean(diag H)·I, [in, in] float64, and the undamped diagonal ‖X_j‖²/N
// (Wanda's scaler_row, length in).
func DampedHessian(h *hessian.Hessian, damping float64) (hd, colNorms []float64) {
	in := h.In
	H := h.H()
	colNorms = make([]float64, in)
	var mean float64
	for j := range in {
		colNorms[j] = H[j*in+j]
		mean += H[j*in+j]
	}
	if in > 0 {
		mean /= float64(in)
	}
	hd = make([]float64, in*in)
	for i := range in {
		for j := range in {
			hd[i*in+j] = 0.5 * (H[i*in+j] + H[j*in+i])
		}
		hd[i*in+i] = H[i*in+i] + damping*mean
	}
	return hd, colNorms
}

// CompressLinear runs cfg.Compress (stages/compress) on one linear l once
// all of its rows are masked and updated: dense is W₀ and updated W_u
// ([l.Out, l.In] float32; updated is overwritten with the final weight),
// pruned the mask (nil for none), h the input group's Hessian. It returns
// the adapter tensors to store next to the weight (nil when none is kept
// separate) and fills rep's compression fields. Without compression it does
// nothing.
func CompressLinear(cfg *Config, l model.Linear, dense, updated []float32, pruned []bool, h *hessian.Hessian, rep *report.LinearReport) ([]*model.Tensor, error) {
	if !cfg.CompressEnabled() {
		return nil, nil
	}
	hd, norms := DampedHessian(h, cfg.Solve.Damping)
	res, err := compress.Linear(&compress.Input{Name: l.Name, Out: l.Out, In: l.In, Dense: dense, Updated: updated, Pruned: pruned, H: hd, ColNorms: norms}, *cfg.Compress)
	if err != nil {
		return nil, err
	}
	copy(updated, res.Weight)
	c := &report.CompressReport{Pruned: res.Errors.Pruned, Quantized: res.Errors.Quantized, Adapter: res.Errors.Adapter, Bytes: res.Bytes, DenseBytes: 2 * int64(l.Out) * int64(l.In)}
	if q := cfg.Compress.Quant; q != nil {
		c.Bits = q.Bits
	}
	if lo := cfg.Compress.LoRA; lo != nil {
		c.AdapterRank = lo.RankFor(l.Out, l.In)
	}
	rep.Compress = c
	if res.Adapter == nil {
		return nil, nil
	}
	a := res.Adapter
	return []*model.Tensor{
		{Name: l.Name + LoraASuffix, Shape: []int{a.Rank, a.In}, Data: a.A},
		{Name: l.Name + LoraBSuffix, Shape: []int{a.Out, a.Rank}, Data: a.B},
	}, nil
}

// mergeAdapters folds every lora_A/lora_B pair in w into its linear's
// weight (W + B·A, on a copy) and removes the adapter tensors, so that the
// block's forward pass sees the layer as written with its adapter.
func mergeAdapters(w model.Weights) error {
	for name, ta := range w {
		if !strings.HasSuffix(name, LoraASuffix) {
			continue
		}
		mod := strings.TrimSuffix(name, LoraASuffix)
		tb, ok := w[mod+LoraBSuffix]
		if !ok {
			return fmt.Errorf("adapter of %s: %s without %s", mod, name, mod+LoraBSuffix)
		}
		tw, ok := w[mod+".weight"]
		if !ok || len(tw.Shape) != 2 || len(ta.Shape) != 2 || len(tb.Shape) != 2 ||
			ta.Shape[1] != tw.Shape[1] || tb.Shape[0] != tw.Shape[0] || ta.Shape[0] != tb.Shape[1] {
			return fmt.Errorf("adapter of %s: shapes A %v, B %v do not fit the weight", mod, ta.Shape, tb.Shape)
		}
		a := &lora.Adapter{Rank: ta.Shape[0], Out: tw.Shape[0], In: tw.Shape[1], A: ta.Data, B: tb.Data}
		merged := &model.Tensor{Name: tw.Name, Shape: tw.Shape, Data: append([]float32(nil), tw.Data...)}
		a.Merge(merged.Data)
		w[mod+".weight"] = merged
	}
	for name := range w {
		if strings.HasSuffix(name, LoraASuffix) || strings.HasSuffix(name, LoraBSuffix) {
			delete(w, name)
		}
	}
	return nil
}
