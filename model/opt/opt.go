// Package opt is the float32 forward pass of Meta's OPT family with Hugging
// Face transformers' OPTForCausalLM semantics (models/opt/modeling_opt.py,
// transformers v5):
//
//   - token embeddings model.decoder.embed_tokens ([vocab,
//     word_embed_proj_dim]), projected to hidden_size by
//     model.decoder.project_in (no bias) when word_embed_proj_dim differs
//     (OPT-350m);
//   - learned positional embeddings model.decoder.embed_positions
//     ([max_position_embeddings+2, hidden]) looked up at position+2, the
//     positions being what OPTDecoder derives from an all-ones attention mask
//     (cumsum(mask)·mask − 1 = 0, 1, ..., seqlen−1 per sequence);
//   - per block, with do_layer_norm_before (true for most sizes) a pre-LN
//     residual block, LayerNorm → attention → residual, LayerNorm → fc1 →
//     activation → fc2 → residual; with do_layer_norm_before false (OPT-350m)
//     a post-LN block where each LayerNorm follows its residual sum;
//   - multi-head causal attention (no grouped heads) where q is scaled by
//     head_dim^-0.5 after its bias, a float32 softmax, out_proj;
//   - LayerNorms with eps 1e-5, weight and bias unless
//     layer_norm_elementwise_affine is false; biases on every linear unless
//     enable_bias is false; activation_function "relu" (all released
//     checkpoints) or "gelu" (exact, erf);
//   - model.decoder.final_layer_norm when do_layer_norm_before and not
//     _remove_final_layer_norm, then project_out (no bias) when
//     word_embed_proj_dim differs, then lm_head, tied to embed_tokens when
//     tie_word_embeddings (the OPTConfig default).
//
// Tensors carry the names of Hugging Face OPTForCausalLM checkpoints saved by
// transformers ("model.decoder.layers.3.self_attn.q_proj.weight").
//
// Because model.Family's Embed does not know where sequences start, Embed
// writes the (projected) token embeddings only and ForwardBlock(0) adds the
// positional embeddings first; block 0's tensors therefore include
// model.decoder.embed_positions.weight. The composition Embed → blocks →
// Logits equals transformers' forward.
//
// GGUF: llama.cpp's converter has no OPT architecture, so OPT is read from
// Hugging Face directories only.
//
// The package registers itself as model family "OPTForCausalLM". Matrix
// products of the blocks and the head run through kernels.Backend.Sgemm; the
// project_in product of Embed, which gets no backend, runs on a kernels/cpu
// backend.
package opt

import (
	"fmt"
	"math"

	"github.com/optima-llm/optima/model"
)

// Architecture is the Hugging Face architecture name this package registers.
const Architecture = "OPTForCausalLM"

func init() {
	model.Register(Architecture, func(cfg *model.Config) (model.Family, error) { return New(cfg) })
}

// LayerNormEps is the eps of every OPT LayerNorm (torch.nn.LayerNorm's
// default; OPTConfig has no key for it).
const LayerNormEps = 1e-5

// Family is the OPT forward pass for one configuration. It is safe for
// concurrent use.
type Family struct {
	cfg     *model.Config
	hidden  int
	ffn     int
	heads   int
	headDim int
	vocab   int
	// proj is word_embed_proj_dim, the width of embed_tokens and lm_head.
	proj int
	// preLN is do_layer_norm_before.
	preLN bool
	// finalLN is do_layer_norm_before && !_remove_final_layer_norm.
	finalLN bool
	// affine is layer_norm_elementwise_affine.
	affine bool
	// bias is enable_bias.
	bias bool
	tied bool
	act  string
}

var _ model.Family = (*Family)(nil)

// rawBool reads a bool key of config.json, def when absent or null.
func rawBool(raw map[string]any, key string, def bool) (bool, error) {
	v, ok := raw[key]
	if !ok || v == nil {
		return def, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("opt: config: %s is %v, want a bool", key, v)
	}
	return b, nil
}

