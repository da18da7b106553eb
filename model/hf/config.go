// Package hf reads and writes Hugging Face model directories: config.json,
// model.safetensors (or shards with model.safetensors.index.json) and the
// tokenizer files next to them.
package hf

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"

	"github.com/optima-llm/optima/model"
)

// ErrConfig is wrapped by errors about a malformed config.json.
var ErrConfig = errors.New("hf: bad config")

// ConfigRule adapts ParseConfig to one model_type whose config class
// differs from transformers' LlamaConfig.
type ConfigRule struct {
	// Architecture is used when config.json has no "architectures".
	Architecture string
	// Defaults gives, per config.json key, the value (as encoding/json
	// decodes it: float64, string, bool, nil) that the family's config
	// class uses when the key is missing; it overrides LlamaConfig's
	// default for that key.
	Defaults map[string]any
	// Finish, if not nil, runs after the common fields are read: it fills
	// the fields the family names differently (c.Raw holds the whole
	// config.json) and checks family-specific keys. name is the file name
	// for errors, which should wrap ErrConfig.
	Finish func(c *model.Config, name string) error
	// WriteKeys, if not nil, says how ConfigJSON writes the typed fields of
	// model.Config for this model_type. Each entry maps one of ConfigJSON's
	// default keys (LlamaConfig's: "intermediate_size", "hidden_act",
	// "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta",
	// "attention_bias", "mlp_bias", ...) to the key the family's config
	// class uses instead (OPT: "intermediate_size" → "ffn_dim"), or to ""
	// when the class has no such key and the field is not written. Keys
	// that are not listed keep their LlamaConfig name. A nil map writes
	// LlamaConfig's keys, as ConfigJSON always did.
	WriteKeys map[string]string
	// SubConfig, if not empty, names the object in config.json that holds
	// the language model's configuration (a multimodal checkpoint's
	// "text_config"): ParseConfig parses that object instead, as a config
	// of model_type SubModelType, after copying the top-level
	// tie_word_embeddings, bos_token_id, eos_token_id and pad_token_id into
	// it where it lacks them. The other rule fields are then unused.
	SubConfig, SubModelType string
}

var configRules = map[string]ConfigRule{
	"llama": {Architecture: "LlamaForCausalLM", Finish: checkRopeType},
}

// RegisterConfigRule installs the rule for a model_type. It panics if one is
// registered already; call it from an init function.
func RegisterConfigRule(modelType string, r ConfigRule) {
	if _, dup := configRules[modelType]; dup {
		panic("hf: RegisterConfigRule called twice for " + modelType)
	}
	configRules[modelType] = r
}

// ReadConfig reads and parses a config.json file; see ParseConfig.
func ReadConfig(path string) (*model.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("hf: %w", err)
	}
	return ParseConfig(b, path)
}

