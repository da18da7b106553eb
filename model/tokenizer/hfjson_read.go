package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
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
// continuing_subword_prefix or end_of_word_suffix and no byte_fallback; an unk_token
// is accepted only when all 256 byte symbols are in the vocab, so it can
// never be produced. Its added_tokens become control tokens (special) or
// user-defined ones (not special); they must be written in the byte-level
// alphabet (printable ASCII but space, and Latin-1) without lstrip, rstrip
// or single_word. The pre_tokenizer maps to a
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
// The normalizer may be null or NFC/NFD/NFKC/NFKD, Prepend, Replace or a
// Sequence of them (Qwen2's NFC); model.ignore_merges (Llama 3) is honoured.
// BOS, EOS, AddBOS and AddEOS are decided as SentencePieceFromHFJSON
// describes (the post_processor says what is added; tokenizer_config.json
// names BOS and EOS). Token types are 3 (control) for special added tokens,
// 4 (user defined) for other added tokens and 1 (normal) for the rest.
//
// Errors name the file and section, e.g. "tokenizer.json: pre_tokenizer:
// ...", for malformed JSON, anything listed above as unsupported, ids
// that leave holes or repeat with different tokens, merges of tokens not in
// the vocab, and special tokens that are not in it.
func FromHFJSON(tokenizerJSON, tokenizerConfigJSON []byte) (*BPE, error) {
	doc, err := parseHFDoc(tokenizerJSON)
	if err != nil {
		return nil, err
	}
	return byteLevelFromDoc(doc, tokenizerConfigJSON)
}

// hfModel is tokenizer.json's "model" section.
type hfModel struct {
	Type                    *string         `json:"type"`
	Dropout                 any             `json:"dropout"`
	UnkToken                any             `json:"unk_token"`
	ContinuingSubwordPrefix any             `json:"continuing_subword_prefix"`
	EndOfWordSuffix         any             `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	VocabRaw                json.RawMessage `json:"vocab"`
	MergesRaw               json.RawMessage `json:"merges"`

	// Vocab and Merges are parsed from VocabRaw and MergesRaw by
	// parseHFDoc, faster than encoding/json would (Gemma 3 has 262,144
	// tokens and 514,906 merges).
	Vocab  map[string]int64  `json:"-"`
	Merges []json.RawMessage `json:"-"`
}

// hfDoc is the part of tokenizer.json that FromHFJSON and LoadHFJSON read.
type hfDoc struct {
	AddedTokens   []hfAddedToken  `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         *hfModel        `json:"model"`
}

const hfFile = "tokenizer.json"

// parseHFDoc parses tokenizer.json and checks the parts of its BPE model
// that both tokenizer kinds share: the type, a vocab, no dropout, no
// continuing_subword_prefix or end_of_word_suffix.
func parseHFDoc(b []byte) (*hfDoc, error) {
	const file = hfFile
	var doc hfDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	m := doc.Model
	if m == nil {
		return nil, fmt.Errorf("%s: no model section", file)
	}
	if m.Type != nil && *m.Type != "BPE" {
		return nil, hfJSONError(file, "model", "type %q is not supported (supported: BPE)", *m.Type)
	}
	if isNull(m.VocabRaw) {
		return nil, hfJSONError(file, "model", "no vocab")
	}
	var ok bool
	if m.Vocab, ok = fastVocab(m.VocabRaw); !ok {
		if err := json.Unmarshal(m.VocabRaw, &m.Vocab); err != nil {
			return nil, hfJSONError(file, "model.vocab", "%v", err)
		}
	}
	if !isNull(m.MergesRaw) {
		if m.Merges, ok = splitArray(m.MergesRaw); !ok {
			if err := json.Unmarshal(m.MergesRaw, &m.Merges); err != nil {
				return nil, hfJSONError(file, "model.merges", "%v", err)
			}
		}
	}
	switch {
	case m.Dropout != nil:
		return nil, hfJSONError(file, "model", "dropout %v is not supported", m.Dropout)
	case m.ContinuingSubwordPrefix != nil && m.ContinuingSubwordPrefix != "":
		return nil, hfJSONError(file, "model", "continuing_subword_prefix %v is not supported", m.ContinuingSubwordPrefix)
	case m.EndOfWordSuffix != nil && m.EndOfWordSuffix != "":
		return nil, hfJSONError(file, "model", "end_of_word_suffix %v is not supported", m.EndOfWordSuffix)
	}
	return &doc, nil
}

