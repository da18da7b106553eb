// Package compress runs the per-linear steps that follow the mask and the
// row update: weight quantization (stages/quant) and a low-rank adapter
// fitted to what compression lost (stages/lora), and measures the layer
// error after each step in the metric OPTIMA minimises,
// tr((W₀ − Ŵ) H (W₀ − Ŵ)ᵀ) / tr(W₀ H W₀ᵀ).
//
// Order, for one linear with dense weight W₀, mask P and updated weight W_u
// (zero on P):
//
//  1. quantize W_u to W_q (AbsMax, SLiM-Quant, group AbsMax or GPTQ on the
//     mask; zeros stay zero);
//  2. fit the adapter B·A to E = W₀ − W_q;
//  3. keep the adapter separate (y = W_q x + B(A x)), or merge it into the
//     weight (W_q + B·A, dense and unquantized, as SLiM's separate_lora=False).
//
// Joint mode (Options.JointSweep): with --method sparsegpt --update own
// --quant gptq, SparseGPT's own sweep quantizes while it prunes (SparseGPT
// §3.5; stages/update.SparseGPT with Options.Quant), so W_u arrives already
// on the grid and step 1 runs no second GPTQ sweep: it only re-encodes W_u
// (quant.Encode) for the storage count. One sweep does both steps, so the
// error of the pruned, not yet quantized weight does not exist: Errors.Pruned
// is reported equal to Errors.Quantized, the error of the joint sweep.
// With --update optima (or none) the order stays mask, re-fit, then GPTQ on
// the fixed mask: OPTIMA's exact row re-fit solves for unquantized weights on
// a known mask, so it cannot run inside a quantizing sweep, and the joint
// sweep is SparseGPT's own update.
//
// SLiM's reference quantizes before its LoRA fit too, but then subtracts the
// adapter from the dense weight and masks and quantizes the result again;
// here the adapter corrects the final quantized weight, so the reported
// error after the adapter is exactly that of the layer as written.
package compress

import (
	"errors"
	"fmt"

	"github.com/optima-llm/optima/stages/lora"
	"github.com/optima-llm/optima/stages/quant"
	"github.com/optima-llm/optima/stages/solve"
)

// Options selects the steps; a nil field skips its step.
type Options struct {
	// Quant quantizes the weights.
	Quant *quant.Options `json:"quant,omitempty"`
	// LoRA fits an adapter.
	LoRA *lora.Options `json:"lora,omitempty"`
	// SeparateLoRA keeps the adapter as lora_A/lora_B tensors; false merges
	// it into the weight.
	SeparateLoRA bool `json:"separate_lora,omitempty"`
	// JointSweep says the weights arrive quantized by SparseGPT's joint
	// sweep on Quant's grid (Quant.Method must be gptq): Linear re-encodes
	// them instead of quantizing again (see the package comment).
	JointSweep bool `json:"joint_sweep,omitempty"`
}

// Enabled reports whether any step runs.
func (o Options) Enabled() bool { return o.Quant != nil || o.LoRA != nil }

// Validate checks the options alone.
func (o Options) Validate() error {
	if o.Quant != nil {
		if err := o.Quant.Validate(); err != nil {
			return err
		}
	}
	if o.LoRA != nil {
		if err := o.LoRA.Validate(); err != nil {
			return err
		}
	}
	if o.JointSweep && (o.Quant == nil || o.Quant.Method != quant.GPTQ) {
		return errors.New("compress: the joint SparseGPT sweep quantizes with --quant gptq and needs --bits")
	}
	if o.SeparateLoRA && o.LoRA == nil {
		return errors.New("compress: --separate-lora needs --lora-rank")
	}
	return nil
}

// CheckShape reports whether the [out, in] linear named layer can take the
// steps (group and tile sizes that divide it).
func (o Options) CheckShape(layer string, out, in int) error {
	if o.Quant != nil {
		if err := o.Quant.CheckShape(layer, out, in); err != nil {
			return err
		}
	}
	if o.LoRA != nil {
		if err := o.LoRA.CheckShape(layer, out, in); err != nil {
			return err
		}
	}
	return nil
}

