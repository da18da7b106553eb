package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// LoadHFJSON builds the tokenizer a Hugging Face tokenizer.json describes,
// with its tokenizer_config.json (nil or empty to skip): a byte-level BPE
// (FromHFJSON) when the pre_tokenizer holds a ByteLevel step, else a
// SentencePiece-style BPE (SentencePieceFromHFJSON). Errors are theirs.
func LoadHFJSON(tokenizerJSON, tokenizerConfigJSON []byte) (Tokenizer, error) {
	doc, err := parseHFDoc(tokenizerJSON)
	if err != nil {
		return nil, err
	}
	if hasByteLevel(doc.PreTokenizer) {
		return byteLevelFromDoc(doc, tokenizerConfigJSON)
	}
	return sentencePieceFromDoc(doc, tokenizerConfigJSON)
}

// hasByteLevel reports whether a pre_tokenizer is or holds a ByteLevel step.
func hasByteLevel(raw json.RawMessage) bool {
	var p hfPreTok
	if isNull(raw) || json.Unmarshal(raw, &p) != nil {
		return false
	}
	if p.Type == "ByteLevel" {
		return true
	}
	for _, r := range p.Pretokenizers {
		if hasByteLevel(r) {
			return true
		}
	}
	return false
}

// SentencePieceFromHFJSON builds a SentencePiece-style BPE tokenizer (Llama
// 2, Mistral, Gemma) from a Hugging Face tokenizer.json and, optionally (nil
// or empty to skip), its tokenizer_config.json.
//
// tokenizer.json must have a "BPE" model with a vocab, merges ("a b" strings
// or ["a", "b"] pairs), no dropout, no continuing_subword_prefix or
// end_of_word_suffix; byte_fallback, fuse_unk, ignore_merges and unk_token
// (which must be in the vocab) are honoured. Supported sections:
//
//	normalizer     null, NFC/NFD/NFKC/NFKD, Prepend, Replace (String pattern), Sequence of these
//	pre_tokenizer  null, Metaspace, Split (String pattern, not inverted), Sequence of these
//	decoder        null, Replace (String pattern), ByteFallback, Fuse, Strip, Metaspace, Sequence
//	post_processor null, TemplateProcessing, ByteLevel, Roberta/BertProcessing, Sequence
//
// Added tokens become control (special) or user-defined tokens matched whole
// in the raw text; lstrip, rstrip and single_word are not supported, nor a
// normalized one that the normalizer would change. BOS, EOS, AddBOS and
// AddEOS follow transformers v5: the post_processor's template alone says
// what tokenizer(text) adds (the special token before the sequence is BOS,
// the one after it EOS); tokenizer_config.json's add_bos_token and
// add_eos_token are ignored, as transformers ignores them when tokenizer.json
// exists, and its bos_token and eos_token name BOS and EOS where the
// template adds none.
//
// When tokenizer_config.json's tokenizer_class is LlamaTokenizer(Fast) or
// GemmaTokenizer(Fast), the class's own pipeline replaces the file's, as
// transformers v5 builds those classes from the file's vocab and merges
// (models/llama/tokenization_llama.py, models/gemma/tokenization_gemma.py):
// Llama gets no normalizer, Metaspace with prepend_scheme "first" ("always"
// when the config sets legacy true, "never" when add_prefix_space is
// false), no unknown token, and the Replace, ByteFallback, Fuse, Strip
// decoder; Gemma gets Replace(" ", "▁"), Split(" ") and its decoder. For a
// Llama 2 file this changes text that starts with spaces or follows an added
// token; other classes keep the file's pipeline.
//
// Errors name the file and section, e.g. "tokenizer.json: decoder: ...".
func SentencePieceFromHFJSON(tokenizerJSON, tokenizerConfigJSON []byte) (*SentencePiece, error) {
	doc, err := parseHFDoc(tokenizerJSON)
	if err != nil {
		return nil, err
	}
	return sentencePieceFromDoc(doc, tokenizerConfigJSON)
}

