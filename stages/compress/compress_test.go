package compress

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/stages/lora"
	"github.com/optima-llm/optima/stages/mask"
	"github.com/optima-llm/optima/stages/quant"
	"github.com/optima-llm/optima/stages/update"
)

// layer makes a random linear with a Hessian from heavy-tailed activations
// and a 50% magnitude mask applied without update.
func layer(out, in int) *Input {
	r := rand.New(rand.NewPCG(9, 10))
	n := 4 * in
	x := make([]float64, n*in)
	scale := make([]float64, in)
	for j := range scale {
		scale[j] = 0.2 + 3*r.Float64()*r.Float64()
	}
	for k := range x {
		x[k] = r.NormFloat64() * scale[k%in]
	}
	h := make([]float64, in*in)
	norms := make([]float64, in)
	for a := 0; a < in; a++ {
		for b := 0; b < in; b++ {
			s := 0.0
			for t := 0; t < n; t++ {
				s += x[t*in+a] * x[t*in+b]
			}
			h[a*in+b] = s / float64(n)
		}
		norms[a] = h[a*in+a]
	}
	mean := 0.0
	for a := 0; a < in; a++ {
		mean += h[a*in+a] / float64(in)
	}
	for a := 0; a < in; a++ {
		h[a*in+a] += 0.01 * mean
	}
	w := make([]float32, out*in)
	for k := range w {
		w[k] = float32(r.NormFloat64() * 0.05)
	}
	pruned := make([]bool, out*in)
	upd := append([]float32(nil), w...)
	for k := range w {
		if w[k] < 0.03 && w[k] > -0.03 {
			pruned[k], upd[k] = true, 0
		}
	}
	return &Input{Name: "model.layers.0.mlp.down_proj", Out: out, In: in, Dense: w, Updated: upd, Pruned: pruned, H: h, ColNorms: norms}
}

func TestStepsLowerTheError(t *testing.T) {
	in := layer(32, 64)
	for _, c := range []struct {
		name string
		o    Options
	}{
		{"absmax+slim-lora separate", Options{Quant: &quant.Options{Bits: 4, Method: quant.AbsMax}, LoRA: &lora.Options{Rank: 0.1, Mode: lora.SLiM}, SeparateLoRA: true}},
		{"slim-quant+hessian-lora separate", Options{Quant: &quant.Options{Bits: 4, Method: quant.SLiM}, LoRA: &lora.Options{Rank: 0.1, Mode: lora.Hessian}, SeparateLoRA: true}},
		{"gptq+svd merged", Options{Quant: &quant.Options{Bits: 3, Method: quant.GPTQ, GroupSize: 16}, LoRA: &lora.Options{Rank: 0.25, Mode: lora.SVD}}},
	} {
		res, err := Linear(in, c.o)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		e := res.Errors
		if !(e.Pruned > 0 && e.Quantized > e.Pruned && e.Adapter < e.Quantized) {
			t.Errorf("%s: errors pruned %.4g quantized %.4g adapter %.4g; want quantization to add error and the adapter to remove some", c.name, e.Pruned, e.Quantized, e.Adapter)
		}
		if c.o.SeparateLoRA {
			if res.Adapter == nil || res.Quantized == nil {
				t.Fatalf("%s: separate adapter or codes missing", c.name)
			}
			for k, p := range in.Pruned {
				if p && res.Weight[k] != 0 {
					t.Fatalf("%s: pruned weight %d = %v, want 0", c.name, k, res.Weight[k])
				}
			}
		} else if res.Adapter != nil || res.Quantized != nil {
			t.Errorf("%s: a merged adapter leaves a dense float weight; got adapter %v codes %v", c.name, res.Adapter != nil, res.Quantized != nil)
		}
	}
}

