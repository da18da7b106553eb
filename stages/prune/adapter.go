package prune

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/safetensors"
)

// AdapterDir is the PEFT adapter directory inside a written model; optima
// eval merges it on load.
const AdapterDir = "adapter"

// PEFT adapter file names (peft/utils/constants.py).
const (
	AdapterWeightsFile = "adapter_model.safetensors"
	AdapterConfigFile  = "adapter_config.json"
)

// peftPrefix prefixes module paths in a PEFT checkpoint (PeftModel wraps
// the causal LM as base_model.model).
const peftPrefix = "base_model.model."

// AdapterConfig is the subset of PEFT's LoraConfig (peft/tuners/lora/
// config.py) that optima writes and reads. Ranks differ by layer (a fraction
// of min(out, in)), so R is the largest and RankPattern/AlphaPattern give
// each module's rank and alpha; alpha = rank everywhere makes PEFT's scale
// alpha/r exactly 1, so that y = W x + B(A x).
type AdapterConfig struct {
	PeftType            string         `json:"peft_type"`
	TaskType            string         `json:"task_type"`
	BaseModelNameOrPath string         `json:"base_model_name_or_path"`
	R                   int            `json:"r"`
	LoraAlpha           int            `json:"lora_alpha"`
	LoraDropout         float64        `json:"lora_dropout"`
	Bias                string         `json:"bias"`
	FanInFanOut         bool           `json:"fan_in_fan_out"`
	InferenceMode       bool           `json:"inference_mode"`
	TargetModules       []string       `json:"target_modules"`
	RankPattern         map[string]int `json:"rank_pattern"`
	AlphaPattern        map[string]int `json:"alpha_pattern"`
}

// writeAdapter writes the adapter tensors ts (names "<module>.lora_A.weight"
// [r, in] and "<module>.lora_B.weight" [out, r], float32) as a PEFT adapter
// directory dir: adapter_model.safetensors with the names prefixed by
// "base_model.model." and adapter_config.json naming base.
func writeAdapter(dir, base string, ts []*model.Tensor) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write adapter %s: %w", dir, err)
	}
	cfg := AdapterConfig{PeftType: "LORA", TaskType: "CAUSAL_LM", BaseModelNameOrPath: base, Bias: "none", InferenceMode: true,
		RankPattern: map[string]int{}, AlphaPattern: map[string]int{}}
	targets := map[string]bool{}
	out := make([]*model.Tensor, 0, len(ts))
	for _, t := range ts {
		out = append(out, &model.Tensor{Name: peftPrefix + t.Name, Shape: t.Shape, Data: t.Data})
		mod, ok := strings.CutSuffix(t.Name, LoraASuffix)
		if !ok {
			continue
		}
		r := t.Shape[0]
		cfg.R = max(cfg.R, r)
		cfg.RankPattern[mod] = r
		cfg.AlphaPattern[mod] = r
		targets[mod[strings.LastIndex(mod, ".")+1:]] = true
	}
	cfg.LoraAlpha = cfg.R
	for t := range targets {
		cfg.TargetModules = append(cfg.TargetModules, t)
	}
	sort.Strings(cfg.TargetModules)
	if err := safetensors.WriteFile(filepath.Join(dir, AdapterWeightsFile), out, safetensors.WriteOptions{}); err != nil {
		return fmt.Errorf("write adapter %s: %w", dir, err)
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, AdapterConfigFile), append(b, '\n'))
}

// ReadAdapter reads a PEFT LoRA adapter directory written by optima or by
// PEFT (plain LoRA; ParseAdapterConfig): it returns the adapter tensors by
// module path with the "base_model.model." prefix removed
// ("<module>.lora_A.weight" [r, in], "<module>.lora_B.weight" [out, r]),
// each B scaled by PEFT's alpha/r when that is not 1, with r the module's
// rank and alpha its alpha_pattern entry (matched as PEFT matches keys,
// patternValue) or lora_alpha. Errors name the file.
func ReadAdapter(dir string) (model.Weights, error) {
	raw, err := os.ReadFile(filepath.Join(dir, AdapterConfigFile))
	if err != nil {
		return nil, fmt.Errorf("read adapter: %w", err)
	}
	cfg, err := ParseAdapterConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("read adapter %s: %w", filepath.Join(dir, AdapterConfigFile), err)
	}
	ts, err := ReadTensors(filepath.Join(dir, AdapterWeightsFile))
	if err != nil {
		return nil, err
	}
	w := model.Weights{}
	for name, t := range ts {
		n := strings.TrimPrefix(name, peftPrefix)
		t.Name = n
		w[n] = t
	}
	for name, tb := range w {
		mod, ok := strings.CutSuffix(name, LoraBSuffix)
		if !ok {
			continue
		}
		if len(tb.Shape) != 2 {
			return nil, fmt.Errorf("read adapter %s: %s has shape %v", dir, name, tb.Shape)
		}
		// PEFT's scale is alpha/r with the module's r (rank_pattern, else
		// r), which is its tensors' rank, and its alpha (alpha_pattern,
		// else lora_alpha).
		r, alpha := tb.Shape[1], cfg.LoraAlpha
		if v, ok := patternValue(cfg.AlphaPattern, mod); ok {
			alpha = v
		}
		if r > 0 && alpha != r {
			s := float32(alpha) / float32(r)
			for i := range tb.Data {
				tb.Data[i] *= s
			}
		}
	}
	return w, nil
}

