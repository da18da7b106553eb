package hf_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/internal/tinymodel"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/hf"
	"github.com/optima-llm/optima/model/tokenizer"
)

func TestDirTokenizer(t *testing.T) {
	o := tinymodel.Default()
	want, err := tinymodel.Tokenizer(o.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	const text = "The tiny model<|endoftext|> is pruned, 2024 times.\n\n  And the end."
	for _, tc := range []struct {
		name string
		// edit changes the written directory.
		edit   func(t *testing.T, dir string)
		substr string // "" means success
		bos    int32
	}{
		{"written", func(*testing.T, string) {}, "", tinymodel.EndOfText},
		{"no tokenizer_config.json", func(t *testing.T, dir string) {
			rm(t, filepath.Join(dir, "tokenizer_config.json"))
		}, "", -1},
		{"no tokenizer.json", func(t *testing.T, dir string) {
			rm(t, filepath.Join(dir, "tokenizer.json"))
		}, "tokenizer.json does not exist", 0},
		{"malformed tokenizer.json", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "tokenizer.json"), `{"model": 3}`)
		}, ": tokenizer.json: ", 0},
		{"malformed tokenizer_config.json", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "tokenizer_config.json"), `{"eos_token": "<none>"}`)
		}, `: tokenizer_config.json: eos_token: "<none>"`, 0},
		{"tokenizer of another model", func(t *testing.T, dir string) {
			// The SentencePiece fixture of model/tokenizer has 956 tokens and an added one.
			b, err := os.ReadFile(filepath.Join("..", "tokenizer", "testdata", "sentencepiece", "llama2", "tokenizer.json"))
			if err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(dir, "tokenizer.json"), string(b))
			rm(t, filepath.Join(dir, "tokenizer_config.json"))
		}, fmt.Sprintf("tokenizer.json: tokenizer from another model? its vocabulary has 956 tokens but the model's vocab_size is %d", o.Vocab), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, _, err := tinymodel.Write(dir, o); err != nil {
				t.Fatal(err)
			}
			tc.edit(t, dir)
			d, err := hf.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			tok, err := d.Tokenizer()
			if tc.substr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.substr) || !strings.Contains(err.Error(), dir) {
					t.Fatalf("error %v, want one naming %s and containing %q", err, dir, tc.substr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			bpe, ok := tok.(*tokenizer.BPE)
			if !ok {
				t.Fatalf("tokenizer is %T", tok)
			}
			if diff := cmp.Diff(want.Encode(text), tok.Encode(text)); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			if got := tok.Decode(tok.Encode(text)); got != text {
				t.Errorf("Decode(Encode) = %q", got)
			}
			if tok.VocabSize() != o.Vocab || tok.BOS() != tc.bos || tok.AddBOS() {
				t.Errorf("VocabSize %d BOS %d AddBOS %v", tok.VocabSize(), tok.BOS(), tok.AddBOS())
			}
			if diff := cmp.Diff(want.Config().Merges, bpe.Config().Merges); diff != "" {
				t.Errorf("merges (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCheckTokenizer checks the vocabulary-size rule on its own (Open may
// check embedding shapes against vocab_size before a tokenizer is read).
func TestCheckTokenizer(t *testing.T) {
	o := tinymodel.Default()
	tok, err := tinymodel.Tokenizer(o.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		vocab  int
		substr string
	}{
		{o.Vocab, ""},
		{o.Vocab + 64, ""}, // more embedding rows than tokens, as Gemma 3
		{o.Vocab - 1, fmt.Sprintf("tokenizer from another model? its vocabulary has %d tokens but the model's vocab_size is %d", o.Vocab, o.Vocab-1)},
	} {
		cfg := &model.Config{VocabSize: tc.vocab, Raw: map[string]any{}}
		err := hf.CheckTokenizer(tok, cfg)
		if (tc.substr == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.substr) {
			t.Errorf("vocab_size %d: error %v, want %q", tc.vocab, err, tc.substr)
		}
	}
}

func rm(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
