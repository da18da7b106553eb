package tokenizer

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

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
	// AddEOS says whether EOS is appended by default.
	AddEOS bool
	// IgnoreMerges is tokenizers' BPE ignore_merges (Llama 3): a piece whose
	// byte-level spelling is a token becomes that token without merging.
	IgnoreMerges bool
	// Normalizer is applied to the text between added tokens before the
	// pre-tokenizer (e.g. Qwen2's NFC); nil means none.
	Normalizer []NormalizerStep
}

// GGUF token types (llama.cpp's llama_token_type).
const (
	TokenNormal      = 1
	TokenUnknown     = 2
	TokenControl     = 3
	TokenUserDefined = 4
	TokenUnused      = 5
	TokenByte        = 6
)

// ErrUnknownPre is wrapped by NewBPE for a pre-tokenizer name it does not know.
var ErrUnknownPre = errors.New("tokenizer: unknown pre-tokenizer")

// preTokenizer describes one named pre-tokenizer.
type preTokenizer struct {
	split func(s string, dst []string) []string
	// hfPre is the tokenizer.json "pre_tokenizer" value that does the same.
	hfPre func() any
}

const (
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Pattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

func hfByteLevel(useRegex bool) map[string]any {
	return map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": useRegex}
}

func hfSplitByteLevel(pattern string) func() any {
	return func() any {
		return map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": pattern}, "behavior": "Isolated", "invert": false},
			hfByteLevel(false),
		}}
	}
}

var (
	gpt2Pre   = preTokenizer{split: splitGPT2, hfPre: func() any { return hfByteLevel(true) }}
	digitsPre = preTokenizer{split: splitDigitsGPT2, hfPre: func() any {
		return map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Digits", "individual_digits": true},
			hfByteLevel(true),
		}}
	}}
	llama3Pre = preTokenizer{split: func(s string, dst []string) []string { return splitLlama3(s, dst, 3) },
		hfPre: hfSplitByteLevel(llama3Pattern)}
	qwen2Pre = preTokenizer{split: func(s string, dst []string) []string { return splitLlama3(s, dst, 1) },
		hfPre: hfSplitByteLevel(qwen2Pattern)}
)

// preTokenizers maps GGUF tokenizer.ggml.pre names to pre-tokenizers, as the
// project's reference, Hugging Face transformers (v5.24,
// integrations/gguf/gguf_tokenizer_mapping.py) loading a GGUF whose
// tokenizer.ggml.model is "gpt2", interprets them: the Llama 3 and Qwen2
// names get a Split with their pattern followed by ByteLevel(use_regex=false),
// every other name plain ByteLevel(use_regex=true), i.e. the GPT-2 pattern.
// No normalizer (not even Qwen2's NFC) and no ignore_merges are set.
//
// So "smollm" is the GPT-2 pattern: digit runs stay one piece (" 2024"),
// although SmolLM's own tokenizer.json and llama.cpp's "smollm" split every
// digit first; that variant is "smollm-digits". SmolLM's merges hold no digit
// merges, so the two differ only around whitespace before digits ("a  1").
var preTokenizers = map[string]preTokenizer{
	"gpt2":          gpt2Pre,
	"default":       gpt2Pre,
	"smollm":        gpt2Pre,
	"starcoder":     gpt2Pre,
	"refact":        gpt2Pre,
	"olmo":          gpt2Pre,
	"mpt":           gpt2Pre,
	"phi-2":         gpt2Pre,
	"stablelm2":     gpt2Pre,
	"smollm-digits": digitsPre,

	"llama3":       llama3Pre,
	"llama-v3":     llama3Pre,
	"llama-bpe":    llama3Pre,
	"falcon3":      llama3Pre,
	"falcon-h1":    llama3Pre,
	"pixtral":      llama3Pre,
	"midm-2.0":     llama3Pre,
	"lfm2":         llama3Pre,
	"jina-v5-nano": llama3Pre,
	"dbrx":         llama3Pre,
	"smaug-bpe":    llama3Pre,

	"qwen2":            qwen2Pre,
	"deepseek-r1-qwen": qwen2Pre,
	"kormo":            qwen2Pre,
	"f2llmv2":          qwen2Pre,
	"megrez":           qwen2Pre,
}

