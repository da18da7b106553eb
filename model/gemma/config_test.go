package gemma

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/hf"
)

// configCase is one entry of testdata/configs.json, written by
// tools/oracle/gemma_configs.py from transformers' config classes and
// rotary embeddings.
type configCase struct {
	Config            map[string]any `json:"config"`
	Architecture      string         `json:"architecture"`
	HiddenSize        int            `json:"hidden_size"`
	IntermediateSize  int            `json:"intermediate_size"`
	NumHiddenLayers   int            `json:"num_hidden_layers"`
	NumAttentionHeads int            `json:"num_attention_heads"`
	NumKeyValueHeads  int            `json:"num_key_value_heads"`
	HeadDim           int            `json:"head_dim"`
	VocabSize         int            `json:"vocab_size"`
	Tie               bool           `json:"tie_word_embeddings"`
	LayerTypes        []string       `json:"layer_types"`
	SlidingWindow     *int           `json:"sliding_window"`
	QueryPreAttn      float64        `json:"query_pre_attn_scalar"`
	AttnCap           *float64       `json:"attn_logit_softcapping"`
	FinalCap          *float64       `json:"final_logit_softcapping"`
	Normalizer        float64        `json:"normalizer"`
	FullInvFreq       []float64      `json:"full_inv_freq"`
	SlidingInvFreq    []float64      `json:"sliding_inv_freq"`
}

// summary is what New derived from a config, in the oracle's terms.
type summary struct {
	Architecture                                   string
	Hidden, Inter, Layers, Heads, KVHeads, HeadDim int
	Vocab                                          int
	Tie                                            bool
	LayerTypes                                     []string
	Window                                         int
	Scale, AttnCap, FinalCap, Normalizer           float32
}

