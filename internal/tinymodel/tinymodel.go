// Package tinymodel writes and reads tiny random models for tests (Llama,
// Mistral, Qwen2, OPT, Gemma 2 and Gemma 3 text; see Options.Arch): a
// Hugging Face directory (config.json, model.safetensors, tokenizer.json,
// tokenizer_config.json; float32) through model/hf and model/safetensors, or
// the same model as one GGUF file through model/gguf. It also provides the
// small byte-level BPE tokenizer stored with them (Tokenizer) and a plain
// one-id-per-byte tokenizer (ByteTokenizer).
package tinymodel

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/hf"
	"github.com/optima-llm/optima/model/safetensors"
)

// Options describe the tiny model.
type Options struct {
	Vocab, Hidden, Intermediate, Layers, Heads, KVHeads int
	RopeTheta, RMSNormEps                               float64
	Tied, AttentionBias                                 bool
	// Seed seeds math/rand/v2's PCG for the weights.
	Seed uint64
	// Arch is the Hugging Face architecture: "" or "LlamaForCausalLM",
	// "MistralForCausalLM", "Qwen2ForCausalLM" (q/k/v biases always, no
	// o_proj bias; AttentionBias is ignored), "OPTForCausalLM" (see
	// ProjDim and PostLN; biases on every linear, LayerNorms with biases,
	// ReLU, learned positions; KVHeads, RopeTheta, RMSNormEps and
	// AttentionBias are ignored), "Gemma2ForCausalLM" or
	// "Gemma3ForCausalLM" (text model: q/k norms; both with pre/post
	// norms, GeGLU, scaled embeddings, query_pre_attn_scalar = head dim,
	// sliding layers alternating with global ones when SlidingWindow > 0;
	// Gemma 2 with soft-capping 50 / 30; AttentionBias is ignored).
	Arch string
	// SlidingWindow, when positive, is config.json's sliding_window: every
	// layer of a Mistral model; for Qwen2, use_sliding_window is set and
	// layers from MaxWindowLayers on slide; for Gemma, even layers slide.
	SlidingWindow, MaxWindowLayers int
	// ProjDim is OPT's word_embed_proj_dim (0: Hidden). When it differs
	// from Hidden the model has project_in and project_out.
	ProjDim int
	// PostLN sets OPT's do_layer_norm_before to false (OPT-350m's
	// post-LayerNorm blocks, no final LayerNorm).
	PostLN bool
	// RopeScaling, when not nil, is written as config.json's rope_scaling
	// (e.g. {"rope_type": "llama3", "factor": 8.0, ...}).
	RopeScaling map[string]any
}

// arch is o.Arch with the default applied.
func (o Options) arch() string {
	if o.Arch == "" {
		return "LlamaForCausalLM"
	}
	return o.Arch
}

var modelTypes = map[string]string{"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2",
	"OPTForCausalLM": "opt", "Gemma2ForCausalLM": "gemma2", "Gemma3ForCausalLM": "gemma3_text"}

// Architectures of Options.Arch besides the Llama family's.
const (
	OPT    = "OPTForCausalLM"
	Gemma2 = "Gemma2ForCausalLM"
	Gemma3 = "Gemma3ForCausalLM"
)

// projDim is o.ProjDim with the default applied.
func (o Options) projDim() int {
	if o.ProjDim == 0 {
		return o.Hidden
	}
	return o.ProjDim
}