// tokensByID lays out the vocab and the added tokens (over it) by id, with
// GGUF token types: 3 (control) for special added tokens, 4 (user defined)
// for other added tokens, 1 (normal) for the rest. check vets each added
// token. Ids must be dense.
func (doc *hfDoc) tokensByID(check func(a hfAddedToken) error) ([]string, []int32, error) {
	const file = hfFile
	m := doc.Model
	n := int64(0)
	for tok, id := range m.Vocab {
		if id < 0 || id >= 1<<31-1 {
			return nil, nil, hfJSONError(file, "model.vocab", "token %q has id %d", tok, id)
		}
		n = max(n, id+1)
	}
	for _, a := range doc.AddedTokens {
		if a.ID == nil || *a.ID < 0 {
			return nil, nil, hfJSONError(file, "added_tokens", "token %q has no valid id", a.Content)
		}
		n = max(n, int64(*a.ID)+1)
	}
	if n > int64(len(m.Vocab)+len(doc.AddedTokens)) {
		return nil, nil, hfJSONError(file, "model.vocab", "ids run to %d but only %d tokens are listed: ids without a token", n-1, len(m.Vocab)+len(doc.AddedTokens))
	}
	tokens, types := make([]string, n), make([]int32, n)
	set := make([]bool, n)
	conflict := false
	for tok, id := range m.Vocab {
		if set[id] {
			conflict = true
			break
		}
		tokens[id], types[id], set[id] = tok, TokenNormal, true
	}
	if conflict {
		// Found again in sorted order, so that the error does not depend on
		// map order.
		toks := make([]string, 0, len(m.Vocab))
		for tok := range m.Vocab {
			toks = append(toks, tok)
		}
		sort.Strings(toks)
		clear(set)
		for _, tok := range toks {
			id := m.Vocab[tok]
			if set[id] {
				return nil, nil, hfJSONError(file, "model.vocab", "id %d is given to both %q and %q", id, tokens[id], tok)
			}
			tokens[id], set[id] = tok, true
		}
	}
	for _, a := range doc.AddedTokens {
		id := *a.ID
		if set[id] && tokens[id] != a.Content {
			return nil, nil, hfJSONError(file, "added_tokens", "id %d is %q but the vocab has %q", id, a.Content, tokens[id])
		}
		switch {
		case a.Content == "":
			return nil, nil, hfJSONError(file, "added_tokens", "id %d has empty content", id)
		case a.LStrip || a.RStrip || a.SingleWord:
			return nil, nil, hfJSONError(file, "added_tokens", "%q (id %d): lstrip, rstrip and single_word are not supported", a.Content, id)
		}
		if err := check(a); err != nil {
			return nil, nil, err
		}
		tokens[id], set[id] = a.Content, true
		types[id] = TokenUserDefined
		if a.Special {
			types[id] = TokenControl
		}
	}
	for id, ok := range set {
		if !ok {
			return nil, nil, hfJSONError(file, "model.vocab", "id %d has no token", id)
		}
	}
	return tokens, types, nil
}

// merges parses model.merges, "a b" strings or ["a", "b"] pairs. A string
// splits at its first space (tokenizers: a space inside a part is then an
// error, as the merged token is not in the vocab).
func (doc *hfDoc) merges() ([][2]string, error) {
	const file = hfFile
	out := make([][2]string, len(doc.Model.Merges))
	for i, raw := range doc.Model.Merges {
		if a, b, ok := fastMerge(raw); ok {
			out[i] = [2]string{a, b}
			continue
		}
		var s string
		var pair []string
		switch {
		case json.Unmarshal(raw, &s) == nil:
			a, b, ok := strings.Cut(s, " ")
			if !ok || a == "" || b == "" || strings.Contains(b, " ") {
				return nil, hfJSONError(file, "model.merges", "merge %d %q is not two space-separated tokens", i, s)
			}
			out[i] = [2]string{a, b}
		case json.Unmarshal(raw, &pair) == nil && len(pair) == 2:
			out[i] = [2]string{pair[0], pair[1]}
		default:
			return nil, hfJSONError(file, "model.merges", "merge %d is %s, want \"a b\" or [\"a\", \"b\"]", i, raw)
		}
	}
	return out, nil
}

