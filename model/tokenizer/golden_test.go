package tokenizer

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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
func smollm2(t testing.TB) *BPE {
	t.Helper()
	path := os.Getenv("OPTIMA_SMOLLM2_GGUF")
	if path == "" {
		t.Skip("set OPTIMA_SMOLLM2_GGUF to SmolLM2-135M-Instruct.Q4_1.gguf to run the real-vocabulary golden test")
	}
	cfg, err := readGGUFTokenizer(path)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := NewBPE(cfg)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return tok
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

	wiki := os.Getenv("OPTIMA_WIKITEXT2_TEST")
	if wiki == "" {
		wiki = "/work/shared/data/wikitext-2-raw/wiki.test.raw"
	}
	text, err := wikiText2Stream(wiki)
	if err != nil {
		t.Logf("whole-stream check skipped (set OPTIMA_WIKITEXT2_TEST to wiki.test.raw): %v", err)
		return
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

// readGGUFTokenizer reads the tokenizer.ggml.* keys of a GGUF file (v2/v3,
// little-endian) into a BPEConfig. It is a minimal test-only reader so that
// this package's tests do not import model/gguf (which imports this package).
func readGGUFTokenizer(path string) (BPEConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return BPEConfig{}, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	le := binary.LittleEndian
	var hdr [24]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return BPEConfig{}, fmt.Errorf("%s: header: %w", path, err)
	}
	if string(hdr[:4]) != "GGUF" {
		return BPEConfig{}, fmt.Errorf("%s: not a GGUF file", path)
	}
	nkv := le.Uint64(hdr[16:])
	u := func(n int) ([]byte, error) {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	str := func() (string, error) {
		b, err := u(8)
		if err != nil {
			return "", err
		}
		s, err := u(int(le.Uint64(b)))
		return string(s), err
	}
	size := map[uint32]int{0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
	var value func(typ uint32) (any, error)
	value = func(typ uint32) (any, error) {
		switch typ {
		case 8:
			return str()
		case 9:
			b, err := u(12)
			if err != nil {
				return nil, err
			}
			et, n := le.Uint32(b), le.Uint64(b[4:])
			out := make([]any, n)
			for i := range out {
				if out[i], err = value(et); err != nil {
					return nil, err
				}
			}
			return out, nil
		}
		n, ok := size[typ]
		if !ok {
			return nil, fmt.Errorf("value type %d", typ)
		}
		b, err := u(n)
		if err != nil {
			return nil, err
		}
		var v uint64
		for i := n - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		return int64(v), nil
	}
	kv := map[string]any{}
	for range nkv {
		k, err := str()
		if err != nil {
			return BPEConfig{}, fmt.Errorf("%s: %w", path, err)
		}
		b, err := u(4)
		if err != nil {
			return BPEConfig{}, fmt.Errorf("%s: %w", path, err)
		}
		v, err := value(le.Uint32(b))
		if err != nil {
			return BPEConfig{}, fmt.Errorf("%s: key %s: %w", path, k, err)
		}
		kv[k] = v
	}
	strs := func(k string) []string {
		a, _ := kv[k].([]any)
		out := make([]string, len(a))
		for i, x := range a {
			out[i], _ = x.(string)
		}
		return out
	}
	cfg := BPEConfig{Tokens: strs("tokenizer.ggml.tokens"), Merges: strs("tokenizer.ggml.merges"), BOS: -1, EOS: -1}
	cfg.Pre, _ = kv["tokenizer.ggml.pre"].(string)
	if a, ok := kv["tokenizer.ggml.token_type"].([]any); ok {
		for _, x := range a {
			cfg.TokenTypes = append(cfg.TokenTypes, int32(x.(int64)))
		}
	}
	if v, ok := kv["tokenizer.ggml.bos_token_id"].(int64); ok {
		cfg.BOS = int32(v)
	}
	if v, ok := kv["tokenizer.ggml.eos_token_id"].(int64); ok {
		cfg.EOS = int32(v)
	}
	if v, ok := kv["tokenizer.ggml.add_bos_token"].(int64); ok {
		cfg.AddBOS = v != 0
	}
	return cfg, nil
}
