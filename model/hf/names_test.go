package hf

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/safetensors"
)

func TestCanonicalNames(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stored  []string
		want    map[string]string // exposed → stored
		wantErr string
	}{
		{"llama causal lm", []string{"model.layers.0.mlp.up_proj.weight", "lm_head.weight", "model.norm.weight"},
			map[string]string{"model.layers.0.mlp.up_proj.weight": "model.layers.0.mlp.up_proj.weight",
				"lm_head.weight": "lm_head.weight", "model.norm.weight": "model.norm.weight"}, ""},
		{"llama base model", []string{"layers.0.mlp.up_proj.weight", "embed_tokens.weight", "norm.weight"},
			map[string]string{"model.layers.0.mlp.up_proj.weight": "layers.0.mlp.up_proj.weight",
				"model.embed_tokens.weight": "embed_tokens.weight", "model.norm.weight": "norm.weight"}, ""},
		{"opt base model", []string{"decoder.layers.0.fc1.weight", "decoder.project_in.weight"},
			map[string]string{"model.decoder.layers.0.fc1.weight": "decoder.layers.0.fc1.weight",
				"model.decoder.project_in.weight": "decoder.project_in.weight"}, ""},
		{"gemma3 multimodal, saved", []string{"language_model.model.layers.0.mlp.up_proj.weight",
			"language_model.model.embed_tokens.weight", "language_model.lm_head.weight",
			"vision_tower.vision_model.embeddings.patch_embedding.weight", "multi_modal_projector.mm_input_projection_weight"},
			map[string]string{"model.layers.0.mlp.up_proj.weight": "language_model.model.layers.0.mlp.up_proj.weight",
				"model.embed_tokens.weight": "language_model.model.embed_tokens.weight",
				"lm_head.weight":            "language_model.lm_head.weight"}, ""},
		{"gemma3 multimodal, v5 module names", []string{"model.language_model.layers.0.mlp.up_proj.weight",
			"model.vision_tower.vision_model.post_layernorm.weight", "lm_head.weight"},
			map[string]string{"model.layers.0.mlp.up_proj.weight": "model.language_model.layers.0.mlp.up_proj.weight",
				"lm_head.weight": "lm_head.weight"}, ""},
		{"both layouts", []string{"language_model.model.norm.weight", "model.language_model.norm.weight"}, nil,
			`"language_model.model.norm.weight" and "model.language_model.norm.weight" both load as "model.norm.weight"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CanonicalNames(tc.stored)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("CanonicalNames (-want +got):\n%s", diff)
			}
		})
	}
}

// writeRenamedDir writes configJSON as config.json and model.safetensors
// holding ts under rename(name) and the extra tensors under their names.
func writeRenamedDir(t *testing.T, configJSON []byte, ts map[string]*model.Tensor, rename func(string) string, extra ...*model.Tensor) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), configJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	var list []*model.Tensor
	for n, x := range ts {
		list = append(list, &model.Tensor{Name: rename(n), Shape: x.Shape, Data: x.Data})
	}
	list = append(list, extra...)
	if err := safetensors.WriteFile(filepath.Join(dir, safetensors.SingleName), list, safetensors.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestOpenBaseModelCheckpoint opens a Llama checkpoint saved from the base
// model (no "model." prefix) and checks that it loads as the causal LM's
// tensors; the stored names are not loadable.
func TestOpenBaseModelCheckpoint(t *testing.T) {
	ts := tinyTensors(rand.New(rand.NewPCG(4, 4)))
	cj, err := ConfigJSON(tinyConfig(), "float32")
	if err != nil {
		t.Fatal(err)
	}
	dir := writeRenamedDir(t, cj, ts, func(n string) string { return strings.TrimPrefix(n, "model.") })
	checkDir(t, dir, ts, "layers.0.mlp.up_proj.weight")
}

func checkDir(t *testing.T, dir string, ts map[string]*model.Tensor, hidden string) {
	t.Helper()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var want []string
	for n := range ts {
		want = append(want, n)
	}
	slices.Sort(want)
	if diff := cmp.Diff(want, d.Names()); diff != "" {
		t.Errorf("Names (-want +got):\n%s", diff)
	}
	for _, n := range want {
		got, err := d.Load(n)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(ts[n].Data, got.Data); got.Name != n || diff != "" {
			t.Errorf("Load(%s): name %s, data (-want +got):\n%s", n, got.Name, diff)
		}
		if s, ok := d.Shape(n); !ok || !slices.Equal(s, ts[n].Shape) {
			t.Errorf("Shape(%s) = %v, %v; want %v", n, s, ok, ts[n].Shape)
		}
	}
	if _, err := d.Load(hidden); err == nil {
		t.Errorf("Load(%q) (a stored name that is not exposed) succeeded", hidden)
	}
	if _, ok := d.Shape(hidden); ok {
		t.Errorf("Shape(%q) found a stored name that is not exposed", hidden)
	}
}

// gemma3MultimodalConfig is config.json as transformers 5.24's
// Gemma3ForConditionalGeneration.save_pretrained writes it for a tiny model
// (vision_config shortened).
const gemma3MultimodalConfig = `{"architectures":["Gemma3ForConditionalGeneration"],"boi_token_index":255999,"dtype":"float32",
"eoi_token_index":256000,"image_token_index":262144,"initializer_range":0.02,"mm_tokens_per_image":4,"model_type":"gemma3",
"text_config":{"_sliding_window_pattern":6,"attention_bias":false,"attention_dropout":0.0,"attn_logit_softcapping":null,
"bos_token_id":2,"eos_token_id":1,"final_logit_softcapping":null,"head_dim":16,"hidden_activation":"gelu_pytorch_tanh",
"hidden_size":32,"initializer_range":0.02,"intermediate_size":64,"layer_types":["sliding_attention","sliding_attention"],
"max_position_embeddings":131072,"model_type":"gemma3_text","num_attention_heads":2,"num_hidden_layers":2,
"num_key_value_heads":1,"pad_token_id":0,"query_pre_attn_scalar":256,"rms_norm_eps":1e-06,
"rope_parameters":{"full_attention":{"rope_theta":1000000.0,"rope_type":"default"},"sliding_attention":{"rope_theta":10000.0,"rope_type":"default"}},
"sliding_window":4,"tie_word_embeddings":true,"use_bidirectional_attention":false,"use_cache":true,"vocab_size":300},
"tie_word_embeddings":true,"transformers_version":"5.24.0",
"vision_config":{"hidden_size":16,"image_size":28,"intermediate_size":32,"model_type":"siglip_vision_model","num_attention_heads":2,"num_hidden_layers":1,"patch_size":14}}`

// TestOpenGemma3Multimodal opens a Gemma3ForConditionalGeneration
// directory as its Gemma 3 text model: the text_config becomes a
// Gemma3ForCausalLM config and the language_model.* tensors its tensors;
// the vision tower is left out.
func TestOpenGemma3Multimodal(t *testing.T) {
	cfg, err := ParseConfig([]byte(gemma3MultimodalConfig), "config.json")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Architecture != "Gemma3ForCausalLM" || cfg.ModelType != "gemma3_text" || cfg.HiddenSize != 32 ||
		cfg.NumHiddenLayers != 2 || cfg.NumKeyValueHeads != 1 || cfg.HeadDim != 16 || cfg.VocabSize != 300 ||
		!cfg.TieWordEmbeddings || cfg.RopeTheta != 1e6 || cfg.HiddenAct != "gelu_pytorch_tanh" || cfg.EOSTokenID != 1 {
		t.Errorf("text config: %+v", cfg)
	}
	if _, ok := cfg.Raw["vision_config"]; ok {
		t.Error("Raw has the vision_config")
	}
	b, err := ConfigJSON(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back["model_type"] != "gemma3_text" || back["text_config"] != nil {
		t.Errorf("written config is not a text model's: model_type %v", back["model_type"])
	}
	if _, err := ParseConfig([]byte(`{"model_type":"gemma3","architectures":["Gemma3ForConditionalGeneration"]}`), "x/config.json"); err == nil ||
		!strings.Contains(err.Error(), "text_config") || !strings.Contains(err.Error(), "x/config.json") {
		t.Errorf("multimodal config without text_config: err = %v", err)
	}

	r := rand.New(rand.NewPCG(5, 5))
	ts := map[string]*model.Tensor{}
	for n, s := range map[string][]int{"model.embed_tokens.weight": {300, 32}, "model.norm.weight": {32},
		"model.layers.0.mlp.up_proj.weight": {64, 32}, "model.layers.1.self_attn.q_norm.weight": {16}} {
		x := &model.Tensor{Shape: s, Data: make([]float32, 0)}
		for range x.Numel() {
			x.Data = append(x.Data, float32(r.NormFloat64()))
		}
		ts[n] = x
	}
	vision := &model.Tensor{Name: "vision_tower.vision_model.post_layernorm.weight", Shape: []int{16}, Data: make([]float32, 16)}
	dir := writeRenamedDir(t, []byte(gemma3MultimodalConfig), ts,
		func(n string) string { return "language_model." + n }, vision)
	checkDir(t, dir, ts, vision.Name)
}

// FuzzCanonicalNames feeds newline-separated tensor names: every exposed
// name must come from a stored one, and a checkpoint that is not
// multimodal keeps every tensor.
func FuzzCanonicalNames(f *testing.F) {
	f.Add("decoder.layers.0.fc1.weight\ndecoder.project_in.weight")
	f.Add("language_model.model.norm.weight\nvision_tower.x.weight\nlanguage_model.lm_head.weight")
	f.Add("model.language_model.norm.weight\nlm_head.weight\nmodel.vision_tower.y")
	f.Add("lm_head.weight\nnorm.weight\nmodel.x")
	f.Fuzz(func(t *testing.T, s string) {
		stored := slices.Compact(slices.Sorted(slices.Values(strings.Split(s, "\n"))))
		out, err := CanonicalNames(stored)
		if err != nil {
			return
		}
		multimodal := false
		for _, n := range stored {
			multimodal = multimodal || strings.HasPrefix(n, mmLegacyPrefix) || strings.HasPrefix(n, mmV5Prefix)
		}
		for exposed, st := range out {
			if _, found := slices.BinarySearch(stored, st); !found {
				t.Fatalf("%q maps to %q, which is not stored", exposed, st)
			}
		}
		if !multimodal && len(out) != len(stored) {
			t.Fatalf("%d stored names, %d exposed", len(stored), len(out))
		}
	})
}

// FuzzFamilyConfigJSON parses config.json bytes (seeds: OPT, Gemma 2, a
// multimodal Gemma 3) and writes accepted ones back: the written file must
// parse again to the same typed fields.
func FuzzFamilyConfigJSON(f *testing.F) {
	f.Add([]byte(`{"model_type":"opt","hidden_size":16,"num_attention_heads":2,"ffn_dim":32,"word_embed_proj_dim":8}`))
	f.Add([]byte(`{"model_type":"gemma2","hidden_size":16,"num_attention_heads":2,"num_key_value_heads":1,"head_dim":8,"rope_parameters":{"rope_theta":10000}}`))
	f.Add([]byte(gemma3MultimodalConfig))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b, "config.json")
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
			return
		}
		if c.ModelType != "opt" && c.ModelType != "gemma2" && c.ModelType != "gemma3_text" {
			return
		}
		w, err := ConfigJSON(c, "float32")
		if err != nil {
			t.Fatalf("ConfigJSON: %v", err)
		}
		back, err := ParseConfig(w, "written")
		if err != nil {
			t.Fatalf("written config does not parse: %v\n%s", err, w)
		}
		if diff := cmp.Diff(c, back, cmpopts.IgnoreFields(model.Config{}, "Raw")); diff != "" {
			t.Fatalf("config changed through ConfigJSON (-parsed +reparsed):\n%s", diff)
		}
	})
}
