package eval

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/optima-llm/optima/internal/testenv"

	"github.com/optima-llm/optima/internal/tinymodel"
)

func TestWikiText2TextRows(t *testing.T) {
	for _, tc := range []struct{ name, raw, want string }{
		// Blank lines (" \n") become empty rows; other rows keep their "\n".
		{"hf rows", " \n = A = \n \n Text here .\n", "\n\n = A = \n\n\n\n\n Text here .\n"},
		{"no final newline", " x\n y", " x\n\n\n y"},
		{"one line", "abc\n", "abc\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, WikiText2TestFile)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(tc.raw), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := WikiText2Text(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := WikiText2Text(t.TempDir()); err == nil {
		t.Error("no error for a missing file")
	}
}

// TestWikiText2TextReal checks the real split against the string Python
// builds with the Hugging Face wikitext script's row rule:
//
//	rows = [r if r.strip() else "" for r in open("wiki.test.raw", encoding="utf-8")]
//	hashlib.sha256("\n\n".join(rows).encode()).hexdigest()[:16]  # 696cca6b65a171b0, 1296370 bytes
func TestWikiText2TextReal(t *testing.T) {
	dir := testenv.DataDir(t)
	s, err := WikiText2Text(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%x", sha256.Sum256([]byte(s)))[:16]; got != "696cca6b65a171b0" || len(s) != 1296370 {
		t.Errorf("sha256 prefix %s, length %d; want 696cca6b65a171b0, 1296370", got, len(s))
	}
}

type bosTok struct{ tinymodel.ByteTokenizer }

func (bosTok) BOS() int32   { return 1 }
func (bosTok) AddBOS() bool { return true }

func TestTokenize(t *testing.T) {
	if got := Tokenize(tinymodel.ByteTokenizer{}, "ab"); fmt.Sprint(got) != "[97 98]" {
		t.Errorf("no BOS: %v", got)
	}
	if got := Tokenize(bosTok{}, "ab"); fmt.Sprint(got) != "[1 97 98]" {
		t.Errorf("BOS: %v", got)
	}
}