// New checks cfg and builds the family. It reads HiddenSize,
// IntermediateSize (ffn_dim), NumAttentionHeads, NumHiddenLayers, VocabSize,
// TieWordEmbeddings and HiddenAct (activation_function; empty means "relu")
// from cfg, and from cfg.Raw the OPTConfig keys do_layer_norm_before (default
// true), word_embed_proj_dim (default hidden_size), enable_bias (default
// true), layer_norm_elementwise_affine (default true) and
// _remove_final_layer_norm (default false). It returns an error for sizes
// that do not fit together (hidden_size not divisible by
// num_attention_heads, non-positive sizes), a key of the wrong type, and an
// activation other than "relu" and "gelu".
func New(cfg *model.Config) (*Family, error) {
	if cfg == nil {
		return nil, fmt.Errorf("opt: nil config")
	}
	f := &Family{
		cfg:    cfg,
		hidden: cfg.HiddenSize,
		ffn:    cfg.IntermediateSize,
		heads:  cfg.NumAttentionHeads,
		vocab:  cfg.VocabSize,
		tied:   cfg.TieWordEmbeddings,
		act:    cfg.HiddenAct,
	}
	if f.hidden <= 0 || f.ffn <= 0 || f.heads <= 0 || f.vocab <= 0 || cfg.NumHiddenLayers < 0 {
		return nil, fmt.Errorf("opt: config: hidden_size %d, ffn_dim %d, num_attention_heads %d, vocab_size %d, num_hidden_layers %d must be positive",
			f.hidden, f.ffn, f.heads, f.vocab, cfg.NumHiddenLayers)
	}
	if f.hidden%f.heads != 0 {
		return nil, fmt.Errorf("opt: config: hidden_size %d not divisible by num_attention_heads %d", f.hidden, f.heads)
	}
	f.headDim = f.hidden / f.heads
	if kv := cfg.NumKeyValueHeads; kv != 0 && kv != f.heads {
		return nil, fmt.Errorf("opt: config: num_key_value_heads %d: OPT has no grouped key/value heads (num_attention_heads %d)", kv, f.heads)
	}
	if hd := cfg.HeadDim; hd != 0 && hd != f.headDim {
		return nil, fmt.Errorf("opt: config: head_dim %d, want hidden_size/num_attention_heads = %d", hd, f.headDim)
	}
	raw := cfg.Raw
	var err error
	if f.preLN, err = rawBool(raw, "do_layer_norm_before", true); err != nil {
		return nil, err
	}
	removeFinal, err := rawBool(raw, "_remove_final_layer_norm", false)
	if err != nil {
		return nil, err
	}
	f.finalLN = f.preLN && !removeFinal
	if f.affine, err = rawBool(raw, "layer_norm_elementwise_affine", true); err != nil {
		return nil, err
	}
	if f.bias, err = rawBool(raw, "enable_bias", true); err != nil {
		return nil, err
	}
	f.proj = f.hidden
	if v, ok := raw["word_embed_proj_dim"]; ok && v != nil {
		p, ok := v.(float64)
		if !ok || p != math.Trunc(p) || p <= 0 || p > 1<<31 {
			return nil, fmt.Errorf("opt: config: word_embed_proj_dim is %v, want a positive integer", v)
		}
		f.proj = int(p)
	}
	if f.act == "" {
		f.act = "relu"
		if s, ok := raw["activation_function"].(string); ok {
			f.act = s
		}
	}
	switch f.act {
	case "relu", "gelu":
	default:
		return nil, fmt.Errorf("opt: config: activation_function %q not supported (relu, gelu)", f.act)
	}
	return f, nil
}

// Config returns the configuration the family was built from.
func (f *Family) Config() *model.Config { return f.cfg }

// NumBlocks is num_hidden_layers.
func (f *Family) NumBlocks() int { return f.cfg.NumHiddenLayers }

// Tensor names of the embeddings and the head.
const (
	EmbedTokens    = "model.decoder.embed_tokens.weight"
	EmbedPositions = "model.decoder.embed_positions.weight"
	ProjectIn      = "model.decoder.project_in.weight"
	ProjectOut     = "model.decoder.project_out.weight"
	FinalNorm      = "model.decoder.final_layer_norm"
	LMHead         = "lm_head.weight"
)

// positionOffset is OPTLearnedPositionalEmbedding.offset: position p reads
// row p+2 of embed_positions.
const positionOffset = 2

func (f *Family) projected() bool { return f.proj != f.hidden }

// EmbedTensors is embed_tokens and, when word_embed_proj_dim differs from
// hidden_size, project_in.
func (f *Family) EmbedTensors() []string {
	if f.projected() {
		return []string{EmbedTokens, ProjectIn}
	}
	return []string{EmbedTokens}
}

// HeadTensors lists final_layer_norm's weight and bias (pre-LN models with
// affine LayerNorms), project_out (when word_embed_proj_dim differs) and
// lm_head.weight, or embed_tokens when tie_word_embeddings.
func (f *Family) HeadTensors() []string {
	var names []string
	if f.finalLN && f.affine {
		names = append(names, FinalNorm+".weight", FinalNorm+".bias")
	}
	if f.projected() {
		names = append(names, ProjectOut)
	}
	if f.tied {
		return append(names, EmbedTokens)
	}
	return append(names, LMHead)
}

func blockPrefix(i int) string { return fmt.Sprintf("model.decoder.layers.%d.", i) }

// Linears lists block i's six linears in forward order: q/k/v_proj (group
// "model.decoder.layers.i.self_attn.qkv"), out_proj (group
// ".self_attn.out_proj"), fc1 (group ".fc1") and fc2 (group ".fc2"). All
// are [hidden, hidden] but fc1 ([ffn_dim, hidden]) and fc2 ([hidden,
// ffn_dim]).
func (f *Family) Linears(i int) []model.Linear {
	p := blockPrefix(i)
	qkv := p + "self_attn.qkv"
	d := f.hidden
	return []model.Linear{
		{Name: p + "self_attn.q_proj", Group: qkv, Out: d, In: d, Attention: true},
		{Name: p + "self_attn.k_proj", Group: qkv, Out: d, In: d, Attention: true},
		{Name: p + "self_attn.v_proj", Group: qkv, Out: d, In: d, Attention: true},
		{Name: p + "self_attn.out_proj", Group: p + "self_attn.out_proj", Out: d, In: d, Attention: true},
		{Name: p + "fc1", Group: p + "fc1", Out: f.ffn, In: d},
		{Name: p + "fc2", Group: p + "fc2", Out: d, In: f.ffn},
	}
}

// BlockTensors lists block i's LayerNorm weights and biases (when
// layer_norm_elementwise_affine), its six linear weights and their biases
// (when enable_bias), and for block 0 also embed_positions, which
// ForwardBlock(0) adds.
func (f *Family) BlockTensors(i int) []string {
	p := blockPrefix(i)
	var names []string
	if i == 0 {
		names = append(names, EmbedPositions)
	}
	if f.affine {
		for _, n := range []string{"self_attn_layer_norm", "final_layer_norm"} {
			names = append(names, p+n+".weight", p+n+".bias")
		}
	}
	for _, l := range f.Linears(i) {
		names = append(names, l.Weight())
		if f.bias {
			names = append(names, l.Name+".bias")
		}
	}
	return names
}
