package hf

import (
	"encoding/json"
	"os"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/optima-llm/optima/model"
)

// TestConfigJSONFamilyKeys writes parsed OPT and Gemma configs back with
// ConfigJSON and checks that (1) every written key is one that
// transformers' config class of that model_type has (the key lists in
// testdata/config_keys.json come from tools/oracle/hf_config_keys.py;
// torch_dtype and the input file's own keys are also allowed;
// transformers v5 reads torch_dtype as dtype), so no
// Llama-only key (rms_norm_eps, rope_theta, head_dim, ...) leaks into
// them, and (2) the written file parses back to the same typed fields.
func TestConfigJSONFamilyKeys(t *testing.T) {
	b, err := os.ReadFile("testdata/config_keys.json")
	if err != nil {
		t.Fatal(err)
	}
	var classes map[string]any
	if err := json.Unmarshal(b, &classes); err != nil {
		t.Fatal(err)
	}
	allowed := func(class string) map[string]bool {
		l, ok := classes[class].([]any)
		if !ok || len(l) == 0 {
			t.Fatalf("testdata/config_keys.json has no keys for %s", class)
		}
		m := map[string]bool{"torch_dtype": true}
		for _, k := range l {
			m[k.(string)] = true
		}
		return m
	}
	for _, tc := range []struct {
		name, class, config string
		want                map[string]any // written keys with their values
	}{
		{"opt-125m", "OPTConfig", `{"architectures":["OPTForCausalLM"],"model_type":"opt","vocab_size":50272,
			"hidden_size":768,"num_hidden_layers":12,"ffn_dim":3072,"max_position_embeddings":2048,"do_layer_norm_before":true,
			"_remove_final_layer_norm":false,"word_embed_proj_dim":768,"dropout":0.1,"attention_dropout":0.0,
			"num_attention_heads":12,"activation_function":"relu","layerdrop":0.0,"init_std":0.02,"use_cache":true,
			"enable_bias":true,"layer_norm_elementwise_affine":true,"pad_token_id":1,"bos_token_id":2,"eos_token_id":2,
			"prefix":"</s>","torch_dtype":"float16","transformers_version":"4.21.0.dev0"}`,
			map[string]any{"ffn_dim": 3072.0, "activation_function": "relu", "enable_bias": true, "hidden_size": 768.0}},
		{"opt-350m projected, bare", "OPTConfig", `{"model_type":"opt","hidden_size":1024,"word_embed_proj_dim":512,
			"num_attention_heads":16,"num_hidden_layers":24,"ffn_dim":4096,"do_layer_norm_before":false,"enable_bias":false}`,
			map[string]any{"ffn_dim": 4096.0, "enable_bias": false, "architectures": []any{"OPTForCausalLM"}}},
		{"gemma2", "Gemma2Config", `{"architectures":["Gemma2ForCausalLM"],"model_type":"gemma2","hidden_size":64,
			"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":16,
			"hidden_activation":"gelu_pytorch_tanh","query_pre_attn_scalar":16,"sliding_window":8,
			"final_logit_softcapping":30.0,"attn_logit_softcapping":50.0,"rope_parameters":{"rope_type":"default","rope_theta":10000.0},
			"vocab_size":128}`,
			map[string]any{"hidden_activation": "gelu_pytorch_tanh", "head_dim": 16.0, "rms_norm_eps": 1e-6,
				"rope_parameters": map[string]any{"rope_type": "default", "rope_theta": 10000.0}}},
		{"gemma3 text", "Gemma3TextConfig", `{"architectures":["Gemma3ForCausalLM"],"model_type":"gemma3_text",
			"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":1,
			"head_dim":16,"layer_types":["sliding_attention","full_attention"],"sliding_window":8,
			"rope_parameters":{"full_attention":{"rope_type":"default","rope_theta":1000000.0},
			"sliding_attention":{"rope_type":"default","rope_theta":10000.0}},"vocab_size":128}`,
			map[string]any{"hidden_activation": "gelu_pytorch_tanh", "rope_parameters": map[string]any{
				"full_attention":    map[string]any{"rope_type": "default", "rope_theta": 1e6},
				"sliding_attention": map[string]any{"rope_type": "default", "rope_theta": 1e4}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(tc.config), "config.json")
			if err != nil {
				t.Fatal(err)
			}
			b, err := ConfigJSON(cfg, "float32")
			if err != nil {
				t.Fatal(err)
			}
			var written map[string]any
			if err := json.Unmarshal(b, &written); err != nil {
				t.Fatal(err)
			}
			ok := allowed(tc.class)
			for k := range cfg.Raw { // the file's own keys are kept as they are
				ok[k] = true
			}
			var extra []string
			for k := range written {
				if !ok[k] {
					extra = append(extra, k)
				}
			}
			sort.Strings(extra)
			if len(extra) > 0 {
				t.Errorf("written config.json has keys %s lacks: %v", tc.class, extra)
			}
			for k, v := range tc.want {
				if diff := cmp.Diff(v, written[k]); diff != "" {
					t.Errorf("written %s (-want +got):\n%s", k, diff)
				}
			}
			back, err := ParseConfig(b, "written")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(cfg, back, cmpopts.IgnoreFields(model.Config{}, "Raw")); diff != "" {
				t.Errorf("config changed through ConfigJSON (-parsed +reparsed):\n%s", diff)
			}
		})
	}
}

// TestConfigJSONLlamaKeysUnchanged checks that a model_type without
// WriteKeys (llama) still gets every LlamaConfig key ConfigJSON wrote
// before WriteKeys existed.
func TestConfigJSONLlamaKeysUnchanged(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"model_type":"llama","hidden_size":64,"num_attention_heads":4}`), "config.json")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ConfigJSON(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	var written map[string]any
	if err := json.Unmarshal(b, &written); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"intermediate_size", "hidden_act", "num_key_value_heads", "head_dim", "rms_norm_eps",
		"rope_theta", "attention_bias", "mlp_bias", "tie_word_embeddings", "bos_token_id", "eos_token_id"} {
		if _, ok := written[k]; !ok {
			t.Errorf("llama config.json lacks %s", k)
		}
	}
}
