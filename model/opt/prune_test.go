package opt_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/internal/tinymodel"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/hf"
	"github.com/optima-llm/optima/stages/prune"
	"github.com/optima-llm/optima/stages/report"
	"github.com/optima-llm/optima/stages/solve"
)

// tinyOPT describes a tiny random OPT model written by writeTinyOPT.
type tinyOPT struct {
	preLN                     bool
	hidden, proj, ffn, layers int
	heads, vocab, maxPos      int
	seed                      uint64
}

// configJSON is the model's config.json as transformers' OPTConfig would
// accept it.
func (o tinyOPT) configJSON() string {
	return fmt.Sprintf(`{"architectures":["OPTForCausalLM"],"model_type":"opt","hidden_size":%d,"word_embed_proj_dim":%d,
		"ffn_dim":%d,"num_hidden_layers":%d,"num_attention_heads":%d,"vocab_size":%d,"max_position_embeddings":%d,
		"do_layer_norm_before":%t,"activation_function":"relu","enable_bias":true,"layer_norm_elementwise_affine":true,
		"tie_word_embeddings":true,"bos_token_id":2,"eos_token_id":2,"pad_token_id":1}`,
		o.hidden, o.proj, o.ffn, o.layers, o.heads, o.vocab, o.maxPos, o.preLN)
}

// shapes gives every tensor of fam's lists its shape.
func shapes(tb testing.TB, fam model.Family, o tinyOPT) map[string][]int {
	tb.Helper()
	s := map[string][]int{}
	var names []string
	names = append(names, fam.EmbedTensors()...)
	for i := range fam.NumBlocks() {
		names = append(names, fam.BlockTensors(i)...)
		for _, l := range fam.Linears(i) {
			s[l.Weight()] = []int{l.Out, l.In}
			s[l.Name+".bias"] = []int{l.Out}
		}
	}
	names = append(names, fam.HeadTensors()...)
	for _, n := range names {
		switch {
		case s[n] != nil:
		case strings.HasSuffix(n, "embed_tokens.weight"), n == "lm_head.weight":
			s[n] = []int{o.vocab, o.proj}
		case strings.HasSuffix(n, "embed_positions.weight"):
			s[n] = []int{o.maxPos + 2, o.hidden}
		case strings.HasSuffix(n, "project_in.weight"):
			s[n] = []int{o.hidden, o.proj}
		case strings.HasSuffix(n, "project_out.weight"):
			s[n] = []int{o.proj, o.hidden}
		case strings.Contains(n, "layer_norm."):
			s[n] = []int{o.hidden}
		default:
			tb.Fatalf("no shape for %s", n)
		}
	}
	return s
}

// tinyWeights builds the configuration, family and random weights of o:
// embeddings N(0,1), LayerNorm weights 1+N(0,0.1²), biases N(0,0.1²), other
// weights N(0,1/in)·1.5.
func tinyWeights(tb testing.TB, o tinyOPT) (*model.Config, model.Family, model.Weights) {
	tb.Helper()
	cfg, err := hf.ParseConfig([]byte(o.configJSON()), "config.json")
	if err != nil {
		tb.Fatal(err)
	}
	fam, err := model.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	sh := shapes(tb, fam, o)
	r := rand.New(rand.NewPCG(o.seed, 0x0b7))
	w := model.Weights{}
	for _, n := range slices.Sorted(maps.Keys(sh)) {
		s := sh[n]
		tt := &model.Tensor{Name: n, Shape: s, Data: make([]float32, (&model.Tensor{Shape: s}).Numel())}
		for i := range tt.Data {
			g := r.NormFloat64()
			switch {
			case strings.Contains(n, "embed_"):
			case strings.Contains(n, "layer_norm.weight"):
				g = 1 + 0.1*g
			case strings.HasSuffix(n, ".bias"):
				g *= 0.1
			default:
				g *= 1.5 / math.Sqrt(float64(s[len(s)-1]))
			}
			tt.Data[i] = float32(g)
		}
		w[n] = tt
	}
	return cfg, fam, w
}