// skipBlank skips JSON whitespace.
func skipBlank(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString reads the JSON string starting at b[i] (a quote) and
// returns the index after its closing quote. Strings with escapes are
// decoded by encoding/json; ok is false for anything it rejects, for
// invalid UTF-8 and for raw control characters.
func plainString(b []byte, i int) (s string, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return "", 0, false
	}
	escaped := false
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			if escaped {
				if json.Unmarshal(b[i:j+1], &s) != nil {
					return "", 0, false
				}
				return s, j + 1, true
			}
			if !utf8.Valid(b[i+1 : j]) {
				return "", 0, false
			}
			return string(b[i+1 : j]), j + 1, true
		case c == '\\':
			escaped = true
			j++
		case c < 0x20:
			return "", 0, false
		}
	}
	return "", 0, false
}

// fastVocab parses a {"token": id, ...} object whose ids are plain
// integers; ok is false when encoding/json must
// decide. A repeated key keeps its last id, as encoding/json does.
func fastVocab(b []byte) (map[string]int64, bool) {
	i := skipBlank(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	m := make(map[string]int64, bytes.Count(b, []byte(`":`))+1)
	i = skipBlank(b, i+1)
	if i < len(b) && b[i] == '}' {
		return m, skipBlank(b, i+1) == len(b)
	}
	for {
		tok, j, ok := plainString(b, skipBlank(b, i))
		if !ok {
			return nil, false
		}
		j = skipBlank(b, j)
		if j >= len(b) || b[j] != ':' {
			return nil, false
		}
		j = skipBlank(b, j+1)
		neg := j < len(b) && b[j] == '-'
		if neg {
			j++
		}
		start := j
		var v int64
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			v = v*10 + int64(b[j]-'0')
			j++
		}
		if j == start || j-start > 15 || (b[start] == '0' && j-start > 1) {
			return nil, false
		}
		if neg {
			v = -v
		}
		m[tok] = v
		j = skipBlank(b, j)
		if j >= len(b) {
			return nil, false
		}
		switch b[j] {
		case ',':
			i = j + 1
		case '}':
			return m, skipBlank(b, j+1) == len(b)
		default:
			return nil, false
		}
	}
}

// splitArray splits a JSON array of strings or of arrays of strings (no
// nesting deeper) into its elements;
// ok is false when encoding/json must decide.
func splitArray(b []byte) ([]json.RawMessage, bool) {
	i := skipBlank(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, false
	}
	out := make([]json.RawMessage, 0, bytes.Count(b, []byte(",")))
	i = skipBlank(b, i+1)
	if i < len(b) && b[i] == ']' {
		return out, skipBlank(b, i+1) == len(b)
	}
	for {
		i = skipBlank(b, i)
		if i >= len(b) {
			return nil, false
		}
		start := i
		switch b[i] {
		case '"':
			_, j, ok := plainString(b, i)
			if !ok {
				return nil, false
			}
			i = j
		case '[':
			i = skipBlank(b, i+1)
			for i < len(b) && b[i] != ']' {
				_, j, ok := plainString(b, i)
				if !ok {
					return nil, false
				}
				i = skipBlank(b, j)
				if i < len(b) && b[i] == ',' {
					i = skipBlank(b, i+1)
				}
			}
			if i >= len(b) {
				return nil, false
			}
			i++
		default:
			return nil, false
		}
		out = append(out, b[start:i:i])
		i = skipBlank(b, i)
		if i >= len(b) {
			return nil, false
		}
		switch b[i] {
		case ',':
			i++
		case ']':
			return out, skipBlank(b, i+1) == len(b)
		default:
			return nil, false
		}
	}
}

