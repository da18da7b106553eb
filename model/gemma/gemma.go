// Package gemma is the float32 forward pass of Gemma 2 and Gemma 3 text
// models with Hugging Face transformers' semantics (models/gemma2/
// modeling_gemma2.py and models/gemma3/modeling_gemma3.py, transformers v5):
//
//   - token embeddings times the normalizer float32(sqrt(hidden_size))
//     (Gemma*TextScaledWordEmbedding: the scale is a float32 tensor cast to
//     the weight dtype; this package computes in float32, so it matches
//     transformers run in float32);
//   - per block: RMSNorm with (1 + w) in float32 (input_layernorm), q/k/v
//     projections, Gemma 3 only: per-head RMSNorm of q and k (q_norm, k_norm),
//     rotary embeddings (rotate_half), grouped-query causal attention scaled
//     by query_pre_attn_scalar^-0.5, Gemma 2 only: attention logit
//     soft-capping cap·tanh(s/cap), a sliding window on "sliding_attention"
//     layers (key k is visible from query q when q-window < k <= q), float32
//     softmax, o_proj, post_attention_layernorm, residual;
//     pre_feedforward_layernorm, GeGLU down(gelu_tanh(gate(x))·up(x)),
//     post_feedforward_layernorm, residual;
//   - final RMSNorm, lm_head (tied to the embedding unless
//     tie_word_embeddings is false) and final logit soft-capping when
//     configured.
//
// Gemma 3 uses rope_parameters.sliding_attention (rope_local_base_freq,
// default 10000) on sliding layers and rope_parameters.full_attention
// (rope_theta, default 1e6, with rope_scaling merged in) on full layers.
// Gemma 3's attn_logit_softcapping is ignored, as transformers ignores it.
//
// It registers model families "Gemma2ForCausalLM" and "Gemma3ForCausalLM".
// Every matrix product runs through kernels.Backend.Sgemm.
package gemma

import (
	"encoding/json"
	"fmt"
	"math"
	"sync"

	"github.com/optima-llm/optima/model"
)

// Architecture names this package registers.
const (
	Gemma2 = "Gemma2ForCausalLM"
	Gemma3 = "Gemma3ForCausalLM"
)

func init() {
	for _, a := range []string{Gemma2, Gemma3} {
		model.Register(a, func(cfg *model.Config) (model.Family, error) { return New(cfg) })
	}
}

// ropeTable is the rotary embedding of one layer type.
type ropeTable struct {
	// invFreq is [headDim/2] float32: 1/theta^(2i/headDim) / factor, as
	// transformers computes it (default and linear rope types).
	invFreq []float32

	mu  sync.Mutex
	n   int
	cos []float32 // [n, headDim/2]
	sin []float32
}

// layerSpec is what differs between layers.
type layerSpec struct {
	// sliding is true for "sliding_attention" layers.
	sliding bool
	// window is the sliding window (0: full causal attention).
	window int
	rope   *ropeTable
}

// Family is the Gemma 2 / Gemma 3 forward pass for one configuration. It is
// safe for concurrent use.
type Family struct {
	cfg      *model.Config
	gemma3   bool
	hidden   int
	inter    int
	heads    int
	kvHeads  int
	headDim  int
	vocab    int
	eps      float32
	tied     bool
	attnBias bool
	// scale is query_pre_attn_scalar^-0.5 rounded to float32.
	scale float32
	// attnCap and finalCap are the soft-capping constants (0: none).
	attnCap, finalCap float32
	// embedScale is float32(sqrt(hidden_size)).
	embedScale float32
	layers     []layerSpec
}

var _ model.Family = (*Family)(nil)