// writeTinyOPT writes tinyWeights(o) with the tiny models' byte-level BPE
// tokenizer into dir through hf.WriteModel.
func writeTinyOPT(t *testing.T, dir string, o tinyOPT) {
	t.Helper()
	cfg, _, w := tinyWeights(t, o)
	tok, err := tinymodel.Tokenizer(o.vocab)
	if err != nil {
		t.Fatal(err)
	}
	tj, err := tok.HFTokenizerJSON()
	if err != nil {
		t.Fatal(err)
	}
	tc, err := tok.HFTokenizerConfigJSON()
	if err != nil {
		t.Fatal(err)
	}
	load := func(name string) (*model.Tensor, error) { return w[name], nil }
	extra := map[string][]byte{"tokenizer.json": tj, "tokenizer_config.json": tc}
	if err := hf.WriteModel(dir, cfg, slices.Sorted(maps.Keys(w)), load, extra, hf.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, src model.Source) model.Weights {
	t.Helper()
	w := model.Weights{}
	for _, n := range src.Names() {
		tt, err := src.Load(n)
		if err != nil {
			t.Fatal(err)
		}
		w[n] = tt
	}
	return w
}

// TestPruneEndToEnd prunes tiny pre-LN and post-LN (project_in/out) OPT
// models with prune.RunSequential (Wanda + the OPTIMA update) and checks the
// written directory: it reloads through hf.Open and model.New, gives finite
// logits of shape [tokens, vocab], every prunable linear has exactly the
// pattern's zeros (the dense weights have none), and every other tensor
// (biases, LayerNorms, embeddings, positions, projections) is unchanged.
func TestPruneEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		name    string
		o       tinyOPT
		pattern string
		skipAtt bool
	}{
		{"preln 50%", tinyOPT{preLN: true, hidden: 32, proj: 32, ffn: 64, layers: 2, heads: 4, vocab: 300, maxPos: 24, seed: 5}, "", false},
		{"postln proj 2:4 skip attention", tinyOPT{preLN: false, hidden: 32, proj: 16, ffn: 48, layers: 2, heads: 2, vocab: 300, maxPos: 24, seed: 6}, "2:4", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			in, out := filepath.Join(tmp, "in"), filepath.Join(tmp, "out")
			writeTinyOPT(t, in, tc.o)
			src, err := hf.Open(in)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			fam, err := model.New(src.Config())
			if err != nil {
				t.Fatal(err)
			}
			cfg := &prune.Config{Model: in, Method: "wanda", Sparsity: 0.5, Pattern: tc.pattern, Update: prune.UpdateOptima,
				Calib: "random", NSamples: 4, SeqLen: 20, Seed: 1, Shards: 2, SkipAttention: tc.skipAtt, Solve: solve.DefaultOptions()}
			if tc.pattern != "" {
				cfg.Sparsity = 0
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(tc.o.seed, 9))
			var shards [][][]int32
			for range cfg.Shards {
				var wins [][]int32
				for range cfg.NSamples / cfg.Shards {
					win := make([]int32, cfg.SeqLen)
					for i := range win {
						win[i] = int32(r.IntN(tc.o.vocab))
					}
					wins = append(wins, win)
				}
				shards = append(shards, wins)
			}
			work, err := prune.NewWork(filepath.Join(tmp, "work"), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := prune.RunSequential(cpu.New(2), cfg, src, fam, work, shards, out, nil); err != nil {
				t.Fatal(err)
			}

			dst, err := hf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer dst.Close()
			if diff := cmp.Diff(src.Names(), dst.Names()); diff != "" {
				t.Errorf("tensor names (-source +pruned):\n%s", diff)
			}
			if _, err := dst.Tokenizer(); err != nil {
				t.Errorf("pruned tokenizer: %v", err)
			}
			pfam, err := model.New(dst.Config())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(fam.BlockTensors(1), pfam.BlockTensors(1)); diff != "" {
				t.Errorf("reloaded family differs (-source +pruned):\n%s", diff)
			}
			sw, pw := readAll(t, src), readAll(t, dst)
			pruned := map[string]model.Linear{}
			for i := range fam.NumBlocks() {
				for _, l := range fam.Linears(i) {
					if cfg.Prunable(l) {
						pruned[l.Weight()] = l
					}
				}
			}
			for name, st := range sw {
				pt := pw[name]
				l, isPruned := pruned[name]
				if !isPruned {
					if !cmp.Equal(st.Data, pt.Data) || !cmp.Equal(st.Shape, pt.Shape) {
						t.Errorf("%s changed but is not a pruned linear", name)
					}
					continue
				}
				checkZeros(t, name, st.Data, pt.Data, l, tc.pattern)
			}

			// Reports: one per pruned linear, the update never worse than masking.
			b, err := os.ReadFile(filepath.Join(out, prune.ReportFile))
			if err != nil {
				t.Fatal(err)
			}
			var rep report.Report
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Fatal(err)
			}
			if len(rep.Linears) != len(pruned) {
				t.Errorf("report has %d linears, want %d", len(rep.Linears), len(pruned))
			}
			for _, lr := range rep.Linears {
				if _, ok := pruned[lr.Name+".weight"]; !ok {
					t.Errorf("report names %s, not a pruned linear", lr.Name)
				}
				if !(lr.ErrAfter <= lr.ErrBefore*(1+1e-9)) {
					t.Errorf("%s: error after update %g > before %g", lr.Name, lr.ErrAfter, lr.ErrBefore)
				}
			}

			// The reloaded model runs: logits [tokens, vocab], finite.
			nseq, seqlen := 2, 7
			ids := make([]int32, nseq*seqlen)
			for i := range ids {
				ids[i] = int32(r.IntN(tc.o.vocab))
			}
			d := pfam.Config().HiddenSize
			x := make([]float32, len(ids)*d)
			if err := pfam.Embed(pw, ids, x); err != nil {
				t.Fatal(err)
			}
			be := cpu.New(1)
			for i := range pfam.NumBlocks() {
				if err := pfam.ForwardBlock(be, i, pw, x, nseq, seqlen, nil); err != nil {
					t.Fatal(err)
				}
			}
			logits := make([]float32, len(ids)*pfam.Config().VocabSize)
			if err := pfam.Logits(be, pw, x, len(ids), logits); err != nil {
				t.Fatal(err)
			}
			if pfam.Config().VocabSize != tc.o.vocab {
				t.Errorf("vocab %d, want %d", pfam.Config().VocabSize, tc.o.vocab)
			}
			for i, v := range logits {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("logit %d is %v", i, v)
				}
			}
		})
	}
}

