package tokenizer

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fixture is testdata/bpe_fixture.json (or the file OPTIMA_BPE_FIXTURE
// names), written by tools/oracle/tokenizer_fixture.py (the command is in
// the file).
type fixture struct {
	Tokens     []string             `json:"tokens"`
	TokenTypes []int32              `json:"token_types"`
	Merges     []string             `json:"merges"`
	Texts      []string             `json:"texts"`
	IDs        map[string][][]int32 `json:"ids"`
}

func loadFixture(t testing.TB) *fixture {
	t.Helper()
	path := "testdata/bpe_fixture.json"
	if p := os.Getenv("OPTIMA_BPE_FIXTURE"); p != "" {
		path = p
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &f
}

func (f *fixture) config(pre string) BPEConfig {
	return BPEConfig{Tokens: f.Tokens, TokenTypes: f.TokenTypes, Merges: f.Merges, Pre: pre, BOS: -1, EOS: 0}
}

func TestFixtureGolden(t *testing.T) {
	f := loadFixture(t)
	if len(f.IDs) != 4 {
		t.Fatalf("fixture has %d pre-tokenizers, want 4", len(f.IDs))
	}
	for pre, want := range f.IDs {
		t.Run(pre, func(t *testing.T) {
			tok, err := NewBPE(f.config(pre))
			if err != nil {
				t.Fatal(err)
			}
			bad := 0
			for i, text := range f.Texts {
				got := tok.Encode(text)
				if diff := cmp.Diff(want[i], got); diff != "" {
					if bad++; bad <= 5 {
						t.Errorf("Encode(%q) mismatch (-hf +go):\n%s", text, diff)
					}
				}
				if dec := tok.Decode(got); dec != text {
					t.Errorf("Decode(Encode(%q)) = %q", text, dec)
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d texts differ", bad, len(f.Texts))
			}
		})
	}
}
