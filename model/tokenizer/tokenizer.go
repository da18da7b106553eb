// Package tokenizer turns text into token ids the way Hugging Face tokenizers
// does for the models optima supports.
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
