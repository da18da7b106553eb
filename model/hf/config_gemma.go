package hf

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/optima-llm/optima/model"
)

// Config rules for Gemma 2 and Gemma 3 text models. Defaults are those of
// transformers' Gemma2Config (models/gemma2/configuration_gemma2.py) and
// Gemma3TextConfig (models/gemma3/configuration_gemma3.py). The family's own
// keys (query_pre_attn_scalar, sliding_window, layer_types,
// sliding_window_pattern, attn_logit_softcapping, final_logit_softcapping,
// rope_local_base_freq, nested rope_parameters) stay in Config.Raw and are
// read by package model/gemma.
func init() {
	common := func(vocab, maxPos float64) map[string]any {
		return map[string]any{
			"vocab_size":              vocab,
			"hidden_size":             2304.0,
			"intermediate_size":       9216.0,
			"num_hidden_layers":       26.0,
			"num_attention_heads":     8.0,
			"num_key_value_heads":     4.0,
			"head_dim":                256.0,
			"max_position_embeddings": maxPos,
			"rms_norm_eps":            1e-6,
			"tie_word_embeddings":     true,
			"attention_bias":          false,
			"bos_token_id":            2.0,
			"eos_token_id":            1.0,
		}
	}
	g2 := common(256000, 8192)
	g2["rope_theta"] = 10000.0
	RegisterConfigRule("gemma2", ConfigRule{
		Architecture: "Gemma2ForCausalLM",
		Defaults:     g2,
		Finish:       finishGemma,
		WriteKeys:    gemmaWriteKeys,
	})
	g3 := common(262208, 131072)
	g3["rope_theta"] = 1000000.0
	RegisterConfigRule("gemma3_text", ConfigRule{
		Architecture: "Gemma3ForCausalLM",
		Defaults:     g3,
		Finish:       finishGemma,
		WriteKeys:    gemmaWriteKeys,
	})
	// Gemma3ForConditionalGeneration (multimodal): its language model is a
	// Gemma 3 text model configured by text_config (Gemma3Config's
	// tie_word_embeddings and token ids are top-level); Dir exposes its
	// language_model.* tensors under the text model's names and leaves
	// the vision tower out. The result is a Gemma3ForCausalLM config.
	RegisterConfigRule("gemma3", ConfigRule{
		Architecture: "Gemma3ForConditionalGeneration",
		SubConfig:    "text_config",
		SubModelType: "gemma3_text",
	})
}

// gemmaWriteKeys are the names Gemma2Config and Gemma3TextConfig give the
// typed fields: the activation is hidden_activation and there is no
// mlp_bias.
var gemmaWriteKeys = map[string]string{"hidden_act": "hidden_activation", "mlp_bias": ""}

// finishGemma fills the fields Gemma configs name differently from Llama's:
// hidden_activation (default "gelu_pytorch_tanh"; a legacy hidden_act key is
// ignored, as transformers v5 does) becomes HiddenAct, and for Gemma 3 the
// global rope base is rope_parameters.full_attention.rope_theta when
// rope_parameters is nested by layer type.
func finishGemma(c *model.Config, name string) error {
	c.HiddenAct = "gelu_pytorch_tanh"
	if v, ok := c.Raw["hidden_activation"]; ok && v != nil {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%w %s: hidden_activation is %v, want a string", ErrConfig, name, v)
		}
		c.HiddenAct = s
	}
	if rp, ok := c.Raw["rope_parameters"].(map[string]any); ok {
		if full, ok := rp["full_attention"].(map[string]any); ok {
			if th, ok := full["rope_theta"].(float64); ok {
				c.RopeTheta = th
			}
		}
	}
	keepFloats(c.Raw)
	if c.HeadDim <= 0 {
		return fmt.Errorf("%w %s: head_dim %d must be positive", ErrConfig, name, c.HeadDim)
	}
	return nil
}

// keepFloats replaces the float64 values of the Gemma keys that
// transformers' strict config classes type as float (the soft-capping
// constants; factor and rope_theta in rope_scaling / rope_parameters, flat
// or nested by layer type) with json.Number literals that keep a decimal
// point, so that ConfigJSON writes 30.0, not 30, which Gemma2Config rejects
// ("expected float, got int").
func keepFloats(raw map[string]any) {
	fix := func(m map[string]any, key string) {
		if v, ok := m[key].(float64); ok {
			m[key] = floatNumber(v)
		}
	}
	fix(raw, "final_logit_softcapping")
	fix(raw, "attn_logit_softcapping")
	ropes := []map[string]any{}
	for _, key := range []string{"rope_scaling", "rope_parameters"} {
		if m, ok := raw[key].(map[string]any); ok {
			ropes = append(ropes, m)
			for _, sub := range m {
				if sm, ok := sub.(map[string]any); ok {
					ropes = append(ropes, sm)
				}
			}
		}
	}
	for _, m := range ropes {
		fix(m, "factor")
		fix(m, "rope_theta")
	}
}

// floatNumber is v as a JSON number literal that reads back as a Python
// float: 30 becomes "30.0", 1e-06 stays "1e-06".
func floatNumber(v float64) json.Number {
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if strings.ContainsAny(s, ".e") {
		return json.Number(s)
	}
	return json.Number(s + ".0")
}
