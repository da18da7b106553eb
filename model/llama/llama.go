// Package llama is the float32 forward pass of the Llama family with Hugging
// Face transformers' LlamaForCausalLM semantics (models/llama/modeling_llama.py,
// transformers v5): token embeddings; per block RMSNorm, q/k/v projections
// (bias when attention_bias), rotary position embeddings (rotate_half
// convention; rope types "default", "linear" and "llama3" of
// modeling_rope_utils.py), grouped-query causal attention with a float32
// softmax, o_proj, residual, RMSNorm, SwiGLU MLP down(silu(gate(x))·up(x)),
// residual; final RMSNorm and lm_head (or the tied embedding).
//
// It registers three model families: "LlamaForCausalLM";
// "MistralForCausalLM" (models/mistral: the Llama block with an explicit
// head_dim and sliding-window attention on every layer when sliding_window
// is set); and "Qwen2ForCausalLM" (models/qwen2: q/k/v projections with
// bias, o_proj without, sliding-window attention on the layers that
// use_sliding_window / max_window_layers / layer_types select). Every
// matrix product runs through kernels.Backend.Sgemm.
package llama

import (
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/optima-llm/optima/model"
)

// Hugging Face architecture names this package registers.
const (
	Architecture        = "LlamaForCausalLM"
	MistralArchitecture = "MistralForCausalLM"
	Qwen2Architecture   = "Qwen2ForCausalLM"
)

func init() {
	for _, a := range []string{Architecture, MistralArchitecture, Qwen2Architecture} {
		model.Register(a, func(cfg *model.Config) (model.Family, error) { return New(cfg) })
	}
}

// Family is the Llama forward pass for one configuration. It is safe for
// concurrent use.
type Family struct {
	cfg     *model.Config
	hidden  int
	inter   int
	heads   int
	kvHeads int
	headDim int
	vocab   int
	eps     float32
	tied    bool
	qkvBias bool
	oBias   bool
	mlpBias bool
	// window is, per layer, the sliding attention window (0 = full causal).
	window []int
	// scaling is the parsed rope scaling.
	scaling RopeScaling
	// invFreq is [headDim/2] float32: 1/theta^(2i/headDim), as HF computes it.
	invFreq []float32

	ropeMu  sync.Mutex
	ropeLen int
	// ropeCos, ropeSin are [ropeLen, headDim/2] float32 tables.
	ropeCos, ropeSin []float32
}

var _ model.Family = (*Family)(nil)

// New checks cfg and builds the family for cfg.Architecture:
// MistralForCausalLM and Qwen2ForCausalLM get their variants (see the
// package doc), any other architecture Llama's semantics. A zero HeadDim
// means HiddenSize/NumAttentionHeads, a zero NumKeyValueHeads means
// NumAttentionHeads and a zero RopeTheta means 10000 (the Hugging Face
// defaults). It returns an error for sizes that do not fit together, for a
// hidden_act other than "silu", for rope scaling ParseRopeScaling rejects
// (naming config.json and the rope type), and for a sliding_window on
// LlamaForCausalLM or malformed Qwen2 layer_types.
func New(cfg *model.Config) (*Family, error) {
	if cfg == nil {
		return nil, fmt.Errorf("llama: nil config")
	}
	f := &Family{
		cfg:     cfg,
		hidden:  cfg.HiddenSize,
		inter:   cfg.IntermediateSize,
		heads:   cfg.NumAttentionHeads,
		kvHeads: cfg.NumKeyValueHeads,
		headDim: cfg.HeadDim,
		vocab:   cfg.VocabSize,
		eps:     float32(cfg.RMSNormEps),
		tied:    cfg.TieWordEmbeddings,
		qkvBias: cfg.AttentionBias,
		oBias:   cfg.AttentionBias,
		mlpBias: cfg.MLPBias,
	}
	switch cfg.Architecture {
	case Qwen2Architecture:
		// Qwen2Attention: q/k/v_proj bias=True, o_proj bias=False; Qwen2MLP has no bias.
		f.qkvBias, f.oBias, f.mlpBias = true, false, false
	case MistralArchitecture:
		// MistralAttention and MistralMLP: every linear bias=False, whatever
		// attention_bias / mlp_bias say.
		f.qkvBias, f.oBias, f.mlpBias = false, false, false
	}
	if f.hidden <= 0 || f.inter <= 0 || f.heads <= 0 || f.vocab <= 0 || cfg.NumHiddenLayers < 0 {
		return nil, fmt.Errorf("llama: config: hidden_size %d, intermediate_size %d, num_attention_heads %d, vocab_size %d, num_hidden_layers %d must be positive",
			f.hidden, f.inter, f.heads, f.vocab, cfg.NumHiddenLayers)
	}
	if f.kvHeads == 0 {
		f.kvHeads = f.heads
	}
	if f.headDim == 0 {
		if f.hidden%f.heads != 0 {
			return nil, fmt.Errorf("llama: config: hidden_size %d not divisible by num_attention_heads %d", f.hidden, f.heads)
		}
		f.headDim = f.hidden / f.heads
	}
	if f.kvHeads < 0 || f.heads%f.kvHeads != 0 {
		return nil, fmt.Errorf("llama: config: num_attention_heads %d not a multiple of num_key_value_heads %d", f.heads, f.kvHeads)
	}
	if f.headDim <= 0 || f.headDim%2 != 0 {
		return nil, fmt.Errorf("llama: config: head_dim %d must be positive and even", f.headDim)
	}
	if act := cfg.HiddenAct; act != "" && act != "silu" {
		return nil, fmt.Errorf("llama: config: hidden_act %q not supported (only silu)", act)
	}
	var err error
	if f.scaling, err = ParseRopeScaling(cfg.Raw, cfg.MaxPositionEmbeddings); err != nil {
		return nil, err
	}
	if f.window, err = slidingWindows(cfg); err != nil {
		return nil, err
	}
	theta := cfg.RopeTheta
	if theta == 0 {
		theta = 10000
	}
	f.invFreq = f.scaling.InvFreq(theta, f.headDim)
	return f, nil
}

