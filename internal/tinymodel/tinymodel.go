// Package tinymodel writes and reads tiny random Llama models in Hugging Face
// layout (config.json + model.safetensors, float32) for tests, and provides a
// byte-level tokenizer to go with them.
//
// The safetensors and config.json code here is deliberately minimal (F32
// only, one file); it stands in until model/safetensors and model/hf are
// available and should then be replaced by them.
package tinymodel

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"

	"github.com/optima-llm/optima/model"
)

// Options describe the tiny model.
type Options struct {
	Vocab, Hidden, Intermediate, Layers, Heads, KVHeads int
	RopeTheta, RMSNormEps                               float64
	Tied, AttentionBias                                 bool
	// Seed seeds math/rand/v2's PCG for the weights.
	Seed uint64
}

// Default is hidden 64, 4 heads, 2 KV heads, intermediate 128, 2 layers,
// vocab 256 (one id per byte), untied, rope_theta 100000, eps 1e-5, seed 1.
func Default() Options {
	return Options{Vocab: 256, Hidden: 64, Intermediate: 128, Layers: 2, Heads: 4, KVHeads: 2,
		RopeTheta: 100000, RMSNormEps: 1e-5, Seed: 1}
}

// Config is the model.Config of o (architecture LlamaForCausalLM).
func Config(o Options) *model.Config {
	c := &model.Config{
		Architecture: "LlamaForCausalLM", ModelType: "llama",
		HiddenSize: o.Hidden, IntermediateSize: o.Intermediate, NumHiddenLayers: o.Layers,
		NumAttentionHeads: o.Heads, NumKeyValueHeads: o.KVHeads, HeadDim: o.Hidden / o.Heads,
		VocabSize: o.Vocab, MaxPositionEmbeddings: 4096, RMSNormEps: o.RMSNormEps, RopeTheta: o.RopeTheta,
		TieWordEmbeddings: o.Tied, AttentionBias: o.AttentionBias, HiddenAct: "silu",
		BOSTokenID: -1, EOSTokenID: -1,
	}
	c.Raw = rawConfig(c)
	return c
}

func rawConfig(c *model.Config) map[string]any {
	return map[string]any{
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
		"tie_word_embeddings":     c.TieWordEmbeddings,
		"attention_bias":          c.AttentionBias,
		"mlp_bias":                c.MLPBias,
		"hidden_act":              c.HiddenAct,
		"torch_dtype":             "float32",
	}
}

// Weights draws the tensors of o: embeddings N(0,1), norm weights
// 1+N(0,0.1²), linear weights N(0, (1/in))·1.5 ([out, in]), biases N(0, 0.1²).
// The draw order is fixed (sorted tensor names), so a seed gives one model.
func Weights(o Options) model.Weights {
	r := rand.New(rand.NewPCG(o.Seed, 0x7a1))
	hd := o.Hidden / o.Heads
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
			if o.AttentionBias && n[:4] == "self" {
				shapes[p+n+".bias"] = []int{s[0]}
			}
		}
	}
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
		case n == "model.embed_tokens.weight":
			std = 1
		case len(s) == 1 && n[len(n)-5:] == ".bias":
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

// Write generates the model of o into dir (created if needed) as
// config.json and model.safetensors (all F32) and returns its config and
// weights.
func Write(dir string, o Options) (*model.Config, model.Weights, error) {
	cfg := Config(o)
	w := Weights(o)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	b, err := json.MarshalIndent(cfg.Raw, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		return nil, nil, err
	}
	if err := writeSafetensors(filepath.Join(dir, "model.safetensors"), w); err != nil {
		return nil, nil, err
	}
	return cfg, w, nil
}

func writeSafetensors(path string, w model.Weights) error {
	names := make([]string, 0, len(w))
	for n := range w {
		names = append(names, n)
	}
	sort.Strings(names)
	hdr := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	off := 0
	for _, n := range names {
		t := w[n]
		hdr[n] = map[string]any{"dtype": "F32", "shape": t.Shape, "data_offsets": []int{off, off + 4*len(t.Data)}}
		off += 4 * len(t.Data)
	}
	h, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	buf := make([]byte, 8, 8+len(h)+off)
	binary.LittleEndian.PutUint64(buf, uint64(len(h)))
	buf = append(buf, h...)
	for _, n := range names {
		for _, v := range w[n].Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
	}
	return os.WriteFile(path, buf, 0o644)
}