// ParseConfig parses config.json bytes. Missing keys take the defaults of the
// model_type's ConfigRule, then those of
// transformers' LlamaConfig: vocab_size 32000, hidden_size 4096,
// intermediate_size 11008, num_hidden_layers 32, num_attention_heads 32,
// num_key_value_heads = num_attention_heads, head_dim = hidden_size /
// num_attention_heads, hidden_act "silu", max_position_embeddings 2048,
// rms_norm_eps 1e-6, rope_theta 10000 (also read from
// rope_parameters.rope_theta), tie_word_embeddings false, attention_bias
// false, mlp_bias false, bos_token_id 1, eos_token_id 2 (the first of a
// list). A null token id becomes -1. name is used in errors, which wrap
// ErrConfig. Raw keeps the whole JSON object.
func ParseConfig(b []byte, name string) (*model.Config, error) {
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrConfig, name, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("%w %s: not a JSON object", ErrConfig, name)
	}
	c := &model.Config{Raw: raw}
	mt, _ := raw["model_type"].(string)
	rule, known := configRules[mt]
	if known && rule.SubConfig != "" {
		return parseSubConfig(raw, rule, name)
	}
	// lookup reads key from config.json, falling back to the rule's
	// defaults; ok is false when neither has it.
	lookup := func(key string) (any, bool) {
		if v, ok := raw[key]; ok {
			return v, true
		}
		v, ok := rule.Defaults[key]
		return v, ok
	}
	var err error
	str := func(key, def string) string {
		if err != nil {
			return ""
		}
		v, ok := lookup(key)
		if !ok || v == nil {
			return def
		}
		s, ok := v.(string)
		if !ok {
			err = fmt.Errorf("%w %s: %s is %v, want a string", ErrConfig, name, key, v)
		}
		return s
	}
	num := func(key string, def float64) float64 {
		if err != nil {
			return 0
		}
		v, ok := lookup(key)
		if !ok || v == nil {
			return def
		}
		f, ok := v.(float64)
		if !ok || math.IsNaN(f) {
			err = fmt.Errorf("%w %s: %s is %v, want a number", ErrConfig, name, key, v)
		}
		return f
	}
	integer := func(key string, def int) int {
		f := num(key, float64(def))
		if err == nil && (f != math.Trunc(f) || f < 0 || f > 1<<31) {
			err = fmt.Errorf("%w %s: %s is %v, want a non-negative integer", ErrConfig, name, key, f)
		}
		return int(f)
	}
	boolean := func(key string, def bool) bool {
		if err != nil {
			return false
		}
		v, ok := lookup(key)
		if !ok || v == nil {
			return def
		}
		bv, ok := v.(bool)
		if !ok {
			err = fmt.Errorf("%w %s: %s is %v, want a bool", ErrConfig, name, key, v)
		}
		return bv
	}
	tokenID := func(key string, def int) int {
		if err != nil {
			return 0
		}
		v, ok := lookup(key)
		if !ok {
			return def
		}
		if l, isList := v.([]any); isList {
			if len(l) == 0 {
				return -1
			}
			v = l[0]
		}
		if v == nil {
			return -1
		}
		f, ok := v.(float64)
		if !ok || f != math.Trunc(f) || f < 0 || f > 1<<31 {
			err = fmt.Errorf("%w %s: %s is %v, want a token id", ErrConfig, name, key, v)
		}
		return int(f)
	}

	c.ModelType = str("model_type", "")
	if archs, ok := raw["architectures"].([]any); ok && len(archs) > 0 {
		if c.Architecture, ok = archs[0].(string); !ok {
			return nil, fmt.Errorf("%w %s: architectures[0] is %v, want a string", ErrConfig, name, archs[0])
		}
	} else if known && rule.Architecture != "" {
		c.Architecture = rule.Architecture
	} else if err == nil {
		return nil, fmt.Errorf("%w %s: no architectures and unknown model_type %q", ErrConfig, name, c.ModelType)
	}
	c.VocabSize = integer("vocab_size", 32000)
	c.HiddenSize = integer("hidden_size", 4096)
	c.IntermediateSize = integer("intermediate_size", 11008)
	c.NumHiddenLayers = integer("num_hidden_layers", 32)
	c.NumAttentionHeads = integer("num_attention_heads", 32)
	c.NumKeyValueHeads = integer("num_key_value_heads", c.NumAttentionHeads)
	c.HiddenAct = str("hidden_act", "silu")
	c.MaxPositionEmbeddings = integer("max_position_embeddings", 2048)
	c.RMSNormEps = num("rms_norm_eps", 1e-6)
	c.RopeTheta = num("rope_theta", 10000)
	if rp, ok := raw["rope_parameters"].(map[string]any); ok {
		if th, ok := rp["rope_theta"].(float64); ok {
			c.RopeTheta = th
		}
	}
	c.TieWordEmbeddings = boolean("tie_word_embeddings", false)
	c.AttentionBias = boolean("attention_bias", false)
	c.MLPBias = boolean("mlp_bias", false)
	c.BOSTokenID = tokenID("bos_token_id", 1)
	c.EOSTokenID = tokenID("eos_token_id", 2)
	if err != nil {
		return nil, err
	}
	if c.NumAttentionHeads == 0 || c.NumKeyValueHeads == 0 || c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
		return nil, fmt.Errorf("%w %s: %d attention heads do not split into %d kv heads", ErrConfig, name, c.NumAttentionHeads, c.NumKeyValueHeads)
	}
	c.HeadDim = integer("head_dim", c.HiddenSize/c.NumAttentionHeads)
	if err != nil {
		return nil, err
	}
	if rule.Finish != nil {
		if err := rule.Finish(c, name); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// parseSubConfig parses raw[rule.SubConfig] as a config of model_type
// rule.SubModelType; see ConfigRule.SubConfig.
func parseSubConfig(raw map[string]any, rule ConfigRule, name string) (*model.Config, error) {
	sub, ok := raw[rule.SubConfig].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w %s: model_type %v needs a %s object", ErrConfig, name, raw["model_type"], rule.SubConfig)
	}
	if r, ok := configRules[rule.SubModelType]; !ok || r.SubConfig != "" {
		panic("hf: ConfigRule.SubModelType " + rule.SubModelType + " is not a plain registered model_type")
	}
	m := make(map[string]any, len(sub)+5)
	for k, v := range sub {
		m[k] = v
	}
	for _, k := range []string{"tie_word_embeddings", "bos_token_id", "eos_token_id", "pad_token_id"} {
		if _, has := m[k]; !has {
			if v, top := raw[k]; top {
				m[k] = v
			}
		}
	}
	m["model_type"] = rule.SubModelType
	delete(m, "architectures")
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %s: %v", ErrConfig, name, rule.SubConfig, err)
	}
	return ParseConfig(b, name+" ("+rule.SubConfig+")")
}

