// Command blockstudy composes optima's transforms into a custom pipeline:
// for one block of a model it calibrates on a few windows, selects masks,
// and solves every linear twice, with --update none and --update optima,
// printing each linear's relative reconstruction error side by side. It does
// not write a model: a quick look at how much the exact re-fit buys on a
// block before running the whole prune.
//
//	go run ./examples/blockstudy --model M.gguf --calib c4_sample.jsonl --nsamples 4 --seqlen 512
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/optima-llm/optima/pipeline"
	"github.com/optima-llm/optima/runners"
	"github.com/optima-llm/optima/stages/prune"
	"github.com/optima-llm/optima/stages/solve"
	"github.com/optima-llm/optima/transforms"
)

func init() {
	register.Function1x2[transforms.RowBatch, string, string](formatBatch)
}

// formatBatch keys a solved row batch by its linear and renders its error.
func formatBatch(b transforms.RowBatch) (string, string) {
	st := b.Result.Stats
	rel := 0.0
	if st.Denom > 0 {
		rel = st.ObjAfter / st.Denom
	}
	return b.Linear, fmt.Sprintf("rows %d-%d err %.6f", b.Start, b.Start+b.Rows, rel)
}

// Study lays the custom graph for block 0 and returns
// PCollection<KV<string, string>> of "linear → error" lines for each update.
func Study(s beam.Scope, plan *pipeline.Plan, cfg pipeline.Config) (none, optima beam.PCollection) {
	opts := transforms.Options{Config: cfg.Config, WorkDir: plan.Work.Dir, Threads: cfg.Threads}
	shards := transforms.Embed(s, beam.CreateList(s, plan.Windows), opts)
	hess := transforms.AccumulateHessian(s, transforms.Calibrate(s, 0, shards, opts))
	masked := transforms.SelectMask(s, transforms.LoadBlock(s, 0, opts), hess, opts)
	for _, u := range []string{prune.UpdateNone, prune.UpdateOptima} {
		o := opts
		o.Config.Update = u
		su := s.Scope(u)
		// Both branches read the same masked batches: SolveRowQPs solves a
		// copy, so they do not see each other's updates.
		solved := beam.ParDo(su, formatBatch, transforms.SolveRowQPs(su, masked, hess, o))
		if u == prune.UpdateNone {
			none = solved
		} else {
			optima = solved
		}
	}
	return none, optima
}

func main() {
	cfg := pipeline.Config{}
	cfg.Solve = solve.DefaultOptions()
	flag.StringVar(&cfg.Model, "model", "", "GGUF file or Hugging Face directory")
	flag.StringVar(&cfg.Calib, "calib", "", "calibration JSON Lines")
	flag.StringVar(&cfg.Method, "method", "wanda", "mask selector")
	flag.Float64Var(&cfg.Sparsity, "sparsity", 0.5, "unstructured sparsity")
	flag.StringVar(&cfg.Pattern, "pattern", "", "N:M pattern instead of --sparsity")
	flag.IntVar(&cfg.NSamples, "nsamples", 4, "calibration windows")
	flag.IntVar(&cfg.SeqLen, "seqlen", 512, "window length")
	flag.Parse()
	beam.Init()
	cfg.Update, cfg.Shards = prune.UpdateOptima, 1
	dir, err := os.MkdirTemp("", "blockstudy-")
	if err != nil {
		log.Fatal(err)
	}
	cfg.Out, cfg.WorkRoot = dir+"/unused", dir
	if cfg.Pattern != "" {
		cfg.Sparsity = 0
	}
	lines, err := Run(context.Background(), cfg)
	os.RemoveAll(dir) // before log.Fatal, which skips deferred calls
	if err != nil {
		log.Fatal(err)
	}
	for _, l := range lines {
		fmt.Println(l)
	}
}

// Run builds and runs the study on the local runner and returns its lines,
// sorted.
func Run(ctx context.Context, cfg pipeline.Config) ([]string, error) {
	plan, err := pipeline.Prepare(&cfg)
	if err != nil {
		return nil, err
	}
	p, s := beam.NewPipelineWithRoot()
	none, optima := Study(s, plan, cfg)
	outFile := plan.Work.Dir + "/study.txt"
	writeLines(s, none, optima, outFile)
	if _, err := runners.Run(ctx, runners.Local, p); err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(outFile)
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, l := range splitLines(string(raw)) {
		lines = append(lines, l)
	}
	sort.Strings(lines)
	return lines, nil
}
