// Package tokenizer turns text into token ids the way Hugging Face tokenizers
// does for the models optima supports: byte-level BPE (BPE: GPT-2, Llama 3,
// Qwen2, SmolLM) and SentencePiece-style BPE with byte fallback
// (SentencePiece: Llama 2, Mistral, Gemma), built from tokenizer.json
// (LoadHFJSON) or from GGUF metadata (model/gguf). Both are our own code:
// no Go library we found implements ignore_merges, byte fallback and the
// Llama 3 split with its lookahead as tokenizers does.
package tokenizer

// Tokenizer encodes text to token ids and back.
type Tokenizer interface {
	// Encode returns the ids of text without special tokens (no BOS/EOS), as
	// Hugging Face's tokenizer(text, add_special_tokens=False) does.
	Encode(text string) []int32
	// Decode maps ids back to text.
	Decode(ids []int32) string
	// VocabSize is the number of ids.
	VocabSize() int
	// BOS is the beginning-of-sequence id, or -1.
	BOS() int32
	// EOS is the end-of-sequence id, or -1.
	EOS() int32
	// AddBOS reports whether the model's tokenizer prepends BOS by default.
	AddBOS() bool
}

// TextVocabSize is one more than the largest id that text can produce
// without spelling an added token: the model vocabulary of tokenizer.json
// (added tokens listed past it, like Gemma 3's <image_soft_token>, are left
// out). For other Tokenizer implementations it is VocabSize().
func TextVocabSize(t Tokenizer) int {
	switch t := t.(type) {
	case *BPE:
		return textVocabSize(t.cfg.TokenTypes, len(t.cfg.Tokens))
	case *SentencePiece:
		return textVocabSize(t.cfg.TokenTypes, len(t.cfg.Tokens))
	}
	return t.VocabSize()
}

// textVocabSize drops the trailing run of added (control and user-defined)
// tokens from n.
func textVocabSize(types []int32, n int) int {
	for n > 0 && types != nil && (types[n-1] == TokenControl || types[n-1] == TokenUserDefined) {
		n--
	}
	return n
}
