package gguf

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/optima-llm/optima/model"
)

// Gemma 2 and Gemma 3 as llama.cpp's convert_hf_to_gguf.py writes them
// (Gemma2Model, Gemma3Model): tensors keep Hugging Face's row order (no q/k
// permutation; both classes derive from TextModel, not LlamaModel), every
// "*norm.weight" is stored as 1 + w (Gemma's RMSNorm multiplies by 1 + w)
// and is shifted back on Load, and lm_head is dropped (tied).
//
// Metadata the converter does not store follows llama.cpp's loader
// (llama-model.cpp): query_pre_attn_scalar is hidden/heads for the 27B
// models (46 blocks for Gemma 2, 62 for Gemma 3) and head_dim otherwise;
// Gemma 2 alternates sliding and full layers; Gemma 3 makes every sixth
// layer full unless <arch>.attention.sliding_window_pattern says otherwise
// (an integer period, or one bool per layer, true meaning sliding), and its
// sliding layers use rope base 10000.
func init() {
	block := map[string]string{
		"attn_norm":           "input_layernorm",
		"post_attention_norm": "post_attention_layernorm",
		"ffn_norm":            "pre_feedforward_layernorm",
		"post_ffw_norm":       "post_feedforward_layernorm",
		"attn_q":              "self_attn.q_proj",
		"attn_k":              "self_attn.k_proj",
		"attn_v":              "self_attn.v_proj",
		"attn_output":         "self_attn.o_proj",
		"ffn_gate":            "mlp.gate_proj",
		"ffn_up":              "mlp.up_proj",
		"ffn_down":            "mlp.down_proj",
	}
	block3 := map[string]string{
		"attn_q_norm": "self_attn.q_norm",
		"attn_k_norm": "self_attn.k_norm",
	}
	for k, v := range block {
		block3[k] = v
	}
	global := map[string]string{
		"token_embd":  "model.embed_tokens",
		"output_norm": "model.norm",
		"output":      "lm_head",
	}
	archs["gemma2"] = &archSpec{
		hfArch: "Gemma2ForCausalLM", modelType: "gemma2",
		global: global, block: block,
		config: gemmaConfig, adjust: gemmaNormShift,
	}
	archs["gemma3"] = &archSpec{
		hfArch: "Gemma3ForCausalLM", modelType: "gemma3_text",
		global: global, block: block3,
		config: gemmaConfig, adjust: gemmaNormShift,
	}
}

// gemmaNormShift undoes the converter's "data_torch + 1" on norm weights.
func gemmaNormShift(hfName string, data []float32) {
	if !strings.HasSuffix(hfName, "norm.weight") {
		return
	}
	for i := range data {
		data[i]--
	}
}

// optFloat reads an optional number, ok false when absent.
func optFloat(f *File, key string) (float64, bool, error) {
	if _, ok := f.Value(key); !ok {
		return 0, false, nil
	}
	v, err := f.Float(key)
	return v, err == nil, err
}

