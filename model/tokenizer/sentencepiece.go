package tokenizer

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// SentencePieceConfig describes a SentencePiece-style BPE tokenizer (Llama 2,
// Mistral, Gemma): a BPE over Unicode characters with merges by rank, byte
// fallback to <0xNN> tokens and an unknown token, as tokenizer.json's BPE
// model holds it with byte_fallback, or as transformers builds one from a
// GGUF whose tokenizer.ggml.model is "llama".
type SentencePieceConfig struct {
	// Tokens are the vocabulary strings in id order ("▁the", "<0x0A>", ...).
	Tokens []string
	// Merges are the merge rules in priority order, each a pair of tokens
	// whose concatenation is a token too.
	Merges [][2]string
	// TokenTypes are GGUF token types per id; control (3) and user-defined
	// (4) tokens are added tokens, cut out of the raw text whole (leftmost,
	// longest) before normalization. nil means all normal.
	TokenTypes []int32
	// Unk is the unknown token's id, or -1: a character that is neither a
	// token nor (with ByteFallback) spelt by <0xNN> tokens becomes Unk, or is
	// dropped when there is none.
	Unk int32
	// FuseUnk merges consecutive unknown characters into one Unk.
	FuseUnk bool
	// ByteFallback spells a character that is not a token by the <0xNN>
	// tokens of its UTF-8 bytes (when all of them exist).
	ByteFallback bool
	// IgnoreMerges makes a piece that is a token that token without merging.
	IgnoreMerges bool
	// Normalizer is applied to the text between added tokens (Llama 2:
	// Prepend "▁" then Replace " " by "▁"; Gemma: Replace only).
	Normalizer []NormalizerStep
	// PreTokenizer splits the normalized text into pieces that are merged
	// separately; nil means one piece.
	PreTokenizer []PreTokenizerStep
	// Decoder turns tokens back into text (Llama 2: Replace "▁" by " ",
	// ByteFallback, Fuse, Strip one leading space).
	Decoder []DecoderStep
	// BOS and EOS are special ids, -1 when absent.
	BOS, EOS int32
	// AddBOS and AddEOS say whether BOS is prepended and EOS appended by
	// default.
	AddBOS, AddEOS bool
}

// PreTokenizerStep is one Hugging Face tokenizers pre-tokenizer of a
// SentencePiece-style tokenizer (tokenizers' pre_tokenizers/*.rs). Type is:
//
//	"Metaspace"  every " " becomes Replacement; PrependScheme "always" puts
//	             Replacement before a piece that does not start with it,
//	             "first" does so only for the piece at the start of the input
//	             text, "never" not at all; Split then cuts before every
//	             Replacement (merged with the next piece).
//	"Split"      cuts at every occurrence of the literal Pattern; Behavior
//	             (Removed, Isolated, MergedWithPrevious, MergedWithNext,
//	             Contiguous) says where the matched text goes.
type PreTokenizerStep struct {
	Type          string
	Replacement   string
	PrependScheme string
	Split         bool
	Pattern       string
	Behavior      string
}

// DecoderStep is one Hugging Face tokenizers decoder (decoders/*.rs),
// applied in order to the list of token strings. Type is:
//
//	"Replace"       every Pattern in each token becomes Content
//	"ByteFallback"  runs of <0xNN> tokens become their bytes as text when
//	                valid UTF-8, else one U+FFFD per byte
//	"Fuse"          all tokens are joined into one
//	"Strip"         removes up to Start leading and Stop trailing Content
//	                characters from each token
//	"Metaspace"     Replacement becomes " ", except in the first token when
//	                PrependScheme is not "never", where it is removed
type DecoderStep struct {
	Type          string
	Pattern       string
	Content       string
	Start, Stop   int
	Replacement   string
	PrependScheme string
}