// familyConfigJSON is config.json of an OPT or Gemma model of o, as the
// family's config class writes it.
func familyConfigJSON(o Options, special int) map[string]any {
	id := func(v int) any {
		if v < 0 {
			return nil
		}
		return v
	}
	c := map[string]any{
		"architectures": []any{o.arch()}, "model_type": modelTypes[o.arch()],
		"vocab_size": o.Vocab, "hidden_size": o.Hidden, "num_hidden_layers": o.Layers, "num_attention_heads": o.Heads,
		"max_position_embeddings": 4096, "tie_word_embeddings": o.Tied,
		"bos_token_id": id(special), "eos_token_id": id(special), "pad_token_id": nil,
	}
	if o.arch() == OPT {
		c["max_position_embeddings"] = 2048
		c["ffn_dim"] = o.Intermediate
		c["word_embed_proj_dim"] = o.projDim()
		c["do_layer_norm_before"] = !o.PostLN
		c["activation_function"] = "relu"
		c["enable_bias"] = true
		c["layer_norm_elementwise_affine"] = true
		return c
	}
	hd := o.Hidden / o.Heads
	c["intermediate_size"] = o.Intermediate
	c["num_key_value_heads"] = o.KVHeads
	c["head_dim"] = hd
	c["rms_norm_eps"] = o.RMSNormEps
	c["hidden_activation"] = "gelu_pytorch_tanh"
	c["query_pre_attn_scalar"] = hd
	c["attention_bias"] = false
	types := make([]any, o.Layers)
	for i := range types {
		types[i] = "full_attention"
		if o.SlidingWindow > 0 && i%2 == 0 {
			types[i] = "sliding_attention"
		}
	}
	c["layer_types"] = types
	c["sliding_window"] = 4096 // unused: every layer is global
	if o.SlidingWindow > 0 {
		c["sliding_window"] = o.SlidingWindow
	}
	if o.arch() == Gemma2 {
		c["attn_logit_softcapping"] = json.Number("50.0")
		c["final_logit_softcapping"] = json.Number("30.0")
		c["rope_parameters"] = map[string]any{"rope_type": "default", "rope_theta": o.RopeTheta}
	} else {
		c["rope_parameters"] = map[string]any{
			"full_attention":    map[string]any{"rope_type": "default", "rope_theta": o.RopeTheta},
			"sliding_attention": map[string]any{"rope_type": "default", "rope_theta": json.Number("10000.0")},
		}
	}
	return c
}

// Default is hidden 64, 4 heads, 2 KV heads, intermediate 128, 2 layers,
// vocab 320 (Tokenizer's 256 bytes, <|endoftext|> and 63 merges), untied,
// rope_theta 100000, eps 1e-5, seed 1.
func Default() Options {
	return Options{Vocab: 320, Hidden: 64, Intermediate: 128, Layers: 2, Heads: 4, KVHeads: 2,
		RopeTheta: 100000, RMSNormEps: 1e-5, Seed: 1}
}

