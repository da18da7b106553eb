package opt_test

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/hf"
	"github.com/optima-llm/optima/model/opt"
)

// golden is testdata/<variant>/golden.json, written by
// tools/oracle/opt_golden.py from transformers' OPTForCausalLM.
type golden struct {
	IDs           [][]int32              `json:"ids"`
	Logits        [][][]float64          `json:"logits"`
	HiddenBlock0  [][][]float64          `json:"hidden_block0"`
	CaptureBlock0 map[string][][]float64 `json:"capture_block0"`
}

var variants = []string{"preln", "postln_proj", "nobias_untied_gelu", "preln_no_final_ln"}

// loadFixture opens testdata/name with hf.Open, builds its family through
// the registry and loads every tensor.
func loadFixture(t testing.TB, name string) (*opt.Family, model.Weights, *golden) {
	t.Helper()
	dir := filepath.Join("testdata", name)
	src, err := hf.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	fam, err := model.New(src.Config())
	if err != nil {
		t.Fatal(err)
	}
	w := model.Weights{}
	for _, n := range src.Names() {
		if w[n], err = src.Load(n); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return fam.(*opt.Family), w, &g
}

func flatten[T any](x [][]T) []T {
	var out []T
	for _, r := range x {
		out = append(out, r...)
	}
	return out
}

// relErr is max|got-want| / max|want|.
func relErr(got []float32, want []float64) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var md, mr float64
	for i, w := range want {
		md = max(md, math.Abs(float64(got[i])-w))
		mr = max(mr, math.Abs(w))
	}
	return md / mr
}

const tol = 1e-4

// forward runs Embed, every block (capturing block 0's inputs) and Logits.
func forward(t *testing.T, fam *opt.Family, w model.Weights, ids [][]int32) (hidden0 []float32, captured map[string][]float32, logits []float32) {
	t.Helper()
	be := cpu.New(0)
	nseq, seqlen := len(ids), len(ids[0])
	d, vocab := fam.Config().HiddenSize, fam.Config().VocabSize
	tokens := nseq * seqlen
	x := make([]float32, tokens*d)
	if err := fam.Embed(w, flatten(ids), x); err != nil {
		t.Fatal(err)
	}
	captured = map[string][]float32{}
	capture := func(group string, linears []string, in []float32, ntok, width int) {
		if ntok != tokens || len(in) != ntok*width {
			t.Errorf("%s: tokens %d width %d len %d", group, ntok, width, len(in))
		}
		if _, dup := captured[group]; dup {
			t.Errorf("group %s captured twice", group)
		}
		captured[group] = append([]float32(nil), in...)
	}
	for i := range fam.NumBlocks() {
		c := capture
		if i != 0 {
			c = nil
		}
		if err := fam.ForwardBlock(be, i, w, x, nseq, seqlen, c); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			hidden0 = append([]float32(nil), x...)
		}
	}
	// Logits in chunks of 5 rows, as a caller bounding memory does.
	logits = make([]float32, tokens*vocab)
	for r := 0; r < tokens; r += 5 {
		n := min(5, tokens-r)
		if err := fam.Logits(be, w, x[r*d:(r+n)*d], n, logits[r*vocab:(r+n)*vocab]); err != nil {
			t.Fatal(err)
		}
	}
	return hidden0, captured, logits
}

func TestGoldenLogits(t *testing.T) {
	for _, name := range variants {
		t.Run(name, func(t *testing.T) {
			fam, w, g := loadFixture(t, name)
			hidden0, captured, logits := forward(t, fam, w, g.IDs)
			if e := relErr(hidden0, flatten(flatten(g.HiddenBlock0))); e > tol {
				t.Errorf("hidden after block 0: rel err %.3g > %g", e, tol)
			}
			if len(captured) != len(g.CaptureBlock0) {
				t.Errorf("captured %d groups, want %d", len(captured), len(g.CaptureBlock0))
			}
			for group, want := range g.CaptureBlock0 {
				if e := relErr(captured[group], flatten(want)); e > tol {
					t.Errorf("capture %s: rel err %.3g > %g", group, e, tol)
				}
			}
			e := relErr(logits, flatten(flatten(g.Logits)))
			t.Logf("logits rel err %.3g", e)
			if e > tol {
				t.Errorf("logits: rel err %.3g > %g", e, tol)
			}
		})
	}
}

// TestSequencesIndependent checks that each sequence of a batch starts at
// position 0: running the second sequence alone gives its batched logits.
func TestSequencesIndependent(t *testing.T) {
	fam, w, g := loadFixture(t, "postln_proj")
	_, _, both := forward(t, fam, w, g.IDs)
	_, _, alone := forward(t, fam, w, g.IDs[1:])
	second := both[len(both)-len(alone):]
	var md float64
	for i := range alone {
		md = max(md, math.Abs(float64(alone[i]-second[i])))
	}
	if md > 1e-4 {
		t.Errorf("second sequence alone differs from batched by %.3g", md)
	}
}