// SentencePiece is a SentencePiece-style BPE tokenizer that encodes exactly
// as Hugging Face tokenizers does with such a tokenizer.json: added tokens
// are cut out of the raw text first (leftmost, longest match), the text
// between them is normalized and pre-tokenized, and each piece starts as one
// symbol per character (the character's token; else its <0xNN> byte tokens
// with ByteFallback; else Unk) and is merged by rank, lowest rank (then
// leftmost) first, until no merge applies (tokenizers models/bpe/model.rs
// merge_word and word.rs merge_all). It is safe for concurrent use.
type SentencePiece struct {
	cfg    SentencePieceConfig
	vocab  map[string]int32
	merges mergeTable
	// byteID is the id of each byte's <0xNN> token, or -1.
	byteID [256]int32
	added  addedMatcher

	mu    sync.RWMutex
	cache map[string][]int32
}

var _ Tokenizer = (*SentencePiece)(nil)

// byteToken is the <0xNN> spelling of byte b (tokenizers' format "<{:#04X}>").
func byteToken(b byte) string { return fmt.Sprintf("<0x%02X>", b) }

// NewSentencePiece builds a SentencePiece-style BPE tokenizer. It returns an
// error for TokenTypes whose length differs from Tokens, special ids (Unk,
// BOS, EOS) out of range, AddBOS/AddEOS without the id, merges whose parts
// or concatenation are not tokens (as tokenizers' BpeBuilder), and unknown
// normalizer, pre-tokenizer or decoder steps. Duplicate token strings
// resolve to the last id.
func NewSentencePiece(cfg SentencePieceConfig) (*SentencePiece, error) {
	if cfg.TokenTypes != nil && len(cfg.TokenTypes) != len(cfg.Tokens) {
		return nil, fmt.Errorf("tokenizer: %d token types for %d tokens", len(cfg.TokenTypes), len(cfg.Tokens))
	}
	for _, sp := range []struct {
		name string
		id   int32
	}{{"unknown token", cfg.Unk}, {"BOS", cfg.BOS}, {"EOS", cfg.EOS}} {
		if sp.id < -1 || int(sp.id) >= len(cfg.Tokens) {
			return nil, fmt.Errorf("tokenizer: %s id %d out of range [-1, %d)", sp.name, sp.id, len(cfg.Tokens))
		}
	}
	if cfg.AddBOS && cfg.BOS < 0 {
		return nil, errors.New("tokenizer: AddBOS set without a BOS id")
	}
	if cfg.AddEOS && cfg.EOS < 0 {
		return nil, errors.New("tokenizer: AddEOS set without an EOS id")
	}
	if err := checkNormalizer(cfg.Normalizer); err != nil {
		return nil, err
	}
	if err := checkPreTokenizer(cfg.PreTokenizer); err != nil {
		return nil, err
	}
	if err := checkDecoder(cfg.Decoder); err != nil {
		return nil, err
	}
	t := &SentencePiece{
		cfg:    cfg,
		vocab:  make(map[string]int32, len(cfg.Tokens)),
		merges: make(mergeTable, len(cfg.Merges)),
		cache:  make(map[string][]int32),
	}
	for i, tok := range cfg.Tokens {
		t.vocab[tok] = int32(i)
	}
	var buf []byte
	for r, m := range cfg.Merges {
		ia, oka := t.vocab[m[0]]
		ib, okb := t.vocab[m[1]]
		buf = append(append(buf[:0], m[0]...), m[1]...)
		im, okm := t.vocab[string(buf)]
		if !oka || !okb || !okm {
			return nil, fmt.Errorf("tokenizer: merge %d %q uses a token missing from the vocabulary", r, m)
		}
		t.merges[pairKey(ia, ib)] = merge{rank: int32(r), id: im}
	}
	for b := range 256 {
		t.byteID[b] = -1
		if id, ok := t.vocab[byteToken(byte(b))]; ok {
			t.byteID[b] = id
		}
	}
	if cfg.TokenTypes != nil {
		for i, tok := range cfg.Tokens {
			if ty := cfg.TokenTypes[i]; (ty == TokenControl || ty == TokenUserDefined) && t.vocab[tok] == int32(i) {
				t.added.add(tok, int32(i))
			}
		}
	}
	return t, nil
}