// Config is the model.Config of o (architecture o.Arch, head_dim
// Hidden/Heads, max_position_embeddings 4096 (OPT: 2048), rope_scaling and
// the sliding window keys of o in Raw). It panics for an Arch it does not
// know. BOS and EOS are Tokenizer's <|endoftext|> id (EndOfText) when Vocab
// ≥ MinTokenizerVocab, else -1. Raw is config.json as Write writes it
// (hf.ConfigJSON), parsed back.
func Config(o Options) *model.Config {
	special := -1
	if o.Vocab >= MinTokenizerVocab {
		special = EndOfText
	}
	mt, ok := modelTypes[o.arch()]
	if !ok {
		panic(fmt.Sprintf("tinymodel: unknown Arch %q", o.Arch))
	}
	if mt == "opt" || mt == "gemma2" || mt == "gemma3_text" {
		b, err := json.Marshal(familyConfigJSON(o, special))
		if err != nil {
			panic(fmt.Sprintf("tinymodel: config.json of %+v: %v", o, err))
		}
		c, err := hf.ParseConfig(b, "tinymodel config.json")
		if err != nil {
			panic(fmt.Sprintf("tinymodel: config.json of %+v: %v", o, err))
		}
		// Raw as Write writes it, parsed back.
		if b, err = hf.ConfigJSON(c, "float32"); err == nil {
			c, err = hf.ParseConfig(b, "tinymodel config.json")
		}
		if err != nil {
			panic(fmt.Sprintf("tinymodel: config.json of %+v: %v", o, err))
		}
		return c
	}
	c := &model.Config{
		Architecture: o.arch(), ModelType: mt,
		HiddenSize: o.Hidden, IntermediateSize: o.Intermediate, NumHiddenLayers: o.Layers,
		NumAttentionHeads: o.Heads, NumKeyValueHeads: o.KVHeads, HeadDim: o.Hidden / o.Heads,
		VocabSize: o.Vocab, MaxPositionEmbeddings: 4096, RMSNormEps: o.RMSNormEps, RopeTheta: o.RopeTheta,
		TieWordEmbeddings: o.Tied, AttentionBias: o.AttentionBias, HiddenAct: "silu",
		BOSTokenID: special, EOSTokenID: special,
		Raw: map[string]any{},
	}
	if o.RopeScaling != nil {
		c.Raw["rope_scaling"] = o.RopeScaling
	}
	switch o.arch() {
	case "MistralForCausalLM":
		c.Raw["sliding_window"] = nil
		if o.SlidingWindow > 0 {
			c.Raw["sliding_window"] = o.SlidingWindow
		}
	case "Qwen2ForCausalLM":
		c.AttentionBias = false
		c.Raw["use_sliding_window"] = o.SlidingWindow > 0
		c.Raw["sliding_window"] = o.SlidingWindow
		c.Raw["max_window_layers"] = o.MaxWindowLayers
	}
	b, err := hf.ConfigJSON(c, "float32")
	if err != nil {
		panic(fmt.Sprintf("tinymodel: config.json of %+v: %v", o, err))
	}
	if err := json.Unmarshal(b, &c.Raw); err != nil {
		panic(fmt.Sprintf("tinymodel: config.json of %+v: %v", o, err))
	}
	return c
}

// Weights draws the tensors of o in Hugging Face layout: embeddings
// (token and OPT's positions) N(0,1), norm weights 1+N(0,0.1²) (Gemma's,
// which scale by 1+w: N(0,0.1²)), linear weights N(0, (1/in))·1.5 ([out,
// in]), biases N(0, 0.1²). The draw order is fixed (sorted tensor
// names), so a seed gives one model.
func Weights(o Options) model.Weights {
	r := rand.New(rand.NewPCG(o.Seed, 0x7a1))
	hd := o.Hidden / o.Heads
	var shapes map[string][]int
	switch o.arch() {
	case OPT:
		shapes = optShapes(o)
	case Gemma2, Gemma3:
		shapes = gemmaShapes(o)
	default:
		shapes = llamaShapes(o, hd)
	}
	gemma := o.arch() == Gemma2 || o.arch() == Gemma3
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	sort.Strings(names)
	w := model.Weights{}
	for _, n := range names {
		s := shapes[n]
		t := &model.Tensor{Name: n, Shape: s}
		t.Data = make([]float32, t.Numel())
		var mean, std float64
		switch {
		case strings.Contains(n, "embed_"):
			std = 1
		case len(s) == 1 && strings.HasSuffix(n, ".bias"):
			std = 0.1
		case len(s) == 1 && gemma: // Gemma's RMSNorm scales by 1 + w
			std = 0.1
		case len(s) == 1:
			mean, std = 1, 0.1
		default:
			std = 1.5 / math.Sqrt(float64(s[1]))
		}
		for i := range t.Data {
			t.Data[i] = float32(mean + std*r.NormFloat64())
		}
		w[n] = t
	}
	return w
}

