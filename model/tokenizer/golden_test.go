package tokenizer_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optima-llm/optima/internal/testenv"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/model/gguf"
	"github.com/optima-llm/optima/model/tokenizer"
)

// smollm2Golden is testdata/smollm2_golden.json, written by
// tools/oracle/tokenizer_golden.py (the command is in the file).
type smollm2Golden struct {
	StreamChars  int     `json:"stream_chars"`
	StreamTokens int     `json:"stream_tokens"`
	StreamSHA256 string  `json:"stream_sha256"`
	PrefixChars  int     `json:"prefix_chars"`
	PrefixText   string  `json:"prefix_text"`
	PrefixIDs    []int32 `json:"prefix_ids"`
	SpecialPre   []int32 `json:"special_prefix"`
	Cases        []struct {
		Text    string  `json:"text"`
		IDs     []int32 `json:"ids"`
		Decoded string  `json:"decoded"`
	} `json:"cases"`
}

// smollm2 builds the tokenizer of the GGUF named by OPTIMA_SMOLLM2_GGUF, or
// skips the test when it is unset.
// It goes through model/gguf as the product does (this is an external test
// package because model/gguf imports this one).
func smollm2(t testing.TB) *tokenizer.BPE {
	t.Helper()
	path := os.Getenv("OPTIMA_SMOLLM2_GGUF")
	if path == "" {
		t.Skip("set OPTIMA_SMOLLM2_GGUF to SmolLM2-135M-Instruct.Q4_1.gguf to run the real-vocabulary golden test")
	}
	m, err := gguf.OpenModel(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tok, err := m.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	bpe, ok := tok.(*tokenizer.BPE)
	if !ok {
		t.Fatalf("%s: tokenizer is %T, want *tokenizer.BPE", path, tok)
	}
	return bpe
}

// wikiText2Stream is "\n\n".join of the Hugging Face wikitext-2-raw-v1 test
// rows, rebuilt from wiki.test.raw as tools/oracle/tokenizer_golden.py does
// (rows keep their "\n"; blank lines become "").
func wikiText2Stream(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	lines := strings.SplitAfter(string(b), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for i, l := range lines {
		if strings.TrimSpace(l) == "" {
			lines[i] = ""
		}
	}
	return strings.Join(lines, "\n\n"), nil
}

func TestSmolLM2Golden(t *testing.T) {
	tok := smollm2(t)
	b, err := os.ReadFile("testdata/smollm2_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g smollm2Golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if n := len([]rune(g.PrefixText)); n != g.PrefixChars {
		t.Fatalf("golden prefix has %d code points, want %d", n, g.PrefixChars)
	}
	if diff := cmp.Diff(g.PrefixIDs, tok.Encode(g.PrefixText)); diff != "" {
		t.Errorf("WikiText-2 prefix ids (-hf +go):\n%s", diff)
	}
	if got, want := tok.AddBOS(), len(g.SpecialPre) > 0; got != want {
		t.Errorf("AddBOS() = %v, transformers adds %v", got, g.SpecialPre)
	}
	for _, c := range g.Cases {
		ids := tok.Encode(c.Text)
		if diff := cmp.Diff(c.IDs, ids); diff != "" {
			t.Errorf("Encode(%q) (-hf +go):\n%s", c.Text, diff)
		}
		if got := tok.Decode(ids); got != c.Decoded {
			t.Errorf("Decode(Encode(%q)) = %q, hf %q", c.Text, got, c.Decoded)
		}
	}

	wiki := testenv.WikiText2Test(t)
	text, err := wikiText2Stream(wiki)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(text, g.PrefixText) {
		t.Fatalf("%s: stream does not start with the golden prefix", wiki)
	}
	ids := tok.Encode(text)
	h := sha256.New()
	var buf [4]byte
	for _, id := range ids {
		binary.LittleEndian.PutUint32(buf[:], uint32(id))
		h.Write(buf[:])
	}
	if got := len([]rune(text)); got != g.StreamChars {
		t.Errorf("stream has %d code points, golden %d", got, g.StreamChars)
	}
	if len(ids) != g.StreamTokens {
		t.Errorf("stream: %d tokens, hf %d", len(ids), g.StreamTokens)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != g.StreamSHA256 {
		t.Errorf("stream ids sha256 %s, hf %s", got, g.StreamSHA256)
	}
}

// BenchmarkEncodeWikiText2 encodes the whole WikiText-2 test stream (1.29 MB)
// with SmolLM2's vocabulary; "cold" empties the per-piece cache first.
//
//	OPTIMA_SMOLLM2_GGUF=/work/models/SmolLM2-135M-Instruct.Q4_1.gguf go test -run '^$' -bench EncodeWikiText2 ./model/tokenizer
//
// Sample (2-core Xeon, Go 1.26, 1,294,336-character stream, 304,986 tokens):
//
//	BenchmarkEncodeWikiText2/warm-2  5  74376967 ns/op  17.43 MB/s  4100544 tokens/s
//	BenchmarkEncodeWikiText2/cold-2  5 116630070 ns/op  11.12 MB/s  2614986 tokens/s
func BenchmarkEncodeWikiText2(b *testing.B) {
	tok := smollm2(b)
	wiki := testenv.WikiText2Test(b)
	text, err := wikiText2Stream(wiki)
	if err != nil {
		b.Skip(err)
	}
	for _, cold := range []bool{false, true} {
		name := "warm"
		if cold {
			name = "cold"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			var n int
			for b.Loop() {
				if cold {
					tok.ResetCache()
				}
				n = len(tok.Encode(text))
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// TestWriteHFTokenizer writes Hugging Face tokenizer directories for
// tools/oracle/tokenizer_hfjson_check.py when OPTIMA_HF_TOKENIZER_OUT names
// a directory: smollm2/ and smollm2-bos/ (AddBOS forced on) from the GGUF
// (when OPTIMA_SMOLLM2_GGUF is set), and fixture-<pre>/ for each
// pre-tokenizer of testdata/bpe_fixture.json.
func TestWriteHFTokenizer(t *testing.T) {
	out := os.Getenv("OPTIMA_HF_TOKENIZER_OUT")
	if out == "" {
		t.Skip("set OPTIMA_HF_TOKENIZER_OUT to write tokenizer.json directories for the Python check")
	}
	write := func(name string, tok *tokenizer.BPE) {
		dir := filepath.Join(out, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		tj, err := tok.HFTokenizerJSON()
		if err != nil {
			t.Fatal(err)
		}
		cj, err := tok.HFTokenizerConfigJSON()
		if err != nil {
			t.Fatal(err)
		}
		for file, b := range map[string][]byte{"tokenizer.json": tj, "tokenizer_config.json": cj} {
			if err := os.WriteFile(filepath.Join(dir, file), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if os.Getenv("OPTIMA_SMOLLM2_GGUF") != "" {
		tok := smollm2(t)
		write("smollm2", tok)
		cfg := tok.Config()
		cfg.AddBOS = true
		bos, err := tokenizer.NewBPE(cfg)
		if err != nil {
			t.Fatal(err)
		}
		write("smollm2-bos", bos)
	}
	b, err := os.ReadFile("testdata/bpe_fixture.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Tokens     []string             `json:"tokens"`
		TokenTypes []int32              `json:"token_types"`
		Merges     []string             `json:"merges"`
		IDs        map[string][][]int32 `json:"ids"`
	}
	if err := json.Unmarshal(b, &fx); err != nil {
		t.Fatal(err)
	}
	for pre := range fx.IDs {
		tok, err := tokenizer.NewBPE(tokenizer.BPEConfig{Tokens: fx.Tokens, TokenTypes: fx.TokenTypes, Merges: fx.Merges, Pre: pre, BOS: -1, EOS: 0})
		if err != nil {
			t.Fatal(err)
		}
		write("fixture-"+pre, tok)
	}
}
