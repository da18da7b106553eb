package gguf

import (
	"fmt"
	"strings"

	"github.com/optima-llm/optima/model/tokenizer"
)

// Tokenizer builds the tokenizer stored in the file's tokenizer.ggml.*
// metadata; see ReadTokenizer.
func (m *Model) Tokenizer() (tokenizer.Tokenizer, error) { return ReadTokenizer(m.f) }

// ReadTokenizer builds the tokenizer stored in f's tokenizer.ggml.* metadata
// the way transformers (v5.24, integrations/gguf/gguf_tokenizer_mapping.py)
// builds one from a GGUF, for any architecture:
//
//   - "gpt2": a byte-level *tokenizer.BPE from tokens, merges, token types
//     and the pre-tokenizer name (tokenizer.ggml.pre); add_bos_token
//     defaults to false.
//   - "llama" (SentencePiece): a *tokenizer.SentencePiece from tokens, token
//     types and, without tokenizer.ggml.merges, merges recovered from
//     tokenizer.ggml.scores (tokenizer.MergesFromScores). The pipeline is
//     transformers' LlamaTokenizer (Metaspace with prepend_scheme "first",
//     no unknown token) for general.architecture "llama" and others,
//     GemmaTokenizer (spaces → "▁", Split on " ", unknown token) for "gemma",
//     "gemma2" and "gemma3" (tokens made only of spaces are respelled with
//     "▁", and merges follow token order, not scores), and Phi-3's (Prepend
//     "▁" and Replace normalizer) for "phi3". add_bos_token defaults to
//     true.
//   - "gemma4": GemmaTokenizer's pipeline with the file's merges (or merges
//     from scores) and no BOS added.
//
// Control tokens (type 3), user-defined ones (type 4) and the tokens named
// by tokenizer.ggml.{bos,eos,unknown,padding}_token_id are matched whole in
// the text. Errors name the file: missing or mistyped keys, arrays whose
// lengths differ, an unknown tokenizer model, and what tokenizer.NewBPE or
// tokenizer.NewSentencePiece reject.
func ReadTokenizer(f *File) (tokenizer.Tokenizer, error) {
	kind, err := f.String("tokenizer.ggml.model")
	if err != nil {
		return nil, err
	}
	tokens, err := f.Strings("tokenizer.ggml.tokens")
	if err != nil {
		return nil, err
	}
	var types []int32
	if _, ok := f.Value("tokenizer.ggml.token_type"); ok {
		if types, err = f.Int32s("tokenizer.ggml.token_type"); err != nil {
			return nil, err
		}
		if len(types) != len(tokens) {
			return nil, fmt.Errorf("%w %s: %d token types for %d tokens", ErrFormat, f.Name, len(types), len(tokens))
		}
	}
	ids := map[string]int32{}
	for _, key := range []string{"bos", "eos", "unknown", "padding"} {
		v, err := optInt(f, "tokenizer.ggml."+key+"_token_id", -1)
		if err != nil {
			return nil, err
		}
		if v >= len(tokens) {
			return nil, fmt.Errorf("%w %s: tokenizer.ggml.%s_token_id %d is not below the %d tokens", ErrFormat, f.Name, key, v, len(tokens))
		}
		ids[key] = int32(v)
	}
	optBool := func(key string, def bool) (bool, error) {
		if _, ok := f.Value(key); !ok {
			return def, nil
		}
		return f.Bool(key)
	}

	var tok tokenizer.Tokenizer
	switch kind {
	case "gpt2":
		cfg := tokenizer.BPEConfig{Tokens: tokens, TokenTypes: types, BOS: ids["bos"], EOS: ids["eos"]}
		if cfg.Merges, err = f.Strings("tokenizer.ggml.merges"); err != nil {
			return nil, err
		}
		if cfg.Pre, err = f.String("tokenizer.ggml.pre"); err != nil {
			cfg.Pre = "default"
		}
		if cfg.AddBOS, err = optBool("tokenizer.ggml.add_bos_token", false); err != nil {
			return nil, err
		}
		tok, err = tokenizer.NewBPE(cfg)
	case "llama", "gemma4":
		tok, err = sentencePiece(f, kind, tokens, types, ids, optBool)
	default:
		return nil, fmt.Errorf("gguf %s: tokenizer model %q is not supported (supported: gpt2, llama, gemma4)", f.Name, kind)
	}
	if err != nil {
		return nil, fmt.Errorf("gguf %s: tokenizer: %w", f.Name, err)
	}
	return tok, nil
}

// SentencePiece pipelines of transformers' tokenizer classes.
var (
	llamaDecoder = []tokenizer.DecoderStep{
		{Type: "Replace", Pattern: "▁", Content: " "}, {Type: "ByteFallback"}, {Type: "Fuse"},
		{Type: "Strip", Content: " ", Start: 1},
	}
	gemmaDecoder = []tokenizer.DecoderStep{
		{Type: "Replace", Pattern: "▁", Content: " "}, {Type: "ByteFallback"}, {Type: "Fuse"},
	}
)