// Config returns the configuration the family was built from.
func (f *Family) Config() *model.Config { return f.cfg }

// NumBlocks is num_hidden_layers.
func (f *Family) NumBlocks() int { return f.cfg.NumHiddenLayers }

// HeadDim is the per-head dimension used by the family.
func (f *Family) HeadDim() int { return f.headDim }

const embedName = "model.embed_tokens.weight"

// EmbedTensors is ["model.embed_tokens.weight"].
func (f *Family) EmbedTensors() []string { return []string{embedName} }

// HeadTensors is the final norm and "lm_head.weight", or the embedding when
// tie_word_embeddings is set.
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

// BlockTensors lists the two norm weights, the seven linear weights and
// the biases the family's linears have (attention_bias: q/k/v/o; Qwen2:
// q/k/v; mlp_bias: gate/up/down).
func (f *Family) BlockTensors(i int) []string {
	p := blockPrefix(i)
	names := []string{p + "input_layernorm.weight", p + "post_attention_layernorm.weight"}
	for _, l := range f.Linears(i) {
		names = append(names, l.Weight())
		if f.hasBias(l) {
			names = append(names, l.Name+".bias")
		}
	}
	return names
}

// hasBias reports whether linear l of a block has a bias.
func (f *Family) hasBias(l model.Linear) bool {
	switch {
	case !l.Attention:
		return f.mlpBias
	case strings.HasSuffix(l.Name, ".o_proj"):
		return f.oBias
	}
	return f.qkvBias
}

// Window is block i's sliding attention window: query t sees keys
// t−window < j ≤ t; 0 means full causal attention.
func (f *Family) Window(i int) int { return f.window[i] }

// rope returns cos and sin tables [n, headDim/2] for positions 0..n-1,
// computed as HF does: freqs = float32(pos)·inv_freq in float32, then cos
// and sin of that float32 value, rounded to float32.
func (f *Family) rope(n int) (cos, sin []float32) {
	f.ropeMu.Lock()
	defer f.ropeMu.Unlock()
	if n <= f.ropeLen {
		return f.ropeCos, f.ropeSin
	}
	half := f.headDim / 2
	c := make([]float32, n*half)
	s := make([]float32, n*half)
	for p := range n {
		for i := range half {
			fr := float32(p) * f.invFreq[i]
			c[p*half+i] = float32(math.Cos(float64(fr)))
			s[p*half+i] = float32(math.Sin(float64(fr)))
		}
	}
	f.ropeCos, f.ropeSin, f.ropeLen = c, s, n
	return c, s
}
