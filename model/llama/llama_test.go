package llama

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/internal/tinymodel"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/internal/blockops"
)

// golden is testdata/<variant>/golden.json, written by
// tools/oracle/llama_golden.py from transformers' LlamaForCausalLM.
type golden struct {
	IDs           [][]int32              `json:"ids"`
	Logits        [][][]float64          `json:"logits"`
	HiddenBlock0  [][][]float64          `json:"hidden_block0"`
	CaptureBlock0 map[string][][]float64 `json:"capture_block0"`
}

var variants = []string{"gqa_untied", "gqa_tied_bias", "llama3_rope", "mistral_sliding", "qwen2_sliding"}

func loadFixture(t testing.TB, name string) (*Family, model.Weights, *golden) {
	t.Helper()
	dir := filepath.Join("testdata", name)
	cfg, w, err := tinymodel.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	fam, err := model.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return fam.(*Family), w, &g
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

func TestGoldenLogits(t *testing.T) {
	be := cpu.New(0)
	for _, name := range variants {
		t.Run(name, func(t *testing.T) {
			fam, w, g := loadFixture(t, name)
			nseq, seqlen := len(g.IDs), len(g.IDs[0])
			d, vocab := fam.Config().HiddenSize, fam.Config().VocabSize
			tokens := nseq * seqlen
			x := make([]float32, tokens*d)
			if err := fam.Embed(w, flatten(g.IDs), x); err != nil {
				t.Fatal(err)
			}
			captured := map[string][]float32{}
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
					if e := relErr(x, flatten(flatten(g.HiddenBlock0))); e > tol {
						t.Errorf("hidden after block 0: rel err %.3g > %g", e, tol)
					}
				}
			}
			if len(captured) != len(g.CaptureBlock0) {
				t.Errorf("captured groups %v, want %d", captured, len(g.CaptureBlock0))
			}
			for group, want := range g.CaptureBlock0 {
				if e := relErr(captured[group], flatten(want)); e > tol {
					t.Errorf("capture %s: rel err %.3g > %g", group, e, tol)
				}
			}
			// Logits in chunks of 7 rows, as a caller bounding memory does.
			logits := make([]float32, tokens*vocab)
			for r := 0; r < tokens; r += 7 {
				n := min(7, tokens-r)
				if err := fam.Logits(be, w, x[r*d:(r+n)*d], n, logits[r*vocab:(r+n)*vocab]); err != nil {
					t.Fatal(err)
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

func TestCaptureGroupsMatchLinears(t *testing.T) {
	fam, w, _ := loadFixture(t, "gqa_untied")
	const nseq, seqlen = 1, 5
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
	wantGroups := []string{"model.layers.1.self_attn.qkv", "model.layers.1.self_attn.o_proj", "model.layers.1.mlp.gate_up", "model.layers.1.mlp.down_proj"}
	var groups []string
	for _, g := range got {
		groups = append(groups, g[0])
	}
	if diff := cmp.Diff(wantGroups, groups); diff != "" {
		t.Errorf("group names (-want +got):\n%s", diff)
	}
}

// naiveAttention is a direct transcription of HF's eager attention with
// repeat_kv, in float64.
func naiveAttention(q, k, v []float32, nseq, seqlen, nh, nkv, hd, window int) []float32 {
	out := make([]float32, len(q))
	rep := nh / nkv
	p := make([]float64, seqlen)
	for s := range nseq {
		for h := range nh {
			g := h / rep
			for i := range seqlen {
				qi := q[(s*seqlen+i)*nh*hd+h*hd:][:hd]
				mx := math.Inf(-1)
				j0 := 0
				if window > 0 {
					j0 = max(0, i-window+1)
				}
				for j := j0; j <= i; j++ {
					kj := k[(s*seqlen+j)*nkv*hd+g*hd:][:hd]
					var dot float64
					for c := range hd {
						dot += float64(qi[c]) * float64(kj[c])
					}
					p[j] = dot / math.Sqrt(float64(hd))
					mx = max(mx, p[j])
				}
				var sum float64
				for j := j0; j <= i; j++ {
					p[j] = math.Exp(p[j] - mx)
					sum += p[j]
				}
				o := out[(s*seqlen+i)*nh*hd+h*hd:][:hd]
				for c := range hd {
					var acc float64
					for j := j0; j <= i; j++ {
						acc += p[j] * float64(v[(s*seqlen+j)*nkv*hd+g*hd+c])
					}
					o[c] = float32(acc / sum)
				}
			}
		}
	}
	return out
}

// TestAttentionLong covers several query row blocks (seqlen > attnRowBlock)
// and several sequences against a direct float64 transcription.
func TestAttentionLong(t *testing.T) {
	const attnRowBlock = 128 // blockops.Attention's query rows per work item
	for _, tc := range []struct{ nseq, seqlen, nh, nkv, hd, window int }{
		{2, attnRowBlock*2 + 37, 4, 2, 8, 0},
		{3, 5, 6, 3, 4, 0},
		{1, 1, 2, 1, 2, 0},
		{2, attnRowBlock*2 + 37, 4, 2, 8, 150},
		{2, attnRowBlock + 3, 2, 1, 4, 1},
		{3, 9, 6, 3, 4, 4},
		{1, 7, 2, 1, 2, 100},
	} {
		t.Run(fmt.Sprint(tc), func(t *testing.T) {
			f := &Family{heads: tc.nh, kvHeads: tc.nkv, headDim: tc.hd}
			r := rand.New(rand.NewPCG(7, uint64(tc.seqlen)))
			tokens := tc.nseq * tc.seqlen
			gen := func(n int) []float32 {
				x := make([]float32, n)
				for i := range x {
					x[i] = float32(r.NormFloat64() * 2)
				}
				return x
			}
			q, k, v := gen(tokens*tc.nh*tc.hd), gen(tokens*tc.nkv*tc.hd), gen(tokens*tc.nkv*tc.hd)
			got := make([]float32, len(q))
			for i := range got {
				got[i] = float32(math.NaN())
			}
			blockops.Attention(cpu.New(2), q, k, v, got, blockops.Attn{NSeq: tc.nseq, SeqLen: tc.seqlen, Heads: f.heads, KVHeads: f.kvHeads,
				HeadDim: f.headDim, Scale: float32(math.Pow(float64(f.headDim), -0.5)), Window: tc.window}, 3)
			want := naiveAttention(q, k, v, tc.nseq, tc.seqlen, tc.nh, tc.nkv, tc.hd, tc.window)
			w64 := make([]float64, len(want))
			for i, x := range want {
				w64[i] = float64(x)
			}
			if e := relErr(got, w64); !(e <= 1e-5) {
				t.Errorf("rel err %.3g", e)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	base := func() *model.Config {
		return &model.Config{Architecture: Architecture, HiddenSize: 32, IntermediateSize: 64, NumHiddenLayers: 1,
			NumAttentionHeads: 4, NumKeyValueHeads: 2, VocabSize: 10, MaxPositionEmbeddings: 64, RMSNormEps: 1e-5, HiddenAct: "silu", Raw: map[string]any{}}
	}
	for _, tc := range []struct {
		name string
		edit func(c *model.Config)
		want string // substring of the error; "" means no error
	}{
		{"ok", func(*model.Config) {}, ""},
		{"default rope", func(c *model.Config) {
			c.Raw["rope_parameters"] = map[string]any{"rope_type": "default", "rope_theta": 1e4}
		}, ""},
		{"llama3 rope", func(c *model.Config) {
			c.Raw["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0}
		}, ""},
		{"llama3 rope incomplete", func(c *model.Config) {
			c.Raw["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": 8.0}
		}, "low_freq_factor"},
		{"linear rope old key", func(c *model.Config) { c.Raw["rope_scaling"] = map[string]any{"type": "linear", "factor": 2.0} }, ""},
		{"yarn rope", func(c *model.Config) { c.Raw["rope_parameters"] = map[string]any{"rope_type": "yarn", "factor": 2.0} }, `config.json: rope_parameters rope_type "yarn"`},
		{"qwen2 layer types", func(c *model.Config) {
			c.Architecture = Qwen2Architecture
			c.Raw["use_sliding_window"], c.Raw["sliding_window"], c.Raw["layer_types"] = true, 4.0, []any{"x"}
		}, "layer_types"},
		{"kv heads", func(c *model.Config) { c.NumKeyValueHeads = 3 }, "num_key_value_heads"},
		{"act", func(c *model.Config) { c.HiddenAct = "gelu" }, "hidden_act"},
		{"odd head dim", func(c *model.Config) { c.HeadDim = 7 }, "head_dim"},
		{"sliding window", func(c *model.Config) { c.Raw["sliding_window"] = 4096.0 }, "sliding_window"},
		{"hidden", func(c *model.Config) { c.HiddenSize = 0 }, "hidden_size"},
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

func TestBadWeights(t *testing.T) {
	fam, w, _ := loadFixture(t, "gqa_untied")
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
		c[name] = &model.Tensor{Name: name, Shape: []int{old.Shape[len(old.Shape)-1]}, Data: old.Data[:old.Shape[len(old.Shape)-1]]}
		return c
	}
	for _, tc := range []struct {
		name string
		run  func() error
		want string
	}{
		{"missing k_proj", func() error {
			return fam.ForwardBlock(be, 0, drop("model.layers.0.self_attn.k_proj.weight"), x, 1, 3, nil)
		}, "model.layers.0.self_attn.k_proj.weight"},
		{"misshapen down_proj", func() error {
			return fam.ForwardBlock(be, 0, reshape("model.layers.0.mlp.down_proj.weight"), x, 1, 3, nil)
		}, "model.layers.0.mlp.down_proj.weight"},
		{"missing lm_head", func() error {
			return fam.Logits(be, drop("lm_head.weight"), x, 3, make([]float32, 3*fam.Config().VocabSize))
		}, "lm_head.weight"},
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

func TestUnknownArchitectureListsLlama(t *testing.T) {
	_, err := model.New(&model.Config{Architecture: "NopeForCausalLM"})
	if !errors.Is(err, model.ErrUnknownArchitecture) || !strings.Contains(err.Error(), Architecture) {
		t.Fatalf("error %v", err)
	}
}

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