// checkZeros checks a pruned linear: the dense weights have no zeros; the
// pruned ones have exactly In/2 zeros per row (50% unstructured) or exactly
// 2 in every 4 consecutive inputs (2:4), and differ from the dense ones on
// the kept set (the OPTIMA update re-fits them).
func checkZeros(t *testing.T, name string, dense, pruned []float32, l model.Linear, pattern string) {
	t.Helper()
	moved := false
	for r := range l.Out {
		drow, prow := dense[r*l.In:(r+1)*l.In], pruned[r*l.In:(r+1)*l.In]
		zeros := 0
		for j, v := range prow {
			if drow[j] == 0 {
				t.Fatalf("%s: dense weight [%d,%d] is zero; the check needs none", name, r, j)
			}
			if v == 0 {
				zeros++
			} else if v != drow[j] {
				moved = true
			}
		}
		if pattern == "2:4" {
			for g := 0; g < l.In; g += 4 {
				z := 0
				for _, v := range prow[g : g+4] {
					if v == 0 {
						z++
					}
				}
				if z != 2 {
					t.Fatalf("%s row %d group %d: %d zeros, want 2", name, r, g/4, z)
				}
			}
		} else if zeros != l.In/2 {
			t.Fatalf("%s row %d: %d zeros, want %d", name, r, zeros, l.In/2)
		}
	}
	if !moved {
		t.Errorf("%s: no kept weight changed; the OPTIMA update did not run", name)
	}
}