// PreTokenizers lists the pre-tokenizer names NewBPE accepts, sorted.
func PreTokenizers() []string {
	names := make([]string, 0, len(preTokenizers))
	for n := range preTokenizers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// maxCachedPiece is the longest piece (in bytes) whose ids are cached.
const maxCachedPiece = 256

// maxCacheEntries bounds the per-piece cache; it is emptied when full.
const maxCacheEntries = 1 << 17

// BPE is a byte-level BPE tokenizer that encodes exactly as Hugging Face
// tokenizers does with a ByteLevel BPE model: added (control and
// user-defined) tokens are cut out of the raw text first (leftmost, longest
// match), the rest is normalized (BPEConfig.Normalizer) and split by the
// pre-tokenizer, and each piece is mapped to GPT-2 byte-level symbols and,
// unless IgnoreMerges finds it whole in the vocabulary, merged by rank,
// lowest rank (then leftmost) first, until no merge applies. It is safe for
// concurrent use.
type BPE struct {
	cfg    BPEConfig
	pre    preTokenizer
	vocab  map[string]int32
	merges mergeTable
	// byteID is the id of each byte's single-symbol token, or -1.
	byteID [256]int32
	// added finds the added tokens in the raw text.
	added addedMatcher
	// decoded holds each id's bytes for Decode.
	decoded [][]byte

	mu    sync.RWMutex
	cache map[string][]int32
}

// NewBPE builds a byte-level BPE tokenizer. It returns an error for an
// unknown pre-tokenizer, for TokenTypes whose length differs from Tokens, for
// BOS/EOS out of range, and for malformed merges (not two space-separated
// parts, or a part or the merged token missing from Tokens), as Hugging
// Face's BPE builder does. An empty Pre means "gpt2".
//
// Tokens not written in the byte-level alphabet are filed under their
// byte-level spelling, and only control/user-defined tokens written in it are
// matched whole, as transformers does for a GGUF. Duplicate token strings
// resolve to the last id, like the dict that transformers builds. Bytes whose
// symbol is missing from Tokens are dropped, as tokenizers' BPE does without
// an unknown token or byte fallback (how transformers builds it from a GGUF).
func NewBPE(cfg BPEConfig) (*BPE, error) {
	name := cfg.Pre
	if name == "" {
		name = "gpt2"
	}
	pre, ok := preTokenizers[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (supported: %s)", ErrUnknownPre, cfg.Pre, strings.Join(PreTokenizers(), ", "))
	}
	if cfg.TokenTypes != nil && len(cfg.TokenTypes) != len(cfg.Tokens) {
		return nil, fmt.Errorf("tokenizer: %d token types for %d tokens", len(cfg.TokenTypes), len(cfg.Tokens))
	}
	for _, sp := range []struct {
		name string
		id   int32
	}{{"BOS", cfg.BOS}, {"EOS", cfg.EOS}} {
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
	t := &BPE{
		cfg:    cfg,
		pre:    pre,
		vocab:  make(map[string]int32, len(cfg.Tokens)),
		merges: make(mergeTable, len(cfg.Merges)),
		cache:  make(map[string][]int32),
	}
	for i, tok := range cfg.Tokens {
		t.vocab[vocabKey(tok)] = int32(i)
	}
	for r, m := range cfg.Merges {
		a, b, ok := strings.Cut(m, " ")
		if !ok || a == "" || b == "" || strings.Contains(b, " ") {
			return nil, fmt.Errorf("tokenizer: merge %d %q is not two space-separated tokens", r, m)
		}
		ia, oka := t.vocab[a]
		ib, okb := t.vocab[b]
		im, okm := t.vocab[a+b]
		if !oka || !okb || !okm {
			return nil, fmt.Errorf("tokenizer: merge %d %q uses a token missing from the vocabulary", r, m)
		}
		t.merges[pairKey(ia, ib)] = merge{rank: int32(r), id: im}
	}
	for b := 0; b < 256; b++ {
		t.byteID[b] = -1
		if id, ok := t.vocab[string(byteToRune[b])]; ok {
			t.byteID[b] = id
		}
	}
	for i, tok := range cfg.Tokens {
		if tok != "" && t.isAdded(int32(i)) && inByteAlphabet(tok) && t.vocab[tok] == int32(i) {
			t.added.add(tok, int32(i))
		}
	}
	t.decoded = make([][]byte, len(cfg.Tokens))
	for i, tok := range cfg.Tokens {
		t.decoded[i] = tokenBytes(tok)
	}
	return t, nil
}

// inByteAlphabet reports whether every rune of tok is a byte-level symbol.
func inByteAlphabet(tok string) bool {
	for _, r := range tok {
		if _, ok := runeToByte[r]; !ok {
			return false
		}
	}
	return true
}

// vocabKey is the spelling under which transformers files a GGUF token
// (gguf_tokenizer_mapping.py byte_level_tokenizer): as is when it is written
// in the byte-level alphabet, else its UTF-8 bytes in byte-level form.
func vocabKey(tok string) string {
	if inByteAlphabet(tok) {
		return tok
	}
	return byteLevelString(tok)
}

// tokenType is the GGUF type of id (normal when TokenTypes is nil).
func (t *BPE) tokenType(id int32) int32 {
	if t.cfg.TokenTypes == nil {
		return TokenNormal
	}
	return t.cfg.TokenTypes[id]
}

// isAdded reports whether id is an added token (control or user defined),
// matched whole in the raw text before pre-tokenization.
func (t *BPE) isAdded(id int32) bool {
	ty := t.tokenType(id)
	return ty == TokenControl || ty == TokenUserDefined
}

// tokenBytes is what Hugging Face's ByteLevel decoder makes of one token:
// each symbol mapped back to its byte, or, for a token with a symbol outside
// the byte-level alphabet, its UTF-8 text.
func tokenBytes(tok string) []byte {
	out := make([]byte, 0, len(tok))
	for _, r := range tok {
		b, ok := runeToByte[r]
		if !ok {
			return []byte(tok)
		}
		out = append(out, b)
	}
	return out
}

// Encode returns the ids of text without BOS/EOS, as Hugging Face's
// tokenizer(text, add_special_tokens=False) does; control and user-defined
// tokens in the text are still recognised. Invalid UTF-8 is encoded byte by
// byte (Python strings cannot hold it, so there is no reference).
func (t *BPE) Encode(text string) []int32 {
	ids := make([]int32, 0, len(text)/3+1)
	var pieces []string
	t.added.split(text, func(seg string, _ bool) {
		ids, pieces = t.encodeText(seg, ids, pieces)
	}, func(id int32) { ids = append(ids, id) })
	return ids
}

// encodeText normalizes and pre-tokenizes s (which holds no added token)
// and appends the ids of its pieces.
func (t *BPE) encodeText(s string, ids []int32, pieces []string) ([]int32, []string) {
	if t.cfg.Normalizer != nil {
		s = normalize(t.cfg.Normalizer, s)
	}
	if s == "" {
		return ids, pieces
	}
	pieces = t.pre.split(s, pieces[:0])
	for _, p := range pieces {
		ids = t.encodePiece(p, ids)
	}
	return ids, pieces
}

// encodePiece appends the ids of one pre-tokenized piece, through the cache.
func (t *BPE) encodePiece(p string, ids []int32) []int32 {
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

// bpe appends the ids of piece p (raw bytes; each byte is one initial
// symbol) after merging.
func (t *BPE) bpe(p string, ids []int32) []int32 {
	if t.cfg.IgnoreMerges {
		if id, ok := t.vocab[byteLevelString(p)]; ok {
			return append(ids, id)
		}
	}
	n := len(ids)
	for i := 0; i < len(p); i++ {
		if id := t.byteID[p[i]]; id >= 0 {
			ids = append(ids, id)
		}
	}
	w := t.merges.apply(ids[n:])
	return ids[:n+len(w)]
}

// Decode maps ids back to text as Hugging Face's ByteLevel decoder does
// (tokenizer.decode(ids) with skip_special_tokens=False and no clean-up):
// added tokens give their text, other tokens their bytes, and the
// concatenated bytes become UTF-8 with each ill-formed subsequence replaced
// by one U+FFFD (Rust's String::from_utf8_lossy). Ids out of range are
// skipped, as tokenizers does.
func (t *BPE) Decode(ids []int32) string {
	var buf []byte
	for _, id := range ids {
		if id >= 0 && int(id) < len(t.decoded) {
			buf = append(buf, t.decoded[id]...)
		}
	}
	return lossyUTF8(buf)
}

// VocabSize is the number of ids.
func (t *BPE) VocabSize() int { return len(t.cfg.Tokens) }

// BOS is the beginning-of-sequence id, or -1.
func (t *BPE) BOS() int32 { return t.cfg.BOS }

// EOS is the end-of-sequence id, or -1.
func (t *BPE) EOS() int32 { return t.cfg.EOS }

// AddBOS reports whether the model's tokenizer prepends BOS by default.
func (t *BPE) AddBOS() bool { return t.cfg.AddBOS }

// AddEOS reports whether the model's tokenizer appends EOS by default.
func (t *BPE) AddEOS() bool { return t.cfg.AddEOS }

// Config returns the configuration the tokenizer was built from. The slices
// are shared and must not be modified.
func (t *BPE) Config() BPEConfig { return t.cfg }

var _ Tokenizer = (*BPE)(nil)

func (t *BPE) mergeScan(w []int32) []int32 { return t.merges.mergeScan(w) }
func (t *BPE) mergeHeap(w []int32) []int32 { return t.merges.mergeHeap(w) }