func TestGPTQBeatsRoundToNearest(t *testing.T) {
	in := layer(32, 64)
	rtn, err := Linear(in, Options{Quant: &quant.Options{Bits: 3, Method: quant.AbsMax}})
	if err != nil {
		t.Fatal(err)
	}
	gptq, err := Linear(in, Options{Quant: &quant.Options{Bits: 3, Method: quant.GPTQ}})
	if err != nil {
		t.Fatal(err)
	}
	if gptq.Errors.Quantized >= rtn.Errors.Quantized {
		t.Errorf("GPTQ error %v not below round-to-nearest %v on the same grid", gptq.Errors.Quantized, rtn.Errors.Quantized)
	}
	if gptq.Bytes >= int64(2*in.Out*in.In) || rtn.Bytes != gptq.Bytes {
		t.Errorf("bytes: gptq %d, rtn %d, float16 %d", gptq.Bytes, rtn.Bytes, 2*in.Out*in.In)
	}
}

func TestBadShapeNamesLayer(t *testing.T) {
	in := layer(32, 64)
	_, err := Linear(in, Options{Quant: &quant.Options{Bits: 4, Method: quant.AbsMax, GroupSize: 48}})
	if !errors.Is(err, quant.ErrOptions) || !strings.Contains(err.Error(), in.Name) {
		t.Errorf("group 48 on 64 columns: err %v, want ErrOptions naming %s", err, in.Name)
	}
	if err := (Options{SeparateLoRA: true}).Validate(); err == nil {
		t.Error("--separate-lora without an adapter was accepted")
	}
}

// TestJointSweep feeds Linear weights quantized by SparseGPT's joint sweep
// (stages/update): it must keep them bit for bit, find codes and steps that
// dequantize to them, report err_pruned = err_quantized, and reject weights
// that are on no grid.
func TestJointSweep(t *testing.T) {
	base := layer(32, 128)
	for _, q := range []quant.Options{
		{Bits: 4, Method: quant.GPTQ},
		{Bits: 3, Method: quant.GPTQ, GroupSize: 32},
		{Bits: 4, Method: quant.GPTQ, GroupSize: 64, ScaleImportant: true},
	} {
		t.Run(fmt.Sprintf("%dbit/g%d/important=%v", q.Bits, q.GroupSize, q.ScaleImportant), func(t *testing.T) {
			in := *base
			w := make([]float64, len(in.Dense))
			for k, v := range in.Dense {
				w[k] = float64(v)
			}
			pr := make([]bool, len(w))
			uo := update.Options{BlockSize: 32, Damping: 0.01, Quant: &q}
			if _, err := update.SparseGPT(cpu.New(1), w, in.Out, in.In, in.H, mask.Pattern{N: 2, M: 4}, uo, pr); err != nil {
				t.Fatal(err)
			}
			in.Updated = make([]float32, len(w))
			for k, v := range w {
				in.Updated[k] = float32(v)
			}
			in.Pruned = pr
			res, err := Linear(&in, Options{Quant: &q, JointSweep: true, LoRA: &lora.Options{Rank: 0.1, Mode: lora.SVD}, SeparateLoRA: true})
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(in.Updated, res.Weight); d != "" {
				t.Fatalf("joint weights changed (-sweep +compress):\n%s", d)
			}
			deq := make([]float32, len(w))
			res.Quantized.Dequantize(deq)
			for k := range deq {
				if math.Abs(float64(deq[k]-in.Updated[k])) > 1e-6*math.Abs(float64(in.Updated[k])) {
					t.Fatalf("weight %d: codes dequantize to %g, sweep gave %g", k, deq[k], in.Updated[k])
				}
			}
			e := res.Errors
			if !(e.Pruned == e.Quantized && e.Quantized > 0 && e.Adapter < e.Quantized) {
				t.Errorf("errors %+v: want pruned = quantized > adapter", e)
			}
			noise := slices.Clone(in.Updated)
			noise[5] += 1e-3
			in.Updated = noise
			if _, err := Linear(&in, Options{Quant: &q, JointSweep: true}); !errors.Is(err, quant.ErrNotOnGrid) {
				t.Errorf("weights off the grid: err %v, want ErrNotOnGrid", err)
			}
		})
	}
	if err := (Options{Quant: &quant.Options{Bits: 4, Method: quant.AbsMax}, JointSweep: true}).Validate(); err == nil {
		t.Error("joint sweep with --quant absmax was accepted")
	}
}
