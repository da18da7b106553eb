// Package model holds the family-independent description of a causal language
// model: its configuration, its tensors by Hugging Face name, the prunable
// linear layers of each block, and the Family interface that each architecture
// package (llama, ...) implements with its float32 forward pass.
//
// Names follow Hugging Face transformers: a linear layer is named by its module
// path ("model.layers.3.mlp.down_proj") and its weight tensor by that path plus
// ".weight". Linear weights are [out, in] row-major float32.
package model

import (
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/model/tokenizer"
)

// Tensor is a dense row-major float32 tensor in Hugging Face layout.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// Numel is the number of elements the shape describes.
func (t *Tensor) Numel() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Weights maps Hugging Face tensor names to tensors.
type Weights map[string]*Tensor

// Config is the part of a Hugging Face config.json that optima's forward
// passes read, parsed from config.json or from GGUF metadata.
type Config struct {
	// Architecture is the Hugging Face class name, e.g. "LlamaForCausalLM".
	Architecture string
	// ModelType is config.json's model_type, e.g. "llama".
	ModelType             string
	HiddenSize            int
	IntermediateSize      int
	NumHiddenLayers       int
	NumAttentionHeads     int
	NumKeyValueHeads      int
	HeadDim               int
	VocabSize             int
	MaxPositionEmbeddings int
	RMSNormEps            float64
	RopeTheta             float64
	TieWordEmbeddings     bool
	AttentionBias         bool
	MLPBias               bool
	HiddenAct             string
	BOSTokenID            int
	EOSTokenID            int
	// Raw is the whole config.json as parsed (or as synthesised from GGUF
	// metadata); writers emit it back with the fields above applied.
	Raw map[string]any
}

// Source gives lazy access to a checkpoint: its configuration, its tensors by
// Hugging Face name (dequantized to float32, in Hugging Face layout) and its
// tokenizer. Implementations are safe for concurrent Load calls.
type Source interface {
	// Path is the file or directory the source was opened from.
	Path() string
	// Config is the model configuration.
	Config() *Config
	// Names lists every tensor, sorted.
	Names() []string
	// Load reads one tensor; the error names the file and tensor.
	Load(name string) (*Tensor, error)
	// Tokenizer builds the tokenizer stored with the checkpoint.
	Tokenizer() (tokenizer.Tokenizer, error)
	// Close releases open files.
	Close() error
}

// Linear describes one prunable linear layer of a block.
type Linear struct {
	// Name is the module path, e.g. "model.layers.3.self_attn.q_proj".
	Name string
	// Group names the input this linear reads; linears of one group share one
	// Hessian, e.g. "model.layers.3.self_attn.qkv".
	Group string
	// Out and In are the weight's shape [Out, In].
	Out, In int
	// Attention is true for attention projections (q, k, v, o).
	Attention bool
}

// Weight is the weight tensor name of the linear.
func (l Linear) Weight() string { return l.Name + ".weight" }

// CaptureFunc sees the input of an input group during a block's forward pass:
// x is tokens×in row-major float32 and is only valid during the call. linears
// are the module paths that read it.
type CaptureFunc func(group string, linears []string, x []float32, tokens, in int)

// Family is one architecture's forward pass over explicitly given weights, so
// that a pipeline can run a block with weights it has just pruned.
//
// Hidden states are [tokens, hidden] row-major float32, tokens = nseq·seqlen
// with sequences laid out one after the other; every sequence starts at
// position 0 and attention is causal within it.
type Family interface {
	// Config is the configuration the family was built from.
	Config() *Config
	// NumBlocks is the number of transformer blocks.
	NumBlocks() int
	// EmbedTensors lists the tensors Embed reads.
	EmbedTensors() []string
	// BlockTensors lists the tensors block i reads.
	BlockTensors(i int) []string
	// HeadTensors lists the tensors Logits reads (final norm, lm_head or the
	// tied embedding).
	HeadTensors() []string
	// Linears lists block i's prunable linears in forward order.
	Linears(i int) []Linear
	// Embed writes the hidden states of ids into dst ([len(ids), hidden]).
	Embed(w Weights, ids []int32, dst []float32) error
	// ForwardBlock runs block i in place on x. capture, if not nil, is called
	// once per input group with that group's input.
	ForwardBlock(be kernels.Backend, i int, w Weights, x []float32, nseq, seqlen int, capture CaptureFunc) error
	// Logits applies the final norm and the LM head to x ([tokens, hidden])
	// and writes dst ([tokens, vocab]).
	Logits(be kernels.Backend, w Weights, x []float32, tokens int, dst []float32) error
}

// ErrUnknownArchitecture is wrapped by New for an architecture no family
// registered.
var ErrUnknownArchitecture = errors.New("model: unknown architecture")

// NewFamilyFunc builds a family from a configuration.
type NewFamilyFunc func(cfg *Config) (Family, error)

var (
	regMu    sync.RWMutex
	registry = map[string]NewFamilyFunc{}
)

// Register makes a family available under a Hugging Face architecture name
// ("LlamaForCausalLM"). It panics if the name is already registered.
func Register(arch string, f NewFamilyFunc) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[arch]; dup {
		panic("model: Register called twice for " + arch)
	}
	registry[arch] = f
}

// Architectures lists the registered architecture names, sorted.
func Architectures() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// New builds the family for cfg.Architecture. An unregistered architecture
// gives an error wrapping ErrUnknownArchitecture that lists the known ones.
func New(cfg *Config) (Family, error) {
	regMu.RLock()
	f, ok := registry[cfg.Architecture]
	regMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q (supported: %v)", ErrUnknownArchitecture, cfg.Architecture, Architectures())
	}
	return f(cfg)
}
