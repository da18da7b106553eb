package gguf

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/optima-llm/optima/model"
)

// ErrUnsupportedArchitecture is wrapped when general.architecture names an
// architecture this package cannot map to Hugging Face.
var ErrUnsupportedArchitecture = errors.New("gguf: unsupported architecture")

// archSpec maps one GGUF architecture to Hugging Face names, layout and
// config. New families (qwen2, gemma, ...) add an entry to archs: their
// tensor tables, which q/k tensors llama.cpp's converter permuted, and a
// config builder.
type archSpec struct {
	// hfArch and modelType are config.json's architectures[0] and model_type.
	hfArch, modelType string
	// global maps GGUF base names outside blocks to HF module paths.
	global map[string]string
	// block maps GGUF base names inside "blk.N." to HF module paths relative
	// to "model.layers.N.".
	block map[string]string
	// permuted maps block base names whose rows llama.cpp's converter
	// permuted to the metadata key (under the arch prefix) of the head count
	// used for that permutation.
	permuted map[string]string
	// ignored lists GGUF tensors that have no HF counterpart.
	ignored map[string]bool
	// config builds the model configuration from the file's metadata.
	config func(f *File, arch string, tensors map[string]*TensorInfo) (*model.Config, error)
	// adjust, if not nil, turns a loaded tensor's float32 values (HF name,
	// HF layout) into Hugging Face's, e.g. Gemma's norm weights, which
	// llama.cpp's converter stores as 1 + w.
	adjust func(hfName string, data []float32)
}

var archs = map[string]*archSpec{
	"llama": {
		hfArch:    "LlamaForCausalLM",
		modelType: "llama",
		global: map[string]string{
			"token_embd":  "model.embed_tokens",
			"output_norm": "model.norm",
			"output":      "lm_head",
		},
		block: map[string]string{
			"attn_norm":   "input_layernorm",
			"ffn_norm":    "post_attention_layernorm",
			"attn_q":      "self_attn.q_proj",
			"attn_k":      "self_attn.k_proj",
			"attn_v":      "self_attn.v_proj",
			"attn_output": "self_attn.o_proj",
			"ffn_gate":    "mlp.gate_proj",
			"ffn_up":      "mlp.up_proj",
			"ffn_down":    "mlp.down_proj",
		},
		permuted: map[string]string{
			"attn_q": "attention.head_count",
			"attn_k": "attention.head_count_kv",
		},
		// rope_freqs.weight (Llama 3 rope scaling) becomes rope_scaling.
		ignored: map[string]bool{"rope_freqs.weight": true},
		config:  llamaConfig,
	},
}

