package main

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"
	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/internal/tinymodel"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/pipeline"
	"github.com/optima-llm/optima/runners"
	"github.com/optima-llm/optima/stages/prune"
	"github.com/optima-llm/optima/stages/report"
	"github.com/optima-llm/optima/stages/solve"
)

func TestMain(m *testing.M) { ptest.Main(m) }

// studyConfig writes a tiny two-block model and a corpus and returns the
// configuration main would build for them, with its work under dir.
func studyConfig(t *testing.T) (pipeline.Config, model.Family) {
	t.Helper()
	dir := t.TempDir()
	o := tinymodel.Default()
	o.Layers = 2
	modelDir := filepath.Join(dir, "tiny")
	if _, _, err := tinymodel.Write(modelDir, o); err != nil {
		t.Fatal(err)
	}
	fam, err := model.New(tinymodel.Config(o))
	if err != nil {
		t.Fatal(err)
	}
	words := strings.Fields("the of and to in a is that for it as was with be by on not he this are or his from at which")
	r := rand.New(rand.NewPCG(3, 4))
	var sb strings.Builder
	for range 30 {
		ws := make([]string, 20+r.IntN(40))
		for i := range ws {
			ws[i] = words[r.IntN(len(words))]
		}
		b, err := json.Marshal(map[string]string{"text": strings.Join(ws, " ")})
		if err != nil {
			t.Fatal(err)
		}
		sb.Write(b)
		sb.WriteByte('\n')
	}
	corpus := filepath.Join(dir, "calib.jsonl")
	if err := os.WriteFile(corpus, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := pipeline.Config{Out: filepath.Join(dir, "unused"), WorkRoot: filepath.Join(dir, "work"), Threads: 2}
	cfg.Model, cfg.Calib, cfg.Method, cfg.Sparsity = modelDir, corpus, "wanda", 0.5
	cfg.NSamples, cfg.SeqLen, cfg.Seed = 4, 32, 1
	cfg.Update, cfg.Shards = prune.UpdateOptima, 1
	cfg.Solve = solve.DefaultOptions()
	return cfg, fam
}

var lineRE = regexp.MustCompile(`^(\S+) rows (\d+)-(\d+) err ([0-9.]+) \| optima: err ([0-9.]+)$`)

// studyLine is one parsed line of Run.
type studyLine struct {
	Linear     string
	Start, End int
	None, Opt  float64
}

func parseLines(t *testing.T, lines []string) []studyLine {
	t.Helper()
	var out []studyLine
	for _, l := range lines {
		m := lineRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %q does not match %s", l, lineRE)
		}
		s := studyLine{Linear: m[1]}
		s.Start, _ = strconv.Atoi(m[2])
		s.End, _ = strconv.Atoi(m[3])
		s.None, _ = strconv.ParseFloat(m[4], 64)
		s.Opt, _ = strconv.ParseFloat(m[5], 64)
		out = append(out, s)
	}
	return out
}

// TestRunRowBatches: one line per row batch of block 0, and the OPTIMA
// re-fit never does worse than the mask alone.
func TestRunRowBatches(t *testing.T) {
	cfg, fam := studyConfig(t)
	cfg.RowBatch = 16
	lines, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	type batch struct {
		Linear     string
		Start, End int
	}
	var want, got []batch
	for _, l := range fam.Linears(0) {
		for _, r := range cfg.RowBatches(l.Out, l.In) {
			want = append(want, batch{l.Name, r[0], r[1]})
		}
	}
	if len(want) <= len(fam.Linears(0)) {
		t.Fatalf("test setup: row batch %d gives %d batches for %d linears", cfg.RowBatch, len(want), len(fam.Linears(0)))
	}
	for _, s := range parseLines(t, lines) {
		got = append(got, batch{s.Linear, s.Start, s.End})
		if !(s.None > 0) || s.Opt > s.None {
			t.Errorf("%s rows %d-%d: optima error %g, mask-only %g; want 0 < mask-only and optima ≤ it", s.Linear, s.Start, s.End, s.Opt, s.None)
		}
	}
	less := func(a, b batch) bool {
		if a.Linear != b.Linear {
			return a.Linear < b.Linear
		}
		return a.Start < b.Start
	}
	sort.Slice(want, func(i, j int) bool { return less(want[i], want[j]) })
	sort.Slice(got, func(i, j int) bool { return less(got[i], got[j]) })
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("row batches (-want +got):\n%s", d)
	}
}

// TestRunMatchesPipeline: with one row batch per linear, the study's two
// errors per linear are the err_before and err_after the full pipeline
// reports for block 0 (the two solves must not see each other's weights).
func TestRunMatchesPipeline(t *testing.T) {
	cfg, fam := studyConfig(t)
	lines, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	study := parseLines(t, lines)
	if len(study) != len(fam.Linears(0)) {
		t.Fatalf("%d lines for %d linears:\n%s", len(study), len(fam.Linears(0)), strings.Join(lines, "\n"))
	}

	full := cfg
	full.Out, full.WorkRoot = filepath.Join(t.TempDir(), "pruned"), filepath.Join(t.TempDir(), "work")
	plan, err := pipeline.Prepare(&full)
	if err != nil {
		t.Fatal(err)
	}
	p, s := beam.NewPipelineWithRoot()
	pipeline.Build(s, &full, plan)
	if _, err := runners.Run(context.Background(), runners.Local, p); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(full.Out, prune.ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	byName := map[string]report.LinearReport{}
	for _, l := range rep.Linears {
		byName[l.Name] = l
	}
	// The study prints six decimals.
	const tol = 1e-6
	for _, s := range study {
		l, ok := byName[s.Linear]
		if !ok {
			t.Fatalf("%s is not in the pipeline's report", s.Linear)
		}
		if math.Abs(s.None-l.ErrBefore) > tol || math.Abs(s.Opt-l.ErrAfter) > tol {
			t.Errorf("%s: study %.6f → %.6f, pipeline %.6f → %.6f", s.Linear, s.None, s.Opt, l.ErrBefore, l.ErrAfter)
		}
		if !(s.Opt < s.None) {
			t.Errorf("%s: OPTIMA error %g not below mask-only %g", s.Linear, s.Opt, s.None)
		}
	}
}
