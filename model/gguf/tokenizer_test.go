package gguf

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/model/tokenizer"
)

// spGGUFGolden is testdata/sp_golden.json, written with sp_llama.gguf and
// sp_gemma.gguf by tools/oracle/tokenizer_sp_fixture.py (the command is in
// the script): ids of the tokenizer transformers builds from each file.
type spGGUFGolden struct {
	Texts    []string `json:"texts"`
	Variants map[string]struct {
		BOS   int32 `json:"bos"`
		EOS   int32 `json:"eos"`
		Cases []struct {
			IDs        []int32 `json:"ids"`
			DefaultIDs []int32 `json:"default_ids"`
			Decoded    string  `json:"decoded"`
		} `json:"cases"`
	} `json:"variants"`
}

// TestSentencePieceGGUF reads the SentencePiece tokenizers of two small
// GGUF files (architecture llama: LlamaTokenizer's pipeline and merges from
// scores with ties; architecture gemma3: GemmaTokenizer's, a respelled
// space token and merges in token order) and checks every golden text.
func TestSentencePieceGGUF(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "sp_golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g spGGUFGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sp_llama", "sp_gemma"} {
		t.Run(name, func(t *testing.T) {
			v, ok := g.Variants[name]
			if !ok {
				t.Fatalf("no golden for %s", name)
			}
			f, err := Open(filepath.Join("testdata", name+".gguf"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			tok, err := ReadTokenizer(f)
			if err != nil {
				t.Fatal(err)
			}
			sp, ok := tok.(*tokenizer.SentencePiece)
			if !ok {
				t.Fatalf("tokenizer is %T, want *tokenizer.SentencePiece", tok)
			}
			// Written as tokenizer.json (as beside a pruned model) and read
			// back, it must tokenize the same.
			tj, err := sp.HFTokenizerJSON()
			if err != nil {
				t.Fatal(err)
			}
			cj, err := sp.HFTokenizerConfigJSON()
			if err != nil {
				t.Fatal(err)
			}
			if dump := os.Getenv("OPTIMA_DUMP_TOKENIZERS"); dump != "" {
				d := filepath.Join(dump, name)
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(d, "tokenizer.json"), tj, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(d, "tokenizer_config.json"), cj, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			back, err := tokenizer.LoadHFJSON(tj, cj)
			if err != nil {
				t.Fatal(err)
			}
			if back.BOS() != tok.BOS() || back.EOS() != tok.EOS() || back.AddBOS() != tok.AddBOS() {
				t.Errorf("after writing tokenizer.json: BOS %d EOS %d AddBOS %v", back.BOS(), back.EOS(), back.AddBOS())
			}
			if tok.BOS() != v.BOS || tok.EOS() != v.EOS || !tok.AddBOS() || sp.AddEOS() {
				t.Errorf("BOS %d EOS %d AddBOS %v AddEOS %v, want %d %d true false", tok.BOS(), tok.EOS(), tok.AddBOS(), sp.AddEOS(), v.BOS, v.EOS)
			}
			bad := 0
			for i, c := range v.Cases {
				s := g.Texts[i]
				ids := tok.Encode(s)
				if diff := cmp.Diff(ids, back.Encode(s)); diff != "" {
					t.Errorf("Encode(%q) after writing tokenizer.json (-gguf +json):\n%s", s, diff)
				}
				if diff := cmp.Diff(c.IDs, ids); diff != "" {
					if bad++; bad <= 5 {
						t.Errorf("Encode(%q) (-transformers +go):\n%s", s, diff)
					}
					continue
				}
				if def := append([]int32{tok.BOS()}, ids...); !cmp.Equal(c.DefaultIDs, def) {
					t.Errorf("default ids of %q: transformers %v, go %v", s, c.DefaultIDs, def)
				}
				if got := tok.Decode(ids); got != c.Decoded {
					t.Errorf("Decode(Encode(%q)) = %q, want %q", s, got, c.Decoded)
				}
			}
		})
	}
}

// TestReadTokenizerErrors checks that broken SentencePiece metadata is an
// error naming the file.
func TestReadTokenizerErrors(t *testing.T) {
	src, err := Open(filepath.Join("testdata", "sp_llama.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	meta := append([]KV(nil), src.KV...)
	src.Close()
	for _, c := range []struct {
		name   string
		edit   func([]KV) []KV
		substr string
	}{
		{"no scores", func(kv []KV) []KV { return drop(kv, "tokenizer.ggml.scores") }, "tokenizer.ggml.scores"},
		{"short scores", func(kv []KV) []KV {
			return set(kv, "tokenizer.ggml.scores", []float32{1, 2})
		}, "2 scores for"},
		{"short types", func(kv []KV) []KV {
			return set(kv, "tokenizer.ggml.token_type", []int32{1})
		}, "1 token types for"},
		{"bos out of range", func(kv []KV) []KV {
			return set(kv, "tokenizer.ggml.bos_token_id", uint32(1<<20))
		}, "tokenizer.ggml.bos_token_id"},
		{"unknown model", func(kv []KV) []KV { return set(kv, "tokenizer.ggml.model", "rwkv") }, `tokenizer model "rwkv" is not supported`},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, encode(t, c.edit(append([]KV(nil), meta...)), nil))
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			_, err = ReadTokenizer(f)
			if err == nil || !strings.Contains(err.Error(), c.substr) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %v, want one naming %s and containing %q", err, path, c.substr)
			}
		})
	}
}

func drop(kv []KV, key string) []KV {
	out := kv[:0]
	for _, e := range kv {
		if e.Key != key {
			out = append(out, e)
		}
	}
	return out
}

func set(kv []KV, key string, v any) []KV {
	for i := range kv {
		if kv[i].Key == key {
			kv[i].Value = v
		}
	}
	return kv
}

// FuzzReadTokenizer builds tokenizers from mutated metadata (seeded with the
// SentencePiece fixtures and the tiny byte-level one): errors must name the
// file, and a tokenizer that builds must encode and decode without panics
// and with ids in range.
func FuzzReadTokenizer(f *testing.F) {
	for _, name := range []string{"sp_llama.gguf", "sp_gemma.gguf", "tiny_llama.gguf"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse(bytes.NewReader(b), int64(len(b)), "fuzz.gguf")
		if err != nil {
			return
		}
		tok, err := ReadTokenizer(file)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.gguf") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, s := range []string{"Hello  wörld <s> 🙂", "\n\t", string([]byte{0xff})} {
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
