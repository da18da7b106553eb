package prune

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/stages/compress"
	"github.com/optima-llm/optima/stages/hessian"
	"github.com/optima-llm/optima/stages/lora"
	"github.com/optima-llm/optima/stages/quant"
	"github.com/optima-llm/optima/stages/solve"
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

// TestParseAdapterConfigUnsupported: PEFT options that change how B·A is
// applied (rsLoRA's alpha/sqrt(r) scale, DoRA's magnitude vector,
// fan_in_fan_out's transposed weights) are errors naming the option, not
// an adapter merged with the plain W + (alpha/r)·B·A; the plain config and
// the options set to false parse.
func TestParseAdapterConfigUnsupported(t *testing.T) {
	for _, tc := range []struct {
		raw, want string // want "": accepted
	}{
		{`{"peft_type": "LORA", "r": 8, "lora_alpha": 8}`, ""},
		{`{"peft_type": "LORA", "r": 8, "lora_alpha": 8, "use_rslora": false, "use_dora": false, "fan_in_fan_out": false}`, ""},
		{`{"peft_type": "LORA", "r": 8, "lora_alpha": 8, "use_rslora": true}`, "use_rslora"},
		{`{"peft_type": "LORA", "r": 8, "lora_alpha": 8, "use_dora": true}`, "use_dora"},
		{`{"peft_type": "LORA", "r": 8, "lora_alpha": 8, "fan_in_fan_out": true}`, "fan_in_fan_out"},
	} {
		_, err := ParseAdapterConfig([]byte(tc.raw))
		if tc.want == "" && err != nil {
			t.Errorf("%s: %v", tc.raw, err)
		}
		if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: error %v, want one naming %s", tc.raw, err, tc.want)
		}
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

// TestJointSweepConfig: EnableJointSweep turns on SparseGPT's joint sweep
// exactly for --method sparsegpt --update own --quant gptq, passing the grid
// to the selector, and Validate rejects configurations where the selector
// and the compression step disagree about who quantizes.
func TestJointSweepConfig(t *testing.T) {
	base := func(method, upd string, q quant.Method) Config {
		return Config{Model: "m", Calib: "c", Method: method, Pattern: "2:4", Update: upd, NSamples: 4, SeqLen: 8, Shards: 2,
			Solve: solve.DefaultOptions(), MethodParams: map[string]string{"blocksize": "64"},
			Compress: &compress.Options{Quant: &quant.Options{Bits: 3, Method: q, GroupSize: 32, ScaleImportant: true}}}
	}
	for _, tc := range []struct {
		method, update string
		q              quant.Method
		joint          bool
	}{
		{"sparsegpt", UpdateOwn, quant.GPTQ, true},
		{"sparsegpt", UpdateOptima, quant.GPTQ, false},
		{"sparsegpt", UpdateNone, quant.GPTQ, false},
		{"sparsegpt", UpdateOwn, quant.AbsMax, false},
		{"thanos", UpdateOwn, quant.GPTQ, false},
	} {
		c := base(tc.method, tc.update, tc.q)
		if tc.method == "thanos" {
			c.MethodParams = nil
		}
		c.EnableJointSweep()
		if err := c.Validate(); err != nil {
			t.Fatalf("%s/%s/%s: %v", tc.method, tc.update, tc.q, err)
		}
		if c.Compress.JointSweep != tc.joint {
			t.Errorf("%s/%s/%s: joint %v, want %v", tc.method, tc.update, tc.q, c.Compress.JointSweep, tc.joint)
		}
		want := map[string]string{"blocksize": "64"}
		if tc.joint {
			want = map[string]string{"blocksize": "64", "bits": "3", "group_size": "32", "scale_important": "true"}
		}
		if tc.method == "thanos" {
			want = nil
		}
		if d := cmp.Diff(want, c.MethodParams); d != "" {
			t.Errorf("%s/%s/%s: selector parameters (-want +got):\n%s", tc.method, tc.update, tc.q, d)
		}
	}
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string
	}{
		"bits without joint":   {func(c *Config) { c.Compress.JointSweep = false }, "quantize inside SparseGPT's sweep"},
		"joint with optima":    {func(c *Config) { c.Update = UpdateOptima }, "needs --method sparsegpt --update own"},
		"grids disagree":       {func(c *Config) { c.MethodParams["group_size"] = "64" }, "do not match"},
		"joint without params": {func(c *Config) { c.MethodParams = nil }, "do not match"},
	} {
		c := base("sparsegpt", UpdateOwn, quant.GPTQ)
		c.EnableJointSweep()
		tc.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate = %v, want %q", name, err, tc.want)
		}
	}
}

// TestReadAdapterScale: ReadAdapter scales each B by PEFT's lora_alpha/r
// for its module, where rank_pattern and alpha_pattern keys match a module
// as PEFT matches them (the whole path, or its last dotted components:
// "q_proj" matches model.layers.0.self_attn.q_proj), and r is the module's
// rank (the rows of its A).
func TestReadAdapterScale(t *testing.T) {
	const q, v = "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj"
	for _, tc := range []struct {
		name   string
		cfg    string
		rank   map[string]int // module → rank of its tensors
		scales map[string]float32
	}{
		{"optima's own", `{"peft_type": "LORA", "r": 4, "lora_alpha": 4, "rank_pattern": {"` + q + `": 2, "` + v + `": 4}, "alpha_pattern": {"` + q + `": 2, "` + v + `": 4}}`,
			map[string]int{q: 2, v: 4}, map[string]float32{q: 1, v: 1}},
		{"global alpha", `{"peft_type": "LORA", "r": 4, "lora_alpha": 8}`,
			map[string]int{q: 4, v: 4}, map[string]float32{q: 2, v: 2}},
		{"short alpha_pattern key", `{"peft_type": "LORA", "r": 4, "lora_alpha": 4, "alpha_pattern": {"q_proj": 16}}`,
			map[string]int{q: 4, v: 4}, map[string]float32{q: 4, v: 1}},
		{"short rank_pattern key", `{"peft_type": "LORA", "r": 8, "lora_alpha": 8, "rank_pattern": {"self_attn.q_proj": 2}}`,
			map[string]int{q: 2, v: 8}, map[string]float32{q: 4, v: 1}},
		{"key that is not a suffix", `{"peft_type": "LORA", "r": 4, "lora_alpha": 4, "alpha_pattern": {"_proj": 16}}`,
			map[string]int{q: 4, v: 4}, map[string]float32{q: 1, v: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var ts []*model.Tensor
			for _, mod := range []string{q, v} {
				r := tc.rank[mod]
				ts = append(ts, &model.Tensor{Name: mod + LoraASuffix, Shape: []int{r, 8}, Data: make([]float32, r*8)},
					&model.Tensor{Name: mod + LoraBSuffix, Shape: []int{8, r}, Data: slicesRepeat(1, 8*r)})
			}
			if err := writeAdapter(dir, "base", ts); err != nil {
				t.Fatal(err)
			}
			if err := WriteFileAtomic(filepath.Join(dir, AdapterConfigFile), []byte(tc.cfg)); err != nil {
				t.Fatal(err)
			}
			a, err := ReadAdapter(dir)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]float32{}
			for _, mod := range []string{q, v} {
				got[mod] = a[mod+LoraBSuffix].Data[0]
			}
			if d := cmp.Diff(tc.scales, got); d != "" {
				t.Errorf("B scales (-want +got):\n%s", d)
			}
		})
	}
}

// slicesRepeat is n copies of x.
func slicesRepeat(x float32, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = x
	}
	return s
}
