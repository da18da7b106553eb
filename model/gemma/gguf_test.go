package gemma

import (
	"bytes"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/gguf"
	"github.com/optima-llm/optima/model/hf"
)

// ggufNames maps Hugging Face names to llama.cpp's (gguf-py constants,
// MODEL_ARCH.GEMMA2 / GEMMA3).
var ggufBlock = map[string]string{
	"input_layernorm":            "attn_norm",
	"post_attention_layernorm":   "post_attention_norm",
	"pre_feedforward_layernorm":  "ffn_norm",
	"post_feedforward_layernorm": "post_ffw_norm",
	"self_attn.q_proj":           "attn_q",
	"self_attn.k_proj":           "attn_k",
	"self_attn.v_proj":           "attn_v",
	"self_attn.o_proj":           "attn_output",
	"self_attn.q_norm":           "attn_q_norm",
	"self_attn.k_norm":           "attn_k_norm",
	"mlp.gate_proj":              "ffn_gate",
	"mlp.up_proj":                "ffn_up",
	"mlp.down_proj":              "ffn_down",
}

func ggufName(t testing.TB, hfName string) string {
	t.Helper()
	switch hfName {
	case "model.embed_tokens.weight":
		return "token_embd.weight"
	case "model.norm.weight":
		return "output_norm.weight"
	case "lm_head.weight":
		return "output.weight"
	}
	rest, ok := strings.CutPrefix(hfName, "model.layers.")
	if !ok {
		t.Fatalf("no GGUF name for %s", hfName)
	}
	num, rest, _ := strings.Cut(rest, ".")
	mod, suffix := rest[:strings.LastIndex(rest, ".")], rest[strings.LastIndex(rest, ".")+1:]
	g, ok := ggufBlock[mod]
	if !ok {
		t.Fatalf("no GGUF name for %s", hfName)
	}
	return "blk." + num + "." + g + "." + suffix
}

// writeFixtureGGUF converts testdata/<name> the way llama.cpp's
// convert_hf_to_gguf.py does (norm weights + 1, no permutation, dims
// reversed, lm_head kept only when untied) and returns the file's path.
func writeFixtureGGUF(t *testing.T, name string, extra []gguf.KV) (string, model.Weights) {
	t.Helper()
	src, err := hf.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	cfg := src.Config()
	w := loadWeights(t, src)
	arch := map[string]string{Gemma2: "gemma2", Gemma3: "gemma3"}[cfg.Architecture]
	meta := []gguf.KV{
		{Key: "general.architecture", Value: arch},
		{Key: arch + ".context_length", Value: uint32(cfg.MaxPositionEmbeddings)},
		{Key: arch + ".embedding_length", Value: uint32(cfg.HiddenSize)},
		{Key: arch + ".block_count", Value: uint32(cfg.NumHiddenLayers)},
		{Key: arch + ".feed_forward_length", Value: uint32(cfg.IntermediateSize)},
		{Key: arch + ".attention.head_count", Value: uint32(cfg.NumAttentionHeads)},
		{Key: arch + ".attention.head_count_kv", Value: uint32(cfg.NumKeyValueHeads)},
		{Key: arch + ".attention.layer_norm_rms_epsilon", Value: float32(cfg.RMSNormEps)},
		{Key: arch + ".attention.key_length", Value: uint32(cfg.HeadDim)},
		{Key: arch + ".attention.value_length", Value: uint32(cfg.HeadDim)},
		{Key: arch + ".attention.sliding_window", Value: uint32(cfg.Raw["sliding_window"].(float64))},
		{Key: "tokenizer.ggml.bos_token_id", Value: uint32(2)},
		{Key: "tokenizer.ggml.eos_token_id", Value: uint32(1)},
	}
	meta = append(meta, extra...)
	var ts []gguf.WriteTensor
	for _, n := range slices.Sorted(maps.Keys(w)) {
		tt := w[n]
		data := slices.Clone(tt.Data)
		if strings.HasSuffix(n, "norm.weight") {
			for i := range data {
				data[i]++
			}
		}
		dims := make([]uint64, len(tt.Shape))
		for i, d := range tt.Shape {
			dims[len(dims)-1-i] = uint64(d)
		}
		ts = append(ts, gguf.WriteTensor{Name: ggufName(t, n), Dims: dims, Type: gguf.F32, Data: data})
	}
	var buf bytes.Buffer
	if err := gguf.Write(&buf, meta, ts); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".gguf")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, w
}

// gemma3GGUFMeta is the metadata of the gemma3 fixture that the converter
// writes beyond the common keys (and the sliding pattern, which llama.cpp
// fixes at 6).
var gemma3GGUFMeta = []gguf.KV{
	{Key: "gemma3.rope.freq_base", Value: float32(1e6)},
	{Key: "gemma3.rope.scaling.type", Value: "linear"},
	{Key: "gemma3.rope.scaling.factor", Value: float32(4)},
	{Key: "gemma3.final_logit_softcapping", Value: float32(8)},
	{Key: "gemma3.attention.sliding_window_pattern", Value: uint32(2)},
}