// New checks cfg and builds the family. cfg.Architecture must be
// Gemma2ForCausalLM or Gemma3ForCausalLM; the Gemma-specific keys are read
// from cfg.Raw with transformers' defaults (Gemma2Config,
// Gemma3TextConfig): query_pre_attn_scalar 256, sliding_window 4096 (null:
// no window), layer_types (default: Gemma 2 alternates sliding, full, ...;
// Gemma 3 makes every sliding_window_pattern-th layer full, default 6),
// attn_logit_softcapping (Gemma 2: 50) and final_logit_softcapping
// (Gemma 2: 30, Gemma 3: none), rope_parameters / rope_scaling /
// rope_local_base_freq. Errors name the key: sizes that do not fit, a
// hidden_activation other than gelu_pytorch_tanh, rope types other than
// "default" and "linear", use_bidirectional_attention, malformed values.
func New(cfg *model.Config) (*Family, error) {
	if cfg == nil {
		return nil, fmt.Errorf("gemma: nil config")
	}
	f := &Family{
		cfg:      cfg,
		hidden:   cfg.HiddenSize,
		inter:    cfg.IntermediateSize,
		heads:    cfg.NumAttentionHeads,
		kvHeads:  cfg.NumKeyValueHeads,
		headDim:  cfg.HeadDim,
		vocab:    cfg.VocabSize,
		eps:      float32(cfg.RMSNormEps),
		tied:     cfg.TieWordEmbeddings,
		attnBias: cfg.AttentionBias,
	}
	switch cfg.Architecture {
	case Gemma2:
	case Gemma3:
		f.gemma3 = true
	default:
		return nil, fmt.Errorf("gemma: architecture %q is not %s or %s", cfg.Architecture, Gemma2, Gemma3)
	}
	if cfg.MLPBias {
		return nil, fmt.Errorf("gemma: config: mlp_bias is not part of Gemma")
	}
	if f.hidden <= 0 || f.inter <= 0 || f.heads <= 0 || f.vocab <= 0 || cfg.NumHiddenLayers < 0 {
		return nil, fmt.Errorf("gemma: config: hidden_size %d, intermediate_size %d, num_attention_heads %d, vocab_size %d, num_hidden_layers %d must be positive",
			f.hidden, f.inter, f.heads, f.vocab, cfg.NumHiddenLayers)
	}
	if cfg.NumHiddenLayers > 1<<16 || f.headDim > 1<<16 {
		return nil, fmt.Errorf("gemma: config: num_hidden_layers %d or head_dim %d out of range", cfg.NumHiddenLayers, f.headDim)
	}
	if f.kvHeads == 0 {
		f.kvHeads = f.heads
	}
	if f.kvHeads < 0 || f.heads%f.kvHeads != 0 {
		return nil, fmt.Errorf("gemma: config: num_attention_heads %d not a multiple of num_key_value_heads %d", f.heads, f.kvHeads)
	}
	if f.headDim <= 0 || f.headDim%2 != 0 {
		return nil, fmt.Errorf("gemma: config: head_dim %d must be positive and even", f.headDim)
	}
	if act := cfg.HiddenAct; act != "gelu_pytorch_tanh" {
		return nil, fmt.Errorf("gemma: config: hidden_activation %q not supported (only gelu_pytorch_tanh)", act)
	}
	r := rawReader{raw: cfg.Raw}
	if r.boolean("use_bidirectional_attention") {
		return nil, fmt.Errorf("gemma: config: use_bidirectional_attention is not supported (causal language models only)")
	}
	qpas := r.number("query_pre_attn_scalar", 256)
	if r.err == nil && !(qpas > 0) {
		return nil, fmt.Errorf("gemma: config: query_pre_attn_scalar %v must be positive", qpas)
	}
	// HF: self.scaling = config.query_pre_attn_scalar**-0.5 (a Python float,
	// applied to a float32 tensor).
	f.scale = float32(math.Pow(qpas, -0.5))
	window := r.integer("sliding_window", 4096)
	var attnCap, finalCap float64
	if f.gemma3 {
		finalCap = r.number("final_logit_softcapping", 0)
	} else {
		attnCap = r.number("attn_logit_softcapping", 50)
		finalCap = r.number("final_logit_softcapping", 30)
	}
	if attnCap < 0 || finalCap < 0 {
		return nil, fmt.Errorf("gemma: config: soft-capping constants %v, %v must not be negative", attnCap, finalCap)
	}
	f.attnCap, f.finalCap = float32(attnCap), float32(finalCap)
	kinds := r.layerTypes(cfg.NumHiddenLayers, f.gemma3)
	full, sliding := r.ropes(cfg.RopeTheta, f.gemma3)
	if r.err != nil {
		return nil, r.err
	}
	fullT, err := f.newRope(full)
	if err != nil {
		return nil, err
	}
	slidT := fullT
	if f.gemma3 {
		if slidT, err = f.newRope(sliding); err != nil {
			return nil, err
		}
	}
	f.layers = make([]layerSpec, cfg.NumHiddenLayers)
	for i, k := range kinds {
		if k == "sliding_attention" {
			f.layers[i] = layerSpec{sliding: true, window: window, rope: slidT}
		} else {
			f.layers[i] = layerSpec{rope: fullT}
		}
	}
	// HF: embed_scale = torch.tensor(hidden_size**0.5), a float32 scalar.
	f.embedScale = float32(math.Sqrt(float64(f.hidden)))
	return f, nil
}

