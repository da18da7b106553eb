package llama

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
)

// forwardLogits runs the whole model on ids and returns the logits.
func forwardLogits(t *testing.T, fam *Family, w model.Weights, ids [][]int32) []float32 {
	t.Helper()
	be := cpu.New(1)
	nseq, seqlen := len(ids), len(ids[0])
	d, vocab := fam.Config().HiddenSize, fam.Config().VocabSize
	x := make([]float32, nseq*seqlen*d)
	if err := fam.Embed(w, flatten(ids), x); err != nil {
		t.Fatal(err)
	}
	for i := range fam.NumBlocks() {
		if err := fam.ForwardBlock(be, i, w, x, nseq, seqlen, nil); err != nil {
			t.Fatal(err)
		}
	}
	logits := make([]float32, nseq*seqlen*vocab)
	if err := fam.Logits(be, w, x, nseq*seqlen, logits); err != nil {
		t.Fatal(err)
	}
	return logits
}

// TestVariantFixturesAreSensitive checks that each variant's golden logits
// depend on the feature it covers: switching the feature off moves the
// logits far beyond the test tolerance, so TestGoldenLogits tests it.
func TestVariantFixturesAreSensitive(t *testing.T) {
	for _, tc := range []struct {
		name string
		off  func(f *Family)
	}{
		{"llama3_rope", func(f *Family) {
			f.invFreq = RopeScaling{Type: "default"}.InvFreq(f.cfg.RopeTheta, f.headDim)
		}},
		{"mistral_sliding", func(f *Family) { clear(f.window) }},
		{"mistral_sliding", func(f *Family) {
			f.invFreq = RopeScaling{Type: "default"}.InvFreq(f.cfg.RopeTheta, f.headDim)
		}},
		{"qwen2_sliding", func(f *Family) { clear(f.window) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fam, w, g := loadFixture(t, tc.name)
			if e := relErr(forwardLogits(t, fam, w, g.IDs), flatten(flatten(g.Logits))); e > tol {
				t.Fatalf("as configured: rel err %.3g", e)
			}
			tc.off(fam)
			fam.ropeLen = 0
			if e := relErr(forwardLogits(t, fam, w, g.IDs), flatten(flatten(g.Logits))); e < 100*tol {
				t.Errorf("feature off: rel err %.3g, want ≥ %g", e, 100*tol)
			}
		})
	}
}

// TestBiasFlags: Qwen2 and Mistral fix their biases whatever
// attention_bias and mlp_bias say; Llama follows them.
func TestBiasFlags(t *testing.T) {
	for _, tc := range []struct {
		arch  string
		flags bool
		want  []string
	}{
		{Architecture, true, []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}},
		{Architecture, false, nil},
		{Qwen2Architecture, true, []string{"q_proj", "k_proj", "v_proj"}},
		{Qwen2Architecture, false, []string{"q_proj", "k_proj", "v_proj"}},
		{MistralArchitecture, true, nil},
	} {
		c := &model.Config{Architecture: tc.arch, HiddenSize: 8, IntermediateSize: 8, NumHiddenLayers: 1, NumAttentionHeads: 2,
			VocabSize: 4, AttentionBias: tc.flags, MLPBias: tc.flags, Raw: map[string]any{}}
		fam, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, n := range fam.BlockTensors(0) {
			if s, ok := strings.CutSuffix(n, ".bias"); ok {
				got = append(got, s[strings.LastIndex(s, ".")+1:])
			}
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s flags %v: biases (-want +got):\n%s", tc.arch, tc.flags, diff)
		}
	}
}

