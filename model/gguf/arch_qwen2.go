package gguf

import (
	"fmt"
	"maps"

	"github.com/optima-llm/optima/model"
)

// Qwen2 (llama.cpp arch "qwen2", convert_hf_to_gguf.py Qwen2Model): the
// Llama tensor names plus attn_q/k/v biases, q/k rows not permuted, and
// qwen2.* hyperparameters with the same keys as llama.*.
func init() {
	archs["qwen2"] = &archSpec{
		hfArch:    "Qwen2ForCausalLM",
		modelType: "qwen2",
		global:    maps.Clone(archs["llama"].global),
		block:     maps.Clone(archs["llama"].block),
		config:    qwen2Config,
	}
}

// qwen2Config builds a Qwen2ForCausalLM config: llamaConfig's fields, with
// q/k/v biases required (blk.0.attn_q.bias), attention_bias false (Qwen2's
// o_proj has none; the q/k/v biases are implied by the architecture), and
// no sliding window (llama.cpp stores none; use_sliding_window false as in
// Qwen2Config).
func qwen2Config(f *File, arch string, tensors map[string]*TensorInfo) (*model.Config, error) {
	c, err := llamaConfig(f, arch, tensors)
	if err != nil {
		return nil, err
	}
	for _, n := range []string{"blk.0.attn_q.bias", "blk.0.attn_k.bias", "blk.0.attn_v.bias"} {
		if _, ok := tensors[n]; !ok && c.NumHiddenLayers > 0 {
			return nil, fmt.Errorf("%w %s: qwen2 needs q/k/v biases, %s is missing", ErrFormat, f.Name, n)
		}
	}
	if _, ok := tensors["blk.0.attn_output.bias"]; ok {
		return nil, fmt.Errorf("%w %s: qwen2 has no o_proj bias, but blk.0.attn_output.bias exists", ErrFormat, f.Name)
	}
	if c.MLPBias {
		return nil, fmt.Errorf("%w %s: qwen2 has no MLP biases, but blk.0.ffn_up.bias exists", ErrFormat, f.Name)
	}
	c.Architecture, c.ModelType = "Qwen2ForCausalLM", "qwen2"
	c.AttentionBias = false
	raw := c.Raw
	raw["architectures"] = []any{c.Architecture}
	raw["model_type"] = c.ModelType
	for _, k := range []string{"pretraining_tp"} {
		delete(raw, k)
	}
	raw["use_sliding_window"] = false
	raw["sliding_window"] = nil
	raw["max_window_layers"] = c.NumHiddenLayers
	return c, nil
}
