// Package llama is the float32 forward pass of the Llama family with Hugging
// Face transformers' LlamaForCausalLM semantics (models/llama/modeling_llama.py,
// transformers v5): token embeddings; per block RMSNorm, q/k/v projections
// (bias when attention_bias), rotary position embeddings (default rope type,
// rotate_half convention), grouped-query causal attention with a float32
// softmax, o_proj, residual, RMSNorm, SwiGLU MLP down(silu(gate(x))·up(x)),
// residual; final RMSNorm and lm_head (or the tied embedding).
//
// It registers itself as model family "LlamaForCausalLM". Every matrix
// product runs through kernels.Backend.Sgemm.
package llama

import (
	"fmt"
	"math"
	"sync"

	"github.com/optima-llm/optima/model"
)

// Architecture is the Hugging Face architecture name this package registers.
const Architecture = "LlamaForCausalLM"

func init() {
	model.Register(Architecture, func(cfg *model.Config) (model.Family, error) { return New(cfg) })
}

// Family is the Llama forward pass for one configuration. It is safe for
// concurrent use.
type Family struct {
	cfg      *model.Config
	hidden   int
	inter    int
	heads    int
	kvHeads  int
	headDim  int
	vocab    int
	eps      float32
	tied     bool
	attnBias bool
	mlpBias  bool
	// invFreq is [headDim/2] float32: 1/theta^(2i/headDim), as HF computes it.
	invFreq []float32

	ropeMu  sync.Mutex
	ropeLen int
	// ropeCos, ropeSin are [ropeLen, headDim/2] float32 tables.
	ropeCos, ropeSin []float32
}

var _ model.Family = (*Family)(nil)

// New checks cfg and builds the family. A zero HeadDim means
// HiddenSize/NumAttentionHeads, a zero NumKeyValueHeads means
// NumAttentionHeads and a zero RopeTheta means 10000 (the Hugging Face
// defaults). It returns an error for sizes that do not fit together, for a
// hidden_act other than "silu", and for any rope_scaling / rope_parameters
// rope type other than "default" (cfg.Raw is consulted; "llama3", "linear",
// "dynamic", "yarn", ... are not implemented). A non-zero sliding_window in
// cfg.Raw is also rejected.
func New(cfg *model.Config) (*Family, error) {
	if cfg == nil {
		return nil, fmt.Errorf("llama: nil config")
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
		mlpBias:  cfg.MLPBias,
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
	if err := checkRope(cfg.Raw); err != nil {
		return nil, err
	}
	if sw, ok := cfg.Raw["sliding_window"]; ok && sw != nil {
		if fmt.Sprint(sw) != "0" {
			return nil, fmt.Errorf("llama: config: sliding_window %v not supported", sw)
		}
	}
	theta := cfg.RopeTheta
	if theta == 0 {
		theta = 10000
	}
	// HF: inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float) / dim)),
	// a float32 tensor.
	half := f.headDim / 2
	f.invFreq = make([]float32, half)
	for i := range half {
		e := float32(2*i) / float32(f.headDim)
		p := float32(math.Pow(float64(float32(theta)), float64(e)))
		f.invFreq[i] = 1 / p
	}
	return f, nil
}

// checkRope rejects rope scaling types this package does not implement.
func checkRope(raw map[string]any) error {
	for _, key := range []string{"rope_scaling", "rope_parameters"} {
		v, ok := raw[key]
		if !ok || v == nil {
			continue
		}
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("llama: config: %s is %T, want an object", key, v)
		}
		typ := m["rope_type"]
		if typ == nil {
			typ = m["type"]
		}
		if typ == nil || typ == "default" {
			continue
		}
		return fmt.Errorf("llama: config: %s rope type %v not implemented (only \"default\")", key, typ)
	}
	return nil
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

// BlockTensors lists the two norm weights, the seven linear weights and,
// when attention_bias / mlp_bias are set, their biases.
func (f *Family) BlockTensors(i int) []string {
	p := blockPrefix(i)
	names := []string{p + "input_layernorm.weight", p + "post_attention_layernorm.weight"}
	for _, l := range f.Linears(i) {
		names = append(names, l.Weight())
		if (l.Attention && f.attnBias) || (!l.Attention && f.mlpBias) {
			names = append(names, l.Name+".bias")
		}
	}
	return names
}

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