func TestConfigFromJSON(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		json                  string
		hidden, ffn, heads    int
		headDim, kvHeads      int
		act                   string
		tied, bias            bool
		bos, eos, vocab, nlay int
	}{
		{"defaults", `{"model_type":"opt"}`, 768, 3072, 12, 64, 12, "relu", true, true, 2, 2, 50272, 12},
		{"opt-350m", `{"architectures":["OPTForCausalLM"],"model_type":"opt","hidden_size":1024,"ffn_dim":4096,
			"num_attention_heads":16,"num_hidden_layers":24,"word_embed_proj_dim":512,"do_layer_norm_before":false,
			"activation_function":"relu","vocab_size":50272,"bos_token_id":2,"eos_token_id":2,"enable_bias":true}`,
			1024, 4096, 16, 64, 16, "relu", true, true, 2, 2, 50272, 24},
		{"no bias untied", `{"model_type":"opt","hidden_size":64,"ffn_dim":96,"num_attention_heads":8,
			"enable_bias":false,"tie_word_embeddings":false,"activation_function":"gelu"}`,
			64, 96, 8, 8, 8, "gelu", false, false, 2, 2, 50272, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := hf.ParseConfig([]byte(tc.json), "config.json")
			if err != nil {
				t.Fatal(err)
			}
			type fields struct {
				Arch                       string
				Hidden, FFN, Heads, HD, KV int
				Act                        string
				Tied, AttnBias, MLPBias    bool
				BOS, EOS, Vocab, Layers    int
				Eps                        float64
			}
			got := fields{c.Architecture, c.HiddenSize, c.IntermediateSize, c.NumAttentionHeads, c.HeadDim, c.NumKeyValueHeads,
				c.HiddenAct, c.TieWordEmbeddings, c.AttentionBias, c.MLPBias, c.BOSTokenID, c.EOSTokenID, c.VocabSize, c.NumHiddenLayers, c.RMSNormEps}
			want := fields{opt.Architecture, tc.hidden, tc.ffn, tc.heads, tc.headDim, tc.kvHeads,
				tc.act, tc.tied, tc.bias, tc.bias, tc.bos, tc.eos, tc.vocab, tc.nlay, opt.LayerNormEps}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			if _, err := model.New(c); err != nil {
				t.Errorf("model.New: %v", err)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, json, want string }{
		{"ffn_dim string", `{"model_type":"opt","ffn_dim":"big"}`, "ffn_dim"},
		{"ffn_dim zero", `{"model_type":"opt","ffn_dim":0}`, "ffn_dim"},
		{"heads", `{"model_type":"opt","hidden_size":100,"num_attention_heads":12}`, "num_attention_heads"},
		{"do_layer_norm_before", `{"model_type":"opt","do_layer_norm_before":"yes"}`, "do_layer_norm_before"},
		{"enable_bias", `{"model_type":"opt","enable_bias":1}`, "enable_bias"},
		{"word_embed_proj_dim", `{"model_type":"opt","word_embed_proj_dim":1.5}`, "word_embed_proj_dim"},
		{"activation_function", `{"model_type":"opt","activation_function":3}`, "activation_function"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := hf.ParseConfig([]byte(tc.json), "x/config.json")
			if !errors.Is(err, hf.ErrConfig) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "x/config.json") {
				t.Fatalf("error %v, want hf.ErrConfig naming x/config.json and %q", err, tc.want)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	base := func() *model.Config {
		return &model.Config{Architecture: opt.Architecture, ModelType: "opt", HiddenSize: 32, IntermediateSize: 64,
			NumHiddenLayers: 1, NumAttentionHeads: 4, VocabSize: 10, HiddenAct: "relu", Raw: map[string]any{}}
	}
	for _, tc := range []struct {
		name string
		edit func(c *model.Config)
		want string // substring of the error; "" means no error
	}{
		{"ok", func(*model.Config) {}, ""},
		{"empty act means relu", func(c *model.Config) { c.HiddenAct = "" }, ""},
		{"act", func(c *model.Config) { c.HiddenAct = "silu" }, "activation_function"},
		{"kv heads", func(c *model.Config) { c.NumKeyValueHeads = 2 }, "num_key_value_heads"},
		{"head dim", func(c *model.Config) { c.HeadDim = 16 }, "head_dim"},
		{"hidden", func(c *model.Config) { c.HiddenSize = 30 }, "divisible"},
		{"ffn", func(c *model.Config) { c.IntermediateSize = 0 }, "ffn_dim"},
		{"raw bool", func(c *model.Config) { c.Raw["do_layer_norm_before"] = "no" }, "do_layer_norm_before"},
		{"raw proj", func(c *model.Config) { c.Raw["word_embed_proj_dim"] = -3.0 }, "word_embed_proj_dim"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.edit(c)
			_, err := model.New(c)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestCaptureGroupsMatchLinears(t *testing.T) {
	for _, name := range []string{"preln", "postln_proj"} {
		t.Run(name, func(t *testing.T) {
			fam, w, _ := loadFixture(t, name)
			const nseq, seqlen = 2, 5
			x := make([]float32, nseq*seqlen*fam.Config().HiddenSize)
			for i := range x {
				x[i] = float32(i%7) - 3
			}
			var got [][]string
			var widths []int
			err := fam.ForwardBlock(cpu.New(1), 1, w, x, nseq, seqlen, func(group string, linears []string, _ []float32, _, in int) {
				got = append(got, append([]string{group}, linears...))
				widths = append(widths, in)
			})
			if err != nil {
				t.Fatal(err)
			}
			var want [][]string
			var wantW []int
			for _, l := range fam.Linears(1) {
				if n := len(want); n > 0 && want[n-1][0] == l.Group {
					want[n-1] = append(want[n-1], l.Name)
					continue
				}
				want = append(want, []string{l.Group, l.Name})
				wantW = append(wantW, l.In)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("capture groups (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantW, widths); diff != "" {
				t.Errorf("capture widths (-want +got):\n%s", diff)
			}
			p := "model.decoder.layers.1."
			wantGroups := []string{p + "self_attn.qkv", p + "self_attn.out_proj", p + "fc1", p + "fc2"}
			var groups []string
			for _, g := range got {
				groups = append(groups, g[0])
			}
			if diff := cmp.Diff(wantGroups, groups); diff != "" {
				t.Errorf("group names (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBadWeights(t *testing.T) {
	fam, w, _ := loadFixture(t, "postln_proj")
	be := cpu.New(1)
	d := fam.Config().HiddenSize
	x := make([]float32, 3*d)
	drop := func(name string) model.Weights {
		c := model.Weights{}
		for k, v := range w {
			if k != name {
				c[k] = v
			}
		}
		return c
	}
	reshape := func(name string) model.Weights {
		c := drop(name)
		old := w[name]
		last := old.Shape[len(old.Shape)-1]
		c[name] = &model.Tensor{Name: name, Shape: []int{last}, Data: old.Data[:last]}
		return c
	}
	long := make([]float32, 50*d)
	for _, tc := range []struct {
		name string
		run  func() error
		want string
	}{
		{"missing k_proj", func() error {
			return fam.ForwardBlock(be, 0, drop("model.decoder.layers.0.self_attn.k_proj.weight"), x, 1, 3, nil)
		}, "model.decoder.layers.0.self_attn.k_proj.weight"},
		{"missing fc1 bias", func() error {
			return fam.ForwardBlock(be, 1, drop("model.decoder.layers.1.fc1.bias"), x, 1, 3, nil)
		}, "model.decoder.layers.1.fc1.bias"},
		{"misshapen fc2", func() error {
			return fam.ForwardBlock(be, 0, reshape("model.decoder.layers.0.fc2.weight"), x, 1, 3, nil)
		}, "model.decoder.layers.0.fc2.weight"},
		{"missing layer norm", func() error {
			return fam.ForwardBlock(be, 1, drop("model.decoder.layers.1.final_layer_norm.bias"), x, 1, 3, nil)
		}, "model.decoder.layers.1.final_layer_norm.bias"},
		{"missing positions", func() error {
			return fam.ForwardBlock(be, 0, drop(opt.EmbedPositions), x, 1, 3, nil)
		}, opt.EmbedPositions},
		{"too long", func() error { return fam.ForwardBlock(be, 0, w, long, 1, 50, nil) }, "exceeds the 40 positions"},
		{"missing project_out", func() error {
			return fam.Logits(be, drop(opt.ProjectOut), x, 3, make([]float32, 3*fam.Config().VocabSize))
		}, opt.ProjectOut},
		{"missing project_in", func() error { return fam.Embed(drop(opt.ProjectIn), []int32{1, 2, 3}, x) }, opt.ProjectIn},
		{"id out of range", func() error {
			return fam.Embed(w, []int32{1, 2, int32(fam.Config().VocabSize)}, x)
		}, "token id"},
		{"negative id", func() error { return fam.Embed(w, []int32{1, -1, 0}, x) }, "token id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestUnknownArchitectureListsOPT(t *testing.T) {
	_, err := model.New(&model.Config{Architecture: "NopeForCausalLM"})
	if !errors.Is(err, model.ErrUnknownArchitecture) || !strings.Contains(err.Error(), opt.Architecture) {
		t.Fatalf("error %v", err)
	}
}

// TestTensorLists checks that Embed, block and head tensors cover each
// fixture's checkpoint exactly.
func TestTensorLists(t *testing.T) {
	for _, name := range variants {
		fam, w, _ := loadFixture(t, name)
		var all []string
		all = append(all, fam.EmbedTensors()...)
		for i := range fam.NumBlocks() {
			all = append(all, fam.BlockTensors(i)...)
		}
		all = append(all, fam.HeadTensors()...)
		seen := map[string]bool{}
		for _, n := range all {
			if w[n] == nil {
				t.Errorf("%s: listed tensor %s not in the checkpoint", name, n)
			}
			seen[n] = true
		}
		for n := range w {
			if !seen[n] {
				t.Errorf("%s: checkpoint tensor %s not listed", name, n)
			}
		}
	}
}