// checkPreTokenizer returns an error for an unsupported step.
func checkPreTokenizer(steps []PreTokenizerStep) error {
	for i, st := range steps {
		switch st.Type {
		case "Metaspace":
			if utf8.RuneCountInString(st.Replacement) != 1 {
				return fmt.Errorf("tokenizer: pre-tokenizer %d: Metaspace replacement %q is not one character", i, st.Replacement)
			}
			switch st.PrependScheme {
			case "always", "first", "never":
			default:
				return fmt.Errorf("tokenizer: pre-tokenizer %d: Metaspace prepend_scheme %q is not supported (supported: always, first, never)", i, st.PrependScheme)
			}
		case "Split":
			if st.Pattern == "" {
				return fmt.Errorf("tokenizer: pre-tokenizer %d: Split with an empty pattern", i)
			}
			switch st.Behavior {
			case "Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous":
			default:
				return fmt.Errorf("tokenizer: pre-tokenizer %d: Split behavior %q is not supported", i, st.Behavior)
			}
		default:
			return fmt.Errorf("tokenizer: pre-tokenizer %d: type %q is not supported (supported: Metaspace, Split with a String pattern)", i, st.Type)
		}
	}
	return nil
}

// checkDecoder returns an error for an unsupported step.
func checkDecoder(steps []DecoderStep) error {
	for i, st := range steps {
		switch st.Type {
		case "ByteFallback", "Fuse":
		case "Replace":
			if st.Pattern == "" {
				return fmt.Errorf("tokenizer: decoder %d: Replace with an empty pattern", i)
			}
		case "Strip":
			if utf8.RuneCountInString(st.Content) != 1 || st.Start < 0 || st.Stop < 0 {
				return fmt.Errorf("tokenizer: decoder %d: Strip needs one content character and non-negative start and stop", i)
			}
		case "Metaspace":
			if utf8.RuneCountInString(st.Replacement) != 1 {
				return fmt.Errorf("tokenizer: decoder %d: Metaspace replacement %q is not one character", i, st.Replacement)
			}
		default:
			return fmt.Errorf("tokenizer: decoder %d: type %q is not supported (supported: Replace, ByteFallback, Fuse, Strip, Metaspace)", i, st.Type)
		}
	}
	return nil
}

// Encode returns the ids of text without BOS/EOS, as Hugging Face's
// tokenizer(text, add_special_tokens=False) does; added tokens in the text
// are still recognised. An invalid UTF-8 byte is one symbol, spelt by its
// <0xNN> token with byte fallback (Python strings cannot hold it, so there
// is no reference).
func (t *SentencePiece) Encode(text string) []int32 {
	ids := make([]int32, 0, len(text)/3+1)
	t.added.split(text, func(seg string, first bool) {
		ids = t.encodeText(seg, first, ids)
	}, func(id int32) { ids = append(ids, id) })
	return ids
}

// encodeText normalizes and pre-tokenizes s, a stretch of the input without
// added tokens (first when it starts the input), and appends its ids.
func (t *SentencePiece) encodeText(s string, first bool, ids []int32) []int32 {
	if t.cfg.Normalizer != nil {
		s = normalize(t.cfg.Normalizer, s)
	}
	if s == "" {
		return ids
	}
	if t.cfg.PreTokenizer == nil {
		return t.encodePiece(s, ids)
	}
	for _, p := range preTokenize(t.cfg.PreTokenizer, s, first) {
		ids = t.encodePiece(p, ids)
	}
	return ids
}

// preTokenize applies steps to s; first says that s starts the input text.
func preTokenize(steps []PreTokenizerStep, s string, first bool) []string {
	type piece struct {
		s     string
		first bool
	}
	pieces := []piece{{s, first}}
	for _, st := range steps {
		var next []piece
		for _, p := range pieces {
			switch st.Type {
			case "Metaspace":
				v := strings.ReplaceAll(p.s, " ", st.Replacement)
				if !strings.HasPrefix(v, st.Replacement) && (st.PrependScheme == "always" || st.PrependScheme == "first" && p.first) {
					v = st.Replacement + v
				}
				if !st.Split {
					next = append(next, piece{v, p.first})
					continue
				}
				for i, q := range splitLiteral(v, st.Replacement, "MergedWithNext") {
					next = append(next, piece{q, p.first && i == 0})
				}
			case "Split":
				for i, q := range splitLiteral(p.s, st.Pattern, st.Behavior) {
					next = append(next, piece{q, p.first && i == 0})
				}
			}
		}
		pieces = next
	}
	out := make([]string, 0, len(pieces))
	for _, p := range pieces {
		if p.s != "" {
			out = append(out, p.s)
		}
	}
	return out
}