// Read loads a directory written by Write or by transformers'
// save_pretrained for a float32 Llama model: config.json (rope_theta at top
// level or in rope_parameters) and one F32 model.safetensors. Errors name
// the file.
func Read(dir string) (*model.Config, model.Weights, error) {
	cpath := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(cpath)
	if err != nil {
		return nil, nil, err
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, nil, fmt.Errorf("tinymodel: %s: %w", cpath, err)
	}
	num := func(k string) float64 { v, _ := raw[k].(float64); return v }
	bl := func(k string) bool { v, _ := raw[k].(bool); return v }
	str := func(k string) string { v, _ := raw[k].(string); return v }
	cfg := &model.Config{
		ModelType: str("model_type"), HiddenSize: int(num("hidden_size")), IntermediateSize: int(num("intermediate_size")),
		NumHiddenLayers: int(num("num_hidden_layers")), NumAttentionHeads: int(num("num_attention_heads")),
		NumKeyValueHeads: int(num("num_key_value_heads")), HeadDim: int(num("head_dim")), VocabSize: int(num("vocab_size")),
		MaxPositionEmbeddings: int(num("max_position_embeddings")), RMSNormEps: num("rms_norm_eps"),
		RopeTheta: num("rope_theta"), TieWordEmbeddings: bl("tie_word_embeddings"), AttentionBias: bl("attention_bias"),
		MLPBias: bl("mlp_bias"), HiddenAct: str("hidden_act"), BOSTokenID: -1, EOSTokenID: -1, Raw: raw,
	}
	if a, ok := raw["architectures"].([]any); ok && len(a) > 0 {
		cfg.Architecture, _ = a[0].(string)
	}
	if rp, ok := raw["rope_parameters"].(map[string]any); ok && cfg.RopeTheta == 0 {
		cfg.RopeTheta, _ = rp["rope_theta"].(float64)
	}
	spath := filepath.Join(dir, "model.safetensors")
	w, err := readSafetensors(spath)
	if err != nil {
		return nil, nil, fmt.Errorf("tinymodel: %s: %w", spath, err)
	}
	return cfg, w, nil
}

func readSafetensors(path string) (model.Weights, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseSafetensors(b)
}

// parseSafetensors decodes an all-F32 safetensors file held in b.
func parseSafetensors(b []byte) (model.Weights, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("short file")
	}
	n := binary.LittleEndian.Uint64(b)
	if n > uint64(len(b)-8) {
		return nil, fmt.Errorf("header length %d beyond the file", n)
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &hdr); err != nil {
		return nil, err
	}
	data := b[8+n:]
	w := model.Weights{}
	for name, msg := range hdr {
		if name == "__metadata__" {
			continue
		}
		var info struct {
			Dtype   string
			Shape   []int
			Offsets [2]int `json:"data_offsets"`
		}
		if err := json.Unmarshal(msg, &info); err != nil {
			return nil, fmt.Errorf("tensor %s: %w", name, err)
		}
		if info.Dtype != "F32" {
			return nil, fmt.Errorf("tensor %s: dtype %s, only F32 supported", name, info.Dtype)
		}
		t := &model.Tensor{Name: name, Shape: info.Shape}
		numel := 1
		for _, d := range info.Shape {
			if d < 0 || (d > 0 && numel > len(data)/d) {
				return nil, fmt.Errorf("tensor %s: shape %v does not fit %d data bytes", name, info.Shape, len(data))
			}
			numel *= d
		}
		o0, o1 := info.Offsets[0], info.Offsets[1]
		if o0 < 0 || o1 < o0 || o1 > len(data) || o1-o0 != 4*t.Numel() {
			return nil, fmt.Errorf("tensor %s: offsets %v do not fit shape %v in %d data bytes", name, info.Offsets, info.Shape, len(data))
		}
		t.Data = make([]float32, t.Numel())
		for i := range t.Data {
			t.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[o0+4*i:]))
		}
		w[name] = t
	}
	return w, nil
}

// ByteTokenizer maps each byte of the text to its own id (vocabulary 256,
// no BOS/EOS); it implements tokenizer.Tokenizer for tests with Default().
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
