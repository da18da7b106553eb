package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"
	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/internal/tinymodel"
	"github.com/optima-llm/optima/model/loader"
	"github.com/optima-llm/optima/stages/eval"
	"github.com/optima-llm/optima/stages/prune"
	"github.com/optima-llm/optima/stages/report"
)

func TestMain(m *testing.M) { ptest.Main(m) }

// fixture is a tiny two-block model with its calibration corpus and a data
// directory holding a generated WikiText-2 test split.
type fixture struct {
	model, corpus, data string
}

var words = strings.Fields("the of and to in a is that for it as was with be by on not he this are or his " +
	"from at which but have an they you were her she there one all we their can has more")

// sentence draws n words from r, space separated.
func sentence(r *rand.Rand, n int) string {
	ws := make([]string, n)
	for i := range ws {
		ws[i] = words[r.IntN(len(words))]
	}
	return strings.Join(ws, " ")
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	f := fixture{model: filepath.Join(dir, "tiny"), corpus: filepath.Join(dir, "calib.jsonl"), data: filepath.Join(dir, "data")}
	o := tinymodel.Default()
	o.Layers = 2
	if _, _, err := tinymodel.Write(f.model, o); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	var sb strings.Builder
	for range 40 {
		b, err := json.Marshal(map[string]string{"text": sentence(r, 30+r.IntN(60))})
		if err != nil {
			t.Fatal(err)
		}
		sb.Write(b)
		sb.WriteByte('\n')
	}
	if err := os.WriteFile(f.corpus, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// WikiText-2 raw layout: " = Title = " headings, blank lines " \n",
	// paragraphs that start with a space.
	sb.Reset()
	for p := range 6 {
		fmt.Fprintf(&sb, " \n = Section %d = \n \n", p)
		fmt.Fprintf(&sb, " %s . %s , %s . \n", sentence(r, 20), sentence(r, 15), sentence(r, 10))
	}
	wiki := filepath.Join(f.data, eval.WikiText2TestFile)
	if err := os.MkdirAll(filepath.Dir(wiki), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wiki, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// optima runs the CLI in process with args and returns what it wrote to
// stdout and stderr.
func optima(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := newRootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

// mustOptima is optima failing the test on an error.
func mustOptima(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, err := optima(t, args...)
	if err != nil {
		t.Fatalf("optima %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr)
	}
	return stdout, stderr
}

func (f fixture) pruneArgs(out string, extra ...string) []string {
	return append([]string{"prune", "--model", f.model, "--method", "wanda", "--sparsity", "0.5", "--update", "optima",
		"--calib", f.corpus, "--nsamples", "4", "--seqlen", "32", "--seed", "1", "--out", out, "--no-progress"}, extra...)
}

// patternArgs are pruneArgs with --pattern instead of --sparsity.
func (f fixture) patternArgs(out, pattern string) []string {
	args := f.pruneArgs(out, "--pattern", pattern)
	i := indexOf(args, "--sparsity")
	return append(args[:i], args[i+2:]...)
}

// weights loads every tensor of a model as raw float32 values by name.
func weights(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	src, err := loader.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	w := map[string][]float32{}
	for _, n := range src.Names() {
		tt, err := src.Load(n)
		if err != nil {
			t.Fatal(err)
		}
		w[n] = tt.Data
	}
	return w
}

// sameBits reports the first tensor whose values differ bit for bit.
func sameBits(a, b map[string][]float32) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d vs %d tensors", len(a), len(b))
	}
	for n, va := range a {
		vb, ok := b[n]
		if !ok || len(va) != len(vb) {
			return fmt.Errorf("tensor %s differs in presence or size", n)
		}
		for i := range va {
			if math.Float32bits(va[i]) != math.Float32bits(vb[i]) {
				return fmt.Errorf("%s[%d]: %g vs %g", n, i, va[i], vb[i])
			}
		}
	}
	return nil
}

func evalJSON(t *testing.T, f fixture, model string) evalResult {
	t.Helper()
	stdout, _ := mustOptima(t, "eval", "--model", model, "--task", "wikitext2", "--seqlen", "32", "--data-dir", f.data,
		"--json", "--no-progress", "--threads", "2")
	var keys map[string]json.RawMessage
	if err := json.Unmarshal([]byte(stdout), &keys); err != nil {
		t.Fatalf("eval --json: %v\n%s", err, stdout)
	}
	for _, k := range []string{"perplexity", "tokens", "windows", "seqlen", "nll", "window_nll"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("eval --json of %s lacks key %q", model, k)
		}
	}
	var res evalResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatal(err)
	}
	if math.IsNaN(res.Perplexity) || math.IsInf(res.Perplexity, 0) || res.Perplexity <= 1 {
		t.Errorf("%s: perplexity %g, want finite and > 1", model, res.Perplexity)
	}
	if res.Seqlen != 32 || res.Windows < 3 || res.Tokens != res.Windows*res.Seqlen || len(res.WindowNLL) != res.Windows {
		t.Errorf("%s: seqlen %d, %d windows, %d tokens, %d window NLLs; want seqlen 32, ≥ 3 windows, tokens = windows·seqlen",
			model, res.Seqlen, res.Windows, res.Tokens, len(res.WindowNLL))
	}
	if d := math.Abs(res.Perplexity - math.Exp(res.NLL)); d > 1e-9*res.Perplexity {
		t.Errorf("%s: perplexity %g is not exp(nll %g)", model, res.Perplexity, res.NLL)
	}
	return res
}

// TestPruneSparsityEval runs prune, sparsity and eval end to end, then
// stops a run after one block and resumes it.
func TestPruneSparsityEval(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "pruned")
	stdout, _ := mustOptima(t, f.pruneArgs(out, "--threads", "2")...)
	if !strings.Contains(stdout, "wrote "+out) {
		t.Errorf("prune stdout %q does not say it wrote %s", stdout, out)
	}
	if _, err := os.Stat(out + ".work"); err == nil {
		t.Errorf("work directory %s.work left behind after a finished run", out)
	}

	// report.json: configuration, one entry per linear, totals.
	raw, err := os.ReadFile(filepath.Join(out, prune.ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Config  prune.Config          `json:"config"`
		Linears []report.LinearReport `json:"linears"`
		Totals  report.Totals         `json:"totals"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	wantCfg := struct {
		Model, Method, Update, Calib string
		Sparsity                     float64
		NSamples, SeqLen             int
		Seed                         uint64
	}{f.model, "wanda", "optima", f.corpus, 0.5, 4, 32, 1}
	gotCfg := wantCfg
	gotCfg.Model, gotCfg.Method, gotCfg.Update, gotCfg.Calib = rep.Config.Model, rep.Config.Method, rep.Config.Update, rep.Config.Calib
	gotCfg.Sparsity, gotCfg.NSamples, gotCfg.SeqLen, gotCfg.Seed = rep.Config.Sparsity, rep.Config.NSamples, rep.Config.SeqLen, rep.Config.Seed
	if d := cmp.Diff(wantCfg, gotCfg); d != "" {
		t.Errorf("report config (-want +got):\n%s", d)
	}
	if len(rep.Linears) != 2*7 {
		t.Fatalf("report has %d linears, want 14", len(rep.Linears))
	}
	var params int64
	var numBefore, numAfter, den float64
	for _, l := range rep.Linears {
		if l.Sparsity != 0.5 {
			t.Errorf("%s: sparsity %g, want 0.5", l.Name, l.Sparsity)
		}
		if !(l.ErrBefore > 0 && l.ErrAfter >= 0 && l.ErrAfter < l.ErrBefore) {
			t.Errorf("%s: err_before %g, err_after %g; want 0 ≤ after < before", l.Name, l.ErrBefore, l.ErrAfter)
		}
		params += l.Params()
		numBefore += l.NumBefore
		numAfter += l.NumAfter
		den += l.Den
	}
	tot := rep.Totals
	if tot.Linears != 14 || tot.Params != params || math.Abs(tot.Sparsity-0.5) > 1e-12 {
		t.Errorf("totals: %d linears, %d params, sparsity %g; want 14, %d, 0.5", tot.Linears, tot.Params, tot.Sparsity, params)
	}
	if math.Abs(tot.ErrBefore-numBefore/den) > 1e-12*tot.ErrBefore || math.Abs(tot.ErrAfter-numAfter/den) > 1e-12*tot.ErrBefore {
		t.Errorf("totals err %g → %g, want Σnum/Σden %g → %g", tot.ErrBefore, tot.ErrAfter, numBefore/den, numAfter/den)
	}
	if !(tot.ErrAfter < tot.ErrBefore) {
		t.Errorf("totals: OPTIMA did not lower the error (%g vs %g)", tot.ErrAfter, tot.ErrBefore)
	}

	// sparsity: every linear at 0.5 in the pruned model, none in the dense.
	t.Run("sparsity", func(t *testing.T) {
		stdout, _ := mustOptima(t, "sparsity", "--model", out, "--json")
		var sp report.SparsityReport
		if err := json.Unmarshal([]byte(stdout), &sp); err != nil {
			t.Fatalf("sparsity --json: %v\n%s", err, stdout)
		}
		if len(sp.Tensors) != 14 {
			t.Fatalf("sparsity found %d linears, want 14", len(sp.Tensors))
		}
		for _, ts := range sp.Tensors {
			if ts.Sparsity != 0.5 {
				t.Errorf("%s: sparsity %g, want 0.5", ts.Name, ts.Sparsity)
			}
		}
		if sp.Sparsity != 0.5 || sp.Params != params {
			t.Errorf("total sparsity %g over %d params, want 0.5 over %d", sp.Sparsity, sp.Params, params)
		}
		text, _ := mustOptima(t, "sparsity", "--model", f.model)
		if !strings.Contains(text, "total (14 tensors)") || !strings.Contains(text, " 0.00%") {
			t.Errorf("sparsity of the dense model:\n%s", text)
		}
	})

	t.Run("eval", func(t *testing.T) {
		pruned := evalJSON(t, f, out)
		dense := evalJSON(t, f, f.model)
		if pruned.Perplexity == dense.Perplexity {
			t.Errorf("pruned and dense perplexity are both %g", pruned.Perplexity)
		}
		if pruned.Windows != dense.Windows || pruned.Tokens != dense.Tokens {
			t.Errorf("pruned and dense models scored %d/%d windows", pruned.Windows, dense.Windows)
		}
	})

	// --pattern without --sparsity drops the --sparsity default.
	t.Run("pattern 2:4", func(t *testing.T) {
		out24 := filepath.Join(t.TempDir(), "nm")
		mustOptima(t, f.patternArgs(out24, "2:4")...)
		stdout, _ := mustOptima(t, "sparsity", "--model", out24, "--json")
		var sp report.SparsityReport
		if err := json.Unmarshal([]byte(stdout), &sp); err != nil {
			t.Fatal(err)
		}
		if !sp.NM24 || len(sp.Tensors) != 14 || sp.Sparsity != 0.5 {
			t.Errorf("--pattern 2:4: 2:4 %v over %d tensors, sparsity %g", sp.NM24, len(sp.Tensors), sp.Sparsity)
		}
	})

	// A run stopped after block 0 leaves no model; the same command without
	// --stop-after-blocks resumes and gives the uninterrupted run's weights.
	t.Run("resume", func(t *testing.T) {
		out2 := filepath.Join(t.TempDir(), "resumed")
		stdout, stderr := mustOptima(t, f.pruneArgs(out2, "--stop-after-blocks", "1")...)
		if !strings.Contains(stdout, "stopped after 1 of 2 blocks") {
			t.Errorf("stopped run printed %q", stdout)
		}
		if strings.Contains(stderr, "resuming") {
			t.Errorf("first run claims to resume: %q", stderr)
		}
		if _, err := os.Stat(out2); err == nil {
			t.Fatalf("a stopped run wrote the model %s", out2)
		}
		_, stderr = mustOptima(t, f.pruneArgs(out2)...)
		if !strings.Contains(stderr, "resuming") || !strings.Contains(stderr, "blocks 0-0 already pruned") {
			t.Errorf("rerun stderr %q does not report resuming after block 0", stderr)
		}
		if err := sameBits(weights(t, out), weights(t, out2)); err != nil {
			t.Errorf("resumed run differs from the uninterrupted one: %v", err)
		}
	})
}

// TestBadInput: every rejected invocation names the flag or file at fault
// and leaves neither the output nor its work directory behind.
func TestBadInput(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()

	gguf := filepath.Join(dir, "tiny.gguf")
	o := tinymodel.Default()
	o.Layers = 2
	if _, _, err := tinymodel.WriteGGUF(gguf, o); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(gguf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(gguf, st.Size()/2); err != nil {
		t.Fatal(err)
	}

	// A model directory whose safetensors file is cut short, and one whose
	// safetensors file is not one at all.
	cut := filepath.Join(dir, "cut")
	if _, _, err := tinymodel.Write(cut, o); err != nil {
		t.Fatal(err)
	}
	stPath := filepath.Join(cut, "model.safetensors")
	if st, err = os.Stat(stPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(stPath, st.Size()-100); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage")
	if _, _, err := tinymodel.Write(garbage, o); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(garbage, "model.safetensors"), []byte("\xff\xff\xff\xff\xff\xff\xff\x7fnot safetensors"), 0o644); err != nil {
		t.Fatal(err)
	}

	// A parent directory that cannot be written: root writes through mode
	// bits, so it gets /proc.
	readOnly := filepath.Join(dir, "readonly")
	if err := os.Mkdir(readOnly, 0o555); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		readOnly = "/proc"
	}

	for _, tc := range []struct {
		name string
		args []string // "OUT" is replaced by the case's output directory
		want []string // substrings of the error
	}{
		{"sparsity 1", f.pruneArgs("OUT", "--sparsity", "1.0"), []string{"--sparsity"}},
		{"sparsity negative", f.pruneArgs("OUT", "--sparsity", "-0.1"), []string{"--sparsity"}},
		{"pattern 4:2", f.patternArgs("OUT", "4:2"), []string{"--pattern", "4:2", "0 < N < M"}},
		{"pattern 2:3 width", f.patternArgs("OUT", "2:3"), []string{"--pattern", "2:3", "multiple of 3"}},
		{"sparsity and pattern", f.pruneArgs("OUT", "--pattern", "2:4"), []string{"--sparsity", "--pattern", "not both"}},
		{"pattern garbage", f.patternArgs("OUT", "half"), []string{"--pattern", "half", "want N:M"}},
		{"nsamples too many", f.pruneArgs("OUT", "--nsamples", "100000"), []string{"--nsamples", f.corpus}},
		{"out parent is a file", f.pruneArgs(filepath.Join(f.corpus, "sub", "out")), []string{"--out", "cannot create parent"}},
		{"out read-only parent", f.pruneArgs(filepath.Join(readOnly, "out")), []string{"--out", "not writable"}},
		{"calib missing", f.pruneArgs("OUT", "--calib", filepath.Join(dir, "none.jsonl")), []string{"--calib", "none.jsonl"}},
		{"model truncated gguf", replace(f.pruneArgs("OUT"), f.model, gguf), []string{"--model", gguf}},
		{"model cut safetensors", replace(f.pruneArgs("OUT"), f.model, cut), []string{"--model", "model.safetensors"}},
		{"model garbage safetensors", replace(f.pruneArgs("OUT"), f.model, garbage), []string{"--model", "model.safetensors"}},
		{"model missing", replace(f.pruneArgs("OUT"), f.model, filepath.Join(dir, "nothing")), []string{"--model", "nothing"}},
		{"method", f.pruneArgs("OUT", "--method", "random"), []string{"--method", "random"}},
		{"update", f.pruneArgs("OUT", "--update", "own"), []string{"--update", "own"}},
		{"runner flink", f.pruneArgs("OUT", "--runner", "flink"), []string{"--job-endpoint", "required with --runner flink"}},
		{"runner flink server down", f.pruneArgs("OUT", "--runner", "flink", "--job-endpoint", "127.0.0.1:1"), []string{"--job-endpoint", "127.0.0.1:1", "unreachable"}},
		{"runner unknown", f.pruneArgs("OUT", "--runner", "spark"), []string{"--runner", "spark", "unknown"}},
		{"device unknown", f.pruneArgs("OUT", "--device", "tpu"), []string{"--device", "tpu", "unknown"}},
		{"flink docker local paths", f.pruneArgs("OUT", "--runner", "flink", "--job-endpoint", "localhost:8099", "--environment-type", "DOCKER"), []string{"--calib", "use a gs:// path"}},
		{"dataflow local paths", f.pruneArgs("OUT", "--runner", "dataflow", "--project", "p", "--region", "r", "--staging-location", "gs://b/s"), []string{"--calib", "--runner dataflow", "gs://"}},
		{"dataflow no staging", f.pruneArgs("OUT", "--runner", "dataflow", "--project", "p", "--region", "r"), []string{"--staging-location", "required"}},
		{"dataflow flag on local", f.pruneArgs("OUT", "--worker-machine-type", "g2-standard-8"), []string{"--worker-machine-type", "only applies to --runner dataflow"}},
		{"stop-after negative", f.pruneArgs("OUT", "--stop-after-blocks", "-1"), []string{"--stop-after-blocks"}},
		{"cg-tol with update none", f.pruneArgs("OUT", "--update", "none", "--cg-tol", "1e-3"), []string{"--cg-tol", "--update optima", "none"}},
		{"cg-max-iter with update own", f.pruneArgs("OUT", "--method", "sparsegpt", "--update", "own", "--cg-max-iter", "5"), []string{"--cg-max-iter", "--update optima", "own"}},
		{"float64 with update own", f.pruneArgs("OUT", "--method", "sparsegpt", "--update", "own", "--float64"), []string{"--float64", "--update optima", "own"}},
		{"eval task", []string{"eval", "--model", f.model, "--task", "lambada", "--data-dir", f.data}, []string{"--task", "lambada"}},
		{"eval truncated gguf", []string{"eval", "--model", gguf, "--seqlen", "32", "--data-dir", f.data, "--no-progress"}, []string{"--model", gguf}},
		{"eval data dir", []string{"eval", "--model", f.model, "--data-dir", filepath.Join(dir, "nodata")}, []string{"--data-dir", "nodata"}},
		{"eval no wikitext", []string{"eval", "--model", f.model, "--data-dir", dir, "--no-progress"}, []string{"wiki.test.raw"}},
		{"eval-limit without eval-tasks", f.pruneArgs("OUT", "--eval-limit", "5"), []string{"--eval-limit", "--eval-tasks"}},
		{"data-dir with calib and no eval-tasks", f.pruneArgs("OUT", "--data-dir", f.data), []string{"--data-dir", f.data, "--calib", "--eval-tasks"}},
		{"eval-tasks files missing", f.pruneArgs("OUT", "--eval-tasks", "piqa", "--data-dir", f.data), []string{"--eval-tasks", "piqa_valid.jsonl"}},
		{"eval zero-shot files missing", []string{"eval", "--model", f.model, "--task", "wikitext2,arc_easy", "--seqlen", "32", "--data-dir", f.data, "--no-progress"}, []string{"--task", "arc_easy.jsonl"}},
		{"sparsity garbage", []string{"sparsity", "--model", garbage}, []string{"--model", "model.safetensors"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			args := replace(tc.args, "OUT", out)
			if i := indexOf(args, "--out"); i >= 0 {
				out = args[i+1]
			}
			stdout, _, err := optima(t, args...)
			if err == nil {
				t.Fatalf("optima %s: no error (stdout %q)", strings.Join(args, " "), stdout)
			}
			t.Logf("error: %v", err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			for _, p := range []string{out, out + ".work"} {
				if _, serr := os.Stat(p); serr == nil {
					t.Errorf("%s exists after a rejected run", p)
				}
			}
		})
	}
}

// replace returns a copy of args with every old replaced by new.
func replace(args []string, old, new string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == old {
			a = new
		}
		out[i] = a
	}
	return out
}

func indexOf(args []string, s string) int {
	for i, a := range args {
		if a == s {
			return i
		}
	}
	return -1
}

// TestInterrupted: a prune whose context is cancelled (Ctrl-C) fails with
// an error that says it was interrupted and how to resume, not with the
// runner's RPC errors, and writes no model.
func TestInterrupted(t *testing.T) {
	f := newFixture(t)
	out := filepath.Join(t.TempDir(), "out")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cmd := newRootCmd()
	cmd.SetArgs(f.pruneArgs(out))
	var stdout, stderr bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"interrupted", "run the same command again to resume"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	for _, w := range []string{"rpc error", "caused by"} {
		if strings.Contains(err.Error(), w) {
			t.Errorf("error %q shows the runner's %q", err, w)
		}
	}
	if _, serr := os.Stat(out); serr == nil {
		t.Errorf("%s written by an interrupted run", out)
	}
}