// splitLiteral cuts s at the non-overlapping occurrences of pat, as
// tokenizers' NormalizedString::split does with a string pattern and the
// behavior named (see PreTokenizerStep). Empty pieces are not returned.
func splitLiteral(s, pat, behavior string) []string {
	type span struct {
		a, b  int
		match bool
	}
	var spans []span
	prev := 0
	for i := 0; i <= len(s)-len(pat); {
		if s[i:i+len(pat)] != pat {
			i++
			continue
		}
		if i > prev {
			spans = append(spans, span{prev, i, false})
		}
		spans = append(spans, span{i, i + len(pat), true})
		i += len(pat)
		prev = i
	}
	if prev < len(s) {
		spans = append(spans, span{prev, len(s), false})
	}
	var out []span
	switch behavior {
	case "Removed":
		for _, sp := range spans {
			if !sp.match {
				out = append(out, sp)
			}
		}
	case "Isolated":
		out = spans
	case "MergedWithPrevious":
		prevMatch := false
		for _, sp := range spans {
			if sp.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].b = sp.b
			} else {
				out = append(out, sp)
			}
			prevMatch = sp.match
		}
	case "MergedWithNext":
		prevMatch := false
		for i := len(spans) - 1; i >= 0; i-- {
			sp := spans[i]
			if sp.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].a = sp.a
			} else {
				out = append(out, sp)
			}
			prevMatch = sp.match
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	case "Contiguous":
		prevMatch := false
		for _, sp := range spans {
			if sp.match && prevMatch {
				out[len(out)-1].b = sp.b
			} else {
				out = append(out, sp)
			}
			prevMatch = sp.match
		}
	}
	res := make([]string, 0, len(out))
	for _, sp := range out {
		if sp.b > sp.a {
			res = append(res, s[sp.a:sp.b])
		}
	}
	return res
}

// encodePiece appends the ids of one pre-tokenized piece, through the cache.
func (t *SentencePiece) encodePiece(p string, ids []int32) []int32 {
	if len(p) <= maxCachedPiece {
		t.mu.RLock()
		c, ok := t.cache[p]
		t.mu.RUnlock()
		if ok {
			return append(ids, c...)
		}
	}
	n := len(ids)
	ids = t.bpe(p, ids)
	if len(p) <= maxCachedPiece {
		c := append([]int32(nil), ids[n:]...)
		t.mu.Lock()
		if len(t.cache) >= maxCacheEntries {
			clear(t.cache)
		}
		t.cache[p] = c
		t.mu.Unlock()
	}
	return ids
}

// bpe appends the ids of piece p after merging. The initial symbols follow
// tokenizers' merge_word, including its order quirk: a pending unknown run
// is written only when the next known character (or the end) comes, so
// byte-fallback tokens in between precede it.
func (t *SentencePiece) bpe(p string, ids []int32) []int32 {
	if t.cfg.IgnoreMerges {
		if id, ok := t.vocab[p]; ok {
			return append(ids, id)
		}
	}
	n := len(ids)
	unk := false
	for i := 0; i < len(p); {
		_, w := utf8.DecodeRuneInString(p[i:])
		ch := p[i : i+w]
		i += w
		if id, ok := t.vocab[ch]; ok {
			if unk {
				ids = append(ids, t.cfg.Unk)
				unk = false
			}
			ids = append(ids, id)
			continue
		}
		if t.cfg.ByteFallback && t.hasBytes(ch) {
			for k := 0; k < len(ch); k++ {
				ids = append(ids, t.byteID[ch[k]])
			}
			continue
		}
		if t.cfg.Unk >= 0 {
			if unk && !t.cfg.FuseUnk {
				ids = append(ids, t.cfg.Unk)
			}
			unk = true
		}
	}
	if unk {
		ids = append(ids, t.cfg.Unk)
	}
	w := t.merges.apply(ids[n:])
	return ids[:n+len(w)]
}

