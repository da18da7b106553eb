package prune

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/stages/hessian"
	"github.com/optima-llm/optima/stages/lora"
)

func diagHessian(diag ...float64) *hessian.Hessian {
	h := hessian.New("g", len(diag))
	for j, v := range diag {
		h.Sum[j*len(diag)+j] = v
	}
	h.Tokens = 8
	return h
}

// TestMaskNormsShift checks shift_zero_metrics against SLiM's shift_zeros:
// x + min(x with zeros replaced by 1), on ‖X_j‖²/nsamples.
func TestMaskNormsShift(t *testing.T) {
	for _, tc := range []struct {
		name     string
		shift    bool
		nsamples int
		diag     []float64
		want     []float64
	}{
		{"off", false, 2, []float64{0, 4, 9}, []float64{0, 2, 3}},
		{"zero counts as one", true, 2, []float64{0, 4, 9}, []float64{1, math.Sqrt(3), math.Sqrt(5.5)}},
		{"small positive", true, 1, []float64{0, 0.25, 9}, []float64{0.5, math.Sqrt(0.5), math.Sqrt(9.25)}},
		{"no zeros", true, 1, []float64{4, 9}, []float64{math.Sqrt(8), math.Sqrt(13)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Config{NSamples: tc.nsamples, ShiftZeroMetrics: tc.shift}
			got := c.MaskNorms(diagHessian(tc.diag...))
			if d := cmp.Diff(tc.want, got, cmpopts.EquateApprox(0, 1e-12)); d != "" {
				t.Errorf("MaskNorms (-want +got):\n%s", d)
			}
		})
	}
}

// TestMergeAdapters: the block's forward weights get W + B·A and lose the
// adapter tensors; mismatched shapes are an error naming the module.
func TestMergeAdapters(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const out, in, rank = 6, 8, 2
	rnd := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		return x
	}
	w := &model.Tensor{Name: "m.weight", Shape: []int{out, in}, Data: rnd(out * in)}
	a := &lora.Adapter{Rank: rank, Out: out, In: in, A: rnd(rank * in), B: rnd(out * rank)}
	want := append([]float32(nil), w.Data...)
	a.Merge(want)
	orig := append([]float32(nil), w.Data...)
	ws := model.Weights{"m.weight": w,
		"m" + LoraASuffix: {Name: "m" + LoraASuffix, Shape: []int{rank, in}, Data: a.A},
		"m" + LoraBSuffix: {Name: "m" + LoraBSuffix, Shape: []int{out, rank}, Data: a.B}}
	if err := mergeAdapters(ws); err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 {
		t.Fatalf("%d tensors left, want the weight only", len(ws))
	}
	if d := cmp.Diff(want, ws["m.weight"].Data); d != "" {
		t.Errorf("merged weight (-want +got):\n%s", d)
	}
	if d := cmp.Diff(orig, w.Data); d != "" {
		t.Errorf("the source tensor was modified:\n%s", d)
	}
	bad := model.Weights{"m.weight": w, "m" + LoraASuffix: {Shape: []int{rank, in - 1}, Data: make([]float32, rank*(in-1))},
		"m" + LoraBSuffix: {Shape: []int{out, rank}, Data: a.B}}
	if err := mergeAdapters(bad); err == nil {
		t.Error("mismatched adapter shapes accepted")
	}
}

// TestDampedHessian: symmetrized, damped by λ·mean(diag), with the
// undamped diagonal as the column norms.
func TestDampedHessian(t *testing.T) {
	h := hessian.New("g", 2)
	h.Sum = []float64{4, 2, 0, 8}
	h.Tokens = 2
	hd, norms := DampedHessian(h, 0.5)
	// H = [[2, 1], [0, 4]], mean diag 3, shift 1.5.
	if d := cmp.Diff([]float64{3.5, 0.5, 0.5, 5.5}, hd); d != "" {
		t.Errorf("damped Hessian (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]float64{2, 4}, norms); d != "" {
		t.Errorf("column norms (-want +got):\n%s", d)
	}
}

// FuzzParseAdapterConfig: the parser never panics, and what it accepts is
// a LoRA config with non-negative ranks that survives a JSON round trip.
func FuzzParseAdapterConfig(f *testing.F) {
	f.Add([]byte(`{"peft_type":"LORA","r":8,"lora_alpha":8,"target_modules":["q_proj"],"rank_pattern":{"model.layers.0.self_attn.q_proj":4},"alpha_pattern":{"model.layers.0.self_attn.q_proj":4}}`))
	f.Add([]byte(`{"peft_type":"PREFIX_TUNING"}`))
	f.Add([]byte(`{"peft_type":"LORA","r":-1}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := ParseAdapterConfig(raw)
		if err != nil {
			return
		}
		if cfg.PeftType != "LORA" || cfg.R < 0 || cfg.LoraAlpha < 0 {
			t.Fatalf("accepted %+v", cfg)
		}
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseAdapterConfig(b)
		if err != nil {
			t.Fatalf("round trip: %v", err)
		}
		if d := cmp.Diff(cfg, again, cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("round trip (-first +second):\n%s", d)
		}
	})
}
