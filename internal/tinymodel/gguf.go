package tinymodel

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/gguf"
)

// ggufNames maps Hugging Face names (inside model.layers.N. for blocks) to
// GGUF names, as llama.cpp's convert_hf_to_gguf.py does for llama.
var (
	ggufGlobal = map[string]string{
		"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output",
	}
	ggufBlock = map[string]string{
		"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
		"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
		"self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
		"mlp.down_proj": "ffn_down",
	}
)

// ggufName maps a Hugging Face tensor name of Weights to its GGUF name.
func ggufName(name string) string {
	i := strings.LastIndexByte(name, '.')
	stem, suffix := name[:i], name[i:]
	if rest, ok := strings.CutPrefix(stem, "model.layers."); ok {
		num, mod, _ := strings.Cut(rest, ".")
		return "blk." + num + "." + ggufBlock[mod] + suffix
	}
	return ggufGlobal[stem] + suffix
}

// WriteGGUF writes the model of o as a GGUF v3 file at path (a temporary
// file in the same directory, then a rename), the way llama.cpp's
// convert_hf_to_gguf.py writes a float32 Llama: general.architecture
// "llama" and llama.* hyperparameters (rms_norm_eps and rope freq_base as
// float32, so a loaded config holds them rounded to float32), every tensor
// F32 with dims reversed ({in, out} for an [out, in] linear), q_proj and
// k_proj rows permuted with gguf.Permute (heads, resp. KV heads), and, when
// o.Vocab ≥ MinTokenizerVocab, Tokenizer(o.Vocab) as tokenizer.ggml.*
// (model "gpt2", pre "gpt2", tokens, token_type, merges, bos/eos
// <|endoftext|>, add_bos_token false). gguf.OpenModel(path) then loads
// Weights(o) bit for bit and the same tokenizer. It returns Config(o) and
// Weights(o). Errors are I/O errors naming path.
func WriteGGUF(path string, o Options) (*model.Config, model.Weights, error) {
	cfg := Config(o)
	w := Weights(o)
	meta := []gguf.KV{
		{Key: "general.architecture", Value: "llama"},
		{Key: "general.name", Value: "tinymodel"},
		{Key: "general.file_type", Value: uint32(0)}, // ALL_F32
		{Key: "llama.block_count", Value: uint32(o.Layers)},
		{Key: "llama.context_length", Value: uint32(cfg.MaxPositionEmbeddings)},
		{Key: "llama.embedding_length", Value: uint32(o.Hidden)},
		{Key: "llama.feed_forward_length", Value: uint32(o.Intermediate)},
		{Key: "llama.attention.head_count", Value: uint32(o.Heads)},
		{Key: "llama.attention.head_count_kv", Value: uint32(o.KVHeads)},
		{Key: "llama.rope.freq_base", Value: float32(o.RopeTheta)},
		{Key: "llama.attention.layer_norm_rms_epsilon", Value: float32(o.RMSNormEps)},
		{Key: "llama.rope.dimension_count", Value: uint32(cfg.HeadDim)},
		{Key: "llama.vocab_size", Value: uint32(o.Vocab)},
	}
	if o.Vocab >= MinTokenizerVocab {
		tok, err := Tokenizer(o.Vocab)
		if err != nil {
			return nil, nil, err
		}
		tc := tok.Config()
		meta = append(meta,
			gguf.KV{Key: "tokenizer.ggml.model", Value: "gpt2"},
			gguf.KV{Key: "tokenizer.ggml.pre", Value: "gpt2"},
			gguf.KV{Key: "tokenizer.ggml.tokens", Value: tc.Tokens},
			gguf.KV{Key: "tokenizer.ggml.token_type", Value: tc.TokenTypes},
			gguf.KV{Key: "tokenizer.ggml.merges", Value: tc.Merges},
			gguf.KV{Key: "tokenizer.ggml.bos_token_id", Value: uint32(tc.BOS)},
			gguf.KV{Key: "tokenizer.ggml.eos_token_id", Value: uint32(tc.EOS)},
			gguf.KV{Key: "tokenizer.ggml.add_bos_token", Value: tc.AddBOS},
		)
	}
	var ts []gguf.WriteTensor
	for _, t := range sortedTensors(w) {
		data := t.Data
		switch {
		case strings.HasSuffix(t.Name, "self_attn.q_proj.weight"), strings.HasSuffix(t.Name, "self_attn.q_proj.bias"):
			data = gguf.Permute(data, t.Shape[0], o.Heads)
		case strings.HasSuffix(t.Name, "self_attn.k_proj.weight"), strings.HasSuffix(t.Name, "self_attn.k_proj.bias"):
			data = gguf.Permute(data, t.Shape[0], o.KVHeads)
		}
		dims := make([]uint64, len(t.Shape))
		for i, d := range t.Shape {
			dims[len(dims)-1-i] = uint64(d)
		}
		ts = append(ts, gguf.WriteTensor{Name: ggufName(t.Name), Dims: dims, Type: gguf.F32, Data: data})
	}
	var buf bytes.Buffer
	if err := gguf.Write(&buf, meta, ts); err != nil {
		return nil, nil, fmt.Errorf("tinymodel: %s: %w", path, err)
	}
	if err := writeAtomic(path, buf.Bytes()); err != nil {
		return nil, nil, fmt.Errorf("tinymodel: %w", err)
	}
	return cfg, w, nil
}

func writeAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}
