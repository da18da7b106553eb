package tokenizer

import "errors"

// BPEConfig describes a byte-level BPE tokenizer as GGUF files store it
// (tokenizer.ggml.* keys) or as tokenizer.json's "model" section holds it.
type BPEConfig struct {
	// Tokens are the vocabulary strings in id order, in GPT-2 byte-to-unicode form.
	Tokens []string
	// Merges are the merge rules in priority order, each "left right".
	Merges []string
	// TokenTypes are GGUF token types per id (1 normal, 3 control, 4 user
	// defined, 6 byte); nil means all normal.
	TokenTypes []int32
	// Pre names the pre-tokenizer ("gpt2", "smollm", "llama-bpe", "qwen2", ...),
	// as GGUF's tokenizer.ggml.pre does.
	Pre string
	// BOS and EOS are special ids, -1 when absent.
	BOS, EOS int32
	// AddBOS says whether BOS is prepended by default.
	AddBOS bool
}

// BPE is a byte-level BPE tokenizer.
type BPE struct {
	cfg BPEConfig
}

// NewBPE builds a byte-level BPE tokenizer. It returns an error for an
// unknown pre-tokenizer or malformed merges.
func NewBPE(cfg BPEConfig) (*BPE, error) {
	return nil, errors.New("tokenizer: BPE not implemented yet")
}
