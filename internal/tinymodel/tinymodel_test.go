package tinymodel

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
	_ "github.com/optima-llm/optima/model/families"
)

func TestWriteReadRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Options)
	}{
		{"untied", func(*Options) {}},
		{"tied bias", func(o *Options) { o.Tied, o.AttentionBias, o.Seed = true, true, 9 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Default()
			tc.edit(&o)
			dir := t.TempDir()
			cfg, w, err := Write(dir, o)
			if err != nil {
				t.Fatal(err)
			}
			cfg2, w2, err := Read(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !equalWeights(w, w2) {
				t.Errorf("weights differ after round trip")
			}
			if diff := cmp.Diff(cfg, cfg2); diff != "" {
				t.Errorf("config differs (-want +got):\n%s", diff)
			}
			// The family accepts it and produces finite logits.
			fam, err := model.New(cfg2)
			if err != nil {
				t.Fatal(err)
			}
			var all []string
			all = append(all, fam.EmbedTensors()...)
			for i := range fam.NumBlocks() {
				all = append(all, fam.BlockTensors(i)...)
			}
			all = append(all, fam.HeadTensors()...)
			for _, n := range all {
				if w2[n] == nil {
					t.Fatalf("tensor %s missing", n)
				}
			}
			ids := ByteTokenizer{}.Encode("hello, tiny")
			x := make([]float32, len(ids)*o.Hidden)
			be := cpu.New(1)
			if err := fam.Embed(w2, ids, x); err != nil {
				t.Fatal(err)
			}
			for i := range fam.NumBlocks() {
				if err := fam.ForwardBlock(be, i, w2, x, 1, len(ids), nil); err != nil {
					t.Fatal(err)
				}
			}
			logits := make([]float32, len(ids)*o.Vocab)
			if err := fam.Logits(be, w2, x, len(ids), logits); err != nil {
				t.Fatal(err)
			}
			for _, v := range logits {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatal("non-finite logit")
				}
			}
		})
	}
}

func TestSeedsDiffer(t *testing.T) {
	a, b := Default(), Default()
	b.Seed = 2
	if equalWeights(Weights(a), Weights(b)) {
		t.Fatal("different seeds gave equal weights")
	}
	if !equalWeights(Weights(a), Weights(a)) {
		t.Fatal("same seed gave different weights")
	}
}

func TestByteTokenizer(t *testing.T) {
	s := "héllo\x00\xff"
	if got := (ByteTokenizer{}).Decode(ByteTokenizer{}.Encode(s)); got != s {
		t.Fatalf("round trip %q -> %q", s, got)
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := Write(dir, Default()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors"), []byte("short"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Read(dir); err == nil {
		t.Fatal("no error for a truncated safetensors file")
	}
}

// equalWeights compares names, shapes and values bit for bit (cmp on 10⁵
// floats through reflection is slow).
func equalWeights(a, b model.Weights) bool {
	if len(a) != len(b) {
		return false
	}
	for n, ta := range a {
		tb := b[n]
		if tb == nil || tb.Name != ta.Name || !cmp.Equal(ta.Shape, tb.Shape) || len(ta.Data) != len(tb.Data) {
			return false
		}
		for i, v := range ta.Data {
			if math.Float32bits(v) != math.Float32bits(tb.Data[i]) {
				return false
			}
		}
	}
	return true
}

func TestVariantOptions(t *testing.T) {
	for _, tc := range []struct {
		arch    string
		sw, mwl int
		rope    map[string]any
		wantRaw map[string]any
		biases  int
	}{
		{"", 0, 0, map[string]any{"rope_type": "linear", "factor": 2.0}, map[string]any{"model_type": "llama"}, 0},
		{"MistralForCausalLM", 5, 0, nil, map[string]any{"model_type": "mistral", "sliding_window": 5.0}, 0},
		{"Qwen2ForCausalLM", 6, 1, nil, map[string]any{"model_type": "qwen2", "use_sliding_window": true, "sliding_window": 6.0, "max_window_layers": 1.0}, 6},
	} {
		o := Default()
		o.Arch, o.SlidingWindow, o.MaxWindowLayers, o.RopeScaling = tc.arch, tc.sw, tc.mwl, tc.rope
		c := Config(o)
		for k, v := range tc.wantRaw {
			if c.Raw[k] != v {
				t.Errorf("%s: Raw[%s] = %v, want %v", tc.arch, k, c.Raw[k], v)
			}
		}
		if rs, _ := c.Raw["rope_scaling"].(map[string]any); (rs != nil) != (tc.rope != nil) {
			t.Errorf("%s: rope_scaling %v, want %v", tc.arch, c.Raw["rope_scaling"], tc.rope)
		}
		n := 0
		for name := range Weights(o) {
			if strings.HasSuffix(name, ".bias") {
				n++
				if strings.Contains(name, "o_proj") {
					t.Errorf("%s: %s", tc.arch, name)
				}
			}
		}
		if n != tc.biases {
			t.Errorf("%s: %d biases, want %d", tc.arch, n, tc.biases)
		}
	}
}

// TestFamilyOptions writes OPT and Gemma models, reads them back and checks
// that the family built from the written config.json reads exactly the
// written tensors with the shapes Weights gave them and runs a forward pass
// to finite logits.
func TestFamilyOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Options)
	}{
		{"opt", func(o *Options) { o.Arch = OPT }},
		{"opt-projected-postln-untied", func(o *Options) { o.Arch, o.ProjDim, o.PostLN, o.Tied = OPT, 32, true, false }},
		{"gemma2", func(o *Options) { o.Arch, o.SlidingWindow, o.Tied = Gemma2, 4, true }},
		{"gemma3", func(o *Options) { o.Arch, o.SlidingWindow = Gemma3, 4 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Default()
			tc.edit(&o)
			dir := t.TempDir()
			cfg, w, err := Write(dir, o)
			if err != nil {
				t.Fatal(err)
			}
			cfg2, w2, err := Read(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !equalWeights(w, w2) {
				t.Error("weights changed through the directory")
			}
			if diff := cmp.Diff(cfg, cfg2); diff != "" {
				t.Errorf("config changed through config.json (-written +read):\n%s", diff)
			}
			fam, err := model.New(cfg2)
			if err != nil {
				t.Fatal(err)
			}
			used := map[string]bool{}
			var names []string
			names = append(names, fam.EmbedTensors()...)
			for i := range fam.NumBlocks() {
				names = append(names, fam.BlockTensors(i)...)
			}
			names = append(names, fam.HeadTensors()...)
			for _, n := range names {
				used[n] = true
			}
			for n := range w2 {
				if !used[n] {
					t.Errorf("written tensor %s is not read by the family", n)
				}
			}
			for n := range used {
				if w2[n] == nil {
					t.Errorf("family reads %s, which was not written", n)
				}
			}
			ids := []int32{1, 5, 9, 2, 7, 3}
			x := make([]float32, len(ids)*cfg2.HiddenSize)
			if err := fam.Embed(w2, ids, x); err != nil {
				t.Fatal(err)
			}
			be := cpu.New(1)
			for i := range fam.NumBlocks() {
				if err := fam.ForwardBlock(be, i, w2, x, 1, len(ids), nil); err != nil {
					t.Fatal(err)
				}
			}
			logits := make([]float32, len(ids)*cfg2.VocabSize)
			if err := fam.Logits(be, w2, x, len(ids), logits); err != nil {
				t.Fatal(err)
			}
			for i, v := range logits {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("logit %d = %g", i, v)
				}
			}
		})
	}
}