// TestGGUF converts each fixture to GGUF as llama.cpp does, opens it with
// gguf.OpenModel and checks the tensors (norm shift undone), the derived
// family and the logits against transformers'.
func TestGGUF(t *testing.T) {
	cases := []struct {
		name  string
		extra []gguf.KV
		// qpas overrides query_pre_attn_scalar, which GGUF files do not
		// store (llama.cpp derives it: head_dim here).
		qpas float64
	}{
		{"gemma2", []gguf.KV{
			{Key: "gemma2.attn_logit_softcapping", Value: float32(4)},
			{Key: "gemma2.final_logit_softcapping", Value: float32(15)},
		}, 24},
		{"gemma3", gemma3GGUFMeta, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path, want := writeFixtureGGUF(t, c.name, c.extra)
			m, err := gguf.OpenModel(path)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if d := cmp.Diff(slices.Sorted(maps.Keys(want)), m.Names()); d != "" {
				t.Errorf("names (-hf +gguf):\n%s", d)
			}
			got := loadWeights(t, m)
			for n, wt := range want {
				g := got[n]
				if g == nil || !slices.Equal(g.Shape, wt.Shape) {
					t.Fatalf("%s: shape %v, want %v", n, g.Shape, wt.Shape)
				}
				for i, v := range wt.Data {
					if math.Abs(float64(g.Data[i]-v)) > 1e-6 {
						t.Fatalf("%s[%d] = %g, want %g", n, i, g.Data[i], v)
					}
				}
			}
			cfg := *m.Config()
			if c.qpas != 0 {
				cfg.Raw = maps.Clone(cfg.Raw)
				cfg.Raw["query_pre_attn_scalar"] = c.qpas
			}
			fam, err := model.New(&cfg)
			if err != nil {
				t.Fatal(err)
			}
			logits := forward(t, fam.(*Family), got, loadGolden(t, c.name))
			if e := relErr(logits, flatten(flatten(loadGolden(t, c.name).Logits))); e > tol {
				t.Errorf("logits from GGUF: rel err %.3g > %g", e, tol)
			}
			// The synthesised config.json round-trips through hf.ParseConfig
			// to the same family.
			b, err := hf.ConfigJSON(&cfg, "float32")
			if err != nil {
				t.Fatal(err)
			}
			// transformers' strict config classes reject 15 for a float field.
			for _, key := range []string{"final_logit_softcapping", "factor"} {
				if i := bytes.Index(b, []byte(`"`+key+`": `)); i >= 0 {
					lit := b[i+len(key)+4:]
					lit = lit[:bytes.IndexAny(lit, ",\n}")]
					if !bytes.ContainsAny(lit, ".e") {
						t.Errorf("config.json writes %s as %s, not as a float", key, lit)
					}
				} else if key == "final_logit_softcapping" {
					t.Errorf("config.json has no %s", key)
				}
			}
			cfg2, err := hf.ParseConfig(b, "written config.json")
			if err != nil {
				t.Fatal(err)
			}
			fam2, err := New(cfg2)
			if err != nil {
				t.Fatal(err)
			}
			f1 := fam.(*Family)
			if fam2.scale != f1.scale || fam2.attnCap != f1.attnCap || fam2.finalCap != f1.finalCap || len(fam2.layers) != len(f1.layers) {
				t.Errorf("config.json round trip changed the family")
			}
			for i := range f1.layers {
				a, b := f1.layers[i], fam2.layers[i]
				if a.sliding != b.sliding || a.window != b.window || !slices.Equal(a.rope.invFreq, b.rope.invFreq) {
					t.Errorf("layer %d: round trip changed %+v to %+v", i, a, b)
				}
			}
		})
	}
}

