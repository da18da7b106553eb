package tokenizer

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestHFTokenizerJSON parses the written files back and checks them against
// the configuration; tools/oracle/tokenizer_hfjson_check.py checks that
// transformers loads them and tokenizes identically.
func TestHFTokenizerJSON(t *testing.T) {
	fx := loadFixture(t)
	for _, c := range []struct {
		pre    string
		addBOS bool
		preTyp string
	}{{"gpt2", false, "ByteLevel"}, {"smollm-digits", true, "Sequence"}, {"llama-bpe", false, "Sequence"}} {
		t.Run(c.pre, func(t *testing.T) {
			cfg := fx.config(c.pre)
			cfg.AddBOS, cfg.BOS = c.addBOS, 1
			tok, err := NewBPE(cfg)
			if err != nil {
				t.Fatal(err)
			}
			b, err := tok.HFTokenizerJSON()
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				AddedTokens []struct {
					ID      int32  `json:"id"`
					Content string `json:"content"`
					Special bool   `json:"special"`
				} `json:"added_tokens"`
				PreTokenizer  struct{ Type string } `json:"pre_tokenizer"`
				PostProcessor struct {
					Single []map[string]any `json:"single"`
				} `json:"post_processor"`
				Model struct {
					Type   string           `json:"type"`
					Vocab  map[string]int32 `json:"vocab"`
					Merges []string         `json:"merges"`
				} `json:"model"`
			}
			if err := json.Unmarshal(b, &doc); err != nil {
				t.Fatalf("tokenizer.json does not parse: %v", err)
			}
			wantVocab := map[string]int32{}
			for i, s := range fx.Tokens {
				wantVocab[s] = int32(i)
			}
			if diff := cmp.Diff(wantVocab, doc.Model.Vocab); diff != "" {
				t.Errorf("vocab (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(fx.Merges, doc.Model.Merges); diff != "" {
				t.Errorf("merges (-want +got):\n%s", diff)
			}
			var added []string
			for _, a := range doc.AddedTokens {
				if fx.Tokens[a.ID] != a.Content || a.Special != (fx.TokenTypes[a.ID] == TokenControl) {
					t.Errorf("added token %+v does not match the vocabulary", a)
				}
				added = append(added, a.Content)
			}
			if diff := cmp.Diff([]string{"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>"}, added); diff != "" {
				t.Errorf("added tokens (-want +got):\n%s", diff)
			}
			if doc.PreTokenizer.Type != c.preTyp {
				t.Errorf("pre_tokenizer type %q, want %q", doc.PreTokenizer.Type, c.preTyp)
			}
			if got := len(doc.PostProcessor.Single); got != map[bool]int{false: 1, true: 2}[c.addBOS] {
				t.Errorf("post_processor single has %d pieces with AddBOS %v", got, c.addBOS)
			}
			cb, err := tok.HFTokenizerConfigJSON()
			if err != nil {
				t.Fatal(err)
			}
			var conf map[string]any
			if err := json.Unmarshal(cb, &conf); err != nil {
				t.Fatalf("tokenizer_config.json does not parse: %v", err)
			}
			if conf["add_bos_token"] != c.addBOS || conf["bos_token"] != fx.Tokens[1] || conf["eos_token"] != fx.Tokens[0] {
				t.Errorf("tokenizer_config.json: %v", conf)
			}
		})
	}
}
