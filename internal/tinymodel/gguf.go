package tinymodel

import (
	"bytes"
	"fmt"
	"math"
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
//
// A Qwen2ForCausalLM model is written as architecture "qwen2" (qwen2.* keys,
// q/k rows not permuted); a llama3 RopeScaling adds the rope_freqs.weight
// tensor convert_hf_to_gguf.py computes (float32 per-frequency divisors).
// Mistral and other rope types are not written (panic).
func WriteGGUF(path string, o Options) (*model.Config, model.Weights, error) {
	cfg := Config(o)
	w := Weights(o)
	arch := "llama"
	switch o.arch() {
	case "Qwen2ForCausalLM":
		arch = "qwen2"
	case "LlamaForCausalLM":
	default:
		panic("tinymodel: WriteGGUF cannot write " + o.arch())
	}
	meta := []gguf.KV{
		{Key: "general.architecture", Value: arch},
		{Key: "general.name", Value: "tinymodel"},
		{Key: "general.file_type", Value: uint32(0)}, // ALL_F32
		{Key: arch + ".block_count", Value: uint32(o.Layers)},
		{Key: arch + ".context_length", Value: uint32(cfg.MaxPositionEmbeddings)},
		{Key: arch + ".embedding_length", Value: uint32(o.Hidden)},
		{Key: arch + ".feed_forward_length", Value: uint32(o.Intermediate)},
		{Key: arch + ".attention.head_count", Value: uint32(o.Heads)},
		{Key: arch + ".attention.head_count_kv", Value: uint32(o.KVHeads)},
		{Key: arch + ".rope.freq_base", Value: float32(o.RopeTheta)},
		{Key: arch + ".attention.layer_norm_rms_epsilon", Value: float32(o.RMSNormEps)},
		{Key: arch + ".rope.dimension_count", Value: uint32(cfg.HeadDim)},
		{Key: arch + ".vocab_size", Value: uint32(o.Vocab)},
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
	if rs := o.RopeScaling; rs != nil {
		if rs["rope_type"] != "llama3" {
			panic(fmt.Sprintf("tinymodel: WriteGGUF cannot write rope scaling %v", rs))
		}
		f := ropeFreqs(rs, o.RopeTheta, cfg.HeadDim, cfg.MaxPositionEmbeddings)
		ts = append(ts, gguf.WriteTensor{Name: "rope_freqs.weight", Dims: []uint64{uint64(len(f))}, Type: gguf.F32, Data: f})
	}
	for _, t := range sortedTensors(w) {
		data := t.Data
		switch {
		case arch == "qwen2": // convert_hf_to_gguf.py permutes q/k only for llama
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

// ropeFreqs computes the rope_freqs.weight values of a llama3 rope_scaling
// as llama.cpp's convert_hf_to_gguf.py (LlamaModel.generate_extra_tensors)
// does: inverse frequencies in float32, per frequency 1 (wavelength below
// orig/high), factor (above orig/low) or 1/((1−s)/factor + s) in between.
func ropeFreqs(rs map[string]any, theta float64, headDim, maxPos int) []float32 {
	num := func(k string, def float64) float64 {
		switch v := rs[k].(type) {
		case float64:
			return v
		case int:
			return float64(v)
		}
		return def
	}
	factor, low, high := num("factor", 8), num("low_freq_factor", 1), num("high_freq_factor", 4)
	orig := num("original_max_position_embeddings", float64(maxPos))
	out := make([]float32, headDim/2)
	for i := range out {
		inv := float64(float32(1 / math.Pow(theta, float64(2*i)/float64(headDim))))
		wave := 2 * math.Pi / inv
		switch {
		case wave < orig/high:
			out[i] = 1
		case wave > orig/low:
			out[i] = float32(factor)
		default:
			s := (orig/wave - low) / (high - low)
			out[i] = float32(1 / ((1-s)/factor + s))
		}
	}
	return out
}