// SupportedArchitectures lists the general.architecture values this package
// maps, sorted.
func SupportedArchitectures() []string {
	out := make([]string, 0, len(archs))
	for k := range archs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// hfName maps a GGUF tensor name to its HF name. ok is false for a name the
// table does not know.
func (a *archSpec) hfName(name string) (hf, base string, ok bool) {
	stem, suffix, found := cutLast(name, ".")
	if !found || (suffix != "weight" && suffix != "bias") {
		return "", "", false
	}
	if rest, isBlock := strings.CutPrefix(stem, "blk."); isBlock {
		num, base, found := strings.Cut(rest, ".")
		n, err := strconv.Atoi(num)
		if !found || err != nil || n < 0 || strconv.Itoa(n) != num {
			return "", "", false
		}
		m, ok := a.block[base]
		if !ok {
			return "", "", false
		}
		return "model.layers." + num + "." + m + "." + suffix, base, true
	}
	m, ok := a.global[stem]
	if !ok {
		return "", "", false
	}
	return m + "." + suffix, stem, true
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// metaInt reads a required positive integer "<arch>.<key>".
func metaInt(f *File, arch, key string) (int, error) {
	v, err := f.Uint(arch + "." + key)
	if err != nil {
		return 0, err
	}
	if v == 0 || v > 1<<31 {
		return 0, fmt.Errorf("%w %s: metadata %s.%s = %d is out of range", ErrFormat, f.Name, arch, key, v)
	}
	return int(v), nil
}

// optInt reads an optional positive integer, def when absent.
func optInt(f *File, key string, def int) (int, error) {
	if _, ok := f.Value(key); !ok {
		return def, nil
	}
	v, err := f.Uint(key)
	if err != nil {
		return 0, err
	}
	if v > 1<<31 {
		return 0, fmt.Errorf("%w %s: metadata %s = %d is out of range", ErrFormat, f.Name, key, v)
	}
	return int(v), nil
}

// llamaConfig builds a LlamaForCausalLM config from llama.* and
// tokenizer.ggml.* metadata. Defaults follow transformers' LlamaConfig where
// the GGUF has no key: rope_theta 10000, head_dim hidden/heads, num kv heads
// = heads. rope scaling comes from <arch>.rope.scaling.type "linear" (and
// .factor) or from a rope_freqs.weight tensor (llama3, see
// llama3FromRopeFreqs); other scaling types are errors.
func llamaConfig(f *File, arch string, tensors map[string]*TensorInfo) (*model.Config, error) {
	c := &model.Config{Architecture: "LlamaForCausalLM", ModelType: "llama", HiddenAct: "silu"}
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
	if rd, err := optInt(f, arch+".rope.dimension_count", c.HeadDim); err != nil {
		return nil, err
	} else if rd != c.HeadDim {
		return nil, fmt.Errorf("%w %s: partial rotary embedding (rope.dimension_count %d, head dim %d) is not llama", ErrFormat, f.Name, rd, c.HeadDim)
	}
	if c.RMSNormEps, err = f.Float(arch + ".attention.layer_norm_rms_epsilon"); err != nil {
		return nil, err
	}
	c.RopeTheta = 10000
	if _, ok := f.Value(arch + ".rope.freq_base"); ok {
		if c.RopeTheta, err = f.Float(arch + ".rope.freq_base"); err != nil {
			return nil, err
		}
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
		ropeScaling = map[string]any{"rope_type": "linear", "type": "linear", "factor": factor}
	}
	if _, ok := tensors["rope_freqs.weight"]; ok {
		if ropeScaling != nil {
			return nil, fmt.Errorf("%w %s: both %s.rope.scaling.type and rope_freqs.weight", ErrFormat, f.Name, arch)
		}
		factors, err := f.ReadFloat32("rope_freqs.weight")
		if err != nil {
			return nil, err
		}
		rs, err := llama3FromRopeFreqs(factors, c.RopeTheta, c.HeadDim)
		if err != nil {
			return nil, fmt.Errorf("%w %s: rope_freqs.weight: %v", ErrFormat, f.Name, err)
		}
		if rs != nil {
			ropeScaling = rs
		}
	}
	c.VocabSize = 0
	if toks, err := f.Strings("tokenizer.ggml.tokens"); err == nil {
		c.VocabSize = len(toks)
	} else if c.VocabSize, err = optInt(f, arch+".vocab_size", 0); err != nil {
		return nil, err
	}
	if emb, ok := tensors["token_embd.weight"]; ok && len(emb.Dims) == 2 {
		if c.VocabSize == 0 {
			c.VocabSize = int(emb.Dims[1])
		}
		if emb.Dims[1] != uint64(c.VocabSize) || emb.Dims[0] != uint64(c.HiddenSize) {
			return nil, fmt.Errorf("%w %s: token_embd.weight dims %v do not match vocab %d × hidden %d", ErrFormat, f.Name, emb.Dims, c.VocabSize, c.HiddenSize)
		}
	}
	if c.VocabSize == 0 {
		return nil, fmt.Errorf("%w %s: no vocabulary size (no tokenizer.ggml.tokens, %s.vocab_size or token_embd.weight)", ErrFormat, f.Name, arch)
	}
	_, hasOutput := tensors["output.weight"]
	c.TieWordEmbeddings = !hasOutput
	_, c.AttentionBias = tensors["blk.0.attn_q.bias"]
	_, c.MLPBias = tensors["blk.0.ffn_up.bias"]
	if c.BOSTokenID, err = optInt(f, "tokenizer.ggml.bos_token_id", -1); err != nil {
		return nil, err
	}
	if c.EOSTokenID, err = optInt(f, "tokenizer.ggml.eos_token_id", -1); err != nil {
		return nil, err
	}
	idOrNil := func(id int) any {
		if id < 0 {
			return nil
		}
		return id
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
		"mlp_bias":                c.MLPBias,
		"hidden_act":              c.HiddenAct,
		"initializer_range":       0.02,
		"pretraining_tp":          1,
		"use_cache":               true,
		"bos_token_id":            idOrNil(c.BOSTokenID),
		"eos_token_id":            idOrNil(c.EOSTokenID),
		"torch_dtype":             "float32",
	}
	return c, nil
}