// ConfigJSON encodes cfg as config.json: cfg.Raw (or an empty object) with
// the typed fields written over it, indented, under the keys of LlamaConfig
// or, for a model_type whose ConfigRule has WriteKeys, under the family's
// own keys (fields the family's config class lacks are not written; Raw's
// keys are kept as they are). A token id of -1 is written as null; an
// eos_token_id list in Raw that contains cfg.EOSTokenID is kept;
// rope_theta goes to rope_parameters.rope_theta when Raw has
// rope_parameters (to rope_parameters.full_attention.rope_theta when
// rope_parameters is nested by layer type, as Gemma 3's), written with a
// decimal point (transformers v5 validates it as a float). dtype, if not
// empty, sets torch_dtype ("float32", "bfloat16", ...).
func ConfigJSON(cfg *model.Config, dtype string) ([]byte, error) {
	out := make(map[string]any, len(cfg.Raw)+24)
	for k, v := range cfg.Raw {
		out[k] = v
	}
	id := func(v int) any {
		if v < 0 {
			return nil
		}
		return v
	}
	set := map[string]any{
		"architectures":           []any{cfg.Architecture},
		"model_type":              cfg.ModelType,
		"vocab_size":              cfg.VocabSize,
		"hidden_size":             cfg.HiddenSize,
		"intermediate_size":       cfg.IntermediateSize,
		"num_hidden_layers":       cfg.NumHiddenLayers,
		"num_attention_heads":     cfg.NumAttentionHeads,
		"num_key_value_heads":     cfg.NumKeyValueHeads,
		"head_dim":                cfg.HeadDim,
		"max_position_embeddings": cfg.MaxPositionEmbeddings,
		"rms_norm_eps":            cfg.RMSNormEps,
		"tie_word_embeddings":     cfg.TieWordEmbeddings,
		"attention_bias":          cfg.AttentionBias,
		"mlp_bias":                cfg.MLPBias,
		"hidden_act":              cfg.HiddenAct,
		"bos_token_id":            id(cfg.BOSTokenID),
		"eos_token_id":            id(cfg.EOSTokenID),
	}
	if l, ok := out["eos_token_id"].([]any); ok && slices.Contains(l, any(float64(cfg.EOSTokenID))) {
		delete(set, "eos_token_id")
	}
	set["rope_theta"] = cfg.RopeTheta
	keys := configRules[cfg.ModelType].WriteKeys
	for k, v := range set {
		if to, ok := keys[k]; ok {
			if to == "" {
				continue
			}
			k = to
		}
		if k == "rope_theta" {
			writeRopeTheta(out, cfg.RopeTheta)
			continue
		}
		out[k] = v
	}
	if dtype != "" {
		out["torch_dtype"] = dtype
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("hf: encode config.json: %w", err)
	}
	return append(b, '\n'), nil
}

// writeRopeTheta sets theta in out (a config.json object): in
// rope_parameters.full_attention when rope_parameters is nested by layer
// type, in rope_parameters when it is flat, else as the top-level
// rope_theta. The maps of out are copied before they are changed (they may
// be cfg.Raw's).
func writeRopeTheta(out map[string]any, theta float64) {
	rp, ok := out["rope_parameters"].(map[string]any)
	if !ok {
		out["rope_theta"] = theta
		return
	}
	rp2 := make(map[string]any, len(rp)+1)
	for k, v := range rp {
		rp2[k] = v
	}
	if full, ok := rp2["full_attention"].(map[string]any); ok {
		full2 := make(map[string]any, len(full)+1)
		for k, v := range full {
			full2[k] = v
		}
		full2["rope_theta"] = floatNumber(theta)
		rp2["full_attention"] = full2
	} else {
		rp2["rope_theta"] = floatNumber(theta)
	}
	out["rope_parameters"] = rp2
}
