package tinymodel

import (
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/gguf"
	"github.com/optima-llm/optima/model/loader"
	"github.com/optima-llm/optima/model/tokenizer"
)

// sampleTexts are encoded by the tokenizer tests; the last is random.
func sampleTexts(seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, 3))
	var b strings.Builder
	for range 200 {
		switch r.IntN(4) {
		case 0:
			b.WriteByte(byte(r.IntN(128)))
		case 1:
			b.WriteRune(rune(0x80 + r.IntN(0x800)))
		default:
			b.WriteString([]string{"the", " tiny", " model", "  ", "\n", " 2024", "<|endoftext|>", "é"}[r.IntN(8)])
		}
	}
	return []string{"", "The tiny model is pruned, and the end of the story.", "x<|endoftext|>y\n\n 12345", b.String()}
}

func TestTokenizer(t *testing.T) {
	for _, vocab := range []int{257, 300, 320, 2000} {
		tok, err := Tokenizer(vocab)
		if err != nil {
			t.Fatal(err)
		}
		cfg := tok.Config()
		if tok.VocabSize() != vocab || len(cfg.Tokens) != vocab {
			t.Errorf("vocab %d: VocabSize %d, %d tokens", vocab, tok.VocabSize(), len(cfg.Tokens))
		}
		if len(cfg.Merges) > vocab-MinTokenizerVocab || (vocab == 320 && len(cfg.Merges) != 63) {
			t.Errorf("vocab %d: %d merges", vocab, len(cfg.Merges))
		}
		seen := map[string]bool{}
		for i, s := range cfg.Tokens {
			if seen[s] {
				t.Errorf("vocab %d: token %d %q repeated", vocab, i, s)
			}
			seen[s] = true
		}
		if tok.BOS() != EndOfText || tok.EOS() != EndOfText || tok.AddBOS() || cfg.Tokens[EndOfText] != "<|endoftext|>" {
			t.Errorf("vocab %d: BOS %d EOS %d AddBOS %v token %q", vocab, tok.BOS(), tok.EOS(), tok.AddBOS(), cfg.Tokens[EndOfText])
		}
		for _, s := range sampleTexts(uint64(vocab)) {
			ids := tok.Encode(s)
			if got := tok.Decode(ids); got != s {
				t.Errorf("vocab %d: Decode(Encode(%q)) = %q", vocab, s, got)
			}
			for _, id := range ids {
				if id < 0 || int(id) >= vocab {
					t.Fatalf("vocab %d: id %d out of range", vocab, id)
				}
			}
		}
		if got := tok.Encode("a<|endoftext|>"); !cmp.Equal(got, []int32{'a', EndOfText}) {
			t.Errorf("vocab %d: Encode(a<|endoftext|>) = %v", vocab, got)
		}
		s := "The tiny model is pruned, and the end of the story."
		if n := len(tok.Encode(s)); (vocab == 257) != (n == len(s)) {
			t.Errorf("vocab %d: %d ids for %d bytes", vocab, n, len(s))
		}
	}
	if _, err := Tokenizer(256); err == nil || !strings.Contains(err.Error(), "at least 257") {
		t.Errorf("Tokenizer(256): %v", err)
	}
}

// TestWriteGGUF loads the GGUF form and checks it against Weights, Config
// and Tokenizer, i.e. against what Write stores.
func TestWriteGGUF(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Options)
	}{
		{"default", func(*Options) {}},
		{"tied bias", func(o *Options) { o.Tied, o.AttentionBias, o.Seed, o.Heads, o.KVHeads = true, true, 5, 8, 4 }},
		{"no tokenizer", func(o *Options) { o.Vocab = 32 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Default()
			tc.edit(&o)
			path := filepath.Join(t.TempDir(), "tiny.gguf")
			cfg, w, err := WriteGGUF(path, o)
			if err != nil {
				t.Fatal(err)
			}
			m, err := gguf.OpenModel(path)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			got := model.Weights{}
			for _, n := range m.Names() {
				if got[n], err = m.Load(n); err != nil {
					t.Fatal(err)
				}
			}
			if !equalWeights(w, got) {
				t.Error("GGUF weights differ from Weights")
			}
			if diff := cmp.Diff(cfg, m.Config(), cmpopts.IgnoreFields(model.Config{}, "Raw", "RMSNormEps")); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			if float32(m.Config().RMSNormEps) != float32(o.RMSNormEps) {
				t.Errorf("rms_norm_eps %g, want %g", m.Config().RMSNormEps, o.RMSNormEps)
			}
			tok, err := m.Tokenizer()
			if o.Vocab < MinTokenizerVocab {
				if err == nil {
					t.Error("tokenizer without tokenizer.ggml.* metadata")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want, _ := Tokenizer(o.Vocab)
			if diff := cmp.Diff(want.Config(), tok.(*tokenizer.BPE).Config()); diff != "" {
				t.Errorf("tokenizer config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGGUFName(t *testing.T) {
	for hf, want := range map[string]string{
		"model.embed_tokens.weight":                      "token_embd.weight",
		"lm_head.weight":                                 "output.weight",
		"model.layers.12.self_attn.k_proj.bias":          "blk.12.attn_k.bias",
		"model.layers.0.post_attention_layernorm.weight": "blk.0.ffn_norm.weight",
	} {
		if got := ggufName(hf); got != want {
			t.Errorf("ggufName(%s) = %s, want %s", hf, got, want)
		}
	}
}

// TestLoaderBothForms opens the directory and the GGUF file with
// loader.Open, as the pipeline does: identical tensors and identical token
// ids.
func TestLoaderBothForms(t *testing.T) {
	o := Default()
	o.Seed = 11
	dir := filepath.Join(t.TempDir(), "hf")
	if _, _, err := Write(dir, o); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	if _, _, err := WriteGGUF(path, o); err != nil {
		t.Fatal(err)
	}
	var weights []model.Weights
	var ids [][][]int32
	texts := sampleTexts(7)
	for _, p := range []string{dir, path} {
		src, err := loader.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		w := model.Weights{}
		for _, n := range src.Names() {
			if w[n], err = src.Load(n); err != nil {
				t.Fatal(err)
			}
		}
		weights = append(weights, w)
		tok, err := src.Tokenizer()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if tok.VocabSize() != o.Vocab || tok.BOS() != EndOfText || tok.EOS() != EndOfText || tok.AddBOS() {
			t.Errorf("%s: VocabSize %d BOS %d EOS %d AddBOS %v", p, tok.VocabSize(), tok.BOS(), tok.EOS(), tok.AddBOS())
		}
		var got [][]int32
		for _, s := range texts {
			got = append(got, tok.Encode(s))
		}
		ids = append(ids, got)
	}
	if !equalWeights(weights[0], weights[1]) || !equalWeights(weights[0], Weights(o)) {
		t.Error("the two forms hold different tensors")
	}
	if diff := cmp.Diff(ids[0], ids[1]); diff != "" {
		t.Errorf("token ids (-hf +gguf):\n%s", diff)
	}
}