// sentencePiece builds a "llama" or "gemma4" tokenizer; see ReadTokenizer.
func sentencePiece(f *File, kind string, tokens []string, types []int32, ids map[string]int32, optBool func(string, bool) (bool, error)) (tokenizer.Tokenizer, error) {
	arch, err := f.String("general.architecture")
	if err != nil {
		return nil, err
	}
	style := "llama"
	switch {
	case kind == "gemma4":
		style = "gemma4"
	case arch == "gemma" || arch == "gemma2" || arch == "gemma3":
		style = "gemma"
	case arch == "phi3":
		style = "phi3"
	}
	vocab := tokens
	if style == "gemma" {
		vocab = make([]string, len(tokens))
		for i, t := range tokens {
			if strings.Contains(t, " ") && strings.TrimSpace(t) == "" {
				t = strings.Repeat("▁", len([]rune(t)))
			}
			vocab[i] = t
		}
	}
	cfg := tokenizer.SentencePieceConfig{
		Tokens: vocab, Unk: -1, FuseUnk: true, ByteFallback: true,
		BOS: ids["bos"], EOS: ids["eos"],
	}
	if _, ok := f.Value("tokenizer.ggml.merges"); ok {
		ms, err := f.Strings("tokenizer.ggml.merges")
		if err != nil {
			return nil, err
		}
		cfg.Merges = make([][2]string, len(ms))
		for i, m := range ms {
			a, b, ok := strings.Cut(m, " ")
			if !ok || strings.Contains(b, " ") {
				return nil, fmt.Errorf("%w %s: tokenizer.ggml.merges[%d] %q is not two space-separated tokens", ErrFormat, f.Name, i, m)
			}
			cfg.Merges[i] = [2]string{a, b}
		}
	} else {
		scores := make([]float64, len(vocab))
		if style == "gemma" {
			for i := range scores {
				scores[i] = -float64(i)
			}
		} else {
			kv, ok := f.Value("tokenizer.ggml.scores")
			s, isF32 := kv.Value.([]float32)
			if !ok || !isF32 {
				return nil, fmt.Errorf("%w %s: tokenizer.ggml.scores (array of float32) is needed when there are no tokenizer.ggml.merges", ErrFormat, f.Name)
			}
			if len(s) != len(vocab) {
				return nil, fmt.Errorf("%w %s: %d scores for %d tokens", ErrFormat, f.Name, len(s), len(vocab))
			}
			for i, v := range s {
				scores[i] = float64(v)
			}
		}
		cfg.Merges = tokenizer.MergesFromScores(vocab, scores)
	}
	switch style {
	case "llama":
		cfg.PreTokenizer = []tokenizer.PreTokenizerStep{{Type: "Metaspace", Replacement: "▁", PrependScheme: "first"}}
		cfg.Decoder = llamaDecoder
	case "phi3":
		cfg.Normalizer = []tokenizer.NormalizerStep{{Type: "Prepend", Content: "▁"}, {Type: "Replace", Pattern: " ", Content: "▁"}}
		cfg.Decoder = llamaDecoder
	case "gemma", "gemma4":
		cfg.Normalizer = []tokenizer.NormalizerStep{{Type: "Replace", Pattern: " ", Content: "▁"}}
		cfg.PreTokenizer = []tokenizer.PreTokenizerStep{{Type: "Split", Pattern: " ", Behavior: "MergedWithPrevious"}}
		cfg.Decoder = gemmaDecoder
		// GemmaTokenizer's BPE has unk_token, the file's or "<unk>".
		unk := "<unk>"
		if id := ids["unknown"]; id >= 0 {
			unk = tokens[id]
		}
		for i, t := range vocab {
			if t == unk {
				cfg.Unk = int32(i)
			}
		}
	}
	// Added tokens: control and user-defined ones, and the named specials.
	cfg.TokenTypes = make([]int32, len(vocab))
	for i := range cfg.TokenTypes {
		cfg.TokenTypes[i] = tokenizer.TokenNormal
		if types != nil {
			cfg.TokenTypes[i] = types[i]
		}
	}
	for _, id := range ids {
		if id >= 0 {
			cfg.TokenTypes[id] = tokenizer.TokenControl
		}
	}
	addBOS := style != "gemma4"
	if style != "gemma4" {
		if addBOS, err = optBool("tokenizer.ggml.add_bos_token", true); err != nil {
			return nil, err
		}
	}
	addEOS, err := optBool("tokenizer.ggml.add_eos_token", false)
	if err != nil {
		return nil, err
	}
	// transformers' update_post_processor drops a flag whose token is unset.
	cfg.AddBOS = addBOS && cfg.BOS >= 0
	cfg.AddEOS = addEOS && cfg.EOS >= 0
	return tokenizer.NewSentencePiece(cfg)
}
