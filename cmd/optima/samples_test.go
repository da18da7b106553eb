package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/optima-llm/optima/stages/eval"
)

// TestEvalLogSamples: eval --log-samples writes one record per scored
// document whose per-task mean acc (and acc_norm) equals the printed
// aggregate exactly, with MMLU's doc ids counted per subject; the
// prefix-tree scorer and --plain-scoring write the same records (the
// log-likelihoods to float32 rounding), plain JSON Lines and gzip alike.
func TestEvalLogSamples(t *testing.T) {
	f := newFixture(t)
	writeZeroShotData(t, f.data, 5)
	dir := t.TempDir()
	run := func(path string, extra ...string) zeroShotJSON {
		args := append([]string{"eval", "--model", f.model, "--task", "zeroshot", "--limit", "3", "--data-dir", f.data,
			"--json", "--no-progress", "--threads", "2", "--log-samples", path}, extra...)
		stdout, _ := mustOptima(t, args...)
		var got zeroShotJSON
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatalf("%v\n%s", err, stdout)
		}
		return got
	}
	prefixPath, plainPath := filepath.Join(dir, "prefix.jsonl.gz"), filepath.Join(dir, "plain.jsonl")
	res := run(prefixPath)
	run(plainPath, "--plain-scoring")
	prefix, err := eval.ReadSamplesFile(prefixPath)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := eval.ReadSamplesFile(plainPath)
	if err != nil {
		t.Fatal(err)
	}
	byTask := map[string][]eval.Sample{}
	for _, s := range prefix {
		byTask[s.Task] = append(byTask[s.Task], s)
	}
	for _, r := range res.Tasks {
		ss := byTask[r.Task]
		if len(ss) != r.Items {
			t.Errorf("%s: %d samples for %d items", r.Task, len(ss), r.Items)
			continue
		}
		var acc, norm float64
		perSubject := map[string]int{}
		for i, s := range ss {
			acc += s.Acc
			if (s.AccNorm != nil) != (r.AccNorm != nil) || (s.PredNorm != nil) != (r.AccNorm != nil) {
				t.Errorf("%s doc %d: acc_norm %v pred_norm %v, task acc_norm %v", r.Task, s.DocID, s.AccNorm, s.PredNorm, r.AccNorm)
			} else if s.AccNorm != nil {
				norm += *s.AccNorm
			}
			want := i
			if s.Subject != "" {
				want = perSubject[s.Subject]
				perSubject[s.Subject]++
			}
			if s.DocID != want || len(s.IsGreedy) != len(s.LogLiks) {
				t.Errorf("%s %s sample %d: doc_id %d (want %d), %d is_greedy for %d lls", r.Task, s.Subject, i, s.DocID, want, len(s.IsGreedy), len(s.LogLiks))
			}
		}
		if got := acc / float64(len(ss)); got != r.Acc {
			t.Errorf("%s: mean of the samples' acc %v, printed acc %v", r.Task, got, r.Acc)
		}
		if r.AccNorm != nil {
			if got := norm / float64(len(ss)); got != *r.AccNorm {
				t.Errorf("%s: mean of the samples' acc_norm %v, printed acc_norm %v", r.Task, got, *r.AccNorm)
			}
		}
		if r.Task == "mmlu" && !cmp.Equal(perSubject, map[string]int{"anatomy": 3, "world_religions": 3}) {
			t.Errorf("mmlu samples per subject %v", perSubject)
		}
	}
	if len(byTask) != len(eval.ZeroShotTasks) {
		t.Errorf("samples of %d tasks, want %d", len(byTask), len(eval.ZeroShotTasks))
	}
	if diff := cmp.Diff(prefix, plain, cmpopts.EquateApprox(1e-5, 1e-5)); diff != "" {
		t.Errorf("samples (-prefix +plain):\n%s", diff)
	}
	// No temporary file is left next to the samples.
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("files in the samples directory: %v", names)
	}
}