// ropeParams is one layer type's rotary configuration.
type ropeParams struct {
	typ    string
	theta  float64
	factor float64
	key    string // config key for errors
}

func (f *Family) newRope(p ropeParams) (*ropeTable, error) {
	if !(p.theta > 0) {
		return nil, fmt.Errorf("gemma: config: %s rope_theta %v must be positive", p.key, p.theta)
	}
	factor := float32(1)
	switch p.typ {
	case "", "default":
	case "linear":
		if !(p.factor > 0) {
			return nil, fmt.Errorf("gemma: config: %s linear rope factor %v must be positive", p.key, p.factor)
		}
		factor = float32(p.factor)
	default:
		return nil, fmt.Errorf("gemma: config: %s rope type %q not implemented (supported: default, linear)", p.key, p.typ)
	}
	// HF: inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim)),
	// float32, then inv_freq /= factor for "linear".
	half := f.headDim / 2
	t := &ropeTable{invFreq: make([]float32, half)}
	for i := range half {
		e := float32(2*i) / float32(f.headDim)
		pw := float32(math.Pow(float64(float32(p.theta)), float64(e)))
		t.invFreq[i] = 1 / pw
		if factor != 1 {
			t.invFreq[i] /= factor
		}
	}
	return t, nil
}

// tables returns cos and sin [n, headDim/2] for positions 0..n-1: freqs =
// float32(pos)·inv_freq in float32, cos and sin rounded to float32.
func (t *ropeTable) tables(n int) (cos, sin []float32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n <= t.n {
		return t.cos, t.sin
	}
	half := len(t.invFreq)
	c := make([]float32, n*half)
	s := make([]float32, n*half)
	for p := range n {
		for i, inv := range t.invFreq {
			fr := float32(p) * inv
			c[p*half+i] = float32(math.Cos(float64(fr)))
			s[p*half+i] = float32(math.Sin(float64(fr)))
		}
	}
	t.cos, t.sin, t.n = c, s, n
	return c, s
}

// rawReader reads Gemma keys from config.json's object, keeping the first
// error.
type rawReader struct {
	raw map[string]any
	err error
}

func (r *rawReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("gemma: config: "+format, args...)
	}
}

// number reads a number; a missing key gives def, null gives 0.
func (r *rawReader) number(key string, def float64) float64 {
	v, ok := r.raw[key]
	if !ok {
		return def
	}
	if v == nil {
		return 0
	}
	x, ok := toFloat(v)
	if !ok || math.IsNaN(x) || math.IsInf(x, 0) {
		r.fail("%s is %v, want a number or null", key, v)
		return 0
	}
	return x
}

// integer reads a non-negative integer; a missing key gives def, null 0.
func (r *rawReader) integer(key string, def int) int {
	x := r.number(key, float64(def))
	if x != math.Trunc(x) || x < 0 || x > 1<<31 {
		r.fail("%s is %v, want a non-negative integer", key, x)
		return 0
	}
	return int(x)
}

