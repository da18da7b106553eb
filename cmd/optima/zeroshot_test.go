package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/schollz/progressbar/v3"

	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/safetensors"
	"github.com/optima-llm/optima/stages/eval"
	"github.com/optima-llm/optima/stages/report"
)

// writeZeroShotData writes small files in the layout of the data directory's
// zero-shot tasks (n items each; MMLU: two subjects) under dir.
func writeZeroShotData(t *testing.T, dir string, n int) {
	t.Helper()
	r := rand.New(rand.NewPCG(3, 4))
	files := map[string]*strings.Builder{}
	add := func(name string, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if files[name] == nil {
			files[name] = &strings.Builder{}
		}
		files[name].Write(b)
		files[name].WriteByte('\n')
	}
	var labels strings.Builder
	for i := range n {
		for _, f := range []string{eval.ARCEasyFile, eval.ARCChallengeFile, eval.OpenBookQAFile} {
			q := sentence(r, 8)
			if f != eval.OpenBookQAFile {
				q = "Question: " + q + "?"
			}
			add(f, map[string]any{"query": q, "choices": []string{sentence(r, 2), sentence(r, 3), sentence(r, 1), sentence(r, 4)}, "gold": r.IntN(4)})
		}
		pre := sentence(r, 6)
		add(eval.WinoGrandeFile, map[string]any{"context_options": []string{pre + " she", pre + " he"}, "continuation": sentence(r, 4) + ".", "gold": r.IntN(2)})
		add(eval.PIQAFile, map[string]any{"goal": sentence(r, 7), "sol1": sentence(r, 5), "sol2": sentence(r, 6)})
		fmt.Fprintf(&labels, "%d\n", i%2)
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, eval.PIQALabelsFile), []byte(labels.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	mdir := filepath.Join(dir, eval.MMLUTestDir)
	if err := os.MkdirAll(mdir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"anatomy", "world_religions"} {
		var sb strings.Builder
		sb.WriteString("question,choice0,choice1,choice2,choice3,answer\n")
		for range n {
			fmt.Fprintf(&sb, "\"%s, %s?\",%s,%s,%s,%s,%d\n", sentence(r, 5), sentence(r, 3), sentence(r, 1), sentence(r, 2), sentence(r, 1), sentence(r, 3), r.IntN(4))
		}
		if err := os.WriteFile(filepath.Join(mdir, s+"_test.csv"), []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type zeroShotJSON struct {
	Model       string            `json:"model"`
	Tasks       []eval.TaskResult `json:"tasks"`
	Average     float64           `json:"average_acc"`
	AverageNorm float64           `json:"average_acc_norm_or_acc"`
	Limit       int               `json:"limit"`
	WikiText2   *evalResult       `json:"wikitext2"`
}

// TestEvalZeroShot runs eval --task with every zero-shot task (and
// wikitext2) on the tiny model and checks the JSON: item counts under
// --limit, accuracies that are fractions of the items, acc_norm exactly where
// the harness reports it, and the averages.
func TestEvalZeroShot(t *testing.T) {
	f := newFixture(t)
	writeZeroShotData(t, f.data, 5)
	stdout, _ := mustOptima(t, "eval", "--model", f.model, "--task", "wikitext2,zeroshot", "--limit", "3", "--seqlen", "32",
		"--data-dir", f.data, "--json", "--no-progress", "--threads", "2")
	var got zeroShotJSON
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if got.WikiText2 == nil || got.WikiText2.Perplexity <= 1 {
		t.Errorf("wikitext2 result %+v", got.WikiText2)
	}
	var names []string
	var sum, sumNorm float64
	for _, r := range got.Tasks {
		names = append(names, r.Task)
		want := 3
		if r.Task == "mmlu" {
			want = 6 // 3 per subject
			if diff := cmp.Diff([]string{"anatomy", "world_religions"}, r.SubjectNames()); diff != "" {
				t.Errorf("mmlu subjects (-want +got):\n%s", diff)
			}
		}
		if r.Items != want {
			t.Errorf("%s: %d items, want %d", r.Task, r.Items, want)
		}
		if k := r.Acc * float64(r.Items); math.Abs(k-math.Round(k)) > 1e-9 {
			t.Errorf("%s: acc %v is not a fraction of %d items", r.Task, r.Acc, r.Items)
		}
		hasNorm := r.Task != "winogrande" && r.Task != "mmlu"
		if (r.AccNorm != nil) != hasNorm {
			t.Errorf("%s: acc_norm %v, want present %v", r.Task, r.AccNorm, hasNorm)
		}
		sum += r.Acc
		if r.AccNorm != nil {
			sumNorm += *r.AccNorm
		} else {
			sumNorm += r.Acc
		}
	}
	if diff := cmp.Diff(eval.ZeroShotTasks, names); diff != "" {
		t.Errorf("tasks (-want +got):\n%s", diff)
	}
	if math.Abs(got.Average-sum/6) > 1e-12 || math.Abs(got.AverageNorm-sumNorm/6) > 1e-12 || got.Limit != 3 {
		t.Errorf("average %v (want %v), average_norm %v (want %v), limit %d", got.Average, sum/6, got.AverageNorm, sumNorm/6, got.Limit)
	}
	// Text output names every task and the average.
	text, _ := mustOptima(t, "eval", "--model", f.model, "--task", "piqa,mmlu", "--limit", "2", "--data-dir", f.data, "--no-progress")
	for _, w := range []string{"piqa", "mmlu", "average (2 tasks)"} {
		if !strings.Contains(text, w) {
			t.Errorf("text output lacks %q:\n%s", w, text)
		}
	}
}

// TestPruneEvalTasks checks that prune --eval-tasks adds the zero-shot
// section to report.json, with the same numbers eval gives for the pruned
// model.
func TestPruneEvalTasks(t *testing.T) {
	f := newFixture(t)
	writeZeroShotData(t, f.data, 4)
	out := filepath.Join(t.TempDir(), "pruned")
	mustOptima(t, f.pruneArgs(out, "--threads", "2", "--data-dir", f.data, "--eval-tasks", "arc_easy,winogrande", "--eval-limit", "3")...)
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.ZeroShot == nil || len(rep.Linears) == 0 {
		t.Fatalf("report.json lacks the zero-shot section or the linears:\n%s", raw)
	}
	stdout, _ := mustOptima(t, "eval", "--model", out, "--task", "arc_easy,winogrande", "--limit", "3", "--data-dir", f.data, "--json", "--no-progress")
	var ev zeroShotJSON
	if err := json.Unmarshal([]byte(stdout), &ev); err != nil {
		t.Fatal(err)
	}
	var want []report.TaskAccuracy
	for _, r := range ev.Tasks {
		want = append(want, report.TaskAccuracy{Task: r.Task, Items: r.Items, Acc: r.Acc, AccNorm: r.AccNorm})
	}
	if diff := cmp.Diff(want, rep.ZeroShot.Tasks); diff != "" {
		t.Errorf("report zero-shot tasks (-eval +report):\n%s", diff)
	}
	if rep.ZeroShot.AverageAcc != ev.Average || rep.ZeroShot.Limit != 3 {
		t.Errorf("report average %v limit %d, eval average %v", rep.ZeroShot.AverageAcc, rep.ZeroShot.Limit, ev.Average)
	}
}

func TestZeroShotFlags(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"unknown task", []string{"eval", "--model", f.model, "--task", "piqa,hellaswag", "--data-dir", f.data}, []string{"--task", "hellaswag", "unknown"}},
		{"duplicate task", []string{"eval", "--model", f.model, "--task", "mmlu,zeroshot", "--data-dir", f.data}, []string{"--task", "mmlu", "twice"}},
		{"negative limit", []string{"eval", "--model", f.model, "--task", "piqa", "--limit", "-1", "--data-dir", f.data}, []string{"--limit"}},
		{"missing data", []string{"eval", "--model", f.model, "--task", "piqa", "--data-dir", f.data, "--no-progress"}, []string{"piqa_valid.jsonl"}},
		{"prune wikitext2", f.pruneArgs("OUT", "--data-dir", f.data, "--eval-tasks", "wikitext2"), []string{"--eval-tasks", "wikitext2"}},
		{"limit without zero-shot task", []string{"eval", "--model", f.model, "--task", "wikitext2", "--limit", "5", "--data-dir", f.data}, []string{"--limit 5", "zero-shot task"}},
		{"max-windows without wikitext2", []string{"eval", "--model", f.model, "--task", "piqa", "--max-windows", "4", "--data-dir", f.data}, []string{"--max-windows 4", "wikitext2"}},
		{"seqlen without wikitext2", []string{"eval", "--model", f.model, "--task", "piqa", "--seqlen", "512", "--data-dir", f.data}, []string{"--seqlen 512", "wikitext2"}},
		{"eval negative threads", []string{"eval", "--model", f.model, "--task", "wikitext2", "--threads", "-2", "--data-dir", f.data}, []string{"--threads -2"}},
		{"log-samples directory missing", []string{"eval", "--model", f.model, "--task", "piqa", "--log-samples", filepath.Join(f.data, "no", "s.jsonl"), "--data-dir", f.data}, []string{"--log-samples", filepath.Join(f.data, "no", "s.jsonl"), "no such file"}},
		{"log-samples is a directory", []string{"eval", "--model", f.model, "--task", "piqa", "--log-samples", f.data, "--data-dir", f.data}, []string{"--log-samples", "is a directory"}},
		{"log-samples without zero-shot task", []string{"eval", "--model", f.model, "--task", "wikitext2", "--log-samples", filepath.Join(f.data, "s.jsonl"), "--data-dir", f.data}, []string{"--log-samples", "zero-shot task"}},
		{"prune eval limit", f.pruneArgs("OUT", "--data-dir", f.data, "--eval-tasks", "piqa", "--eval-limit", "-2"), []string{"--eval-limit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := replace(tc.args, "OUT", filepath.Join(t.TempDir(), "out"))
			_, _, err := optima(t, args...)
			if err == nil {
				t.Fatalf("optima %s: no error", strings.Join(args, " "))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestMMLUPartialWarning: scoring mmlu from a data directory that holds
// only some of its 57 subjects says so on stderr (the number is then not
// MMLU's); the full set does not warn.
func TestMMLUPartialWarning(t *testing.T) {
	f := newFixture(t)
	writeZeroShotData(t, f.data, 2)
	_, stderr := mustOptima(t, "eval", "--model", f.model, "--task", "mmlu", "--limit", "1", "--data-dir", f.data, "--no-progress")
	for _, w := range []string{"mmlu", "2 of its 57 subjects", filepath.Join(f.data, eval.MMLUTestDir)} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr %q does not mention %q", stderr, w)
		}
	}
}

// TestEvalInterrupted: an eval whose context is cancelled (Ctrl-C) fails
// with an error that says it was interrupted, prints no result, and a
// prune whose --eval-tasks is interrupted says where the written model is.
func TestEvalInterrupted(t *testing.T) {
	f := newFixture(t)
	writeZeroShotData(t, f.data, 3)
	out := filepath.Join(t.TempDir(), "pruned")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"wikitext2", []string{"eval", "--model", f.model, "--task", "wikitext2", "--seqlen", "32", "--data-dir", f.data, "--no-progress"}, []string{"interrupted"}},
		{"zero-shot", []string{"eval", "--model", f.model, "--task", "piqa,mmlu", "--data-dir", f.data, "--no-progress", "--json"}, []string{"interrupted"}},
		{"prune --eval-tasks", nil, []string{"--eval-tasks", "interrupted", out, "optima eval --model " + out + " --task piqa"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cmd := newRootCmd()
			args := tc.args
			stdout := &cancelWriter{cancel: cancel}
			if args == nil {
				// The prune runs whole; the context is cancelled when it
				// prints that the model is written, before the zero-shot
				// scoring.
				args = f.pruneArgs(out, "--threads", "2", "--data-dir", f.data, "--eval-tasks", "piqa")
			} else {
				cancel()
			}
			cmd.SetErr(&bytes.Buffer{})
			cmd.SetArgs(args)
			cmd.SetOut(stdout)
			err := cmd.ExecuteContext(ctx)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if tc.args != nil && stdout.Len() > 0 {
				t.Errorf("an interrupted eval printed %q", stdout.String())
			}
		})
	}
}

// cancelWriter cancels a context once prune's "wrote OUT" line is written
// to it.
type cancelWriter struct {
	bytes.Buffer
	cancel func()
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	if bytes.HasPrefix(p, []byte("wrote ")) {
		w.cancel()
	}
	return w.Buffer.Write(p)
}

// TestNonFiniteModel: a model whose outputs are NaN (one NaN weight) is an
// error naming the task and what is not finite, for the perplexity (where
// --json used to fail with "json: unsupported value: NaN" after the whole
// evaluation, and text printed a NaN perplexity with exit status 0) and for
// the zero-shot tasks (where NaN log-likelihoods gave a chance-level
// accuracy that looked like a result).
func TestNonFiniteModel(t *testing.T) {
	f := newFixture(t)
	writeZeroShotData(t, f.data, 3)
	dir := filepath.Join(t.TempDir(), "nan")
	if err := os.CopyFS(dir, os.DirFS(f.model)); err != nil {
		t.Fatal(err)
	}
	st := filepath.Join(dir, "model.safetensors")
	sf, err := safetensors.Open(st)
	if err != nil {
		t.Fatal(err)
	}
	var ts []*model.Tensor
	for _, n := range sf.Names() {
		tt, err := sf.Load(n)
		if err != nil {
			t.Fatal(err)
		}
		if n == "model.layers.0.mlp.down_proj.weight" {
			tt.Data[0] = float32(math.NaN())
		}
		ts = append(ts, tt)
	}
	sf.Close()
	if err := safetensors.WriteFile(st, ts, safetensors.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"wikitext2 json", []string{"--task", "wikitext2", "--seqlen", "32", "--json"}, []string{"wikitext2", "window 0", "NaN"}},
		{"wikitext2 text", []string{"--task", "wikitext2", "--seqlen", "32"}, []string{"wikitext2", "window 0", "NaN"}},
		{"zero-shot", []string{"--task", "arc_easy,piqa", "--json"}, []string{"arc_easy", "12 of 12", "not finite"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, _, err := optima(t, append([]string{"eval", "--model", dir, "--data-dir", f.data, "--no-progress"}, tc.args...)...)
			if err == nil {
				t.Fatalf("no error; stdout:\n%s", stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestProgressBarClear: an eval that fails mid-way (Ctrl-C) clears its
// unfinished progress bar, so that the error printed next starts a clean
// line instead of following the bar; a bar never drawn writes nothing.
func TestProgressBarClear(t *testing.T) {
	defer func(f func(io.Writer) bool) { isTerminal = f }(isTerminal)
	isTerminal = func(io.Writer) bool { return true }
	var b bytes.Buffer
	p := newProgressBar("wikitext2", &b)
	p.update(3, 10)
	if !strings.Contains(b.String(), "wikitext2") {
		t.Fatalf("no bar drawn: %q", b.String())
	}
	p.clear()
	out := b.String()
	if last := out[strings.LastIndexAny(out, "\r\n")+1:]; last != "" {
		t.Errorf("after clear the line holds %q (output %q)", last, out)
	}
	if i := strings.LastIndex(out, "\r"); strings.TrimSpace(out[strings.LastIndex(out[:i], "\r")+1:i]) != "" {
		t.Errorf("the bar was not overwritten: %q", out)
	}
	var empty bytes.Buffer
	newProgressBar("x", &empty).clear()
	var nilBar *progressBar
	nilBar.clear()
	if empty.Len() != 0 {
		t.Errorf("a bar never drawn wrote %q", empty.String())
	}
}

// TestProgressBarLog: a bar writing to a file or a pipe (not a terminal)
// prints whole lines, without carriage returns or the blanks that clear a
// bar, and only a few of them for many updates (one per 30 s and the last).
func TestProgressBarLog(t *testing.T) {
	var b bytes.Buffer
	p := newProgressBar("wikitext2", &b)
	for i := 1; i <= 200; i++ {
		p.update(i, 200)
	}
	out := b.String()
	if strings.Contains(out, "\r") {
		t.Errorf("carriage returns in a log: %q", out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 1 || len(lines) > 3 {
		t.Fatalf("%d lines for 200 updates, want 1-3: %q", len(lines), out)
	}
	last := lines[len(lines)-1]
	if !strings.Contains(last, "wikitext2") || !strings.Contains(last, "200/200") {
		t.Errorf("last line %q, want the description and 200/200", last)
	}
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			t.Errorf("blank line in %q", out)
		}
	}
}

// countingBar records advanceBar's Set calls.
type countingBar struct {
	cur  int64
	sets []int
}

func (c *countingBar) Set(n int) error { c.sets = append(c.sets, n); c.cur = int64(n); return nil }

func (c *countingBar) State() progressbar.State { return progressbar.State{CurrentNum: c.cur} }

// TestAdvanceBar: the prune bar is polled every second while a block takes
// much longer. A poll without progress must not reach the bar: progressbar
// counts each such update as a rate of 0, and ten of them made its time
// left infinite, printed "0s" (a newcomer saw "(23/30) [27m20s:0s]").
func TestAdvanceBar(t *testing.T) {
	c := &countingBar{}
	for _, done := range []int{0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 4, 3} {
		advanceBar(c, done)
	}
	if diff := cmp.Diff([]int{1, 2, 4}, c.sets); diff != "" {
		t.Errorf("Set calls (-want +got):\n%s", diff)
	}
}

// TestPruneEvalTasksStopped: a prune stopped early by --stop-after-blocks
// has no model to score, so --eval-tasks does not run; the message says so
// and that the finishing run will score it, and the finishing run does.
func TestPruneEvalTasksStopped(t *testing.T) {
	f := newFixture(t)
	writeZeroShotData(t, f.data, 2)
	out := filepath.Join(t.TempDir(), "pruned")
	args := f.pruneArgs(out, "--threads", "2", "--data-dir", f.data, "--eval-tasks", "piqa")
	stdout, _ := mustOptima(t, append(args, "--stop-after-blocks", "1")...)
	for _, w := range []string{"stopped after 1 of 2 blocks", "--eval-tasks", "piqa"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("output %q does not mention %q", stdout, w)
		}
	}
	stdout, _ = mustOptima(t, args...)
	if !strings.Contains(stdout, "zero-shot accuracy") {
		t.Errorf("the finishing run did not score piqa: %q", stdout)
	}
}

// TestReportMMLUSubjects: report.json's zero-shot section says over how
// many MMLU subjects its mmlu accuracy is (the data directory may hold
// fewer than MMLU's 57; the warning about it goes only to stderr), and
// other tasks carry no subject count.
func TestReportMMLUSubjects(t *testing.T) {
	f := newFixture(t)
	writeZeroShotData(t, f.data, 2)
	out := filepath.Join(t.TempDir(), "pruned")
	mustOptima(t, f.pruneArgs(out, "--threads", "2", "--data-dir", f.data, "--eval-tasks", "piqa,mmlu", "--eval-limit", "1")...)
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		ZeroShot struct {
			Tasks []map[string]any `json:"tasks"`
		} `json:"zero_shot"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	for _, tk := range rep.ZeroShot.Tasks {
		got[tk["task"].(string)] = tk["subjects"]
	}
	if diff := cmp.Diff(map[string]any{"piqa": nil, "mmlu": 2.0}, got); diff != "" {
		t.Errorf("subjects per task in report.json (-want +got):\n%s\n%s", diff, raw)
	}
}