func sentencePieceFromDoc(doc *hfDoc, tokenizerConfigJSON []byte) (*SentencePiece, error) {
	const file = hfFile
	m := doc.Model
	cfg := SentencePieceConfig{Unk: -1, FuseUnk: m.FuseUnk, ByteFallback: m.ByteFallback, IgnoreMerges: m.IgnoreMerges}
	var err error
	if cfg.Normalizer, err = parseNormalizer(doc.Normalizer); err != nil {
		return nil, fmt.Errorf("%s: normalizer: %w", file, err)
	}
	if cfg.PreTokenizer, err = parseSPPreTokenizer(doc.PreTokenizer); err != nil {
		return nil, fmt.Errorf("%s: pre_tokenizer: %w", file, err)
	}
	if cfg.Decoder, err = parseDecoder(doc.Decoder); err != nil {
		return nil, fmt.Errorf("%s: decoder: %w", file, err)
	}
	if cfg.Tokens, cfg.TokenTypes, err = doc.tokensByID(func(a hfAddedToken) error {
		return checkAddedNormalized(a, cfg.Normalizer)
	}); err != nil {
		return nil, err
	}
	if m.UnkToken != nil {
		u, ok := m.UnkToken.(string)
		id, found := m.Vocab[u]
		if !ok || !found {
			return nil, hfJSONError(file, "model", "unk_token %v is not a token of the vocab", m.UnkToken)
		}
		cfg.Unk = int32(id)
	}
	if cfg.Merges, err = doc.merges(); err != nil {
		return nil, err
	}
	if err := applyTokenizerClass(&cfg, tokenizerConfigJSON); err != nil {
		return nil, err
	}
	sp, err := resolveSpecials(cfg.Tokens, cfg.TokenTypes, doc.PostProcessor, tokenizerConfigJSON)
	if err != nil {
		return nil, err
	}
	cfg.BOS, cfg.EOS, cfg.AddBOS, cfg.AddEOS = sp.bos, sp.eos, sp.addBOS, sp.addEOS
	t, err := NewSentencePiece(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return t, nil
}

// hfStep is one entry of a normalizer, pre_tokenizer or decoder section.
type hfStep struct {
	Type           string            `json:"type"`
	Pattern        map[string]string `json:"pattern"`
	Content        *string           `json:"content"`
	Prepend        *string           `json:"prepend"`
	Replacement    *string           `json:"replacement"`
	PrependScheme  *string           `json:"prepend_scheme"`
	AddPrefixSpace *bool             `json:"add_prefix_space"`
	Split          *bool             `json:"split"`
	Behavior       string            `json:"behavior"`
	Invert         bool              `json:"invert"`
	Start          int               `json:"start"`
	Stop           int               `json:"stop"`
	Normalizers    []json.RawMessage `json:"normalizers"`
	Pretokenizers  []json.RawMessage `json:"pretokenizers"`
	Decoders       []json.RawMessage `json:"decoders"`
}

// flatten parses a section, expanding Sequence entries (listed under key).
func flatten(raw json.RawMessage, seq func(*hfStep) []json.RawMessage) ([]hfStep, error) {
	if isNull(raw) {
		return nil, nil
	}
	var st hfStep
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, err
	}
	if st.Type != "Sequence" {
		return []hfStep{st}, nil
	}
	var out []hfStep
	for _, r := range seq(&st) {
		sub, err := flatten(r, seq)
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
	}
	return out, nil
}