func (r *rawReader) boolean(key string) bool {
	v, ok := r.raw[key]
	if !ok || v == nil {
		return false
	}
	b, ok := v.(bool)
	if !ok {
		r.fail("%s is %v, want a bool", key, v)
	}
	return b
}

// toFloat accepts the numbers encoding/json decodes (float64), the ints a
// GGUF-synthesised Raw holds and the json.Number literals hf's Gemma rule
// keeps float-typed keys in.
func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// layerTypes is config.layer_types or its default (Gemma2Config /
// Gemma3TextConfig __post_init__).
func (r *rawReader) layerTypes(n int, gemma3 bool) []string {
	out := make([]string, n)
	if v, ok := r.raw["layer_types"]; ok && v != nil {
		l, ok := v.([]any)
		if !ok || len(l) != n {
			r.fail("layer_types is %v, want a list of %d layer types", v, n)
			return out
		}
		for i, t := range l {
			s, _ := t.(string)
			if s != "sliding_attention" && s != "full_attention" {
				r.fail("layer_types[%d] is %v, want \"sliding_attention\" or \"full_attention\"", i, t)
				return out
			}
			out[i] = s
		}
		return out
	}
	pattern := 2
	if gemma3 {
		pattern = r.integer("sliding_window_pattern", 6)
		if pattern == 0 {
			r.fail("sliding_window_pattern must be positive")
			return out
		}
	}
	for i := range n {
		if (i+1)%pattern != 0 {
			out[i] = "sliding_attention"
		} else {
			out[i] = "full_attention"
		}
	}
	return out
}

// ropes reads the rotary configuration of full and sliding layers. Gemma 2:
// one flat rope_parameters (or legacy rope_scaling) for every layer, theta
// from rope_theta. Gemma 3 (Gemma3TextConfig.convert_rope_params_to_dict):
// rope_parameters nested by layer type, rope_scaling merged into
// full_attention, full theta rope_theta (1e6), sliding theta
// rope_local_base_freq (1e4).
func (r *rawReader) ropes(theta float64, gemma3 bool) (full, sliding ropeParams) {
	full = ropeParams{typ: "default", theta: theta, key: "rope_parameters"}
	var rp map[string]any
	if v, ok := r.raw["rope_parameters"]; ok && v != nil {
		if rp, ok = v.(map[string]any); !ok {
			r.fail("rope_parameters is %v, want an object", v)
			return
		}
	}
	var scaling map[string]any
	if v, ok := r.raw["rope_scaling"]; ok && v != nil {
		if scaling, ok = v.(map[string]any); !ok {
			r.fail("rope_scaling is %v, want an object", v)
			return
		}
	}
	read := func(p *ropeParams, m map[string]any) {
		if m == nil {
			return
		}
		t := m["rope_type"]
		if t == nil {
			t = m["type"]
		}
		if t != nil {
			s, ok := t.(string)
			if !ok {
				r.fail("%s rope type is %v, want a string", p.key, t)
				return
			}
			p.typ = s
		}
		if v, ok := m["rope_theta"]; ok && v != nil {
			x, ok := toFloat(v)
			if !ok {
				r.fail("%s.rope_theta is %v, want a number", p.key, v)
				return
			}
			p.theta = x
		}
		if v, ok := m["factor"]; ok && v != nil {
			x, ok := toFloat(v)
			if !ok {
				r.fail("%s.factor is %v, want a number", p.key, v)
				return
			}
			p.factor = x
		}
	}
	if !gemma3 {
		if scaling != nil {
			// PreTrainedConfig.convert_rope_params_to_dict: rope_scaling or rope_parameters.
			full.key = "rope_scaling"
			read(&full, scaling)
		} else {
			read(&full, rp)
		}
		return full, full
	}
	sliding = ropeParams{typ: "default", theta: r.number("rope_local_base_freq", 10000), key: "rope_parameters.sliding_attention"}
	full.key = "rope_parameters.full_attention"
	sub := func(name string) map[string]any {
		v, ok := rp[name]
		if !ok || v == nil {
			return nil
		}
		m, ok := v.(map[string]any)
		if !ok {
			r.fail("rope_parameters.%s is %v, want an object", name, v)
		}
		return m
	}
	read(&full, sub("full_attention"))
	read(&sliding, sub("sliding_attention"))
	if scaling != nil {
		full.key = "rope_scaling"
		read(&full, scaling)
	}
	return full, sliding
}

