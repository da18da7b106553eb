package hf

import (
	"fmt"

	"github.com/optima-llm/optima/model"
)

// Config rules of the Llama family's variants. Defaults are those of
// transformers' MistralConfig (models/mistral/configuration_mistral.py) and
// Qwen2Config (models/qwen2/configuration_qwen2.py), v5.
func init() {
	RegisterConfigRule("mistral", ConfigRule{
		Architecture: "MistralForCausalLM",
		Defaults: map[string]any{
			"vocab_size": 32000.0, "hidden_size": 4096.0, "intermediate_size": 14336.0,
			"num_hidden_layers": 32.0, "num_attention_heads": 32.0, "num_key_value_heads": 8.0,
			"hidden_act": "silu", "max_position_embeddings": 131072.0, "rms_norm_eps": 1e-6,
			"tie_word_embeddings": false, "bos_token_id": 1.0, "eos_token_id": 2.0,
			"attention_bias": false, "mlp_bias": false,
		},
		Finish: func(c *model.Config, name string) error {
			// MistralConfig.sliding_window defaults to 4096; null disables it.
			setRawDefault(c, "sliding_window", 4096.0)
			return checkRopeType(c, name)
		},
	})
	RegisterConfigRule("qwen2", ConfigRule{
		Architecture: "Qwen2ForCausalLM",
		Defaults: map[string]any{
			"vocab_size": 151936.0, "hidden_size": 4096.0, "intermediate_size": 22016.0,
			"num_hidden_layers": 32.0, "num_attention_heads": 32.0,
			"hidden_act": "silu", "max_position_embeddings": 32768.0, "rms_norm_eps": 1e-6,
			"tie_word_embeddings": false, "bos_token_id": nil, "eos_token_id": nil,
			"attention_bias": false, "mlp_bias": false,
		},
		Finish: func(c *model.Config, name string) error {
			// Qwen2Config: use_sliding_window false, sliding_window 4096,
			// max_window_layers 28. q/k/v always have a bias (the llama
			// package's Qwen2 variant knows), so AttentionBias stays as
			// config.json says (normally absent: false) and means o_proj.
			setRawDefault(c, "use_sliding_window", false)
			setRawDefault(c, "sliding_window", 4096.0)
			setRawDefault(c, "max_window_layers", 28.0)
			for _, k := range []string{"use_sliding_window"} {
				if _, ok := c.Raw[k].(bool); !ok {
					return fmt.Errorf("%w %s: %s is %v, want a bool", ErrConfig, name, k, c.Raw[k])
				}
			}
			return checkRopeType(c, name)
		},
	})
}

// setRawDefault sets c.Raw[key] = v when config.json has no key.
func setRawDefault(c *model.Config, key string, v any) {
	if _, ok := c.Raw[key]; !ok {
		c.Raw[key] = v
	}
}

// supportedRopeTypes are the rope types the llama package implements.
var supportedRopeTypes = []string{"default", "linear", "llama3"}

// checkRopeType rejects a rope_scaling / rope_parameters type the Llama
// family does not implement, naming the file and the type. rope_scaling
// wins over rope_parameters, as in transformers'
// convert_rope_params_to_dict. The llama package checks the parameters.
func checkRopeType(c *model.Config, name string) error {
	key := "rope_scaling"
	v := c.Raw[key]
	if v == nil {
		key = "rope_parameters"
		v = c.Raw[key]
	}
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%w %s: %s is %v, want an object", ErrConfig, name, key, v)
	}
	typ := m["rope_type"]
	if typ == nil {
		typ = m["type"]
	}
	if typ == nil {
		return nil
	}
	for _, s := range supportedRopeTypes {
		if typ == s {
			return nil
		}
	}
	return fmt.Errorf("%w %s: %s rope_type %v is not supported (supported: %v)", ErrConfig, name, key, typ, supportedRopeTypes)
}
