package hf

import (
	"fmt"

	"github.com/optima-llm/optima/model"
)

// OPT's config class (transformers models/opt/configuration_opt.py,
// OPTConfig) names and defaults several fields differently from LlamaConfig:
// ffn_dim (3072) is the intermediate size, activation_function ("relu") the
// activation, enable_bias (true) puts biases on every linear, and there are
// no key/value heads (head_dim = hidden_size / num_attention_heads). The
// LayerNorms use torch's default eps 1e-5, recorded in RMSNormEps. The
// family keys do_layer_norm_before, word_embed_proj_dim,
// layer_norm_elementwise_affine and _remove_final_layer_norm stay in Raw for
// model/opt; Finish checks their types.
func init() {
	RegisterConfigRule("opt", ConfigRule{
		Architecture: "OPTForCausalLM",
		Defaults: map[string]any{
			"vocab_size":              50272.0,
			"hidden_size":             768.0,
			"num_hidden_layers":       12.0,
			"num_attention_heads":     12.0,
			"max_position_embeddings": 2048.0,
			"tie_word_embeddings":     true,
			"bos_token_id":            2.0,
			"eos_token_id":            2.0,
		},
		Finish: finishOPT,
		// OPTConfig's names for the typed fields; it has no key/value
		// heads, head_dim, norm eps, RoPE or separate MLP bias.
		WriteKeys: map[string]string{
			"intermediate_size": "ffn_dim", "hidden_act": "activation_function", "attention_bias": "enable_bias",
			"mlp_bias": "", "num_key_value_heads": "", "head_dim": "", "rms_norm_eps": "", "rope_theta": "",
		},
	})
}

// finishOPT fills the fields OPTConfig names differently; errors wrap
// ErrConfig and name the file and key.
func finishOPT(c *model.Config, name string) error {
	raw := c.Raw
	intKey := func(key string, def int) (int, error) {
		v, ok := raw[key]
		if !ok || v == nil {
			return def, nil
		}
		f, ok := v.(float64)
		if !ok || f != float64(int(f)) || f <= 0 || f > 1<<31 {
			return 0, fmt.Errorf("%w %s: %s is %v, want a positive integer", ErrConfig, name, key, v)
		}
		return int(f), nil
	}
	boolKey := func(key string, def bool) (bool, error) {
		v, ok := raw[key]
		if !ok || v == nil {
			return def, nil
		}
		b, ok := v.(bool)
		if !ok {
			return false, fmt.Errorf("%w %s: %s is %v, want a bool", ErrConfig, name, key, v)
		}
		return b, nil
	}
	var err error
	if c.IntermediateSize, err = intKey("ffn_dim", 3072); err != nil {
		return err
	}
	if _, err = intKey("word_embed_proj_dim", c.HiddenSize); err != nil {
		return err
	}
	bias, err := boolKey("enable_bias", true)
	if err != nil {
		return err
	}
	c.AttentionBias, c.MLPBias = bias, bias
	for _, k := range []string{"do_layer_norm_before", "layer_norm_elementwise_affine", "_remove_final_layer_norm"} {
		if _, err := boolKey(k, false); err != nil {
			return err
		}
	}
	c.HiddenAct = "relu"
	if v, ok := raw["activation_function"]; ok && v != nil {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%w %s: activation_function is %v, want a string", ErrConfig, name, v)
		}
		c.HiddenAct = s
	}
	if c.HiddenSize == 0 || c.NumAttentionHeads == 0 || c.HiddenSize%c.NumAttentionHeads != 0 {
		return fmt.Errorf("%w %s: hidden_size %d is not divisible by num_attention_heads %d", ErrConfig, name, c.HiddenSize, c.NumAttentionHeads)
	}
	c.NumKeyValueHeads = c.NumAttentionHeads
	c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	c.RMSNormEps = 1e-5
	return nil
}