func TestConfigsMatchTransformers(t *testing.T) {
	b, err := os.ReadFile("testdata/configs.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases map[string]configCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 6 {
		t.Fatalf("%d cases in configs.json", len(cases))
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			raw, err := json.Marshal(c.Config)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := hf.ParseConfig(raw, name)
			if err != nil {
				t.Fatal(err)
			}
			fam, err := model.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			f := fam.(*Family)
			got := summary{Architecture: cfg.Architecture, Hidden: f.hidden, Inter: f.inter, Layers: f.NumBlocks(),
				Heads: f.heads, KVHeads: f.kvHeads, HeadDim: f.headDim, Vocab: f.vocab, Tie: f.tied,
				Scale: f.scale, AttnCap: f.attnCap, FinalCap: f.finalCap, Normalizer: f.embedScale}
			for i := range f.NumBlocks() {
				sl, w := f.IsSliding(i)
				if sl {
					got.LayerTypes = append(got.LayerTypes, "sliding_attention")
					got.Window = w
				} else {
					got.LayerTypes = append(got.LayerTypes, "full_attention")
				}
			}
			want := summary{Architecture: c.Architecture, Hidden: c.HiddenSize, Inter: c.IntermediateSize,
				Layers: c.NumHiddenLayers, Heads: c.NumAttentionHeads, KVHeads: c.NumKeyValueHeads, HeadDim: c.HeadDim,
				Vocab: c.VocabSize, Tie: c.Tie, LayerTypes: c.LayerTypes,
				Scale: float32(math.Pow(c.QueryPreAttn, -0.5)), Normalizer: float32(c.Normalizer)}
			if c.SlidingWindow != nil {
				want.Window = *c.SlidingWindow
			}
			if c.AttnCap != nil {
				want.AttnCap = float32(*c.AttnCap)
			}
			if c.FinalCap != nil {
				want.FinalCap = float32(*c.FinalCap)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("family (-transformers +ours):\n%s", d)
			}
			for i := range f.NumBlocks() {
				wantInv := c.FullInvFreq
				if c.LayerTypes[i] == "sliding_attention" {
					wantInv = c.SlidingInvFreq
				}
				gotInv := f.layers[i].rope.invFreq
				if len(gotInv) != len(wantInv) {
					t.Fatalf("layer %d: %d inverse frequencies, want %d", i, len(gotInv), len(wantInv))
				}
				for j, w := range wantInv {
					if e := math.Abs(float64(gotInv[j])-w) / w; e > 1e-6 {
						t.Errorf("layer %d inv_freq[%d] = %g, want %g (rel err %.2g)", i, j, gotInv[j], w, e)
						break
					}
				}
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	base := `"architectures":["Gemma3ForCausalLM"],"model_type":"gemma3_text","hidden_size":64,"intermediate_size":96,` +
		`"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":16,"vocab_size":128`
	cases := []struct {
		name, json, want string
	}{
		{"yarn", `{` + base + `,"rope_scaling":{"rope_type":"yarn","factor":4}}`, `rope type "yarn" not implemented`},
		{"nested dynamic", `{` + base + `,"rope_parameters":{"sliding_attention":{"rope_type":"dynamic"}}}`, `rope_parameters.sliding_attention rope type "dynamic"`},
		{"linear without factor", `{` + base + `,"rope_scaling":{"rope_type":"linear"}}`, "factor 0 must be positive"},
		{"activation", `{` + base + `,"hidden_activation":"silu"}`, `hidden_activation "silu" not supported`},
		{"bidirectional", `{` + base + `,"use_bidirectional_attention":true}`, "use_bidirectional_attention"},
		{"layer types length", `{` + base + `,"layer_types":["full_attention"]}`, "layer_types"},
		{"layer type name", `{` + base + `,"layer_types":["full_attention","chunked_attention"]}`, "layer_types[1]"},
		{"window", `{` + base + `,"sliding_window":-3}`, "sliding_window"},
		{"scalar", `{` + base + `,"query_pre_attn_scalar":"x"}`, "query_pre_attn_scalar"},
		{"pattern", `{` + base + `,"sliding_window_pattern":0}`, "sliding_window_pattern"},
		{"odd head_dim", `{` + strings.Replace(base, `"head_dim":16`, `"head_dim":15`, 1) + `}`, "head_dim 15"},
		{"gemma2 rope", `{"model_type":"gemma2","num_hidden_layers":2,"rope_scaling":{"type":"llama3","factor":8}}`, `rope_scaling rope type "llama3"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := hf.ParseConfig([]byte(c.json), "config.json")
			if err == nil {
				_, err = New(cfg)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// TestMultimodalConfigText checks that a Gemma3ForConditionalGeneration
// config.json builds the Gemma 3 text family from its text_config (the
// top-level tie_word_embeddings applies), and that one without a
// text_config is an hf.ErrConfig naming the file.
func TestMultimodalConfigText(t *testing.T) {
	cfg, err := hf.ParseConfig([]byte(`{"architectures":["Gemma3ForConditionalGeneration"],"model_type":"gemma3",
		"tie_word_embeddings":true,"text_config":{"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":2,
		"num_key_value_heads":1,"head_dim":32,"intermediate_size":96,"vocab_size":100,"sliding_window":8}}`), "dir/config.json")
	if err != nil {
		t.Fatal(err)
	}
	fam, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Architecture != Gemma3 || fam.NumBlocks() != 2 || !cfg.TieWordEmbeddings {
		t.Errorf("architecture %s, %d blocks, tied %v; want %s, 2, true", cfg.Architecture, fam.NumBlocks(), cfg.TieWordEmbeddings, Gemma3)
	}
	_, err = hf.ParseConfig([]byte(`{"architectures":["Gemma3ForConditionalGeneration"],"model_type":"gemma3"}`), "dir/config.json")
	if !errors.Is(err, hf.ErrConfig) || !strings.Contains(err.Error(), "text_config") || !strings.Contains(err.Error(), "dir/config.json") {
		t.Errorf("error %v, want hf.ErrConfig naming the file and text_config", err)
	}
}

// FuzzConfig feeds arbitrary config.json bytes with a Gemma model_type
// through hf.ParseConfig and New: either may refuse, neither may panic, and
// an accepted family has one layer spec per block with a positive scale.
func FuzzConfig(f *testing.F) {
	f.Add([]byte(`{"model_type":"gemma2","num_hidden_layers":3,"sliding_window":null}`))
	f.Add([]byte(`{"model_type":"gemma3_text","num_hidden_layers":4,"sliding_window_pattern":2,"rope_scaling":{"rope_type":"linear","factor":8}}`))
	f.Add([]byte(`{"model_type":"gemma3_text","layer_types":["full_attention"],"num_hidden_layers":1,"rope_parameters":{"full_attention":null}}`))
	f.Add([]byte(`{"model_type":"gemma2","rope_parameters":{"rope_type":"linear","factor":"x"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := hf.ParseConfig(b, "fuzz")
		if err != nil || (cfg.Architecture != Gemma2 && cfg.Architecture != Gemma3) {
			return
		}
		if cfg.NumHiddenLayers > 1<<12 || cfg.HeadDim > 1<<12 {
			return
		}
		fam, err := New(cfg)
		if err != nil {
			return
		}
		if len(fam.layers) != cfg.NumHiddenLayers || !(fam.scale > 0) {
			t.Errorf("accepted family with %d layer specs for %d layers, scale %g", len(fam.layers), cfg.NumHiddenLayers, fam.scale)
		}
		for _, l := range fam.layers {
			if l.rope == nil || len(l.rope.invFreq) != fam.headDim/2 {
				t.Fatalf("layer without a rope table of %d frequencies", fam.headDim/2)
			}
		}
	})
}

// TestConfigJSONKeepsFloats checks that a parsed Gemma config written back
// by hf.ConfigJSON keeps the float-typed keys as float literals (checked
// with transformers 5.24: AutoModelForCausalLM.from_pretrained on the
// written config.json reproduces the golden logits; "15" instead of "15.0"
// fails Gemma2Config's strict validation).
func TestConfigJSONKeepsFloats(t *testing.T) {
	for name, want := range map[string][]string{
		"gemma2": {`"final_logit_softcapping": 15.0`, `"attn_logit_softcapping": 4.0`},
		"gemma3": {`"final_logit_softcapping": 8.0`, `"factor": 4.0`, `"rope_theta": 1e+06`},
	} {
		cfg, err := hf.ReadConfig("testdata/" + name + "/config.json")
		if err != nil {
			t.Fatal(err)
		}
		b, err := hf.ConfigJSON(cfg, "float32")
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s: written config.json lacks %s:\n%s", name, w, b)
			}
		}
		cfg2, err := hf.ParseConfig(b, "written")
		if err != nil {
			t.Fatal(err)
		}
		f1, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		f2, err := New(cfg2)
		if err != nil {
			t.Fatal(err)
		}
		if f1.finalCap != f2.finalCap || f1.attnCap != f2.attnCap || !cmp.Equal(f1.layers[1].rope.invFreq, f2.layers[1].rope.invFreq) {
			t.Errorf("%s: family changed through config.json", name)
		}
	}
}
