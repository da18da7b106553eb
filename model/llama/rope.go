package llama

import (
	"fmt"
	"math"

	"github.com/optima-llm/optima/model"
)

// RopeScaling is a parsed rope_scaling / rope_parameters object of
// config.json (transformers' modeling_rope_utils.py).
type RopeScaling struct {
	// Type is the rope type: "default", "linear" or "llama3".
	Type string
	// Factor divides the inverse frequencies ("linear": all of them;
	// "llama3": the low-frequency band). It is 1 for "default".
	Factor float64
	// LowFreqFactor, HighFreqFactor and OriginalMaxPositionEmbeddings are
	// the "llama3" band parameters (zero otherwise).
	LowFreqFactor, HighFreqFactor float64
	OriginalMaxPositionEmbeddings float64
}

// SupportedRopeTypes lists the rope types ParseRopeScaling accepts.
var SupportedRopeTypes = []string{"default", "linear", "llama3"}

// ParseRopeScaling reads the rope scaling of raw (config.json as decoded by
// encoding/json) as transformers' PreTrainedConfig.convert_rope_params_to_dict
// and standardize_rope_params do: "rope_scaling" (the v4 key) takes
// priority over "rope_parameters"; the type is "rope_type", else "type",
// else "default". "llama3" needs factor, low_freq_factor and
// high_freq_factor; original_max_position_embeddings defaults to
// maxPos (max_position_embeddings). "linear" needs factor. Errors name
// config.json, the key and the type, e.g. an unsupported "yarn"; they list
// the supported types.
func ParseRopeScaling(raw map[string]any, maxPos int) (RopeScaling, error) {
	key := "rope_scaling"
	v := raw[key]
	if v == nil {
		key = "rope_parameters"
		v = raw[key]
	}
	rs := RopeScaling{Type: "default", Factor: 1}
	if v == nil {
		return rs, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return rs, fmt.Errorf("llama: config.json: %s is %T, want an object", key, v)
	}
	typ := m["rope_type"]
	if typ == nil {
		typ = m["type"]
	}
	if typ == nil {
		return rs, nil
	}
	s, ok := typ.(string)
	if !ok {
		return rs, fmt.Errorf("llama: config.json: %s.rope_type is %v, want a string", key, typ)
	}
	rs.Type = s
	num := func(name string, def float64, required bool) (float64, error) {
		x, ok := m[name]
		if !ok || x == nil {
			if required {
				return 0, fmt.Errorf("llama: config.json: %s (rope_type %q) has no %s", key, s, name)
			}
			return def, nil
		}
		f, ok := x.(float64)
		if !ok || !(f > 0) || f > math.MaxFloat32 {
			return 0, fmt.Errorf("llama: config.json: %s.%s is %v, want a positive float32 number", key, name, x)
		}
		return f, nil
	}
	var err error
	switch s {
	case "default":
	case "linear":
		if rs.Factor, err = num("factor", 0, true); err != nil {
			return rs, err
		}
	case "llama3":
		if rs.Factor, err = num("factor", 0, true); err != nil {
			return rs, err
		}
		if rs.LowFreqFactor, err = num("low_freq_factor", 0, true); err != nil {
			return rs, err
		}
		if rs.HighFreqFactor, err = num("high_freq_factor", 0, true); err != nil {
			return rs, err
		}
		if rs.OriginalMaxPositionEmbeddings, err = num("original_max_position_embeddings", float64(maxPos), false); err != nil {
			return rs, err
		}
		if !(rs.OriginalMaxPositionEmbeddings > 0) {
			return rs, fmt.Errorf("llama: config.json: %s has no original_max_position_embeddings and max_position_embeddings is %d", key, maxPos)
		}
		if rs.HighFreqFactor <= rs.LowFreqFactor {
			return rs, fmt.Errorf("llama: config.json: %s: high_freq_factor %v must exceed low_freq_factor %v", key, rs.HighFreqFactor, rs.LowFreqFactor)
		}
	default:
		return rs, fmt.Errorf("llama: config.json: %s rope_type %q is not supported (supported: %v)", key, s, SupportedRopeTypes)
	}
	return rs, nil
}