// gemmaConfig builds a Gemma2ForCausalLM / Gemma3ForCausalLM config from
// gemma2.* / gemma3.* and tokenizer.ggml.* metadata. Raw is written in
// config.json's terms (layer_types spelled out, rope_theta,
// rope_local_base_freq, rope_scaling) so that package gemma reads it and a
// written model directory loads in transformers.
func gemmaConfig(f *File, arch string, tensors map[string]*TensorInfo) (*model.Config, error) {
	gemma3 := arch == "gemma3"
	c := &model.Config{Architecture: "Gemma2ForCausalLM", ModelType: "gemma2", HiddenAct: "gelu_pytorch_tanh"}
	if gemma3 {
		c.Architecture, c.ModelType = "Gemma3ForCausalLM", "gemma3_text"
	}
	var err error
	for _, p := range []struct {
		dst *int
		key string
	}{
		{&c.HiddenSize, "embedding_length"},
		{&c.IntermediateSize, "feed_forward_length"},
		{&c.NumHiddenLayers, "block_count"},
		{&c.NumAttentionHeads, "attention.head_count"},
		{&c.MaxPositionEmbeddings, "context_length"},
	} {
		if *p.dst, err = metaInt(f, arch, p.key); err != nil {
			return nil, err
		}
	}
	if c.NumKeyValueHeads, err = optInt(f, arch+".attention.head_count_kv", c.NumAttentionHeads); err != nil {
		return nil, err
	}
	if c.NumKeyValueHeads == 0 || c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
		return nil, fmt.Errorf("%w %s: %d attention heads are not a multiple of %d kv heads", ErrFormat, f.Name, c.NumAttentionHeads, c.NumKeyValueHeads)
	}
	if c.HeadDim, err = optInt(f, arch+".attention.key_length", c.HiddenSize/c.NumAttentionHeads); err != nil {
		return nil, err
	}
	if c.HeadDim == 0 || c.HeadDim%2 != 0 {
		return nil, fmt.Errorf("%w %s: head dimension %d must be even and positive", ErrFormat, f.Name, c.HeadDim)
	}
	if vl, err := optInt(f, arch+".attention.value_length", c.HeadDim); err != nil {
		return nil, err
	} else if vl != c.HeadDim {
		return nil, fmt.Errorf("%w %s: value length %d differs from key length %d", ErrFormat, f.Name, vl, c.HeadDim)
	}
	if c.RMSNormEps, err = f.Float(arch + ".attention.layer_norm_rms_epsilon"); err != nil {
		return nil, err
	}
	c.RopeTheta = 10000
	if gemma3 {
		c.RopeTheta = 1e6
	}
	if v, ok, err := optFloat(f, arch+".rope.freq_base"); err != nil {
		return nil, err
	} else if ok {
		c.RopeTheta = v
	}
	var ropeScaling any
	if st, err := f.String(arch + ".rope.scaling.type"); err == nil && st != "none" {
		if st != "linear" {
			return nil, fmt.Errorf("%w %s: rope scaling %q is not supported (supported: linear)", ErrFormat, f.Name, st)
		}
		factor, err := f.Float(arch + ".rope.scaling.factor")
		if err != nil {
			return nil, err
		}
		ropeScaling = map[string]any{"rope_type": "linear", "factor": floatNumber(factor)}
	}
	emb, ok := tensors["token_embd.weight"]
	if !ok || len(emb.Dims) != 2 || emb.Dims[0] != uint64(c.HiddenSize) || emb.Dims[1] == 0 || emb.Dims[1] > 1<<31 {
		return nil, fmt.Errorf("%w %s: token_embd.weight missing or not [hidden %d, vocab]", ErrFormat, f.Name, c.HiddenSize)
	}
	// Gemma 3's converter drops the embedding rows past the tokenizer's
	// vocabulary, so the embedding is the vocabulary size.
	c.VocabSize = int(emb.Dims[1])
	if toks, err := f.Strings("tokenizer.ggml.tokens"); err == nil && len(toks) != c.VocabSize {
		return nil, fmt.Errorf("%w %s: %d tokens in tokenizer.ggml.tokens, %d rows in token_embd.weight", ErrFormat, f.Name, len(toks), c.VocabSize)
	}
	_, hasOutput := tensors["output.weight"]
	c.TieWordEmbeddings = !hasOutput
	_, c.AttentionBias = tensors["blk.0.attn_q.bias"]
	if c.BOSTokenID, err = optInt(f, "tokenizer.ggml.bos_token_id", -1); err != nil {
		return nil, err
	}
	if c.EOSTokenID, err = optInt(f, "tokenizer.ggml.eos_token_id", -1); err != nil {
		return nil, err
	}

	window, err := optInt(f, arch+".attention.sliding_window", 0)
	if err != nil {
		return nil, err
	}
	if window == 0 && !gemma3 {
		return nil, fmt.Errorf("%w %s: %s.attention.sliding_window missing", ErrFormat, f.Name, arch)
	}
	layerTypes, err := gemmaLayerTypes(f, arch, c.NumHiddenLayers, gemma3)
	if err != nil {
		return nil, err
	}
	qpas := c.HeadDim
	if (!gemma3 && c.NumHiddenLayers == 46) || (gemma3 && c.NumHiddenLayers == 62) {
		qpas = c.HiddenSize / c.NumAttentionHeads // 27B models
	}
	nullable := func(key string) (any, error) {
		v, ok, err := optFloat(f, key)
		if err != nil || !ok {
			return nil, err
		}
		return floatNumber(v), nil
	}
	finalCap, err := nullable(arch + ".final_logit_softcapping")
	if err != nil {
		return nil, err
	}
	var attnCap any
	if !gemma3 {
		if attnCap, err = nullable(arch + ".attn_logit_softcapping"); err != nil {
			return nil, err
		}
	}
	idOrNil := func(id int) any {
		if id < 0 {
			return nil
		}
		return id
	}
	var slidingWindow any = window
	if window == 0 {
		slidingWindow = nil
	}
	c.Raw = map[string]any{
		"architectures":           []any{c.Architecture},
		"model_type":              c.ModelType,
		"hidden_size":             c.HiddenSize,
		"intermediate_size":       c.IntermediateSize,
		"num_hidden_layers":       c.NumHiddenLayers,
		"num_attention_heads":     c.NumAttentionHeads,
		"num_key_value_heads":     c.NumKeyValueHeads,
		"head_dim":                c.HeadDim,
		"vocab_size":              c.VocabSize,
		"max_position_embeddings": c.MaxPositionEmbeddings,
		"rms_norm_eps":            c.RMSNormEps,
		"rope_theta":              c.RopeTheta,
		"rope_scaling":            ropeScaling,
		"tie_word_embeddings":     c.TieWordEmbeddings,
		"attention_bias":          c.AttentionBias,
		"attention_dropout":       0.0,
		"hidden_activation":       c.HiddenAct,
		"query_pre_attn_scalar":   qpas,
		"sliding_window":          slidingWindow,
		"layer_types":             layerTypes,
		"attn_logit_softcapping":  attnCap,
		"final_logit_softcapping": finalCap,
		"initializer_range":       0.02,
		"use_cache":               true,
		"pad_token_id":            0,
		"bos_token_id":            idOrNil(c.BOSTokenID),
		"eos_token_id":            idOrNil(c.EOSTokenID),
		"torch_dtype":             "float32",
	}
	if gemma3 {
		c.Raw["rope_local_base_freq"] = 10000.0
	} else if ropeScaling != nil {
		return nil, fmt.Errorf("%w %s: rope scaling on gemma2 is not supported", ErrFormat, f.Name)
	}
	return c, nil
}

