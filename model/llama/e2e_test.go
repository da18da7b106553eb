package llama_test

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optima-llm/optima/internal/tinymodel"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/hf"
	"github.com/optima-llm/optima/model/llama"
	"github.com/optima-llm/optima/model/loader"
	"github.com/optima-llm/optima/stages/prune"
	"github.com/optima-llm/optima/stages/solve"
)

// variantOptions are tiny models of each Llama-family variant.
func variantOptions() map[string]tinymodel.Options {
	llama3 := tinymodel.Default()
	llama3.Seed = 21
	llama3.RopeTheta = 500000
	llama3.RopeScaling = map[string]any{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
		"high_freq_factor": 4.0, "original_max_position_embeddings": 64.0}
	mistral := tinymodel.Default()
	mistral.Seed = 22
	mistral.Arch = llama.MistralArchitecture
	mistral.SlidingWindow = 5
	mistral.RopeScaling = map[string]any{"rope_type": "linear", "factor": 2.0}
	qwen2 := tinymodel.Default()
	qwen2.Seed = 23
	qwen2.Arch = llama.Qwen2Architecture
	qwen2.SlidingWindow, qwen2.MaxWindowLayers = 6, 1
	qwen2.Tied = true
	return map[string]tinymodel.Options{"llama3": llama3, "mistral": mistral, "qwen2": qwen2}
}

// open loads every tensor of a checkpoint and builds its family.
func open(t *testing.T, path string) (model.Family, model.Weights) {
	t.Helper()
	src, err := loader.Open(path)
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
	return fam, w
}

func logits(t *testing.T, fam model.Family, w model.Weights, ids []int32, nseq int) []float32 {
	t.Helper()
	be := cpu.New(1)
	c := fam.Config()
	x := make([]float32, len(ids)*c.HiddenSize)
	if err := fam.Embed(w, ids, x); err != nil {
		t.Fatal(err)
	}
	for b := range fam.NumBlocks() {
		if err := fam.ForwardBlock(be, b, w, x, nseq, len(ids)/nseq, nil); err != nil {
			t.Fatal(err)
		}
	}
	out := make([]float32, len(ids)*c.VocabSize)
	if err := fam.Logits(be, w, x, len(ids), out); err != nil {
		t.Fatal(err)
	}
	return out
}

func relDiff(a, b []float32) float64 {
	var md, mr float64
	for i := range a {
		md = max(md, math.Abs(float64(a[i])-float64(b[i])))
		mr = max(mr, math.Abs(float64(b[i])))
	}
	return md / mr
}

func randomIDs(seed uint64, n, vocab int) []int32 {
	r := rand.New(rand.NewPCG(seed, 9))
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(r.IntN(vocab))
	}
	return ids
}

// TestGGUFMatchesHF writes the Llama-3-scaled and the Qwen2 tiny models both
// as GGUF (rope_freqs.weight; qwen2 arch with biases and unpermuted q/k)
// and as Hugging Face directories, and checks that both give the same
// logits and the same rope scaling.
func TestGGUFMatchesHF(t *testing.T) {
	opts := variantOptions()
	for _, name := range []string{"llama3", "qwen2"} {
		t.Run(name, func(t *testing.T) {
			o := opts[name]
			o.SlidingWindow = 0 // GGUF has no sliding window metadata
			dir := t.TempDir()
			if _, _, err := tinymodel.Write(filepath.Join(dir, "hf"), o); err != nil {
				t.Fatal(err)
			}
			if _, _, err := tinymodel.WriteGGUF(filepath.Join(dir, "m.gguf"), o); err != nil {
				t.Fatal(err)
			}
			hfFam, hfW := open(t, filepath.Join(dir, "hf"))
			ggFam, ggW := open(t, filepath.Join(dir, "m.gguf"))
			if got, want := ggFam.Config().Architecture, hfFam.Config().Architecture; got != want {
				t.Fatalf("GGUF architecture %s, want %s", got, want)
			}
			rsG, err := llama.ParseRopeScaling(ggFam.Config().Raw, ggFam.Config().MaxPositionEmbeddings)
			if err != nil {
				t.Fatal(err)
			}
			rsH, _ := llama.ParseRopeScaling(hfFam.Config().Raw, hfFam.Config().MaxPositionEmbeddings)
			if rsG != rsH {
				t.Errorf("GGUF rope scaling %+v, want %+v", rsG, rsH)
			}
			ids := randomIDs(5, 2*20, o.Vocab)
			if e := relDiff(logits(t, ggFam, ggW, ids, 2), logits(t, hfFam, hfW, ids, 2)); e > 1e-5 {
				t.Errorf("logits differ: rel %.3g", e)
			}
		})
	}
}

