package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// splitPatterns maps the Split regexes FromHFJSON knows (followed by
// ByteLevel without its own regex) to pre-tokenizer names.
var splitPatterns = map[string]string{
	gpt2Pattern:   "gpt2",
	llama3Pattern: "llama-bpe",
	qwen2Pattern:  "qwen2",
}

// hfJSONError formats an error about one file and section.
func hfJSONError(file, section, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %s", file, section, fmt.Sprintf(format, args...))
}

// FromHFJSON builds a byte-level BPE tokenizer from a Hugging Face
// tokenizer.json and, optionally (nil or empty to skip), its
// tokenizer_config.json. It is the inverse of HFTokenizerJSON and
// HFTokenizerConfigJSON: the tokenizer it returns encodes and decodes as the
// one that wrote them.
//
// tokenizer.json must have a "BPE" model with a vocab (token → id) and
// merges (either "a b" strings or ["a", "b"] pairs), no dropout, no
// continuing_subword_prefix or end_of_word_suffix, no byte_fallback and no
// ignore_merges (Llama 3's files set it; it is not supported); an unk_token
// is accepted only when all 256 byte symbols are in the vocab, so it can
// never be produced. Its added_tokens become control tokens (special) or
// user-defined ones (not special); they must be written in the byte-level
// alphabet (printable ASCII but space, and Latin-1) without lstrip, rstrip
// or single_word. The normalizer must be null. The pre_tokenizer maps to a
// BPEConfig.Pre name:
//
//	ByteLevel(use_regex)                                 → "gpt2"
//	Sequence[Digits(individual_digits), ByteLevel(use_regex)] → "smollm-digits"
//	Sequence[Split(GPT-2 regex), ByteLevel]              → "gpt2"
//	Sequence[Split(Llama 3 regex), ByteLevel]            → "llama-bpe"
//	Sequence[Split(Qwen2 regex), ByteLevel]              → "qwen2"
//
// (a Split has behavior Isolated and is not inverted, the ByteLevel after a
// Split has use_regex false, and no ByteLevel adds a prefix space). The
// decoder must be null or ByteLevel.
//
// BOS and EOS come from tokenizer_config.json's bos_token and eos_token (a
// string or an {"content": ...} object) looked up among the tokens; AddBOS
// from its add_bos_token when present, else from the post_processor: a
// TemplateProcessing whose single template starts with a special token adds
// that token (which is then BOS unless bos_token names another). Token types
// are 3 (control) for special added tokens, 4 (user defined) for other added
// tokens and 1 (normal) for the rest.
//
// Errors name the file and section, e.g. "tokenizer.json: pre_tokenizer:
// ...", for malformed JSON, anything listed above as unsupported, ids
// that leave holes or repeat with different tokens, merges of tokens not in
// the vocab, and special tokens that are not in it.
func FromHFJSON(tokenizerJSON, tokenizerConfigJSON []byte) (*BPE, error) {
	const file = "tokenizer.json"
	var doc struct {
		AddedTokens   []hfAddedToken  `json:"added_tokens"`
		Normalizer    json.RawMessage `json:"normalizer"`
		PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
		PostProcessor json.RawMessage `json:"post_processor"`
		Decoder       json.RawMessage `json:"decoder"`
		Model         *struct {
			Type                    *string           `json:"type"`
			Dropout                 any               `json:"dropout"`
			UnkToken                any               `json:"unk_token"`
			ContinuingSubwordPrefix any               `json:"continuing_subword_prefix"`
			EndOfWordSuffix         any               `json:"end_of_word_suffix"`
			ByteFallback            bool              `json:"byte_fallback"`
			IgnoreMerges            bool              `json:"ignore_merges"`
			Vocab                   map[string]int64  `json:"vocab"`
			Merges                  []json.RawMessage `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(tokenizerJSON, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	m := doc.Model
	if m == nil {
		return nil, fmt.Errorf("%s: no model section", file)
	}
	if m.Type != nil && *m.Type != "BPE" {
		return nil, hfJSONError(file, "model", "type %q is not supported (supported: BPE)", *m.Type)
	}
	if m.Vocab == nil {
		return nil, hfJSONError(file, "model", "no vocab")
	}
	switch {
	case m.Dropout != nil:
		return nil, hfJSONError(file, "model", "dropout %v is not supported", m.Dropout)
	case m.ContinuingSubwordPrefix != nil && m.ContinuingSubwordPrefix != "":
		return nil, hfJSONError(file, "model", "continuing_subword_prefix %v is not supported", m.ContinuingSubwordPrefix)
	case m.EndOfWordSuffix != nil && m.EndOfWordSuffix != "":
		return nil, hfJSONError(file, "model", "end_of_word_suffix %v is not supported", m.EndOfWordSuffix)
	case m.ByteFallback:
		return nil, hfJSONError(file, "model", "byte_fallback is not supported (not a byte-level BPE)")
	case m.IgnoreMerges:
		return nil, hfJSONError(file, "model", "ignore_merges is not supported")
	}

	// Tokens by id: the vocab, then the added tokens over it.
	n := int64(0)
	for tok, id := range m.Vocab {
		if id < 0 || id >= 1<<31-1 {
			return nil, hfJSONError(file, "model.vocab", "token %q has id %d", tok, id)
		}
		n = max(n, id+1)
	}
	for _, a := range doc.AddedTokens {
		if a.ID == nil || *a.ID < 0 {
			return nil, hfJSONError(file, "added_tokens", "token %q has no valid id", a.Content)
		}
		n = max(n, int64(*a.ID)+1)
	}
	if n > int64(len(m.Vocab)+len(doc.AddedTokens)) {
		return nil, hfJSONError(file, "model.vocab", "ids run to %d but only %d tokens are listed: ids without a token", n-1, len(m.Vocab)+len(doc.AddedTokens))
	}
	cfg := BPEConfig{Tokens: make([]string, n), TokenTypes: make([]int32, n), BOS: -1, EOS: -1}
	set := make([]bool, n)
	// Sorted, so that the error for a repeated id does not depend on map order.
	vocabToks := make([]string, 0, len(m.Vocab))
	for tok := range m.Vocab {
		vocabToks = append(vocabToks, tok)
	}
	sort.Strings(vocabToks)
	for _, tok := range vocabToks {
		id := m.Vocab[tok]
		if set[id] {
			return nil, hfJSONError(file, "model.vocab", "id %d is given to both %q and %q", id, cfg.Tokens[id], tok)
		}
		cfg.Tokens[id], cfg.TokenTypes[id], set[id] = tok, TokenNormal, true
	}
	for _, a := range doc.AddedTokens {
		id := *a.ID
		if set[id] && cfg.Tokens[id] != a.Content {
			return nil, hfJSONError(file, "added_tokens", "id %d is %q but the vocab has %q", id, a.Content, cfg.Tokens[id])
		}
		switch {
		case a.Content == "":
			return nil, hfJSONError(file, "added_tokens", "id %d has empty content", id)
		case !inByteAlphabet(a.Content):
			return nil, hfJSONError(file, "added_tokens", "%q (id %d) has characters outside the byte-level alphabet (e.g. a space); matching it is not supported", a.Content, id)
		case a.LStrip || a.RStrip || a.SingleWord:
			return nil, hfJSONError(file, "added_tokens", "%q (id %d): lstrip, rstrip and single_word are not supported", a.Content, id)
		}
		cfg.Tokens[id], set[id] = a.Content, true
		cfg.TokenTypes[id] = TokenUserDefined
		if a.Special {
			cfg.TokenTypes[id] = TokenControl
		}
	}
	for id, ok := range set {
		if !ok {
			return nil, hfJSONError(file, "model.vocab", "id %d has no token", id)
		}
	}
	if m.UnkToken != nil {
		for b := range 256 {
			if _, ok := m.Vocab[string(byteToRune[b])]; !ok {
				return nil, hfJSONError(file, "model", "unk_token %v with byte %#02x missing from the vocab is not supported", m.UnkToken, b)
			}
		}
	}

	cfg.Merges = make([]string, len(m.Merges))
	for i, raw := range m.Merges {
		var s string
		var pair []string
		switch {
		case json.Unmarshal(raw, &s) == nil:
		case json.Unmarshal(raw, &pair) == nil && len(pair) == 2:
			if strings.Contains(pair[0], " ") || strings.Contains(pair[1], " ") {
				return nil, hfJSONError(file, "model.merges", "merge %d %q contains a space", i, pair)
			}
			s = pair[0] + " " + pair[1]
		default:
			return nil, hfJSONError(file, "model.merges", "merge %d is %s, want \"a b\" or [\"a\", \"b\"]", i, raw)
		}
		cfg.Merges[i] = s
	}

	if !isNull(doc.Normalizer) {
		return nil, hfJSONError(file, "normalizer", "%s is not supported (only null)", describe(doc.Normalizer))
	}
	var err error
	if cfg.Pre, err = preFromHF(doc.PreTokenizer); err != nil {
		return nil, fmt.Errorf("%s: pre_tokenizer: %w", file, err)
	}
	if !isNull(doc.Decoder) {
		var d struct{ Type string }
		if json.Unmarshal(doc.Decoder, &d) != nil || d.Type != "ByteLevel" {
			return nil, hfJSONError(file, "decoder", "%s is not supported (supported: ByteLevel)", describe(doc.Decoder))
		}
	}
	tmplBOS, err := templateBOS(doc.PostProcessor)
	if err != nil {
		return nil, fmt.Errorf("%s: post_processor: %w", file, err)
	}
	if tmplBOS >= n {
		return nil, hfJSONError(file, "post_processor", "special token id %d is out of range", tmplBOS)
	}
	cfg.AddBOS = tmplBOS >= 0
	cfg.BOS = int32(tmplBOS)

	if len(bytes.TrimSpace(tokenizerConfigJSON)) > 0 {
		if err := applyHFConfig(&cfg, tokenizerConfigJSON); err != nil {
			return nil, err
		}
	}
	t, err := NewBPE(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return t, nil
}

func isNull(raw json.RawMessage) bool {
	s := bytes.TrimSpace(raw)
	return len(s) == 0 || bytes.Equal(s, []byte("null"))
}

// describe names a JSON section by its "type", or shows it when short.
func describe(raw json.RawMessage) string {
	var v struct{ Type string }
	if json.Unmarshal(raw, &v) == nil && v.Type != "" {
		return "type " + v.Type
	}
	if len(raw) > 80 {
		return string(raw[:80]) + "..."
	}
	return string(raw)
}

// hfPreTok is one tokenizers pre-tokenizer entry.
type hfPreTok struct {
	Type             string            `json:"type"`
	AddPrefixSpace   *bool             `json:"add_prefix_space"`
	UseRegex         *bool             `json:"use_regex"`
	IndividualDigits bool              `json:"individual_digits"`
	Pattern          map[string]string `json:"pattern"`
	Behavior         string            `json:"behavior"`
	Invert           bool              `json:"invert"`
	Pretokenizers    []json.RawMessage `json:"pretokenizers"`
}

// byteLevel checks a ByteLevel entry and returns its use_regex (tokenizers'
// defaults: add_prefix_space true, use_regex true).
func (p *hfPreTok) byteLevel() (bool, error) {
	if p.AddPrefixSpace == nil || *p.AddPrefixSpace {
		return false, fmt.Errorf("ByteLevel with add_prefix_space (the default when absent) is not supported")
	}
	return p.UseRegex == nil || *p.UseRegex, nil
}

// preFromHF maps a pre_tokenizer section to a pre-tokenizer name.
func preFromHF(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", fmt.Errorf("null is not supported (a byte-level BPE needs ByteLevel)")
	}
	var top hfPreTok
	if err := json.Unmarshal(raw, &top); err != nil {
		return "", err
	}
	steps := []hfPreTok{top}
	if top.Type == "Sequence" {
		steps = steps[:0]
		for _, r := range top.Pretokenizers {
			var p hfPreTok
			if err := json.Unmarshal(r, &p); err != nil {
				return "", err
			}
			steps = append(steps, p)
		}
	}
	types := make([]string, len(steps))
	for i, p := range steps {
		types[i] = p.Type
	}
	unsupported := fmt.Errorf("%s is not supported (supported: ByteLevel, Digits+ByteLevel, Split+ByteLevel with the GPT-2, Llama 3 or Qwen2 regex)", strings.Join(types, "+"))
	if len(steps) == 0 || steps[len(steps)-1].Type != "ByteLevel" {
		return "", unsupported
	}
	useRegex, err := steps[len(steps)-1].byteLevel()
	if err != nil {
		return "", err
	}
	switch len(steps) {
	case 1:
		if !useRegex {
			return "", fmt.Errorf("ByteLevel without use_regex and without a Split is not supported")
		}
		return "gpt2", nil
	case 2:
		p := steps[0]
		switch p.Type {
		case "Digits":
			if !p.IndividualDigits || !useRegex {
				return "", fmt.Errorf("Digits+ByteLevel is supported only with individual_digits and use_regex")
			}
			return "smollm-digits", nil
		case "Split":
			if p.Behavior != "Isolated" || p.Invert || useRegex {
				return "", fmt.Errorf("Split+ByteLevel is supported only with behavior Isolated, invert false and ByteLevel use_regex false")
			}
			re, ok := p.Pattern["Regex"]
			if !ok || len(p.Pattern) != 1 {
				return "", fmt.Errorf("Split pattern %v is not supported (only a Regex)", p.Pattern)
			}
			name, ok := splitPatterns[re]
			if !ok {
				return "", fmt.Errorf("Split regex %q is not supported (supported: the GPT-2, Llama 3 and Qwen2 regexes)", re)
			}
			return name, nil
		}
	}
	return "", unsupported
}

// templateBOS returns the id of the special token a TemplateProcessing
// post_processor puts before the single sequence, or -1.
func templateBOS(raw json.RawMessage) (int64, error) {
	if isNull(raw) {
		return -1, nil
	}
	var pp struct {
		Type          string                       `json:"type"`
		Single        []map[string]json.RawMessage `json:"single"`
		SpecialTokens map[string]struct {
			IDs []int64 `json:"ids"`
		} `json:"special_tokens"`
	}
	if err := json.Unmarshal(raw, &pp); err != nil {
		return -1, err
	}
	if pp.Type != "TemplateProcessing" || len(pp.Single) == 0 {
		return -1, nil
	}
	st, ok := pp.Single[0]["SpecialToken"]
	if !ok {
		return -1, nil
	}
	var sp struct{ ID string }
	if err := json.Unmarshal(st, &sp); err != nil {
		return -1, err
	}
	tok, ok := pp.SpecialTokens[sp.ID]
	if !ok || len(tok.IDs) != 1 {
		return -1, fmt.Errorf("special token %q of the single template is not one id in special_tokens", sp.ID)
	}
	return tok.IDs[0], nil
}

// applyHFConfig reads tokenizer_config.json's add_bos_token, bos_token and
// eos_token into cfg.
func applyHFConfig(cfg *BPEConfig, b []byte) error {
	const file = "tokenizer_config.json"
	var c struct {
		AddBOS   *bool           `json:"add_bos_token"`
		BOSToken json.RawMessage `json:"bos_token"`
		EOSToken json.RawMessage `json:"eos_token"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return fmt.Errorf("%s: %w", file, err)
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
		for i, tok := range cfg.Tokens {
			if tok == s && (id < 0 || cfg.TokenTypes[i] == TokenControl) {
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
		return err
	}
	eos, _, err := lookup("eos_token", c.EOSToken)
	if err != nil {
		return err
	}
	if hasBOS {
		cfg.BOS = bos
	}
	cfg.EOS = eos
	if c.AddBOS != nil {
		cfg.AddBOS = *c.AddBOS
	}
	if cfg.AddBOS && cfg.BOS < 0 {
		return hfJSONError(file, "add_bos_token", "true, but no bos_token is set")
	}
	return nil
}
