package tokenizer_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/internal/testenv"
	"github.com/optima-llm/optima/model/tokenizer"
)

// npmGolden is testdata/wikitext_npm.json, written by
// tools/oracle/tokenizer_wikitext.py (the command is in the script).
type npmGolden struct {
	Chars      int    `json:"chars"`
	TextSHA256 string `json:"text_sha256"`
	Files      map[string]struct {
		TokenizerSHA256 string  `json:"tokenizer_json_sha256"`
		ConfigSHA256    string  `json:"tokenizer_config_json_sha256"`
		VocabSize       int     `json:"vocab_size"`
		Count           int     `json:"count"`
		IDsSHA256       string  `json:"ids_sha256"`
		Head            []int32 `json:"head"`
		DefaultPrefix   []int32 `json:"default_prefix"`
		DefaultSuffix   []int32 `json:"default_suffix"`
		BOS             int32   `json:"bos"`
		EOS             int32   `json:"eos"`
		DecodedSHA256   string  `json:"decoded_sha256"`
	} `json:"files"`
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// firstChars returns the first n code points of s.
func firstChars(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// TestWikiTextNPM checks LoadHFJSON against Hugging Face tokenizers on the
// first 20,000 characters of WikiText-2 test, for the Llama 3 (byte-level,
// ignore_merges) and Gemma 3 (SentencePiece-style, byte fallback) files of
// scripts/get-tokenizers.sh: every id (count, sha256 and the first 2,000
// listed), the BOS/EOS transformers adds by default, and Decode.
func TestWikiTextNPM(t *testing.T) {
	b, err := os.ReadFile("testdata/wikitext_npm.json")
	if err != nil {
		t.Fatal(err)
	}
	var g npmGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(testenv.WikiText2Test(t))
	if err != nil {
		t.Fatal(err)
	}
	text := firstChars(string(raw), g.Chars)
	if got := sha256Hex([]byte(text)); got != g.TextSHA256 {
		t.Fatalf("WikiText-2 prefix sha256 %s, want %s", got, g.TextSHA256)
	}
	for _, c := range []struct {
		name string
		dir  func(testing.TB) string
		kind string
	}{
		{"llama3", testenv.Llama3Tokenizer, "*tokenizer.BPE"},
		{"gemma3", testenv.Gemma3Tokenizer, "*tokenizer.SentencePiece"},
	} {
		t.Run(c.name, func(t *testing.T) {
			want, ok := g.Files[c.name]
			if !ok {
				t.Fatalf("no golden for %s", c.name)
			}
			dir := c.dir(t)
			tj, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
			if err != nil {
				t.Fatal(err)
			}
			cj, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
			if err != nil {
				t.Fatal(err)
			}
			if sha256Hex(tj) != want.TokenizerSHA256 || sha256Hex(cj) != want.ConfigSHA256 {
				t.Fatalf("%s: files differ from the ones the golden ids were made with", dir)
			}
			tok, err := tokenizer.LoadHFJSON(tj, cj)
			if err != nil {
				t.Fatal(err)
			}
			if got := typeName(tok); got != c.kind {
				t.Errorf("tokenizer is %s, want %s", got, c.kind)
			}
			ids := tok.Encode(text)
			buf := make([]byte, 4*len(ids))
			for i, id := range ids {
				binary.LittleEndian.PutUint32(buf[4*i:], uint32(id))
			}
			n := min(len(ids), len(want.Head))
			if diff := cmp.Diff(want.Head, ids[:n]); diff != "" {
				t.Errorf("first %d ids (-hf +go):\n%s", len(want.Head), diff)
			}
			if len(ids) != want.Count || sha256Hex(buf) != want.IDsSHA256 {
				t.Errorf("%d ids with sha256 %s, want %d with %s", len(ids), sha256Hex(buf), want.Count, want.IDsSHA256)
			}
			if got := sha256Hex([]byte(tok.Decode(ids))); got != want.DecodedSHA256 {
				t.Errorf("Decode sha256 %s, want %s", got, want.DecodedSHA256)
			}
			var prefix, suffix []int32
			if tok.AddBOS() {
				prefix = []int32{tok.BOS()}
			}
			if e, ok := tok.(interface{ AddEOS() bool }); ok && e.AddEOS() {
				suffix = []int32{tok.EOS()}
			}
			if diff := cmp.Diff(want.DefaultPrefix, prefix, cmp.Comparer(func(a, b []int32) bool { return len(a) == 0 && len(b) == 0 || cmp.Equal(a, b) })); diff != "" {
				t.Errorf("ids added before the text (-transformers +go):\n%s", diff)
			}
			if len(want.DefaultSuffix) != len(suffix) || (len(suffix) > 0 && suffix[0] != want.DefaultSuffix[0]) {
				t.Errorf("ids added after the text %v, transformers %v", suffix, want.DefaultSuffix)
			}
			if tok.BOS() != want.BOS || tok.EOS() != want.EOS || tok.VocabSize() != want.VocabSize {
				t.Errorf("BOS %d EOS %d vocab %d, transformers %d %d %d", tok.BOS(), tok.EOS(), tok.VocabSize(), want.BOS, want.EOS, want.VocabSize)
			}
		})
	}
}

func typeName(v any) string {
	switch v.(type) {
	case *tokenizer.BPE:
		return "*tokenizer.BPE"
	case *tokenizer.SentencePiece:
		return "*tokenizer.SentencePiece"
	}
	return "other"
}

// BenchmarkLoadHFJSON measures building the Llama 3 and Gemma 3 tokenizers
// from their files (already in memory). Sample on the 2 shared cores at load
// average 15 (CPU time from pprof: about 0.4 s per Llama 3 and 0.8 s per
// Gemma 3 load):
//
//	BenchmarkLoadHFJSON/llama3-2   5   1091947781 ns/op    8.32 MB/s
//	BenchmarkLoadHFJSON/gemma3-2   5   1979229794 ns/op   16.87 MB/s
func BenchmarkLoadHFJSON(b *testing.B) {
	for _, c := range []struct {
		name string
		dir  func(testing.TB) string
	}{{"llama3", testenv.Llama3Tokenizer}, {"gemma3", testenv.Gemma3Tokenizer}} {
		b.Run(c.name, func(b *testing.B) {
			dir := c.dir(b)
			tj, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
			if err != nil {
				b.Fatal(err)
			}
			cj, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := tokenizer.LoadHFJSON(tj, cj); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(tj))/1e6*float64(b.N)/b.Elapsed().Seconds(), "MB/s")
		})
	}
}

// BenchmarkEncodeNPM measures Encode on the first 20,000 characters of
// WikiText-2 test with the Llama 3 and Gemma 3 tokenizers (cache warm after
// the first iteration), in tokens/s. Gemma 3 merges each line as one piece
// (no pre-tokenizer split), so its cache rarely hits. Sample (load 15):
//
//	BenchmarkEncodeNPM/llama3-2   5    1450082 ns/op   3077757 tokens/s
//	BenchmarkEncodeNPM/gemma3-2   5   19887678 ns/op    229891 tokens/s
func BenchmarkEncodeNPM(b *testing.B) {
	raw, err := os.ReadFile(testenv.WikiText2Test(b))
	if err != nil {
		b.Fatal(err)
	}
	text := firstChars(string(raw), 20000)
	for _, c := range []struct {
		name string
		dir  func(testing.TB) string
	}{{"llama3", testenv.Llama3Tokenizer}, {"gemma3", testenv.Gemma3Tokenizer}} {
		b.Run(c.name, func(b *testing.B) {
			dir := c.dir(b)
			tj, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
			if err != nil {
				b.Fatal(err)
			}
			tok, err := tokenizer.LoadHFJSON(tj, nil)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for b.Loop() {
				n += len(tok.Encode(text))
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
