package tinymodel

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/optima-llm/optima/model/tokenizer"
)

// EndOfText is the id of Tokenizer's "<|endoftext|>" token (BOS and EOS, as
// in GPT-2); ids 0..255 are the single bytes.
const EndOfText = 256

// MinTokenizerVocab is the smallest vocabulary Tokenizer accepts: the 256
// byte tokens and <|endoftext|>.
const MinTokenizerVocab = 257

// trainingText is the corpus Tokenizer's merges are learnt from.
const trainingText = `The tiny model reads the text one token at a time. The tokenizer splits the
text into pieces, and each piece into bytes; then it merges the most frequent
pairs of symbols into new tokens, again and again, until the vocabulary is full.
In the beginning there were only bytes. Then there were the words: the, and,
in, on, of, to, that, this, there, then, these, those, with, without, which.
A model that is pruned keeps the weights that matter and drops the others; the
rows of each layer are fitted again so that the outputs stay the same on the
calibration text. 1 2 3 4 5 6 7 8 9 10 11 12 2024 2025 3.14159 (x + y) = z;
"Hello, world!" said the tester, and the tester said it again: hello, world.
The end of the text is not the end of the story, and the story is not the end.`

// preSplit approximates the GPT-2 pre-tokenizer for training: a letter,
// digit or symbol run with at most one leading space, or a whitespace run.
var preSplit = regexp.MustCompile(` ?[\pL]+| ?[\pN]+| ?[^\s\pL\pN]+|\s+`)

var tokCache sync.Map // vocab int → *tokenizer.BPE

// Tokenizer returns the tiny models' byte-level BPE tokenizer with exactly
// vocab ids (vocab ≥ MinTokenizerVocab): ids 0..255 are the bytes 0..255 (in
// GPT-2 byte-to-unicode spelling), 256 is "<|endoftext|>" (a control token,
// BOS and EOS, not prepended by default), then up to vocab-257 merges
// learnt on a fixed English paragraph (greedy: most frequent adjacent pair,
// ties to the smaller pair of strings, only pairs seen at least twice), then
// "<|unused_N|>" filler tokens (normal tokens no merge reaches) up to vocab.
// The pre-tokenizer is "gpt2". Token types are 1 (normal) except 3
// (control) for <|endoftext|>, as llama.cpp's converter writes them.
//
// The result is shared between calls with the same vocab (a *BPE is safe
// for concurrent use). The error is for vocab < MinTokenizerVocab.
func Tokenizer(vocab int) (*tokenizer.BPE, error) {
	if vocab < MinTokenizerVocab {
		return nil, fmt.Errorf("tinymodel: tokenizer needs a vocabulary of at least %d ids, got %d", MinTokenizerVocab, vocab)
	}
	if t, ok := tokCache.Load(vocab); ok {
		return t.(*tokenizer.BPE), nil
	}
	t, err := tokenizer.NewBPE(tokenizerConfig(vocab))
	if err != nil {
		panic(fmt.Sprintf("tinymodel: tokenizer of vocab %d: %v", vocab, err))
	}
	tokCache.Store(vocab, t)
	return t, nil
}

// bytesToUnicode is GPT-2's byte-to-symbol table.
func bytesToUnicode() [256]string {
	var out [256]string
	n := rune(0)
	for b := 0; b < 256; b++ {
		switch {
		case b >= '!' && b <= '~', b >= 0xA1 && b <= 0xAC, b >= 0xAE && b <= 0xFF:
			out[b] = string(rune(b))
		default:
			out[b] = string(256 + n)
			n++
		}
	}
	return out
}

func tokenizerConfig(vocab int) tokenizer.BPEConfig {
	sym := bytesToUnicode()
	tokens := make([]string, 0, vocab)
	tokens = append(tokens, sym[:]...)
	tokens = append(tokens, "<|endoftext|>")
	have := map[string]bool{}
	for _, t := range tokens {
		have[t] = true
	}

	// Words: each pre-token as a sequence of byte symbols, with its count.
	counts := map[string]int{}
	for _, p := range preSplit.FindAllString(trainingText, -1) {
		counts[p]++
	}
	type word struct {
		syms []string
		n    int
	}
	var words []word
	for p, n := range counts {
		w := word{n: n}
		for i := 0; i < len(p); i++ {
			w.syms = append(w.syms, sym[p[i]])
		}
		words = append(words, w)
	}
	sort.Slice(words, func(i, j int) bool { return strings.Join(words[i].syms, "") < strings.Join(words[j].syms, "") })

	var merges []string
	for len(tokens) < vocab {
		type pair struct{ a, b string }
		freq := map[pair]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w.syms); i++ {
				freq[pair{w.syms[i], w.syms[i+1]}] += w.n
			}
		}
		best, bestN := pair{}, 1
		for p, n := range freq {
			if have[p.a+p.b] {
				continue
			}
			if n > bestN || (n == bestN && (p.a < best.a || (p.a == best.a && p.b < best.b))) {
				best, bestN = p, n
			}
		}
		if bestN < 2 {
			break
		}
		merged := best.a + best.b
		merges = append(merges, best.a+" "+best.b)
		tokens = append(tokens, merged)
		have[merged] = true
		for k := range words {
			s := words[k].syms
			out := s[:0]
			for i := 0; i < len(s); i++ {
				if i+1 < len(s) && s[i] == best.a && s[i+1] == best.b {
					out = append(out, merged)
					i++
				} else {
					out = append(out, s[i])
				}
			}
			words[k].syms = out
		}
	}
	for i := 0; len(tokens) < vocab; i++ {
		tokens = append(tokens, fmt.Sprintf("<|unused_%d|>", i))
	}
	types := make([]int32, vocab)
	for i := range types {
		types[i] = tokenizer.TokenNormal
	}
	types[EndOfText] = tokenizer.TokenControl
	return tokenizer.BPEConfig{Tokens: tokens, Merges: merges, TokenTypes: types, Pre: "gpt2",
		BOS: EndOfText, EOS: EndOfText}
}