// Config returns the configuration the family was built from.
func (f *Family) Config() *model.Config { return f.cfg }

// NumBlocks is num_hidden_layers.
func (f *Family) NumBlocks() int { return f.cfg.NumHiddenLayers }

// IsSliding reports whether block i is a "sliding_attention" layer, and its
// window (0 when the config sets sliding_window to null: no window).
func (f *Family) IsSliding(i int) (sliding bool, window int) {
	l := f.layers[i]
	return l.sliding, l.window
}

const embedName = "model.embed_tokens.weight"

// EmbedTensors is ["model.embed_tokens.weight"].
func (f *Family) EmbedTensors() []string { return []string{embedName} }

// HeadTensors is the final norm and the embedding (tied, the Gemma default)
// or "lm_head.weight".
func (f *Family) HeadTensors() []string {
	if f.tied {
		return []string{"model.norm.weight", embedName}
	}
	return []string{"model.norm.weight", "lm_head.weight"}
}

func blockPrefix(i int) string { return fmt.Sprintf("model.layers.%d.", i) }

// Linears lists block i's seven linears in forward order: q/k/v (group
// "model.layers.i.self_attn.qkv"), o_proj (group ".self_attn.o_proj"),
// gate/up (group ".mlp.gate_up"), down_proj (group ".mlp.down_proj").
func (f *Family) Linears(i int) []model.Linear {
	p := blockPrefix(i)
	qkv, o := p+"self_attn.qkv", p+"self_attn.o_proj"
	gu, d := p+"mlp.gate_up", p+"mlp.down_proj"
	qd, kvd := f.heads*f.headDim, f.kvHeads*f.headDim
	return []model.Linear{
		{Name: p + "self_attn.q_proj", Group: qkv, Out: qd, In: f.hidden, Attention: true},
		{Name: p + "self_attn.k_proj", Group: qkv, Out: kvd, In: f.hidden, Attention: true},
		{Name: p + "self_attn.v_proj", Group: qkv, Out: kvd, In: f.hidden, Attention: true},
		{Name: p + "self_attn.o_proj", Group: o, Out: f.hidden, In: qd, Attention: true},
		{Name: p + "mlp.gate_proj", Group: gu, Out: f.inter, In: f.hidden},
		{Name: p + "mlp.up_proj", Group: gu, Out: f.inter, In: f.hidden},
		{Name: p + "mlp.down_proj", Group: d, Out: f.hidden, In: f.inter},
	}
}

// normNames are block i's RMSNorm weights: the four hidden-size norms, then
// (Gemma 3) q_norm and k_norm of size head_dim.
func (f *Family) normNames(i int) []string {
	p := blockPrefix(i)
	n := []string{p + "input_layernorm.weight", p + "post_attention_layernorm.weight",
		p + "pre_feedforward_layernorm.weight", p + "post_feedforward_layernorm.weight"}
	if f.gemma3 {
		n = append(n, p+"self_attn.q_norm.weight", p+"self_attn.k_norm.weight")
	}
	return n
}

// BlockTensors lists the norm weights (four, plus q_norm and k_norm for
// Gemma 3), the seven linear weights and, when attention_bias is set, the
// attention projections' biases.
func (f *Family) BlockTensors(i int) []string {
	names := f.normNames(i)
	for _, l := range f.Linears(i) {
		names = append(names, l.Weight())
		if l.Attention && f.attnBias {
			names = append(names, l.Name+".bias")
		}
	}
	return names
}