// InvFreq returns the [headDim/2] float32 inverse frequencies of rotary
// position embedding i: 1/theta^(2i/headDim) (modeling_rope_utils.py
// _compute_default_rope_parameters, in float32 as torch computes it), then
// scaled by rs:
//
//	linear: inv_freq / factor
//	llama3: wavelen = 2π/inv_freq; wavelen < orig/high: unchanged;
//	        wavelen > orig/low: inv_freq/factor; otherwise, with
//	        s = (orig/wavelen − low)/(high − low),
//	        (1 − s)·inv_freq/factor + s·inv_freq
//
// (_compute_linear_scaling_rope_parameters, _compute_llama3_parameters;
// float32 arithmetic as torch's). It panics if headDim is not positive and
// even.
func (rs RopeScaling) InvFreq(theta float64, headDim int) []float32 {
	if headDim <= 0 || headDim%2 != 0 {
		panic(fmt.Sprintf("llama: InvFreq: head_dim %d must be positive and even", headDim))
	}
	half := headDim / 2
	inv := make([]float32, half)
	for i := range half {
		e := float32(2*i) / float32(headDim)
		inv[i] = 1 / float32(math.Pow(float64(float32(theta)), float64(e)))
	}
	switch rs.Type {
	case "linear":
		f := float32(rs.Factor)
		for i := range inv {
			inv[i] /= f
		}
	case "llama3":
		f := float32(rs.Factor)
		lo, hi := float32(rs.LowFreqFactor), float32(rs.HighFreqFactor)
		orig := float32(rs.OriginalMaxPositionEmbeddings)
		lowWave := float32(rs.OriginalMaxPositionEmbeddings / rs.LowFreqFactor)
		highWave := float32(rs.OriginalMaxPositionEmbeddings / rs.HighFreqFactor)
		twoPi := float32(2 * math.Pi)
		for i, x := range inv {
			wave := twoPi / x
			scaled := x
			if wave > lowWave {
				scaled = x / f
			}
			if !(wave < highWave) && !(wave > lowWave) {
				s := (orig/wave - lo) / (hi - lo)
				scaled = (1-s)*scaled/f + s*scaled
			}
			inv[i] = scaled
		}
	}
	return inv
}

// Llama3Factors returns the per-frequency divisors r_i = inv_freq_i /
// scaled_inv_freq_i of rs for theta and headDim in float64, the values
// llama.cpp's convert_hf_to_gguf.py stores as the rope_freqs.weight tensor
// (1 in the high-frequency band, factor in the low one).
func (rs RopeScaling) Llama3Factors(theta float64, headDim int) []float64 {
	half := headDim / 2
	out := make([]float64, half)
	for i := range half {
		inv := 1 / math.Pow(theta, float64(2*i)/float64(headDim))
		wave := 2 * math.Pi / inv
		switch {
		case wave < rs.OriginalMaxPositionEmbeddings/rs.HighFreqFactor:
			out[i] = 1
		case wave > rs.OriginalMaxPositionEmbeddings/rs.LowFreqFactor:
			out[i] = rs.Factor
		default:
			s := (rs.OriginalMaxPositionEmbeddings/wave - rs.LowFreqFactor) / (rs.HighFreqFactor - rs.LowFreqFactor)
			out[i] = 1 / ((1-s)/rs.Factor + s)
		}
	}
	return out
}

// slidingWindows returns, per layer, the attention window (0 = full causal
// attention) of cfg as transformers applies it (masking_utils.py
// sliding_window_overlay: query i sees keys j with i − window < j ≤ i):
//
//   - MistralForCausalLM: every layer uses sliding_window when it is set
//     (null means full attention).
//   - Qwen2ForCausalLM: sliding_window counts only when use_sliding_window
//     is true; then layer_types from config.json, or, when absent, layers
//     i ≥ max_window_layers, are "sliding_attention" (configuration_qwen2.py).
//   - LlamaForCausalLM (and anything else): full attention; a non-null,
//     non-zero sliding_window is an error.
func slidingWindows(cfg *model.Config) ([]int, error) {
	n := cfg.NumHiddenLayers
	win := make([]int, n)
	raw := cfg.Raw
	readInt := func(key string) (int, bool, error) {
		v, ok := raw[key]
		if !ok || v == nil {
			return 0, false, nil
		}
		f, ok := v.(float64)
		if !ok {
			if i, isInt := v.(int); isInt {
				f, ok = float64(i), true
			}
		}
		if !ok || f != math.Trunc(f) || f < 0 || f > 1<<31 {
			return 0, false, fmt.Errorf("llama: config.json: %s is %v, want a non-negative integer", key, v)
		}
		return int(f), true, nil
	}
	sw, hasSW, err := readInt("sliding_window")
	if err != nil {
		return nil, err
	}
	switch cfg.Architecture {
	case MistralArchitecture:
		if hasSW && sw > 0 {
			for i := range win {
				win[i] = sw
			}
		}
	case Qwen2Architecture:
		use, _ := raw["use_sliding_window"].(bool)
		if !use || !hasSW || sw == 0 {
			return win, nil
		}
		if lt, ok := raw["layer_types"]; ok && lt != nil {
			l, ok := lt.([]any)
			if !ok || len(l) != n {
				return nil, fmt.Errorf("llama: config.json: layer_types %v, want a list of %d layer types", lt, n)
			}
			for i, t := range l {
				switch t {
				case "sliding_attention":
					win[i] = sw
				case "full_attention":
				default:
					return nil, fmt.Errorf("llama: config.json: layer_types[%d] is %v, want \"full_attention\" or \"sliding_attention\"", i, t)
				}
			}
			return win, nil
		}
		mwl, has, err := readInt("max_window_layers")
		if err != nil {
			return nil, err
		}
		if !has {
			mwl = 28 // Qwen2Config default
		}
		for i := mwl; i < n; i++ {
			win[i] = sw
		}
	default:
		if hasSW && sw != 0 {
			return nil, fmt.Errorf("llama: config.json: sliding_window %d not supported by %s", sw, cfg.Architecture)
		}
	}
	return win, nil
}