// patternValue is the value of the rank_pattern or alpha_pattern key that
// PEFT's get_pattern_key picks for module mod: mod itself, else a key k
// for which mod matches the regular expression (.*\.)?(k)$ (k read
// literally when it is not a valid expression), the first in sorted order
// when several match (PEFT takes the first in the file's order).
func patternValue(pattern map[string]int, mod string) (int, bool) {
	if v, ok := pattern[mod]; ok {
		return v, true
	}
	for _, k := range slices.Sorted(maps.Keys(pattern)) {
		re, err := regexp.Compile(`^(?:.*\.)?(?:` + k + `)$`)
		if err != nil {
			re = regexp.MustCompile(`^(?:.*\.)?(?:` + regexp.QuoteMeta(k) + `)$`)
		}
		if re.MatchString(mod) {
			return pattern[k], true
		}
	}
	return 0, false
}

// MergeAdapter merges the adapter tensors a (ReadAdapter) into the model
// weights w (W + B·A per module, in place in w's map) and returns the
// number of modules merged. Errors name the module whose shapes disagree or
// whose weight is missing.
func MergeAdapter(w, a model.Weights) (int, error) {
	n := 0
	for name, t := range a {
		if strings.HasSuffix(name, LoraASuffix) {
			mod := strings.TrimSuffix(name, LoraASuffix)
			if _, ok := w[mod+".weight"]; !ok {
				return 0, fmt.Errorf("adapter: no weight %s.weight in the model", mod)
			}
			n++
		}
		w[name] = t
	}
	if err := mergeAdapters(w); err != nil {
		return 0, err
	}
	return n, nil
}

// ParseAdapterConfig parses a PEFT adapter_config.json. It accepts only
// peft_type LORA with non-negative ranks and alphas (r, lora_alpha and the
// per-module patterns), and errors otherwise. The options that change how
// B·A is applied (use_rslora: scale alpha/sqrt(r); use_dora: a magnitude
// vector; fan_in_fan_out: transposed weights) are errors when true: the
// merge computes W + (alpha/r)·B·A only.
func ParseAdapterConfig(raw []byte) (AdapterConfig, error) {
	var cfg AdapterConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return cfg, err
	}
	if cfg.PeftType != "LORA" {
		return cfg, fmt.Errorf("peft_type %q, want LORA", cfg.PeftType)
	}
	var variants struct {
		UseRSLoRA bool `json:"use_rslora"`
		UseDoRA   bool `json:"use_dora"`
	}
	if err := json.Unmarshal(raw, &variants); err != nil {
		return cfg, err
	}
	for _, v := range []struct {
		set  bool
		name string
	}{{variants.UseRSLoRA, "use_rslora"}, {variants.UseDoRA, "use_dora"}, {cfg.FanInFanOut, "fan_in_fan_out"}} {
		if v.set {
			return cfg, fmt.Errorf("%s is true: only plain LoRA (W + (lora_alpha/r)·B·A) is merged", v.name)
		}
	}
	if cfg.R < 0 || cfg.LoraAlpha < 0 {
		return cfg, fmt.Errorf("negative r %d or lora_alpha %d", cfg.R, cfg.LoraAlpha)
	}
	for m, v := range cfg.RankPattern {
		if v < 0 {
			return cfg, fmt.Errorf("rank_pattern %s: negative rank %d", m, v)
		}
	}
	for m, v := range cfg.AlphaPattern {
		if v < 0 {
			return cfg, fmt.Errorf("alpha_pattern %s: negative alpha %d", m, v)
		}
	}
	return cfg, nil
}