// optShapes are the tensors of OPTForCausalLM (transformers
// models/opt/modeling_opt.py) for o.
func optShapes(o Options) map[string][]int {
	d, p := o.Hidden, o.projDim()
	shapes := map[string][]int{
		"model.decoder.embed_tokens.weight":    {o.Vocab, p},
		"model.decoder.embed_positions.weight": {2048 + 2, d},
	}
	if !o.Tied {
		shapes["lm_head.weight"] = []int{o.Vocab, p}
	}
	if p != d {
		shapes["model.decoder.project_in.weight"] = []int{d, p}
		shapes["model.decoder.project_out.weight"] = []int{p, d}
	}
	if !o.PostLN {
		shapes["model.decoder.final_layer_norm.weight"] = []int{d}
		shapes["model.decoder.final_layer_norm.bias"] = []int{d}
	}
	for i := range o.Layers {
		pre := fmt.Sprintf("model.decoder.layers.%d.", i)
		for n, s := range map[string][2]int{"self_attn.q_proj": {d, d}, "self_attn.k_proj": {d, d}, "self_attn.v_proj": {d, d},
			"self_attn.out_proj": {d, d}, "fc1": {o.Intermediate, d}, "fc2": {d, o.Intermediate}} {
			shapes[pre+n+".weight"] = []int{s[0], s[1]}
			shapes[pre+n+".bias"] = []int{s[0]}
		}
		for _, n := range []string{"self_attn_layer_norm", "final_layer_norm"} {
			shapes[pre+n+".weight"] = []int{d}
			shapes[pre+n+".bias"] = []int{d}
		}
	}
	return shapes
}

// gemmaShapes are the tensors of Gemma2ForCausalLM / Gemma3ForCausalLM
// (transformers models/gemma2, models/gemma3) for o.
func gemmaShapes(o Options) map[string][]int {
	hd := o.Hidden / o.Heads
	shapes := map[string][]int{"model.embed_tokens.weight": {o.Vocab, o.Hidden}, "model.norm.weight": {o.Hidden}}
	if !o.Tied {
		shapes["lm_head.weight"] = []int{o.Vocab, o.Hidden}
	}
	for i := range o.Layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		for _, n := range []string{"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"} {
			shapes[p+n+".weight"] = []int{o.Hidden}
		}
		if o.arch() == Gemma3 {
			shapes[p+"self_attn.q_norm.weight"] = []int{hd}
			shapes[p+"self_attn.k_norm.weight"] = []int{hd}
		}
		for n, s := range map[string][2]int{
			"self_attn.q_proj": {o.Heads * hd, o.Hidden}, "self_attn.k_proj": {o.KVHeads * hd, o.Hidden},
			"self_attn.v_proj": {o.KVHeads * hd, o.Hidden}, "self_attn.o_proj": {o.Hidden, o.Heads * hd},
			"mlp.gate_proj": {o.Intermediate, o.Hidden}, "mlp.up_proj": {o.Intermediate, o.Hidden},
			"mlp.down_proj": {o.Hidden, o.Intermediate},
		} {
			shapes[p+n+".weight"] = []int{s[0], s[1]}
		}
	}
	return shapes
}

// llamaShapes are the tensors of LlamaForCausalLM, MistralForCausalLM and
// Qwen2ForCausalLM for o.
func llamaShapes(o Options, hd int) map[string][]int {
	shapes := map[string][]int{"model.embed_tokens.weight": {o.Vocab, o.Hidden}, "model.norm.weight": {o.Hidden}}
	if !o.Tied {
		shapes["lm_head.weight"] = []int{o.Vocab, o.Hidden}
	}
	for i := range o.Layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		shapes[p+"input_layernorm.weight"] = []int{o.Hidden}
		shapes[p+"post_attention_layernorm.weight"] = []int{o.Hidden}
		lin := map[string][2]int{
			"self_attn.q_proj": {o.Heads * hd, o.Hidden}, "self_attn.k_proj": {o.KVHeads * hd, o.Hidden},
			"self_attn.v_proj": {o.KVHeads * hd, o.Hidden}, "self_attn.o_proj": {o.Hidden, o.Heads * hd},
			"mlp.gate_proj": {o.Intermediate, o.Hidden}, "mlp.up_proj": {o.Intermediate, o.Hidden},
			"mlp.down_proj": {o.Hidden, o.Intermediate},
		}
		for n, s := range lin {
			shapes[p+n+".weight"] = []int{s[0], s[1]}
			qwen2 := o.arch() == "Qwen2ForCausalLM"
			if (!qwen2 && o.AttentionBias && n[:4] == "self") || (qwen2 && n[:4] == "self" && n != "self_attn.o_proj") {
				shapes[p+n+".bias"] = []int{s[0]}
			}
		}
	}
	return shapes
}