// fastMerge parses a merge without escapes: "a b" or ["a","b"] (blanks
// allowed around the elements). ok is false when the slow path must decide.
func fastMerge(raw []byte) (a, b string, ok bool) {
	if bytes.IndexByte(raw, '\\') >= 0 {
		return "", "", false
	}
	raw = bytes.TrimSpace(raw)
	str := func(p []byte) (string, []byte, bool) {
		p = bytes.TrimLeft(p, " \t\r\n")
		if len(p) < 2 || p[0] != '"' {
			return "", nil, false
		}
		end := bytes.IndexByte(p[1:], '"')
		if end < 0 {
			return "", nil, false
		}
		s := p[1 : 1+end]
		if !utf8.Valid(s) {
			return "", nil, false
		}
		for _, c := range s {
			if c < 0x20 {
				return "", nil, false
			}
		}
		return string(s), bytes.TrimLeft(p[2+end:], " \t\r\n"), true
	}
	if len(raw) > 0 && raw[0] == '"' {
		s, rest, ok := str(raw)
		if !ok || len(rest) != 0 {
			return "", "", false
		}
		a, b, ok := strings.Cut(s, " ")
		if !ok || a == "" || b == "" || strings.Contains(b, " ") {
			return "", "", false
		}
		return a, b, true
	}
	if len(raw) < 2 || raw[0] != '[' || raw[len(raw)-1] != ']' {
		return "", "", false
	}
	a, rest, ok := str(raw[1 : len(raw)-1])
	if !ok || len(rest) == 0 || rest[0] != ',' {
		return "", "", false
	}
	b, rest, ok = str(rest[1:])
	if !ok || len(rest) != 0 {
		return "", "", false
	}
	return a, b, true
}

// byteLevelFromDoc builds a byte-level BPE from a parsed tokenizer.json.
func byteLevelFromDoc(doc *hfDoc, tokenizerConfigJSON []byte) (*BPE, error) {
	const file = hfFile
	m := doc.Model
	if m.ByteFallback {
		return nil, hfJSONError(file, "model", "byte_fallback is not supported (not a byte-level BPE)")
	}
	normalizer, err := parseNormalizer(doc.Normalizer)
	if err != nil {
		return nil, fmt.Errorf("%s: normalizer: %w", file, err)
	}
	tokens, types, err := doc.tokensByID(func(a hfAddedToken) error {
		if !inByteAlphabet(a.Content) {
			return hfJSONError(file, "added_tokens", "%q (id %d) has characters outside the byte-level alphabet (e.g. a space); matching it is not supported", a.Content, *a.ID)
		}
		return checkAddedNormalized(a, normalizer)
	})
	if err != nil {
		return nil, err
	}
	cfg := BPEConfig{Tokens: tokens, TokenTypes: types, BOS: -1, EOS: -1, IgnoreMerges: m.IgnoreMerges, Normalizer: normalizer}
	if m.UnkToken != nil {
		for b := range 256 {
			if _, ok := m.Vocab[string(byteToRune[b])]; !ok {
				return nil, hfJSONError(file, "model", "unk_token %v with byte %#02x missing from the vocab is not supported", m.UnkToken, b)
			}
		}
	}
	merges, err := doc.merges()
	if err != nil {
		return nil, err
	}
	cfg.Merges = make([]string, len(merges))
	for i, p := range merges {
		if strings.Contains(p[0], " ") || strings.Contains(p[1], " ") {
			return nil, hfJSONError(file, "model.merges", "merge %d %q contains a space", i, p)
		}
		cfg.Merges[i] = p[0] + " " + p[1]
	}
	if cfg.Pre, err = preFromHF(doc.PreTokenizer); err != nil {
		return nil, fmt.Errorf("%s: pre_tokenizer: %w", file, err)
	}
	if !isNull(doc.Decoder) {
		var d struct{ Type string }
		if json.Unmarshal(doc.Decoder, &d) != nil || d.Type != "ByteLevel" {
			return nil, hfJSONError(file, "decoder", "%s is not supported (supported: ByteLevel)", describe(doc.Decoder))
		}
	}
	sp, err := resolveSpecials(tokens, types, doc.PostProcessor, tokenizerConfigJSON)
	if err != nil {
		return nil, err
	}
	cfg.BOS, cfg.EOS, cfg.AddBOS, cfg.AddEOS = sp.bos, sp.eos, sp.addBOS, sp.addEOS
	t, err := NewBPE(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return t, nil
}

// checkAddedNormalized rejects an added token with normalized true whose
// content the normalizer changes: tokenizers would look for the normalized
// content in the normalized text, which is not supported. Any other added
// token is matched in the raw text, as tokenizers does.
func checkAddedNormalized(a hfAddedToken, steps []NormalizerStep) error {
	if a.Normalized && steps != nil && normalize(steps, a.Content) != a.Content {
		return hfJSONError(hfFile, "added_tokens", "%q (id %d) is normalized and the normalizer changes it; matching it is not supported", a.Content, *a.ID)
	}
	return nil
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