// Input is one linear's state after the mask and the update.
type Input struct {
	Name    string
	Out, In int
	// Dense is W₀, [Out, In] float32.
	Dense []float32
	// Updated is W_u, [Out, In] float32, zero where Pruned is true.
	Updated []float32
	// Pruned is the mask, [Out, In]; nil for a dense layer.
	Pruned []bool
	// H is the damped Hessian [In, In] float64 (the one the row solve used).
	H []float64
	// ColNorms are ‖X_j‖²/N, length In (Wanda's scaler_row).
	ColNorms []float64
}

// Errors are the relative layer errors tr(D H Dᵀ)/tr(W₀ H W₀ᵀ), D = W₀ − Ŵ,
// after each step; a step that did not run repeats the previous value.
type Errors struct {
	Pruned    float64 `json:"pruned"`
	Quantized float64 `json:"quantized"`
	Adapter   float64 `json:"adapter"`
}

// Result is one linear after the steps.
type Result struct {
	// Weight is the final weight [Out, In] float32: W_q, or W_q + B·A when
	// the adapter is merged.
	Weight []float32
	// Quantized holds the codes and steps, nil without quantization (or
	// when a merged adapter makes the weight dense).
	Quantized *quant.Quantized
	// Adapter is the separate adapter, nil when merged or not asked for.
	Adapter *lora.Adapter
	Errors  Errors
	// Bytes is the storage of the weight (packed codes and steps, or
	// float16) and of a separate adapter.
	Bytes int64
}

// Linear runs the steps on one linear. It does not modify in.
func Linear(in *Input, o Options) (*Result, error) {
	n := in.Out * in.In
	if len(in.Dense) != n || len(in.Updated) != n || (in.Pruned != nil && len(in.Pruned) != n) || len(in.H) != in.In*in.In || len(in.ColNorms) != in.In {
		panic(fmt.Sprintf("compress.Linear %s: inconsistent shapes for %d×%d", in.Name, in.Out, in.In))
	}
	if err := o.CheckShape(in.Name, in.Out, in.In); err != nil {
		return nil, err
	}
	rel := func(w []float32) float64 {
		num, den := solve.Objective(in.H, in.In, in.Dense, w, in.Out)
		if den == 0 {
			return 0
		}
		return num / den
	}
	res := &Result{Weight: append([]float32(nil), in.Updated...)}
	res.Errors.Pruned = rel(res.Weight)
	res.Errors.Quantized = res.Errors.Pruned
	if q := o.Quant; q != nil {
		var imp []int
		if q.ScaleImportant {
			imp = quant.ImportantColumns(in.Dense, in.Out, in.In, in.ColNorms)
		}
		var err error
		switch {
		case o.JointSweep:
			res.Quantized, err = quant.Encode(res.Weight, in.Out, in.In, *q, imp)
		case q.Method == quant.GPTQ:
			res.Quantized, err = quant.GPTQQuantize(res.Weight, in.Out, in.In, in.H, in.Pruned, *q, imp)
		default:
			res.Quantized, err = quant.Quantize(res.Weight, in.Out, in.In, *q, imp)
			if err == nil {
				res.Quantized.Dequantize(res.Weight)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("compress %s: %w", in.Name, err)
		}
		res.Errors.Quantized = rel(res.Weight)
		if o.JointSweep {
			res.Errors.Pruned = res.Errors.Quantized
		}
	}
	res.Errors.Adapter = res.Errors.Quantized
	if lo := o.LoRA; lo != nil {
		e := make([]float64, n)
		for k := range e {
			e[k] = float64(in.Dense[k]) - float64(res.Weight[k])
		}
		a, err := lora.Fit(e, in.Out, in.In, *lo, in.ColNorms, in.H)
		if err != nil {
			return nil, fmt.Errorf("compress %s: %w", in.Name, err)
		}
		with := append([]float32(nil), res.Weight...)
		a.Merge(with)
		res.Errors.Adapter = rel(with)
		if o.SeparateLoRA {
			res.Adapter = a
		} else {
			res.Weight = with
			res.Quantized = nil
		}
	}
	switch {
	case res.Quantized != nil:
		res.Bytes = res.Quantized.Bytes()
	default:
		res.Bytes = 2 * int64(n)
	}
	if res.Adapter != nil {
		res.Bytes += res.Adapter.Bytes(*o.LoRA)
	}
	return res, nil
}