// TestGGUFDerivedConfig checks what llama.cpp's loader derives and the
// converter does not store: query_pre_attn_scalar for the 27B models, the
// sliding pattern, the local rope base; and the errors for bad metadata.
func TestGGUFDerivedConfig(t *testing.T) {
	cases := []struct {
		name       string
		arch       string
		layers     uint32
		extra      []gguf.KV
		qpas       int
		firstTypes []string
		err        string
	}{
		{"gemma2 2B-like", "gemma2", 4, nil, 8, []string{"sliding_attention", "full_attention", "sliding_attention", "full_attention"}, ""},
		{"gemma2 27B-like", "gemma2", 46, nil, 16, []string{"sliding_attention", "full_attention"}, ""},
		{"gemma3 default pattern", "gemma3", 7, nil, 8,
			[]string{"sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention", "full_attention", "sliding_attention"}, ""},
		{"gemma3 27B-like", "gemma3", 62, nil, 16, nil, ""},
		{"gemma3 bool pattern", "gemma3", 3, []gguf.KV{{Key: "gemma3.attention.sliding_window_pattern", Value: []bool{false, true, true}}}, 8,
			[]string{"full_attention", "sliding_attention", "sliding_attention"}, ""},
		{"gemma3 short bool pattern", "gemma3", 3, []gguf.KV{{Key: "gemma3.attention.sliding_window_pattern", Value: []bool{true}}}, 0, nil, "1 entries for 3 blocks"},
		{"gemma3 yarn", "gemma3", 3, []gguf.KV{{Key: "gemma3.rope.scaling.type", Value: "yarn"}}, 0, nil, `rope scaling "yarn"`},
		{"value length", "gemma2", 2, []gguf.KV{{Key: "gemma2.attention.value_length", Value: uint32(4)}}, 0, nil, "value length 4"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.gguf")
			if err := os.WriteFile(path, derivedGGUF(t, c.arch, c.layers, c.extra), 0o644); err != nil {
				t.Fatal(err)
			}
			m, err := gguf.OpenModel(path)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), path) {
					t.Fatalf("error %v, want one naming %s and containing %q", err, path, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			fam, err := model.New(m.Config())
			if err != nil {
				t.Fatal(err)
			}
			f := fam.(*Family)
			if want := float32(math.Pow(float64(c.qpas), -0.5)); f.scale != want {
				t.Errorf("scale %g, want %d^-0.5", f.scale, c.qpas)
			}
			for i, typ := range c.firstTypes {
				if sl, w := f.IsSliding(i); sl != (typ == "sliding_attention") || (sl && w != 16) {
					t.Errorf("layer %d: sliding %v window %d, want %s with window 16", i, sl, w, typ)
				}
			}
			if f.gemma3 {
				for i := range f.layers {
					if sl, _ := f.IsSliding(i); sl {
						// 1/10000^(2·3/8): the last local frequency.
						want := float32(1 / math.Pow(10000, 0.75))
						if got := f.layers[i].rope.invFreq[3]; math.Abs(float64(got-want)) > 1e-6*float64(want) {
							t.Errorf("layer %d: local inv_freq[3] = %g, want %g", i, got, want)
						}
					}
				}
			}
			if !f.tied || f.vocab != 8 {
				t.Errorf("tied %v vocab %d, want tied vocab 8", f.tied, f.vocab)
			}
		})
	}
}

// derivedGGUF encodes a GGUF file with Gemma metadata (hidden 64, 4 heads,
// 2 KV heads, head_dim 8, window 16) and only an 8-row token embedding.
func derivedGGUF(t testing.TB, arch string, layers uint32, extra []gguf.KV) []byte {
	t.Helper()
	const hidden, vocab = 64, 8
	meta := []gguf.KV{
		{Key: "general.architecture", Value: arch},
		{Key: arch + ".context_length", Value: uint32(128)},
		{Key: arch + ".embedding_length", Value: uint32(hidden)},
		{Key: arch + ".block_count", Value: layers},
		{Key: arch + ".feed_forward_length", Value: uint32(96)},
		{Key: arch + ".attention.head_count", Value: uint32(4)},
		{Key: arch + ".attention.head_count_kv", Value: uint32(2)},
		{Key: arch + ".attention.key_length", Value: uint32(8)},
		{Key: arch + ".attention.layer_norm_rms_epsilon", Value: float32(1e-6)},
		{Key: arch + ".attention.sliding_window", Value: uint32(16)},
	}
	meta = append(meta, extra...)
	ts := []gguf.WriteTensor{{Name: "token_embd.weight", Dims: []uint64{hidden, vocab}, Type: gguf.F32, Data: make([]float32, hidden*vocab)}}
	var buf bytes.Buffer
	if err := gguf.Write(&buf, meta, ts); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzGGUFConfig feeds mutated Gemma GGUF files through gguf.NewModel and
// New: both may refuse, neither may panic, and an accepted family has one
// layer spec per block.
func FuzzGGUFConfig(f *testing.F) {
	f.Add(derivedGGUF(f, "gemma2", 3, []gguf.KV{{Key: "gemma2.final_logit_softcapping", Value: float32(30)}}))
	f.Add(derivedGGUF(f, "gemma3", 4, []gguf.KV{{Key: "gemma3.attention.sliding_window_pattern", Value: []bool{true, false, true, false}},
		{Key: "gemma3.rope.scaling.type", Value: "linear"}, {Key: "gemma3.rope.scaling.factor", Value: float32(8)}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := gguf.Parse(bytes.NewReader(b), int64(len(b)), "fuzz")
		if err != nil {
			return
		}
		m, err := gguf.NewModel(file)
		if err != nil {
			return
		}
		cfg := m.Config()
		if cfg.NumHiddenLayers > 1<<12 || cfg.HeadDim > 1<<12 {
			return
		}
		fam, err := New(cfg)
		if err != nil {
			return
		}
		if len(fam.layers) != cfg.NumHiddenLayers {
			t.Errorf("%d layer specs for %d layers", len(fam.layers), cfg.NumHiddenLayers)
		}
	})
}