// literal returns the String of a {"String": s} pattern.
func literal(p map[string]string) (string, error) {
	s, ok := p["String"]
	if !ok || len(p) != 1 {
		return "", fmt.Errorf("pattern %v is not supported (only a String)", p)
	}
	return s, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// parseNormalizer maps a normalizer section to steps; null gives nil.
func parseNormalizer(raw json.RawMessage) ([]NormalizerStep, error) {
	steps, err := flatten(raw, func(s *hfStep) []json.RawMessage { return s.Normalizers })
	if err != nil {
		return nil, err
	}
	var out []NormalizerStep
	for _, st := range steps {
		switch st.Type {
		case "NFC", "NFD", "NFKC", "NFKD":
			out = append(out, NormalizerStep{Type: st.Type})
		case "Prepend":
			out = append(out, NormalizerStep{Type: "Prepend", Content: deref(st.Prepend)})
		case "Replace":
			pat, err := literal(st.Pattern)
			if err != nil {
				return nil, fmt.Errorf("Replace: %w", err)
			}
			out = append(out, NormalizerStep{Type: "Replace", Pattern: pat, Content: deref(st.Content)})
		default:
			return nil, fmt.Errorf("type %s is not supported (supported: %s)", st.Type, normalizerTypes)
		}
	}
	if err := checkNormalizer(out); err != nil {
		return nil, err
	}
	return out, nil
}

// prependScheme reads a Metaspace's prepend_scheme, or its older
// add_prefix_space (true "always", false "never"); the default is "always".
func prependScheme(st hfStep) string {
	switch {
	case st.PrependScheme != nil:
		return *st.PrependScheme
	case st.AddPrefixSpace != nil && !*st.AddPrefixSpace:
		return "never"
	}
	return "always"
}

// parseSPPreTokenizer maps a pre_tokenizer section to steps; null gives nil.
func parseSPPreTokenizer(raw json.RawMessage) ([]PreTokenizerStep, error) {
	steps, err := flatten(raw, func(s *hfStep) []json.RawMessage { return s.Pretokenizers })
	if err != nil {
		return nil, err
	}
	var out []PreTokenizerStep
	for _, st := range steps {
		switch st.Type {
		case "Metaspace":
			rep := "▁"
			if st.Replacement != nil {
				rep = *st.Replacement
			}
			split := st.Split == nil || *st.Split
			out = append(out, PreTokenizerStep{Type: "Metaspace", Replacement: rep, PrependScheme: prependScheme(st), Split: split})
		case "Split":
			pat, err := literal(st.Pattern)
			if err != nil {
				return nil, fmt.Errorf("Split: %w", err)
			}
			if st.Invert {
				return nil, fmt.Errorf("Split with invert is not supported")
			}
			out = append(out, PreTokenizerStep{Type: "Split", Pattern: pat, Behavior: st.Behavior})
		default:
			return nil, fmt.Errorf("type %s is not supported (supported: Metaspace, Split, Sequence)", st.Type)
		}
	}
	if err := checkPreTokenizer(out); err != nil {
		return nil, err
	}
	return out, nil
}

// parseDecoder maps a decoder section to steps; null gives nil.
func parseDecoder(raw json.RawMessage) ([]DecoderStep, error) {
	steps, err := flatten(raw, func(s *hfStep) []json.RawMessage { return s.Decoders })
	if err != nil {
		return nil, err
	}
	var out []DecoderStep
	for _, st := range steps {
		switch st.Type {
		case "ByteFallback", "Fuse":
			out = append(out, DecoderStep{Type: st.Type})
		case "Replace":
			pat, err := literal(st.Pattern)
			if err != nil {
				return nil, fmt.Errorf("Replace: %w", err)
			}
			out = append(out, DecoderStep{Type: "Replace", Pattern: pat, Content: deref(st.Content)})
		case "Strip":
			out = append(out, DecoderStep{Type: "Strip", Content: deref(st.Content), Start: st.Start, Stop: st.Stop})
		case "Metaspace":
			rep := "▁"
			if st.Replacement != nil {
				rep = *st.Replacement
			}
			out = append(out, DecoderStep{Type: "Metaspace", Replacement: rep, PrependScheme: prependScheme(st)})
		default:
			return nil, fmt.Errorf("type %s is not supported (supported: Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence)", st.Type)
		}
	}
	if err := checkDecoder(out); err != nil {
		return nil, err
	}
	return out, nil
}

// specials are the BOS/EOS ids and whether tokenizer(text) adds them.
type specials struct {
	bos, eos       int32
	addBOS, addEOS bool
}

// postSpecials returns the ids of the special tokens that a post_processor
// puts before and after a single sequence (-1 for none), and whether the
// section is null.
func postSpecials(raw json.RawMessage) (before, after int64, null bool, err error) {
	before, after = -1, -1
	if isNull(raw) {
		return before, after, true, nil
	}
	var pp struct {
		Type          string                       `json:"type"`
		Processors    []json.RawMessage            `json:"processors"`
		Single        []map[string]json.RawMessage `json:"single"`
		SpecialTokens map[string]struct {
			IDs []int64 `json:"ids"`
		} `json:"special_tokens"`
		Cls []json.RawMessage `json:"cls"`
		Sep []json.RawMessage `json:"sep"`
	}
	if err := json.Unmarshal(raw, &pp); err != nil {
		return -1, -1, false, err
	}
	switch pp.Type {
	case "ByteLevel":
		return before, after, false, nil
	case "Sequence":
		for _, r := range pp.Processors {
			b, a, _, err := postSpecials(r)
			if err != nil {
				return -1, -1, false, err
			}
			if b >= 0 {
				before = b
			}
			if a >= 0 {
				after = a
			}
		}
		return before, after, false, nil
	case "RobertaProcessing", "BertProcessing":
		id := func(pair []json.RawMessage) (int64, error) {
			var v int64
			if len(pair) != 2 || json.Unmarshal(pair[1], &v) != nil {
				return -1, fmt.Errorf("%s cls/sep is not a [token, id] pair", pp.Type)
			}
			return v, nil
		}
		if before, err = id(pp.Cls); err != nil {
			return -1, -1, false, err
		}
		if after, err = id(pp.Sep); err != nil {
			return -1, -1, false, err
		}
		return before, after, false, nil
	case "TemplateProcessing":
	default:
		return -1, -1, false, fmt.Errorf("type %s is not supported (supported: TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence)", pp.Type)
	}
	seen := false
	for _, piece := range pp.Single {
		if _, ok := piece["Sequence"]; ok {
			seen = true
			continue
		}
		st, ok := piece["SpecialToken"]
		if !ok {
			return -1, -1, false, fmt.Errorf("template piece %v is neither Sequence nor SpecialToken", piece)
		}
		var sp struct{ ID string }
		if err := json.Unmarshal(st, &sp); err != nil {
			return -1, -1, false, err
		}
		tok, ok := pp.SpecialTokens[sp.ID]
		if !ok || len(tok.IDs) != 1 {
			return -1, -1, false, fmt.Errorf("special token %q of the single template is not one id in special_tokens", sp.ID)
		}
		p := &before
		if seen {
			p = &after
		}
		if *p >= 0 {
			return -1, -1, false, fmt.Errorf("a single template with two special tokens on one side of the sequence is not supported")
		}
		*p = tok.IDs[0]
	}
	return before, after, false, nil
}

// resolveSpecials decides BOS, EOS, AddBOS and AddEOS as transformers v5
// does for a directory with tokenizer.json (tokenization_utils_base.py
// _from_pretrained drops tokenizer_config.json's add_bos_token and
// add_eos_token when a tokenizer file exists, and TokenizersBackend keeps
// the file's post_processor): the post_processor alone says what is added
// (the special token before the sequence is BOS, the one after it EOS; a
// null one adds nothing), and tokenizer_config.json's bos_token and
// eos_token name BOS and EOS where the template adds none.
func resolveSpecials(tokens []string, types []int32, post json.RawMessage, configJSON []byte) (specials, error) {
	before, after, _, err := postSpecials(post)
	if err != nil {
		return specials{}, fmt.Errorf("%s: post_processor: %w", hfFile, err)
	}
	n := int64(len(tokens))
	if before >= n || after >= n {
		return specials{}, hfJSONError(hfFile, "post_processor", "special token id %d is out of range", max(before, after))
	}
	sp := specials{bos: int32(before), eos: int32(after), addBOS: before >= 0, addEOS: after >= 0}
	if len(bytes.TrimSpace(configJSON)) == 0 {
		return sp, nil
	}
	const file = "tokenizer_config.json"
	var c struct {
		BOSToken json.RawMessage `json:"bos_token"`
		EOSToken json.RawMessage `json:"eos_token"`
	}
	if err := json.Unmarshal(configJSON, &c); err != nil {
		return specials{}, fmt.Errorf("%s: %w", file, err)
	}
	lookup := func(key string, raw json.RawMessage) (int32, bool, error) {
		if isNull(raw) {
			return -1, false, nil
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			var obj struct{ Content *string }
			if json.Unmarshal(raw, &obj) != nil || obj.Content == nil {
				return -1, false, hfJSONError(file, key, "%s is neither a string nor an object with content", raw)
			}
			s = *obj.Content
		}
		id := int32(-1)
		for i, tok := range tokens {
			if tok == s && (id < 0 || types[i] == TokenControl) {
				id = int32(i)
			}
		}
		if id < 0 {
			return -1, false, hfJSONError(file, key, "%q is not a token of tokenizer.json", s)
		}
		return id, true, nil
	}
	bos, hasBOS, err := lookup("bos_token", c.BOSToken)
	if err != nil {
		return specials{}, err
	}
	eos, hasEOS, err := lookup("eos_token", c.EOSToken)
	if err != nil {
		return specials{}, err
	}
	if hasBOS && !sp.addBOS {
		sp.bos = bos
	}
	if hasEOS && !sp.addEOS {
		sp.eos = eos
	}
	return sp, nil
}

// applyTokenizerClass puts the pipeline of tokenizer_config.json's
// tokenizer_class in place of the file's; see SentencePieceFromHFJSON.
func applyTokenizerClass(cfg *SentencePieceConfig, configJSON []byte) error {
	if len(bytes.TrimSpace(configJSON)) == 0 {
		return nil
	}
	var c struct {
		Class          string `json:"tokenizer_class"`
		Legacy         *bool  `json:"legacy"`
		AddPrefixSpace *bool  `json:"add_prefix_space"`
	}
	if err := json.Unmarshal(configJSON, &c); err != nil {
		return fmt.Errorf("tokenizer_config.json: %w", err)
	}
	switch c.Class {
	case "LlamaTokenizer", "LlamaTokenizerFast":
		prefix := c.AddPrefixSpace == nil || *c.AddPrefixSpace
		scheme := "never"
		if prefix {
			scheme = "first"
			if c.Legacy != nil && *c.Legacy {
				scheme = "always"
			}
		}
		cfg.Normalizer = nil
		cfg.PreTokenizer = []PreTokenizerStep{{Type: "Metaspace", Replacement: "▁", PrependScheme: scheme}}
		cfg.Decoder = []DecoderStep{{Type: "Replace", Pattern: "▁", Content: " "}, {Type: "ByteFallback"}, {Type: "Fuse"}}
		if prefix {
			cfg.Decoder = append(cfg.Decoder, DecoderStep{Type: "Strip", Content: " ", Start: 1})
		}
		cfg.Unk, cfg.FuseUnk, cfg.ByteFallback, cfg.IgnoreMerges = -1, true, true, false
	case "GemmaTokenizer", "GemmaTokenizerFast":
		cfg.Normalizer = []NormalizerStep{{Type: "Replace", Pattern: " ", Content: "▁"}}
		cfg.PreTokenizer = []PreTokenizerStep{{Type: "Split", Pattern: " ", Behavior: "MergedWithPrevious"}}
		cfg.Decoder = []DecoderStep{{Type: "Replace", Pattern: "▁", Content: " "}, {Type: "ByteFallback"}, {Type: "Fuse"}}
		cfg.FuseUnk, cfg.ByteFallback, cfg.IgnoreMerges = true, true, false
	}
	return nil
}
