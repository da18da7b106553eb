package gemma_test

import (
	"encoding/json"
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
	"github.com/optima-llm/optima/model/gemma"
	"github.com/optima-llm/optima/model/gguf"
	"github.com/optima-llm/optima/model/hf"
	"github.com/optima-llm/optima/model/tokenizer"
	"github.com/optima-llm/optima/stages/prune"
	"github.com/optima-llm/optima/stages/report"
	"github.com/optima-llm/optima/stages/solve"
)

// byteTokSource gives the tokenizer-less fixtures a tokenizer, which
// prune.WriteModel asks for.
type byteTokSource struct{ model.Source }

func (byteTokSource) Tokenizer() (tokenizer.Tokenizer, error) { return tinymodel.ByteTokenizer{}, nil }

// TestPruneEndToEnd prunes each tiny Gemma fixture with Wanda masks and the
// OPTIMA update through prune.RunSequential (the Beam-free reference of the
// pipeline) on calibration windows longer than the sliding window, then
// checks the written directory: every linear has half of each row pruned and
// a lower reconstruction error after the update, the norms and embedding are
// untouched, config.json builds the same family, and the pruned model's
// forward pass runs to finite logits.
//
// The gemma3 fixture is also pruned from a GGUF conversion (norm weights
// stored as 1 + w): the written directory must hold Hugging Face's norms.
func TestPruneEndToEnd(t *testing.T) {
	for i, name := range []string{"gemma2", "gemma3", "gemma3.gguf"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", strings.TrimSuffix(name, ".gguf"))
			var d model.Source
			var err error
			if strings.HasSuffix(name, ".gguf") {
				var path string
				path, _ = gemma.WriteFixtureGGUF(t, "gemma3", gemma.Gemma3GGUFMeta)
				d, err = gguf.OpenModel(path)
				dir = path
			} else {
				d, err = hf.Open(dir)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			src := byteTokSource{d}
			ref, err := hf.Open(filepath.Join("testdata", strings.TrimSuffix(name, ".gguf")))
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			fam, err := model.New(src.Config())
			if err != nil {
				t.Fatal(err)
			}
			const nsamples, seqlen, shards = 8, 12, 2
			cfg := prune.Config{Model: dir, Method: "wanda", Sparsity: 0.5, Update: prune.UpdateOptima,
				Calib: "unused.jsonl", NSamples: nsamples, SeqLen: seqlen, Seed: 1, Shards: shards,
				Solve: solve.DefaultOptions()}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			wins := make([][][]int32, shards)
			for s := range nsamples {
				w := make([]int32, seqlen)
				for j := range w {
					w[j] = int32(rng.IntN(src.Config().VocabSize))
				}
				wins[s%shards] = append(wins[s%shards], w)
			}
			work, err := prune.NewWork(t.TempDir(), &cfg)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "pruned")
			if err := prune.RunSequential(cpu.New(2), &cfg, src, fam, work, wins, out, nil); err != nil {
				t.Fatal(err)
			}

			pruned, err := hf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer pruned.Close()
			if d := cmp.Diff(src.Names(), pruned.Names()); d != "" {
				t.Errorf("tensor names (-dense +pruned):\n%s", d)
			}
			fam2, err := model.New(pruned.Config())
			if err != nil {
				t.Fatal(err)
			}
			linears := map[string]model.Linear{}
			for b := range fam.NumBlocks() {
				for _, l := range fam.Linears(b) {
					linears[l.Weight()] = l
				}
			}
			w := model.Weights{}
			for _, n := range pruned.Names() {
				pt, err := pruned.Load(n)
				if err != nil {
					t.Fatal(err)
				}
				w[n] = pt
				dt, err := src.Load(n)
				if err != nil {
					t.Fatal(err)
				}
				l, isLinear := linears[n]
				if !isLinear {
					if !cmp.Equal(dt.Data, pt.Data) {
						t.Errorf("%s changed", n)
					}
					rt, err := ref.Load(n)
					if err != nil {
						t.Fatal(err)
					}
					for j, v := range rt.Data {
						if math.Abs(float64(pt.Data[j]-v)) > 1e-6 {
							t.Fatalf("%s[%d] = %g, want Hugging Face's %g", n, j, pt.Data[j], v)
						}
					}
					continue
				}
				for r := range l.Out {
					zeros := 0
					for _, v := range pt.Data[r*l.In : (r+1)*l.In] {
						if v == 0 {
							zeros++
						}
					}
					if zeros != l.In/2 {
						t.Fatalf("%s row %d: %d zeros of %d, want half", n, r, zeros, l.In)
					}
				}
			}
			if len(linears) != 7*fam.NumBlocks() {
				t.Fatalf("%d linears", len(linears))
			}

			b, err := os.ReadFile(filepath.Join(out, prune.ReportFile))
			if err != nil {
				t.Fatal(err)
			}
			var rep report.Report
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Fatal(err)
			}
			if len(rep.Linears) != len(linears) {
				t.Errorf("report has %d linears, want %d", len(rep.Linears), len(linears))
			}
			for _, lr := range rep.Linears {
				if !(lr.ErrAfter < lr.ErrBefore) || !(lr.Den > 0) {
					t.Errorf("%s: error %.4g after the update, %.4g before (den %g)", lr.Name, lr.ErrAfter, lr.ErrBefore, lr.Den)
				}
				if !strings.HasPrefix(lr.Group, strings.Join(strings.Split(lr.Name, ".")[:3], ".")) {
					t.Errorf("%s reads group %s", lr.Name, lr.Group)
				}
			}

			// The pruned model runs.
			be := cpu.New(2)
			ids := wins[0][0]
			x := make([]float32, len(ids)*fam2.Config().HiddenSize)
			if err := fam2.Embed(w, ids, x); err != nil {
				t.Fatal(err)
			}
			for b := range fam2.NumBlocks() {
				if err := fam2.ForwardBlock(be, b, w, x, 1, len(ids), nil); err != nil {
					t.Fatal(err)
				}
			}
			logits := make([]float32, len(ids)*fam2.Config().VocabSize)
			if err := fam2.Logits(be, w, x, len(ids), logits); err != nil {
				t.Fatal(err)
			}
			for _, v := range logits {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatal("pruned model gives non-finite logits")
				}
			}
		})
	}
}
