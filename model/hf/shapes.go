package hf

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/optima-llm/optima/model"
)

// ParseIndex parses model.safetensors.index.json bytes and returns its
// weight_map (tensor name → shard file name). path is used in errors: bad
// JSON, no or an empty weight_map, and shard names that are not plain file
// names ending in .safetensors.
func ParseIndex(b []byte, path string) (map[string]string, error) {
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("hf: %s: %w", path, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("hf: %s: no weight_map entries", path)
	}
	for name, fn := range idx.WeightMap {
		if fn == "" || fn != filepathBase(fn) || strings.HasPrefix(fn, ".") || !strings.HasSuffix(fn, ".safetensors") {
			return nil, fmt.Errorf("hf: %s: tensor %q maps to invalid file name %q", path, name, fn)
		}
	}
	return idx.WeightMap, nil
}

// filepathBase is filepath.Base that also treats a backslash as a
// separator, so an index cannot point outside the directory on any OS.
func filepathBase(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// llamaShapeTypes are the model types whose tensor names CheckShape knows.
var llamaShapeTypes = map[string]bool{"llama": true, "mistral": true, "qwen2": true}

var layerName = regexp.MustCompile(`^model\.layers\.(\d+)\.(.+)$`)

// CheckShape checks the shape of tensor name against cfg for the Llama
// family's model types (llama, mistral, qwen2): embed_tokens and lm_head
// [vocab_size, hidden_size]; norms [hidden_size]; q_proj [heads·head_dim,
// hidden]; k/v_proj [kv_heads·head_dim, hidden]; o_proj [hidden,
// heads·head_dim]; gate/up_proj [intermediate, hidden]; down_proj
// [hidden, intermediate]; biases [out]; a layer index below
// num_hidden_layers. Other names and model types pass. The error names the
// tensor, its shape, the expected one and the config.json fields it comes
// from.
func CheckShape(cfg *model.Config, name string, shape []int) error {
	if !llamaShapeTypes[cfg.ModelType] {
		return nil
	}
	h, v, inter := cfg.HiddenSize, cfg.VocabSize, cfg.IntermediateSize
	qd, kvd := cfg.NumAttentionHeads*cfg.HeadDim, cfg.NumKeyValueHeads*cfg.HeadDim
	var want []int
	var why string
	switch name {
	case "model.embed_tokens.weight", "lm_head.weight":
		want, why = []int{v, h}, fmt.Sprintf("vocab_size %d, hidden_size %d", v, h)
	case "model.norm.weight":
		want, why = []int{h}, fmt.Sprintf("hidden_size %d", h)
	}
	if m := layerName.FindStringSubmatch(name); m != nil {
		var layer int
		fmt.Sscan(m[1], &layer)
		if layer >= cfg.NumHiddenLayers || m[1] != fmt.Sprint(layer) {
			return fmt.Errorf("tensor %q: layer %s is outside num_hidden_layers %d of config.json", name, m[1], cfg.NumHiddenLayers)
		}
		attn := fmt.Sprintf("hidden_size %d, num_attention_heads %d, num_key_value_heads %d, head_dim %d",
			h, cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.HeadDim)
		mlp := fmt.Sprintf("hidden_size %d, intermediate_size %d", h, inter)
		lin := map[string]struct {
			out, in int
			why     string
		}{
			"self_attn.q_proj": {qd, h, attn}, "self_attn.k_proj": {kvd, h, attn}, "self_attn.v_proj": {kvd, h, attn},
			"self_attn.o_proj": {h, qd, attn},
			"mlp.gate_proj":    {inter, h, mlp}, "mlp.up_proj": {inter, h, mlp}, "mlp.down_proj": {h, inter, mlp},
		}
		rest := m[2]
		switch {
		case rest == "input_layernorm.weight" || rest == "post_attention_layernorm.weight":
			want, why = []int{h}, fmt.Sprintf("hidden_size %d", h)
		case strings.HasSuffix(rest, ".weight"):
			if l, ok := lin[strings.TrimSuffix(rest, ".weight")]; ok {
				want, why = []int{l.out, l.in}, l.why
			}
		case strings.HasSuffix(rest, ".bias"):
			if l, ok := lin[strings.TrimSuffix(rest, ".bias")]; ok {
				want, why = []int{l.out}, l.why
			}
		}
	}
	if want == nil || slices.Equal(want, shape) {
		return nil
	}
	return fmt.Errorf("tensor %q has shape %v, config.json (%s) gives %v", name, shape, why, want)
}