// Write generates the model of o into dir (created if needed; other files
// in it are left alone) as config.json (hf.ConfigJSON, torch_dtype
// float32), model.safetensors (all F32, safetensors.WriteFile) and, when
// o.Vocab ≥ MinTokenizerVocab, tokenizer.json and tokenizer_config.json of
// Tokenizer(o.Vocab) (BPE.HFTokenizerJSON/HFTokenizerConfigJSON). It returns
// Config(o) and Weights(o). Errors are I/O errors naming the file.
func Write(dir string, o Options) (*model.Config, model.Weights, error) {
	cfg := Config(o)
	w := Weights(o)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("tinymodel: %w", err)
	}
	cj, err := hf.ConfigJSON(cfg, "float32")
	if err != nil {
		return nil, nil, err
	}
	files := map[string][]byte{"config.json": cj}
	if o.Vocab >= MinTokenizerVocab {
		tok, err := Tokenizer(o.Vocab)
		if err != nil {
			return nil, nil, err
		}
		if files["tokenizer.json"], err = tok.HFTokenizerJSON(); err != nil {
			return nil, nil, fmt.Errorf("tinymodel: tokenizer.json: %w", err)
		}
		if files["tokenizer_config.json"], err = tok.HFTokenizerConfigJSON(); err != nil {
			return nil, nil, fmt.Errorf("tinymodel: tokenizer_config.json: %w", err)
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return nil, nil, fmt.Errorf("tinymodel: %w", err)
		}
	}
	if err := safetensors.WriteFile(filepath.Join(dir, safetensors.SingleName), sortedTensors(w), safetensors.WriteOptions{}); err != nil {
		return nil, nil, fmt.Errorf("tinymodel: %w", err)
	}
	return cfg, w, nil
}

func sortedTensors(w model.Weights) []*model.Tensor {
	ts := make([]*model.Tensor, 0, len(w))
	for _, t := range w {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	return ts
}

// Read loads every tensor of a Hugging Face model directory (written by
// Write or by transformers' save_pretrained) with hf.Open: config.json as
// hf.ParseConfig reads it and the safetensors weights (single or sharded,
// F32/F16/BF16) as float32. Errors are hf's, naming the file and tensor.
func Read(dir string) (*model.Config, model.Weights, error) {
	d, err := hf.Open(dir)
	if err != nil {
		return nil, nil, err
	}
	defer d.Close()
	w := model.Weights{}
	for _, n := range d.Names() {
		t, err := d.Load(n)
		if err != nil {
			return nil, nil, err
		}
		w[n] = t
	}
	return d.Config(), w, nil
}

// ByteTokenizer maps each byte of the text to its own id (vocabulary 256,
// no BOS/EOS); it implements tokenizer.Tokenizer. Its ids are also the ids
// of Tokenizer's byte tokens.
type ByteTokenizer struct{}

// Encode returns one id per byte.
func (ByteTokenizer) Encode(text string) []int32 {
	ids := make([]int32, len(text))
	for i := range len(text) {
		ids[i] = int32(text[i])
	}
	return ids
}

// Decode maps ids back to bytes (ids outside [0, 256) are skipped).
func (ByteTokenizer) Decode(ids []int32) string {
	b := make([]byte, 0, len(ids))
	for _, id := range ids {
		if id >= 0 && id < 256 {
			b = append(b, byte(id))
		}
	}
	return string(b)
}

// VocabSize is 256.
func (ByteTokenizer) VocabSize() int { return 256 }

// BOS is -1 (none).
func (ByteTokenizer) BOS() int32 { return -1 }

// EOS is -1 (none).
func (ByteTokenizer) EOS() int32 { return -1 }

// AddBOS is false.
func (ByteTokenizer) AddBOS() bool { return false }