// hasBytes reports whether every byte of ch has a <0xNN> token.
func (t *SentencePiece) hasBytes(ch string) bool {
	for k := 0; k < len(ch); k++ {
		if t.byteID[ch[k]] < 0 {
			return false
		}
	}
	return true
}

// Decode maps ids back to text as Hugging Face tokenizers' decode(ids,
// skip_special_tokens=False) does: each id's token string (ids out of range
// are skipped) goes through the decoder steps and the results are joined.
func (t *SentencePiece) Decode(ids []int32) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		if id >= 0 && int(id) < len(t.cfg.Tokens) {
			toks = append(toks, t.cfg.Tokens[id])
		}
	}
	return strings.Join(decode(t.cfg.Decoder, toks), "")
}

// decode applies decoder steps to tokens.
func decode(steps []DecoderStep, toks []string) []string {
	for _, st := range steps {
		switch st.Type {
		case "Replace":
			for i := range toks {
				toks[i] = strings.ReplaceAll(toks[i], st.Pattern, st.Content)
			}
		case "ByteFallback":
			toks = decodeByteFallback(toks)
		case "Fuse":
			toks = []string{strings.Join(toks, "")}
		case "Strip":
			c, _ := utf8.DecodeRuneInString(st.Content)
			for i, tok := range toks {
				for k := 0; k < st.Start && strings.HasPrefix(tok, st.Content); k++ {
					tok = tok[len(st.Content):]
				}
				for k := 0; k < st.Stop; k++ {
					r, w := utf8.DecodeLastRuneInString(tok)
					if r != c || w == 0 {
						break
					}
					tok = tok[:len(tok)-w]
				}
				toks[i] = tok
			}
		case "Metaspace":
			for i, tok := range toks {
				with := " "
				if i == 0 && st.PrependScheme != "never" {
					with = ""
				}
				toks[i] = strings.ReplaceAll(tok, st.Replacement, with)
			}
		}
	}
	return toks
}

// decodeByteFallback is tokenizers' ByteFallback decoder.
func decodeByteFallback(toks []string) []string {
	out := make([]string, 0, len(toks))
	var pend []byte
	flush := func() {
		if len(pend) == 0 {
			return
		}
		if utf8.Valid(pend) {
			out = append(out, string(pend))
		} else {
			for range pend {
				out = append(out, "\uFFFD")
			}
		}
		pend = pend[:0]
	}
	for _, tok := range toks {
		if b, ok := parseByteToken(tok); ok {
			pend = append(pend, b)
			continue
		}
		flush()
		out = append(out, tok)
	}
	flush()
	return out
}

// parseByteToken parses "<0xNN>" (tokenizers accepts either hex case).
func parseByteToken(tok string) (byte, bool) {
	if len(tok) != 6 || !strings.HasPrefix(tok, "<0x") || tok[5] != '>' {
		return 0, false
	}
	var v byte
	for _, c := range []byte(tok[3:5]) {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | (c - '0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | (c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | (c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return v, true
}

// VocabSize is the number of ids.
func (t *SentencePiece) VocabSize() int { return len(t.cfg.Tokens) }

// BOS is the beginning-of-sequence id, or -1.
func (t *SentencePiece) BOS() int32 { return t.cfg.BOS }

// EOS is the end-of-sequence id, or -1.
func (t *SentencePiece) EOS() int32 { return t.cfg.EOS }

// AddBOS reports whether the model's tokenizer prepends BOS by default.
func (t *SentencePiece) AddBOS() bool { return t.cfg.AddBOS }

// AddEOS reports whether the model's tokenizer appends EOS by default.
func (t *SentencePiece) AddEOS() bool { return t.cfg.AddEOS }

// Config returns the configuration the tokenizer was built from. The slices
// are shared and must not be modified.
func (t *SentencePiece) Config() SentencePieceConfig { return t.cfg }
