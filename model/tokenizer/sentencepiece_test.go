package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// spGolden is testdata/sentencepiece/golden.json, written by
// tools/oracle/tokenizer_sp_fixture.py (the command is in the script).
type spGolden struct {
	Texts    []string `json:"texts"`
	Variants map[string]struct {
		BOS       *int32 `json:"bos"`
		EOS       *int32 `json:"eos"`
		VocabSize int    `json:"vocab_size"`
		Cases     []struct {
			IDs        []int32 `json:"ids"`
			DefaultIDs []int32 `json:"default_ids"`
			Decoded    string  `json:"decoded"`
		} `json:"cases"`
	} `json:"variants"`
}

func loadSPGolden(t testing.TB, path string) *spGolden {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var g spGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return &g
}

// CheckSPGolden compares tok with the golden cases of one variant: the
// plain ids, the ids transformers' tokenizer(text) gives by default, Decode,
// BOS, EOS and the vocabulary size.
func checkSPGolden(t *testing.T, g *spGolden, variant string, tok Tokenizer) {
	t.Helper()
	v, ok := g.Variants[variant]
	if !ok {
		t.Fatalf("no golden variant %s", variant)
	}
	id := func(p *int32) int32 {
		if p == nil {
			return -1
		}
		return *p
	}
	if tok.BOS() != id(v.BOS) || tok.EOS() != id(v.EOS) || tok.VocabSize() != v.VocabSize {
		t.Errorf("BOS %d EOS %d vocab %d, want %d %d %d", tok.BOS(), tok.EOS(), tok.VocabSize(), id(v.BOS), id(v.EOS), v.VocabSize)
	}
	addEOS := false
	if e, ok := tok.(interface{ AddEOS() bool }); ok {
		addEOS = e.AddEOS()
	}
	bad := 0
	for i, c := range v.Cases {
		s := g.Texts[i]
		ids := tok.Encode(s)
		if diff := cmp.Diff(c.IDs, ids); diff != "" {
			if bad++; bad <= 5 {
				t.Errorf("Encode(%q) (-hf +go):\n%s", s, diff)
			}
			continue
		}
		def := ids
		if tok.AddBOS() {
			def = append([]int32{tok.BOS()}, def...)
		}
		if addEOS {
			def = append(def, tok.EOS())
		}
		if !cmp.Equal(c.DefaultIDs, def) && !(len(c.DefaultIDs) == 0 && len(def) == 0) {
			t.Errorf("default ids of %q: transformers %v, go %v (AddBOS %v AddEOS %v)", s, c.DefaultIDs, def, tok.AddBOS(), addEOS)
		}
		if got := tok.Decode(ids); got != c.Decoded {
			t.Errorf("Decode(Encode(%q)) = %q, want %q", s, got, c.Decoded)
		}
	}
}

// TestSentencePieceFixture checks the small SentencePiece-style
// tokenizer.json files (Llama 2 normalizer, Metaspace, Gemma, unknown
// tokens without byte fallback) against Hugging Face tokenizers, with no
// download.
func TestSentencePieceFixture(t *testing.T) {
	g := loadSPGolden(t, filepath.Join("testdata", "sentencepiece", "golden.json"))
	for _, name := range []string{"llama2", "metaspace", "gemma", "unk"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", "sentencepiece", name)
			tj, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
			if err != nil {
				t.Fatal(err)
			}
			cj, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
			if err != nil {
				t.Fatal(err)
			}
			tok, err := LoadHFJSON(tj, cj)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := tok.(*SentencePiece); !ok {
				t.Fatalf("tokenizer is %T, want *SentencePiece", tok)
			}
			checkSPGolden(t, g, name, tok)
		})
	}
}

func FuzzSentencePieceFromHFJSON(f *testing.F) {
	for _, name := range []string{"llama2", "metaspace", "gemma", "unk"} {
		tj, _ := os.ReadFile(filepath.Join("testdata", "sentencepiece", name, "tokenizer.json"))
		cj, _ := os.ReadFile(filepath.Join("testdata", "sentencepiece", name, "tokenizer_config.json"))
		if len(tj) > 0 {
			f.Add(tj, cj)
		}
	}
	f.Add([]byte(`{"model":{"type":"BPE","byte_fallback":true,"unk_token":"u","vocab":{"u":0,"a":1,"b":2,"ab":3,"<0x63>":4},"merges":["a b"]},"normalizer":{"type":"Replace","pattern":{"String":" "},"content":"▁"}}`), []byte(`{"bos_token":"a"}`))
	f.Fuzz(func(t *testing.T, tj, cj []byte) {
		tok, err := SentencePieceFromHFJSON(tj, cj)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "tokenizer.json") && !strings.HasPrefix(err.Error(), "tokenizer_config.json") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, s := range []string{"Hello, <s> wörld 123!", " ab  c\n", "🙂 東京", string([]byte{0xff, 'a'})} {
			ids := tok.Encode(s)
			for _, id := range ids {
				if id < 0 || int(id) >= tok.VocabSize() {
					t.Fatalf("Encode(%q): id %d out of range", s, id)
				}
			}
			_ = tok.Decode(ids)
		}
	})
}