// gemmaLayerTypes spells out config.json's layer_types for a GGUF file.
func gemmaLayerTypes(f *File, arch string, n int, gemma3 bool) ([]any, error) {
	if n > 1<<16 {
		return nil, fmt.Errorf("%w %s: %s.block_count %d is out of range", ErrFormat, f.Name, arch, n)
	}
	pattern := 2
	var perLayer []bool
	if gemma3 {
		pattern = 6
		key := arch + ".attention.sliding_window_pattern"
		if kv, ok := f.Value(key); ok {
			if b, isBools := kv.Value.([]bool); isBools {
				if len(b) != n {
					return nil, fmt.Errorf("%w %s: %s has %d entries for %d blocks", ErrFormat, f.Name, key, len(b), n)
				}
				perLayer = b
			} else {
				p, err := f.Uint(key)
				if err != nil {
					return nil, err
				}
				if p == 0 || p > 1<<31 {
					return nil, fmt.Errorf("%w %s: %s = %d is out of range", ErrFormat, f.Name, key, p)
				}
				pattern = int(p)
			}
		}
	}
	out := make([]any, n)
	for i := range n {
		sliding := (i+1)%pattern != 0
		if perLayer != nil {
			sliding = perLayer[i]
		}
		if sliding {
			out[i] = "sliding_attention"
		} else {
			out[i] = "full_attention"
		}
	}
	return out, nil
}

// floatNumber is v as a JSON literal with a decimal point, so that
// transformers' strict config classes read the float-typed Gemma keys
// (soft-capping constants, rope factor) written to config.json as floats.
func floatNumber(v float64) json.Number {
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if strings.ContainsAny(s, ".e") {
		return json.Number(s)
	}
	return json.Number(s + ".0")
}
