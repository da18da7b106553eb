package opt_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/model/hf"
	"github.com/optima-llm/optima/model/tokenizer"
)

// hubTokenizerConfig is tokenizer_config.json as the facebook/opt-* hub
// repositories ship it (AddedToken objects, add_bos_token), beside the
// tokenizer.json that transformers v5 writes.
const hubTokenizerConfig = `{"errors": "replace",
 "unk_token": {"content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "__type": "AddedToken"},
 "bos_token": {"content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "__type": "AddedToken"},
 "eos_token": {"content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "__type": "AddedToken"},
 "pad_token": {"content": "<pad>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "__type": "AddedToken"},
 "add_prefix_space": false, "add_bos_token": true, "special_tokens_map_file": null, "name_or_path": "facebook/opt"}`

// TestTokenizer checks that hf.Open's tokenizer of an OPT directory (GPT-2
// byte-level BPE, </s> = 2 prepended; files written by transformers, see
// tools/oracle/opt_golden.py) gives transformers' ids, and that the
// hub-style tokenizer_config.json gives the same.
func TestTokenizer(t *testing.T) {
	dir := filepath.Join("testdata", "preln")
	b, err := os.ReadFile(filepath.Join(dir, "tokenizer_golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Texts []string  `json:"texts"`
		IDs   [][]int32 `json:"ids"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	src, err := hf.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dirTok, err := src.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	tj, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	hubTok, err := tokenizer.FromHFJSON(tj, []byte(hubTokenizerConfig))
	if err != nil {
		t.Fatalf("hub-style tokenizer_config.json: %v", err)
	}
	for _, tc := range []struct {
		name string
		tok  tokenizer.Tokenizer
	}{{"hf.Open", dirTok}, {"hub config", hubTok}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.tok.BOS() != 2 || tc.tok.EOS() != 2 || !tc.tok.AddBOS() {
				t.Errorf("BOS %d EOS %d AddBOS %t, want 2 2 true", tc.tok.BOS(), tc.tok.EOS(), tc.tok.AddBOS())
			}
			if got, want := tc.tok.VocabSize(), src.Config().VocabSize; got != want {
				t.Errorf("vocab %d, config.json's vocab_size %d", got, want)
			}
			for i, text := range g.Texts {
				ids := tc.tok.Encode(text)
				if tc.tok.AddBOS() {
					ids = append([]int32{tc.tok.BOS()}, ids...)
				}
				if diff := cmp.Diff(g.IDs[i], ids); diff != "" {
					t.Errorf("text %d %.40q: ids (-transformers +ours):\n%s", i, text, diff)
				}
			}
		})
	}
}
