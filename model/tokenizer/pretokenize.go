package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Character classes of the pre-tokenizer regexes: \s (Unicode White_Space,
// which is what Go's unicode.IsSpace reports), \p{L}, \p{N}, and the rest.
const (
	clsOther uint8 = iota
	clsSpace
	clsLetter
	clsNumber
)

var asciiClass [128]uint8

func init() {
	for c := 0; c < 128; c++ {
		asciiClass[c] = slowClass(rune(c))
	}
}

func slowClass(r rune) uint8 {
	switch {
	case unicode.IsSpace(r):
		return clsSpace
	case unicode.IsLetter(r):
		return clsLetter
	case unicode.IsNumber(r):
		return clsNumber
	}
	return clsOther
}

// runeAt decodes the rune at s[i:] and its class. An invalid byte decodes as
// utf8.RuneError of width 1 and is of class other, like U+FFFD.
func runeAt(s string, i int) (r rune, n int, cls uint8) {
	c := s[i]
	if c < utf8.RuneSelf {
		return rune(c), 1, asciiClass[c]
	}
	r, n = utf8.DecodeRuneInString(s[i:])
	return r, n, slowClass(r)
}

// classAt is the class of the rune at s[i:], or 255 at the end of s.
func classAt(s string, i int) uint8 {
	if i >= len(s) {
		return 255
	}
	_, _, c := runeAt(s, i)
	return c
}

// skipClass returns the end of the run of runes of class cls starting at i.
func skipClass(s string, i int, cls uint8) int {
	for i < len(s) {
		_, n, c := runeAt(s, i)
		if c != cls {
			break
		}
		i += n
	}
	return i
}

// contraction matches 's|'t|'re|'ve|'m|'ll|'d where s[i] is an apostrophe
// and returns the length matched, or 0. fold makes the letters
// case-insensitive as Oniguruma's (?i:...) in the Llama 3 and Qwen2 patterns
// does: ASCII case, and U+017F (long s), which case-folds to 's'.
func contraction(s string, i int, fold bool) int {
	if fold && strings.HasPrefix(s[i+1:], "\u017f") {
		return 1 + len("\u017f")
	}
	low := func(k int) byte {
		if i+k >= len(s) {
			return 0
		}
		c := s[i+k]
		if fold && c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		return c
	}
	switch low(1) {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v':
		if low(2) == 'e' {
			return 3
		}
	case 'l':
		if low(2) == 'l' {
			return 3
		}
	}
	return 0
}

// whitespaceTail implements \s+(?!\S)|\s+ for the whitespace run [i, j):
// the whole run at the end of the text, else the run without its last rune
// when that leaves at least one, else the single rune.
func whitespaceTail(s string, i, j int) int {
	if j == len(s) {
		return j
	}
	_, last := utf8.DecodeLastRuneInString(s[i:j])
	if j-last > i {
		return j - last
	}
	return j
}

// splitGPT2 appends the pieces of s under GPT-2's pattern, as Hugging Face's
// ByteLevel pre-tokenizer (use_regex=true) applies it:
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
func splitGPT2(s string, dst []string) []string {
	for i := 0; i < len(s); {
		j := matchGPT2(s, i)
		dst = append(dst, s[i:j])
		i = j
	}
	return dst
}

func matchGPT2(s string, i int) int {
	r, n, cls := runeAt(s, i)
	if r == '\'' {
		if k := contraction(s, i, false); k > 0 {
			return i + k
		}
	}
	start, c := i, cls
	if r == ' ' {
		start, c = i+1, classAt(s, i+1)
	}
	if c == clsLetter || c == clsNumber || c == clsOther {
		return skipClass(s, start, c)
	}
	// cls is space here: the optional-space alternatives failed.
	return whitespaceTail(s, i, skipClass(s, i+n, clsSpace))
}

// splitDigitsGPT2 is Hugging Face's Sequence[Digits(individual_digits=true),
// ByteLevel(use_regex=true)]: every \p{N} rune is a piece of its own and the
// GPT-2 pattern splits the text between them (its lookahead sees the end of
// each stretch as the end of text). This is SmolLM's tokenizer.json and
// llama.cpp's "smollm" pre-tokenizer.
func splitDigitsGPT2(s string, dst []string) []string {
	seg := 0
	for i := 0; i < len(s); {
		_, n, c := runeAt(s, i)
		if c == clsNumber {
			dst = splitGPT2(s[seg:i], dst)
			dst = append(dst, s[i:i+n])
			seg = i + n
		}
		i += n
	}
	return splitGPT2(s[seg:], dst)
}

// splitLlama3 appends the pieces of s under the Llama 3 pattern (maxDigits 3)
// or the Qwen2 pattern (maxDigits 1):
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//	 ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
func splitLlama3(s string, dst []string, maxDigits int) []string {
	for i := 0; i < len(s); {
		j := matchLlama3(s, i, maxDigits)
		dst = append(dst, s[i:j])
		i = j
	}
	return dst
}

func matchLlama3(s string, i, maxDigits int) int {
	r, n, cls := runeAt(s, i)
	if r == '\'' {
		if k := contraction(s, i, true); k > 0 {
			return i + k
		}
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if cls == clsLetter {
		return skipClass(s, i, clsLetter)
	}
	if cls != clsNumber && r != '\r' && r != '\n' && classAt(s, i+n) == clsLetter {
		return skipClass(s, i+n, clsLetter)
	}
	// \p{N}{1,maxDigits}
	if cls == clsNumber {
		j := i
		for k := 0; k < maxDigits && j < len(s); k++ {
			_, m, c := runeAt(s, j)
			if c != clsNumber {
				break
			}
			j += m
		}
		return j
	}
	//  ?[^\s\p{L}\p{N}]+[\r\n]*
	start, c := i, cls
	if r == ' ' {
		start, c = i+1, classAt(s, i+1)
	}
	if c == clsOther {
		j := skipClass(s, start, clsOther)
		for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
			j++
		}
		return j
	}
	// Whitespace: \s*[\r\n]+ takes the run up to its last newline.
	j := skipClass(s, i+n, clsSpace)
	for k := j - 1; k >= i; k-- {
		if s[k] == '\r' || s[k] == '\n' {
			return k + 1
		}
	}
	return whitespaceTail(s, i, j)
}