// TestPruneVariants prunes a tiny model of each variant end to end with
// prune.RunSequential (Wanda 50% + OPTIMA) and checks the written model: it
// loads as the same architecture with the same sliding windows, every
// prunable linear is half zeros, biases are unchanged, and it still runs.
func TestPruneVariants(t *testing.T) {
	for name, o := range variantOptions() {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
			if _, _, err := tinymodel.Write(in, o); err != nil {
				t.Fatal(err)
			}
			src, err := loader.Open(in)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			fam, err := model.New(src.Config())
			if err != nil {
				t.Fatal(err)
			}
			cfg := &prune.Config{Model: in, Method: "wanda", Sparsity: 0.5, Update: prune.UpdateOptima,
				NSamples: 4, SeqLen: 16, Seed: 1, Shards: 2, Solve: solve.DefaultOptions()}
			work, err := prune.NewWork(filepath.Join(dir, "work"), cfg)
			if err != nil {
				t.Fatal(err)
			}
			var shards [][][]int32
			for s := range 2 {
				var wins [][]int32
				for k := range 2 {
					wins = append(wins, randomIDs(uint64(10*s+k), 16, o.Vocab))
				}
				shards = append(shards, wins)
			}
			if err := prune.RunSequential(cpu.New(2), cfg, src, fam, work, shards, out, nil); err != nil {
				t.Fatal(err)
			}
			pf, pw := open(t, out)
			_, dw := open(t, in)
			if pf.Config().Architecture != fam.Config().Architecture {
				t.Errorf("pruned architecture %s, want %s", pf.Config().Architecture, fam.Config().Architecture)
			}
			for b := range fam.NumBlocks() {
				if got, want := pf.(*llama.Family).Window(b), fam.(*llama.Family).Window(b); got != want {
					t.Errorf("block %d: window %d, want %d", b, got, want)
				}
				for _, l := range fam.Linears(b) {
					zeros := 0
					for _, v := range pw[l.Weight()].Data {
						if v == 0 {
							zeros++
						}
					}
					if frac := float64(zeros) / float64(l.Out*l.In); math.Abs(frac-0.5) > 0.01 {
						t.Errorf("%s: %.3f zeros, want 0.5", l.Name, frac)
					}
				}
			}
			nbias := 0
			for n, tt := range dw {
				if !strings.HasSuffix(n, ".bias") {
					continue
				}
				nbias++
				if pw[n] == nil || fmt.Sprint(pw[n].Data) != fmt.Sprint(tt.Data) {
					t.Errorf("bias %s changed or missing", n)
				}
			}
			if wantBias := map[string]int{"qwen2": 3 * o.Layers}[name]; nbias != wantBias {
				t.Errorf("%d biases, want %d", nbias, wantBias)
			}
			ids := randomIDs(99, 16, o.Vocab)
			l := logits(t, pf, pw, ids, 1)
			for _, v := range l {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatal("pruned model gives non-finite logits")
				}
			}
			if e := relDiff(l, logits(t, fam, dw, ids, 1)); e == 0 {
				t.Errorf("pruned logits equal the dense ones")
			}
		})
	}
}

// TestWriteGGUFVariantOracle converts the Llama-3-scaled and Qwen2 tiny
// GGUFs (tinymodel.WriteGGUF) to Hugging Face directories with hf.WriteModel
// under $OPTIMA_LLAMA_ORACLE_DIR and writes this package's logits for fixed
// ids next to them (optima_logits.json), for
// tools/oracle/llama_gguf_check.py to compare with transformers.
func TestWriteGGUFVariantOracle(t *testing.T) {
	root := os.Getenv("OPTIMA_LLAMA_ORACLE_DIR")
	if root == "" {
		t.Skip("OPTIMA_LLAMA_ORACLE_DIR not set")
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := variantOptions()
	for _, name := range []string{"llama3", "qwen2"} {
		o := opts[name]
		o.SlidingWindow = 0
		g := filepath.Join(t.TempDir(), name+".gguf")
		if _, _, err := tinymodel.WriteGGUF(g, o); err != nil {
			t.Fatal(err)
		}
		src, err := loader.Open(g)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(root, name)
		if err := hf.WriteModel(dir, src.Config(), src.Names(), src.Load, nil, hf.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		src.Close()
		fam, w := open(t, g)
		ids := randomIDs(7, 24, o.Vocab)
		b, err := json.Marshal(map[string]any{"ids": ids, "logits": logits(t, fam, w, ids, 1)})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "optima_logits.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