func TestVariantShapes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		windows []int
		headDim int
		biases  []string
	}{
		{"llama3_rope", []int{0, 0}, 16, nil},
		{"mistral_sliding", []int{5, 5}, 24, nil},
		{"qwen2_sliding", []int{0, 6}, 16, []string{"q_proj", "k_proj", "v_proj"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fam, _, _ := loadFixture(t, tc.name)
			var got []int
			for i := range fam.NumBlocks() {
				got = append(got, fam.Window(i))
			}
			if diff := cmp.Diff(tc.windows, got); diff != "" {
				t.Errorf("windows (-want +got):\n%s", diff)
			}
			if fam.HeadDim() != tc.headDim {
				t.Errorf("head_dim %d, want %d", fam.HeadDim(), tc.headDim)
			}
			var biases []string
			for _, n := range fam.BlockTensors(0) {
				if s, ok := strings.CutSuffix(n, ".bias"); ok {
					biases = append(biases, s[strings.LastIndex(s, ".")+1:])
				}
			}
			if diff := cmp.Diff(tc.biases, biases); diff != "" {
				t.Errorf("biases (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRopeScaling(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  map[string]any
		want RopeScaling
		err  string
	}{
		{"none", map[string]any{}, RopeScaling{Type: "default", Factor: 1}, ""},
		{"default", map[string]any{"rope_parameters": map[string]any{"rope_type": "default", "rope_theta": 1e4}}, RopeScaling{Type: "default", Factor: 1}, ""},
		{"linear old key", map[string]any{"rope_scaling": map[string]any{"type": "linear", "factor": 4.0}}, RopeScaling{Type: "linear", Factor: 4}, ""},
		{"llama3 default original", map[string]any{"rope_scaling": map[string]any{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0}},
			RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 2048}, ""},
		{"rope_scaling wins", map[string]any{"rope_scaling": map[string]any{"type": "linear", "factor": 2.0},
			"rope_parameters": map[string]any{"rope_type": "default"}}, RopeScaling{Type: "linear", Factor: 2}, ""},
		{"yarn", map[string]any{"rope_parameters": map[string]any{"rope_type": "yarn", "factor": 4.0}}, RopeScaling{}, `config.json: rope_parameters rope_type "yarn" is not supported`},
		{"dynamic", map[string]any{"rope_scaling": map[string]any{"type": "dynamic", "factor": 4.0}}, RopeScaling{}, `rope_scaling rope_type "dynamic"`},
		{"linear no factor", map[string]any{"rope_scaling": map[string]any{"type": "linear"}}, RopeScaling{}, "factor"},
		{"llama3 no high", map[string]any{"rope_scaling": map[string]any{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0}}, RopeScaling{}, "high_freq_factor"},
		{"llama3 bands", map[string]any{"rope_scaling": map[string]any{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 4.0}}, RopeScaling{}, "must exceed"},
		{"negative factor", map[string]any{"rope_scaling": map[string]any{"type": "linear", "factor": -1.0}}, RopeScaling{}, "positive"},
		{"not object", map[string]any{"rope_scaling": "linear"}, RopeScaling{}, "want an object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRopeScaling(tc.raw, 2048)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestLlama3Factors checks that InvFreq and Llama3Factors agree:
// default inv_freq / r_i is the llama3 inv_freq.
func TestLlama3Factors(t *testing.T) {
	rs := RopeScaling{Type: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}
	const theta, hd = 500000.0, 64
	def := RopeScaling{Type: "default"}.InvFreq(theta, hd)
	got := rs.InvFreq(theta, hd)
	r := rs.Llama3Factors(theta, hd)
	bands := map[string]int{}
	for i := range got {
		want := float64(def[i]) / r[i]
		if math.Abs(float64(got[i])-want) > 1e-6*want {
			t.Errorf("inv_freq[%d] = %g, want %g (factor %g)", i, got[i], want, r[i])
		}
		switch {
		case r[i] == 1:
			bands["high"]++
		case r[i] == rs.Factor:
			bands["low"]++
		default:
			bands["mid"]++
		}
	}
	if bands["high"] == 0 || bands["low"] == 0 || bands["mid"] == 0 {
		t.Errorf("bands %v: the case does not cover all three", bands)
	}
}

func TestSlidingWindows(t *testing.T) {
	for _, tc := range []struct {
		name string
		arch string
		raw  map[string]any
		want []int
		err  string
	}{
		{"llama none", Architecture, map[string]any{}, []int{0, 0, 0}, ""},
		{"llama null", Architecture, map[string]any{"sliding_window": nil}, []int{0, 0, 0}, ""},
		{"llama set", Architecture, map[string]any{"sliding_window": 16.0}, nil, "sliding_window 16"},
		{"mistral", MistralArchitecture, map[string]any{"sliding_window": 16.0}, []int{16, 16, 16}, ""},
		{"mistral null", MistralArchitecture, map[string]any{"sliding_window": nil}, []int{0, 0, 0}, ""},
		{"qwen2 off", Qwen2Architecture, map[string]any{"sliding_window": 16.0, "max_window_layers": 1.0}, []int{0, 0, 0}, ""},
		{"qwen2 max_window_layers", Qwen2Architecture, map[string]any{"use_sliding_window": true, "sliding_window": 16.0, "max_window_layers": 1.0}, []int{0, 16, 16}, ""},
		{"qwen2 default max_window_layers", Qwen2Architecture, map[string]any{"use_sliding_window": true, "sliding_window": 16.0}, []int{0, 0, 0}, ""},
		{"qwen2 layer_types", Qwen2Architecture, map[string]any{"use_sliding_window": true, "sliding_window": 16.0, "max_window_layers": 0.0,
			"layer_types": []any{"sliding_attention", "full_attention", "sliding_attention"}}, []int{16, 0, 16}, ""},
		{"qwen2 bad layer_types", Qwen2Architecture, map[string]any{"use_sliding_window": true, "sliding_window": 16.0,
			"layer_types": []any{"sliding_attention", "full_attention"}}, nil, "layer_types"},
		{"qwen2 bad layer type", Qwen2Architecture, map[string]any{"use_sliding_window": true, "sliding_window": 16.0,
			"layer_types": []any{"sliding_attention", "chunked", "full_attention"}}, nil, "layer_types[1]"},
		{"bad window", MistralArchitecture, map[string]any{"sliding_window": 1.5}, nil, "sliding_window is 1.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := slidingWindows(&model.Config{Architecture: tc.arch, NumHiddenLayers: 3, Raw: tc.raw})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzParseRopeScaling feeds config.json objects to ParseRopeScaling and
// slidingWindows: they must not panic, and accepted rope scalings must give
// finite, non-negative inverse frequencies.
func FuzzParseRopeScaling(f *testing.F) {
	f.Add([]byte(`{"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":8192}}`))
	f.Add([]byte(`{"rope_parameters":{"type":"linear","factor":0.5},"sliding_window":7,"use_sliding_window":true,"layer_types":["full_attention","sliding_attention"]}`))
	f.Add([]byte(`{"rope_scaling":{"rope_type":"yarn"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var raw map[string]any
		if json.Unmarshal(b, &raw) != nil || raw == nil {
			return
		}
		for _, arch := range []string{Architecture, MistralArchitecture, Qwen2Architecture} {
			slidingWindows(&model.Config{Architecture: arch, NumHiddenLayers: 2, Raw: raw})
		}
		rs, err := ParseRopeScaling(raw, 4096)
		if err != nil {
			return
		}
		for i, v := range rs.InvFreq(10000, 16) {
			if !(v >= 0) || math.IsInf(float64(v), 0) {
				t.Fatalf("%+v: inv_freq[%d] = %v", rs, i, v)
			}
		}
	})
}
