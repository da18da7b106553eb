package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// spVariants are the tokenizer.json fixtures of testdata/sentencepiece.
var spVariants = []string{"llama2", "metaspace", "gemma", "unk", "llama2cls", "legacycls"}

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
// tokens without byte fallback, and the Llama 2 file under transformers'
// LlamaTokenizer class) against Hugging Face tokenizers and transformers,
// with no download.
func TestSentencePieceFixture(t *testing.T) {
	g := loadSPGolden(t, filepath.Join("testdata", "sentencepiece", "golden.json"))
	for _, name := range spVariants {
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
	// Small seeds keep the fuzzer fast: the sections of the fixture
	// variants around a model of a few tokens.
	model := `"model":{"type":"BPE","byte_fallback":true,"fuse_unk":true,"unk_token":"<unk>",` +
		`"vocab":{"<unk>":0,"<s>":1,"</s>":2,"<0x41>":3,"<0xC3>":4,"<0xA9>":5,"▁":6,"a":7,"b":8,"▁a":9,"ab":10,"▁ab":11},` +
		`"merges":[["▁","a"],"a b",["▁a","b"]]}`
	added := `"added_tokens":[{"id":0,"content":"<unk>","special":true},{"id":1,"content":"<s>","special":true},{"id":2,"content":"</s>","special":true}]`
	tmpl := `"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]}}}`
	for _, sections := range []string{
		`"normalizer":{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]},` +
			`"decoder":{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]},` + tmpl,
		`"pre_tokenizer":{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":false},"decoder":{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":false}`,
		`"normalizer":{"type":"Replace","pattern":{"String":" "},"content":"▁"},"pre_tokenizer":{"type":"Split","pattern":{"String":" "},"behavior":"MergedWithPrevious","invert":false},` + tmpl,
		`"normalizer":{"type":"NFKC"},"pre_tokenizer":{"type":"Metaspace","replacement":"▁","add_prefix_space":true},"post_processor":{"type":"ByteLevel"}`,
	} {
		seed := []byte("{" + added + "," + sections + "," + model + "}")
		if _, err := SentencePieceFromHFJSON(seed, nil); err != nil {
			f.Fatalf("seed %s: %v", seed, err)
		}
		f.Add(seed, []byte(`{"bos_token":"<s>","eos_token":{"content":"</s>"}}`))
	}
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

// TestSentencePieceWriteRoundTrip writes each fixture tokenizer back as
// tokenizer.json and tokenizer_config.json and checks that what LoadHFJSON
// reads from them still matches the golden ids.
func TestSentencePieceWriteRoundTrip(t *testing.T) {
	g := loadSPGolden(t, filepath.Join("testdata", "sentencepiece", "golden.json"))
	for _, name := range spVariants {
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
			orig, err := SentencePieceFromHFJSON(tj, cj)
			if err != nil {
				t.Fatal(err)
			}
			tj2, err := orig.HFTokenizerJSON()
			if err != nil {
				t.Fatal(err)
			}
			cj2, err := orig.HFTokenizerConfigJSON()
			if err != nil {
				t.Fatal(err)
			}
			if dump := os.Getenv("OPTIMA_DUMP_TOKENIZERS"); dump != "" {
				d := filepath.Join(dump, name)
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(d, "tokenizer.json"), tj2, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(d, "tokenizer_config.json"), cj2, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			back, err := LoadHFJSON(tj2, cj2)
			if err != nil {
				t.Fatal(err)
			}
			sp, ok := back.(*SentencePiece)
			if !ok {
				t.Fatalf("read back as %T", back)
			}
			if diff := cmp.Diff(orig.Config(), sp.Config()); diff != "" {
				t.Errorf("config (-written +read):\n%s", diff)
			}
			checkSPGolden(t, g, name, back)
		})
	}
}
