package tokenizer

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestByteToRune(t *testing.T) {
	seen := map[rune]bool{}
	for b := 0; b < 256; b++ {
		r := byteToRune[b]
		if seen[r] {
			t.Fatalf("byte %#x maps to %U twice", b, r)
		}
		seen[r] = true
		if runeToByte[r] != byte(b) {
			t.Errorf("runeToByte[%U] = %#x, want %#x", r, runeToByte[r], b)
		}
	}
	// Spot values from GPT-2's bytes_to_unicode: space is Ġ (U+0120), newline Ċ (U+010A).
	for b, want := range map[byte]rune{' ': 'Ġ', '\n': 'Ċ', 'a': 'a', 0: 0x100, 0xAD: 0x143, 0xFF: 0xFF} {
		if got := byteToRune[b]; got != want {
			t.Errorf("byteToRune[%#x] = %U, want %U", b, got, want)
		}
	}
}

// TestLossyUTF8 compares with Python's bytes.decode("utf-8", "replace"),
// which substitutes maximal subparts as Rust's from_utf8_lossy does.
func TestLossyUTF8(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"\xe2\x82A", "\uFFFDA"},
		{"\xf0\x9f\x98", "\uFFFD"},
		{"\xc0\x80", "\uFFFD\uFFFD"},
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"},
		{"\xf4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"},
		{"\xff", "\uFFFD"},
		{"\xe0\x80", "\uFFFD\uFFFD"},
		{"a\xf0\x9f\x98\x80b", "a😀b"},
		{"\xf1\x80\x80\xe1\x80\xc2", "\uFFFD\uFFFD\uFFFD"},
		{"\xe1\x80\x80\x80", "က\uFFFD"},
		{"\xc2", "\uFFFD"},
		{"", ""},
	} {
		if got := lossyUTF8([]byte(c.in)); got != c.want {
			t.Errorf("lossyUTF8(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// randomBPE builds a byte-level vocabulary over a small alphabet with n
// random merges in random order.
func randomBPE(t testing.TB, rng *rand.Rand, n int) *BPE {
	t.Helper()
	var tokens []string
	for b := 0; b < 256; b++ {
		tokens = append(tokens, string(byteToRune[b]))
	}
	have := map[string]bool{}
	alpha := []string{"a", "b", "c", "Ġ"}
	pool := append([]string(nil), alpha...)
	var merges []string
	for len(merges) < n {
		a, b := pool[rng.IntN(len(pool))], pool[rng.IntN(len(pool))]
		if have[a+b] || len(a+b) > 12 {
			continue
		}
		have[a+b] = true
		merges = append(merges, a+" "+b)
		pool = append(pool, a+b)
		if !strings.Contains(strings.Join(tokens, "\x00"), "\x00"+a+b+"\x00") {
			tokens = append(tokens, a+b)
		}
	}
	tok, err := NewBPE(BPEConfig{Tokens: tokens, Merges: merges, BOS: -1, EOS: -1})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestMergeHeapMatchesScan checks the O(n log n) merge loop against the
// quadratic one on random vocabularies and words.
func TestMergeHeapMatchesScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 20; trial++ {
		tok := randomBPE(t, rng, 40)
		for w := 0; w < 50; w++ {
			word := make([]int32, 1+rng.IntN(120))
			for i := range word {
				word[i] = tok.byteID["abc "[rng.IntN(4)]]
			}
			scan := tok.mergeScan(append([]int32(nil), word...))
			heap := tok.mergeHeap(append([]int32(nil), word...))
			if diff := cmp.Diff(scan, heap); diff != "" {
				t.Fatalf("trial %d: word %v: scan vs heap (-scan +heap):\n%s", trial, word, diff)
			}
		}
	}
}

func TestNewBPEErrors(t *testing.T) {
	tokens := []string{"a", "b", "ab", "<s>"}
	for _, c := range []struct {
		name string
		cfg  BPEConfig
		want string
	}{
		{"unknown pre", BPEConfig{Tokens: tokens, Pre: "nope", BOS: -1, EOS: -1}, "unknown pre-tokenizer"},
		{"merge one part", BPEConfig{Tokens: tokens, Merges: []string{"ab"}, BOS: -1, EOS: -1}, "not two space-separated"},
		{"merge three parts", BPEConfig{Tokens: tokens, Merges: []string{"a b c"}, BOS: -1, EOS: -1}, "not two space-separated"},
		{"merge missing token", BPEConfig{Tokens: tokens, Merges: []string{"b a"}, BOS: -1, EOS: -1}, "missing from the vocabulary"},
		{"types length", BPEConfig{Tokens: tokens, TokenTypes: []int32{1}, BOS: -1, EOS: -1}, "token types"},
		{"bos range", BPEConfig{Tokens: tokens, BOS: 4, EOS: -1}, "BOS id 4"},
		{"eos range", BPEConfig{Tokens: tokens, BOS: -1, EOS: -2}, "EOS id -2"},
		{"add bos without bos", BPEConfig{Tokens: tokens, BOS: -1, EOS: -1, AddBOS: true}, "AddBOS"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewBPE(c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("NewBPE error %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, err := NewBPE(BPEConfig{Tokens: tokens, Pre: "nope", BOS: -1, EOS: -1}); !errors.Is(err, ErrUnknownPre) {
		t.Errorf("unknown pre: %v does not wrap ErrUnknownPre", err)
	}
	if _, err := NewBPE(BPEConfig{Tokens: tokens, Merges: []string{"a b"}, TokenTypes: []int32{1, 1, 1, 3}, BOS: 3, EOS: 3, AddBOS: true}); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

// TestPreTokenizers pins a few splits whose regex semantics are easy to get
// wrong (the fixture test checks many more against tokenizers).
func TestPreTokenizers(t *testing.T) {
	for _, c := range []struct {
		pre, in string
		want    []string
	}{
		{"gpt2", "a  1 b", []string{"a", " ", " 1", " b"}},
		{"gpt2", "x   \n\ty", []string{"x", "   \n", "\t", "y"}},
		{"gpt2", "it's 'S", []string{"it", "'s", " '", "S"}},
		{"smollm-digits", "a  12", []string{"a", "  ", "1", "2"}},
		{"llama-bpe", "12345 it'S\tx \n\n y", []string{"123", "45", " it", "'S", "\tx", " \n\n", " y"}},
		{"qwen2", "123", []string{"1", "2", "3"}},
		{"llama-bpe", "x'\u017ft x'St", []string{"x", "'\u017f", "t", " x", "'S", "t"}},
		{"gpt2", "x'\u017ft", []string{"x", "'", "\u017ft"}},
	} {
		got := preTokenizers[c.pre].split(c.in, nil)
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s(%q) (-want +got):\n%s", c.pre, c.in, diff)
		}
	}
}

func FuzzEncode(f *testing.F) {
	fx := loadFixture(f)
	toks := map[string]*BPE{}
	for _, pre := range []string{"gpt2", "smollm-digits", "llama-bpe", "qwen2"} {
		tok, err := NewBPE(fx.config(pre))
		if err != nil {
			f.Fatal(err)
		}
		toks[pre] = tok
	}
	for _, s := range fx.Texts[:30] {
		f.Add(s)
	}
	f.Add("\xff\xe2\x82<|im_end|>\xf0")
	f.Fuzz(func(t *testing.T, s string) {
		for pre, tok := range toks {
			pieces := tok.pre.split(s, nil)
			if got := strings.Join(pieces, ""); got != s {
				t.Fatalf("%s: pieces %q do not join to %q", pre, pieces, s)
			}
			ids := tok.Encode(s)
			for _, id := range ids {
				if id < 0 || int(id) >= tok.VocabSize() {
					t.Fatalf("%s: Encode(%q) gave id %d", pre, s, id)
				}
			}
			got := tok.Decode(ids)
			want := s
			if !utf8.ValidString(s) {
				want = lossyUTF8([]byte(s))
			}
			if got != want {
				t.Fatalf("%s: Decode(Encode(%q)) = %q", pre, s, got)
			}
		}
	})
}

func FuzzLossyUTF8(f *testing.F) {
	f.Add([]byte("\xe2\x82A\xf0\x9f\x98\x80"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := lossyUTF8(b)
		if !utf8.ValidString(s) {
			t.Fatalf("lossyUTF8(%q) = %q is not valid UTF-8", b, s)
		}
		if utf8.Valid(b) && s != string(b) {
			t.Fatalf("lossyUTF8 changed valid %q to %q", b, s)
		}
		if n := strings.Count(s, "\uFFFD") - strings.Count(string(b), "\uFFFD"); !utf8.Valid(b) && n <= 0 {
			t.Fatalf("lossyUTF8(%q) = %q replaced nothing", b, s)
		}
	})
}

// BenchmarkEncodeFixture encodes the fixture's texts (about 15 KB) with the
// 860-token synthetic vocabulary, cold cache each time.
//
//	BenchmarkEncodeFixture-2  5  1149588 ns/op  14.88 MB/s   (2-core Xeon)
func BenchmarkEncodeFixture(b *testing.B) {
	fx := loadFixture(b)
	tok, err := NewBPE(fx.config("gpt2"))
	if err != nil {
		b.Fatal(err)
	}
	text := strings.Join(fx.Texts, "\n")
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tok.ResetCache()
		tok.Encode(text)
	}
	b.ReportMetric(float64(len(text))*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
}
