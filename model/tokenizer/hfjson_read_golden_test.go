package tokenizer_test

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/internal/testenv"
	"github.com/optima-llm/optima/model/tokenizer"
)

// TestFromHFJSONSmolLM2 writes SmolLM2's tokenizer (from the GGUF named by
// OPTIMA_SMOLLM2_GGUF) as tokenizer.json/tokenizer_config.json, reads it
// back with FromHFJSON, and checks the same configuration (under the
// canonical pre-tokenizer name) and the same ids on the whole WikiText-2 test
// stream (from internal/testenv), with BOS
// added and not.
func TestFromHFJSONSmolLM2(t *testing.T) {
	orig := smollm2(t)
	wiki := testenv.WikiText2Test(t)
	text, err := wikiText2Stream(wiki)
	if err != nil {
		t.Fatalf("set OPTIMA_WIKITEXT2_TEST to wiki.test.raw: %v", err)
	}
	want := orig.Encode(text)
	for _, addBOS := range []bool{false, true} {
		cfg := orig.Config()
		cfg.AddBOS = addBOS
		src, err := tokenizer.NewBPE(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tj, err := src.HFTokenizerJSON()
		if err != nil {
			t.Fatal(err)
		}
		cj, err := src.HFTokenizerConfigJSON()
		if err != nil {
			t.Fatal(err)
		}
		got, err := tokenizer.FromHFJSON(tj, cj)
		if err != nil {
			t.Fatal(err)
		}
		wantCfg := cfg
		wantCfg.Pre = "gpt2" // "smollm" is the GPT-2 pattern
		if diff := cmp.Diff(wantCfg, got.Config()); diff != "" {
			t.Errorf("AddBOS %v: config (-want +got):\n%s", addBOS, diff)
		}
		ids := got.Encode(text)
		if !slices.Equal(want, ids) {
			i := 0
			for i < min(len(ids), len(want)) && ids[i] == want[i] {
				i++
			}
			t.Errorf("AddBOS %v: stream ids differ from id %d on (%d vs %d ids)", addBOS, i, len(ids), len(want))
		}
		if got.Decode(ids) != orig.Decode(want) {
			t.Errorf("AddBOS %v: decoded stream differs", addBOS)
		}
	}
}
