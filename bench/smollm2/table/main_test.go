package main

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestLabel(t *testing.T) {
	for row, want := range map[string]string{
		"dense":           "dense",
		"sgpt50-own":      "SparseGPT 50% / own",
		"thanos24-optima": "Thanos 2:4 / optima",
		"wanda50-none":    "Wanda 50% / none",
		"admm24-own":      "ADMM 2:4 / own",
	} {
		if got := Label(row); got != want {
			t.Errorf("Label(%q) = %q, want %q", row, got, want)
		}
	}
}

func TestLoadAndMarkdown(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("dense.eval.json", `{"perplexity": 9, "windows": 3, "window_nll": [1, 2, 9]}`)
	write("sgpt50-own.eval.json", `{"window_nll": [2, 4]}`)
	write("sgpt50-own.report.json", `{"linears": [{"damping": 0.01}, {"damping": 0.1}], "totals": {"sparsity": 0.5, "err_before": 0.02, "err_after": 0.01, "seconds": 7}}`)
	d, err := Load(dir, "dense", 2)
	if err != nil || math.Abs(d.PPL-math.Exp(1.5)) > 1e-12 || d.HasReport {
		t.Fatalf("dense: %+v %v", d, err)
	}
	s, err := Load(dir, "sgpt50-own", 2)
	if err != nil || math.Abs(s.PPL-math.Exp(3)) > 1e-12 || s.MaxDamping != 0.1 || s.ErrAfter != 0.01 {
		t.Fatalf("sgpt50-own: %+v %v", s, err)
	}
	if _, err := Load(dir, "sgpt50-own", 3); err == nil {
		t.Error("too few windows accepted")
	}
	if _, err := Load(dir, "thanos50-own", 2); !os.IsNotExist(err) {
		t.Errorf("missing row: %v", err)
	}
	var b bytes.Buffer
	Markdown(&b, []Result{d, s}, []string{"thanos50-own"}, 2)
	for _, want := range []string{"| dense | 4.482 | —", "| SparseGPT 50% / own | 20.086 | 0.5000 | 0.02000 | 0.01000 | 0.1 | 7 |", "Not computed: thanos50-own."} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	png := filepath.Join(dir, "p.png")
	if err := Plot([]Result{d, s}, 2, png); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(png); err != nil || fi.Size() == 0 {
		t.Errorf("plot: %v", err)
	}
}

var update = flag.Bool("update", false, "rewrite testdata/zeroshot/table.md from the renderer")

// TestZeroShotColumns renders testdata/zeroshot (dense and Wanda 50% /
// optima with ROW.zeroshot.json as optima eval --json writes it, Wanda 50%
// / none without) and compares with testdata/zeroshot/table.md: one acc
// column per task, the average, "—" for the row without zero-shot results,
// and the limit in the note.
func TestZeroShotColumns(t *testing.T) {
	res, missing, err := LoadAll("testdata/zeroshot", 2)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	Markdown(&b, res, missing, 2)
	golden := filepath.Join("testdata", "zeroshot", "table.md")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), b.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
	for _, s := range []string{"| arc_easy acc | piqa acc | mmlu acc | avg acc |", "| dense | 21.115 | — | — | — | — | — | 0.4600 | 0.6800 | 0.2526 | 0.4642 |",
		"| Wanda 50% / none | 46.993 | 0.5000 | 0.00792 | 0.00792 | 0 | 19 | — | — | — | — |", "first 50 items of each task"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table lacks %q", s)
		}
	}
}

// TestZeroShotColumnsOptional checks that rows without zero-shot files
// render without the accuracy columns, that different limits are called
// out, and that a malformed file is an error naming it.
func TestZeroShotColumnsOptional(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("dense.eval.json", `{"window_nll": [1]}`)
	res, missing, err := LoadAll(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	Markdown(&b, res, missing, 1)
	if strings.Contains(b.String(), "acc") {
		t.Errorf("accuracy columns without zero-shot files:\n%s", b.String())
	}
	write("dense.zeroshot.json", `{"tasks": [{"task": "piqa", "acc": 0.5}], "average_acc": 0.5}`)
	write("wanda50-none.eval.json", `{"window_nll": [2]}`)
	write("wanda50-none.report.json", `{"totals": {}}`)
	write("wanda50-none.zeroshot.json", `{"tasks": [{"task": "piqa", "acc": 0.25}], "average_acc": 0.25, "limit": 10}`)
	if res, missing, err = LoadAll(dir, 1); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	Markdown(&b, res, missing, 1)
	for _, s := range []string{"| piqa acc | avg acc |", "| 0.5000 | 0.5000 |", "| 0.2500 | 0.2500 |",
		"not comparable: dense: all items of each task; Wanda 50% / none: the first 10 items"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, b.String())
		}
	}
	for _, bad := range []string{`{"tasks": []}`, `{"tasks": [{"task": "piqa"}, {"task": "piqa"}]}`, `{"tasks": `} {
		write("dense.zeroshot.json", bad)
		if _, _, err := LoadAll(dir, 1); err == nil || !strings.Contains(err.Error(), "dense.zeroshot.json") {
			t.Errorf("%s: error %v, want one naming dense.zeroshot.json", bad, err)
		}
	}
}

// TestLoadZeroShotMerge checks how ROW.zeroshot.json and
// ROW.zeroshot-mmlu.json merge: tasks in file order, the average
// recomputed as the unweighted mean of the merged tasks' acc, each file's
// limit kept, and errors that name the file(s) at fault.
func TestLoadZeroShotMerge(t *testing.T) {
	const (
		five = `{"tasks": [{"task": "piqa", "acc": 0.6}, {"task": "arc_easy", "acc": 0.4}], "average_acc": 0.5, "limit": 200}`
		mmlu = `{"tasks": [{"task": "mmlu", "items": 570, "acc": 0.26}], "average_acc": 0.26, "limit": 10}`
	)
	for _, tc := range []struct {
		name       string
		main, mmlu string // "" leaves the file out
		want       *ZeroShot
		wantErr    []string // substrings of the error; nil: no error
	}{
		{name: "neither file"},
		{
			name: "missing mmlu file", main: five,
			want: &ZeroShot{Acc: map[string]float64{"piqa": 0.6, "arc_easy": 0.4}, Tasks: []string{"piqa", "arc_easy"}, Average: 0.5,
				Sources: []ZeroShotSource{{File: "dense.zeroshot.json", Limit: 200, Tasks: []string{"piqa", "arc_easy"}}}},
		},
		{
			name: "mmlu file only", mmlu: mmlu,
			want: &ZeroShot{Acc: map[string]float64{"mmlu": 0.26}, Tasks: []string{"mmlu"}, Average: 0.26,
				Sources: []ZeroShotSource{{File: "dense.zeroshot-mmlu.json", Limit: 10, Tasks: []string{"mmlu"}}}},
		},
		{
			// (0.6 + 0.4 + 0.26) / 3, not the mean of the files' averages
			// nor an item-weighted mean.
			name: "merge", main: five, mmlu: mmlu,
			want: &ZeroShot{Acc: map[string]float64{"piqa": 0.6, "arc_easy": 0.4, "mmlu": 0.26}, Tasks: []string{"piqa", "arc_easy", "mmlu"}, Average: 1.26 / 3,
				Sources: []ZeroShotSource{{File: "dense.zeroshot.json", Limit: 200, Tasks: []string{"piqa", "arc_easy"}}, {File: "dense.zeroshot-mmlu.json", Limit: 10, Tasks: []string{"mmlu"}}}},
		},
		{
			name: "file average ignored", main: `{"tasks": [{"task": "piqa", "acc": 0.6}, {"task": "mmlu", "acc": 0.2}], "average_acc": 0.9}`,
			want: &ZeroShot{Acc: map[string]float64{"piqa": 0.6, "mmlu": 0.2}, Tasks: []string{"piqa", "mmlu"}, Average: 0.4,
				Sources: []ZeroShotSource{{File: "dense.zeroshot.json", Tasks: []string{"piqa", "mmlu"}}}},
		},
		{
			name: "task in both files", main: `{"tasks": [{"task": "piqa", "acc": 0.6}, {"task": "mmlu", "acc": 0.2}]}`, mmlu: mmlu,
			wantErr: []string{`"mmlu"`, "dense.zeroshot.json", "dense.zeroshot-mmlu.json"},
		},
		{name: "task twice in mmlu file", main: five, mmlu: `{"tasks": [{"task": "mmlu"}, {"task": "mmlu"}]}`, wantErr: []string{"dense.zeroshot-mmlu.json", "twice"}},
		{name: "malformed mmlu file", main: five, mmlu: `{"tasks": [`, wantErr: []string{"dense.zeroshot-mmlu.json"}},
		{name: "mmlu file without tasks", main: five, mmlu: `{"tasks": []}`, wantErr: []string{"dense.zeroshot-mmlu.json: no tasks"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, s := range map[string]string{"dense.zeroshot.json": tc.main, "dense.zeroshot-mmlu.json": tc.mmlu} {
				if s == "" {
					continue
				}
				if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			z, err := loadZeroShot(dir, "dense")
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("no error, want one with %q", tc.wantErr)
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q lacks %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, z, cmpopts.EquateApprox(0, 1e-12)); diff != "" {
				t.Errorf("loadZeroShot (-want +got):\n%s", diff)
			}
		})
	}
}

// TestZeroShotMMLUNote renders rows whose MMLU came from its own file: the
// mmlu column, the six-task average and a note that gives each file's
// limit; a row without the MMLU file is called out as scored differently.
func TestZeroShotMMLUNote(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("dense.eval.json", `{"window_nll": [1]}`)
	write("dense.zeroshot.json", `{"tasks": [{"task": "piqa", "acc": 0.64}, {"task": "arc_easy", "acc": 0.49}], "limit": 200}`)
	write("dense.zeroshot-mmlu.json", `{"tasks": [{"task": "mmlu", "acc": 0.26}], "limit": 10}`)
	write("wanda50-none.eval.json", `{"window_nll": [2]}`)
	write("wanda50-none.report.json", `{"totals": {}}`)
	write("wanda50-none.zeroshot.json", `{"tasks": [{"task": "piqa", "acc": 0.6}, {"task": "arc_easy", "acc": 0.4}], "limit": 200}`)
	write("wanda50-none.zeroshot-mmlu.json", `{"tasks": [{"task": "mmlu", "acc": 0.2}], "limit": 10}`)
	res, missing, err := LoadAll(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	Markdown(&b, res, missing, 1)
	for _, s := range []string{"| piqa acc | arc_easy acc | mmlu acc | avg acc |", "| 0.6400 | 0.4900 | 0.2600 | 0.4633 |", "| 0.6000 | 0.4000 | 0.2000 | 0.4000 |",
		"Scored on the first 200 items of each task in ROW.zeroshot.json (--limit 200) and the first 10 items of each MMLU subject in ROW.zeroshot-mmlu.json (--limit 10)."} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, b.String())
		}
	}
	if err := os.Remove(filepath.Join(dir, "wanda50-none.zeroshot-mmlu.json")); err != nil {
		t.Fatal(err)
	}
	if res, missing, err = LoadAll(dir, 1); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	Markdown(&b, res, missing, 1)
	for _, s := range []string{"| 0.6000 | 0.4000 | — | 0.5000 (2 of 3 tasks) |", "not comparable: dense: the first 200 items", "; Wanda 50% / none: the first 200 items of each task (of each MMLU subject; --limit 200)."} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, b.String())
		}
	}
}

// FuzzLoadZeroShot feeds arbitrary ROW.zeroshot.json and
// ROW.zeroshot-mmlu.json contents ("" leaves the file out) to the renderer:
// it must return an error or a result whose tasks are distinct and named
// and whose average lies within the tasks' acc (when they are in [0, 1]),
// never panic.
func FuzzLoadZeroShot(f *testing.F) {
	f.Add(`{"tasks": [{"task": "piqa", "acc": 0.5}], "average_acc": 0.5, "limit": 3}`, "")
	f.Add(`{"tasks": [{"task": "piqa"}, {"task": "piqa"}]}`, "")
	f.Add(`{"tasks": null}`, "")
	f.Add(`{"tasks": [{"task": "piqa", "acc": 0.5}], "limit": 200}`, `{"tasks": [{"task": "mmlu", "acc": 0.25}], "limit": 10}`)
	f.Add(`{"tasks": [{"task": "mmlu", "acc": 0.5}]}`, `{"tasks": [{"task": "mmlu", "acc": 0.25}]}`)
	f.Add("", `{"tasks": [{"task": "mmlu", "acc": 0.25}]}`)
	f.Fuzz(func(t *testing.T, main, mmlu string) {
		dir := t.TempDir()
		for name, s := range map[string]string{"dense.zeroshot.json": main, "dense.zeroshot-mmlu.json": mmlu} {
			if s == "" {
				continue
			}
			if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		z, err := loadZeroShot(dir, "dense")
		if err != nil {
			return
		}
		if main == "" && mmlu == "" {
			if z != nil {
				t.Fatalf("no files gave %+v", z)
			}
			return
		}
		if z == nil || len(z.Tasks) == 0 || len(z.Acc) != len(z.Tasks) {
			t.Fatalf("accepted %q, %q as %+v", main, mmlu, z)
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, a := range z.Acc {
			lo, hi = min(lo, a), max(hi, a)
		}
		// Accuracies in [0, 1] cannot overflow the sum; check the mean there.
		if lo >= 0 && hi <= 1 && !(z.Average >= lo-1e-12 && z.Average <= hi+1e-12) {
			t.Fatalf("average %g outside [%g, %g]", z.Average, lo, hi)
		}
		var b bytes.Buffer
		Markdown(&b, []Result{{Label: "dense", ZeroShot: z}}, nil, 1)
	})
}

// TestLoadWindows: -windows below 1 is an error naming it, not a NaN
// perplexity (0) or a panic (negative).
func TestLoadWindows(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dense.eval.json"), []byte(`{"window_nll": [1, 2]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		windows int
		ok      bool
	}{{-1, false}, {0, false}, {1, true}, {2, true}, {3, false}} {
		r, err := Load(dir, "dense", tc.windows)
		if (err == nil) != tc.ok {
			t.Errorf("windows %d: error %v, want success %v", tc.windows, err, tc.ok)
		}
		if err == nil && (math.IsNaN(r.PPL) || r.PPL <= 1) {
			t.Errorf("windows %d: perplexity %v", tc.windows, r.PPL)
		}
		if err != nil && tc.windows < 1 && !strings.Contains(err.Error(), "-windows") {
			t.Errorf("windows %d: error %q does not name -windows", tc.windows, err)
		}
	}
}

// TestAverageOfFewerTasks: a row that lacks some of the table's zero-shot
// columns has its average over fewer tasks, which is not comparable with
// the other rows' averages: the cell says over how many tasks it is; rows
// with every task keep the plain number.
func TestAverageOfFewerTasks(t *testing.T) {
	dir := t.TempDir()
	for name, s := range map[string]string{
		"dense.eval.json":            `{"window_nll": [1]}`,
		"dense.zeroshot.json":        `{"tasks": [{"task": "piqa", "acc": 0.5}, {"task": "arc_easy", "acc": 0.3}]}`,
		"wanda50-none.eval.json":     `{"window_nll": [2]}`,
		"wanda50-none.report.json":   `{"totals": {}}`,
		"wanda50-none.zeroshot.json": `{"tasks": [{"task": "piqa", "acc": 0.25}]}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, missing, err := LoadAll(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	Markdown(&b, res, missing, 1)
	for _, s := range []string{"| 0.5000 | 0.3000 | 0.4000 |", "| 0.2500 | — | 0.2500 (1 of 2 tasks) |"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, b.String())
		}
	}
}

// TestLoadAllSeqlen: rows whose eval files were scored with different
// window lengths (--seqlen) cannot share the perplexity column: LoadAll
// fails naming both; files without seqlen (older ones) are accepted.
func TestLoadAllSeqlen(t *testing.T) {
	for _, tc := range []struct {
		name         string
		dense, wanda string
		want         string // "": no error
	}{
		{"same", `{"seqlen": 2048, "window_nll": [1]}`, `{"seqlen": 2048, "window_nll": [2]}`, ""},
		{"unknown", `{"window_nll": [1]}`, `{"seqlen": 512, "window_nll": [2]}`, ""},
		{"different", `{"seqlen": 2048, "window_nll": [1]}`, `{"seqlen": 512, "window_nll": [2]}`, "wanda50-none.eval.json: windows of 512 tokens, dense.eval.json: 2048"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, s := range map[string]string{"dense.eval.json": tc.dense, "wanda50-none.eval.json": tc.wanda, "wanda50-none.report.json": `{"totals": {}}`} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, _, err := LoadAll(dir, 1)
			if tc.want == "" && err != nil {
				t.Fatal(err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestLoadAllMissingDir: a -results directory that does not exist (a typo)
// is an error naming it, not a table with every row "not computed".
func TestLoadAllMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nosuch")
	if _, _, err := LoadAll(dir, 1); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("LoadAll(%s): error %v, want one naming the directory", dir, err)
	}
}

// TestMMLUFewerSubjects: a row whose MMLU was scored on fewer than its 57
// subjects (a data directory that lacks some) is flagged in its mmlu cell,
// in its average and in a note, in whichever file MMLU came; rows with
// all 57, or whose file does not list subjects, keep plain numbers.
func TestMMLUFewerSubjects(t *testing.T) {
	subjects := func(n int) string {
		var s []string
		for i := range n {
			s = append(s, fmt.Sprintf(`"s%02d": {"acc": 0.25, "items": 2}`, i))
		}
		return `{` + strings.Join(s, ", ") + `}`
	}
	dir := t.TempDir()
	for name, s := range map[string]string{
		"dense.eval.json":     `{"window_nll": [1]}`,
		"dense.zeroshot.json": `{"tasks": [{"task": "piqa", "acc": 0.5}, {"task": "mmlu", "acc": 0.3, "subjects": ` + subjects(57) + `}]}`,
		// MMLU in its own file, over 12 subjects.
		"wanda50-none.eval.json":          `{"window_nll": [2]}`,
		"wanda50-none.report.json":        `{"totals": {}}`,
		"wanda50-none.zeroshot.json":      `{"tasks": [{"task": "piqa", "acc": 0.25}]}`,
		"wanda50-none.zeroshot-mmlu.json": `{"tasks": [{"task": "mmlu", "acc": 0.75, "subjects": ` + subjects(12) + `}]}`,
		// A list of subjects, empty.
		"sgpt50-own.eval.json":        `{"window_nll": [2]}`,
		"sgpt50-own.report.json":      `{"totals": {}}`,
		"sgpt50-own.zeroshot.json":    `{"tasks": [{"task": "piqa", "acc": 0.5}, {"task": "mmlu", "acc": 0.5, "subjects": {}}]}`,
		"sgpt50-optima.eval.json":     `{"window_nll": [2]}`,
		"sgpt50-optima.report.json":   `{"totals": {}}`,
		"sgpt50-optima.zeroshot.json": `{"tasks": [{"task": "piqa", "acc": 0.5}, {"task": "mmlu", "acc": 0.5}]}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, missing, err := LoadAll(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	Markdown(&b, res, missing, 1)
	for _, s := range []string{
		"| — | 0.5000 | 0.3000 | 0.4000 |",
		"| 0 | 0.2500 | 0.7500 (12 of 57 subjects) | 0.5000 (MMLU on 12 of 57 subjects) |",
		"| 0 | 0.5000 | 0.5000 (0 of 57 subjects) | 0.5000 (MMLU on 0 of 57 subjects) |",
		"| 0 | 0.5000 | 0.5000 | 0.5000 |",
		"MMLU was scored on fewer than its 57 subjects for Wanda 50% / none (12), SparseGPT 50% / own (0)",
	} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, b.String())
		}
	}
}

// TestScoredWording: the note on what a row's two zero-shot files scored.
func TestScoredWording(t *testing.T) {
	z := &ZeroShot{Sources: []ZeroShotSource{
		{File: "dense.zeroshot.json", Tasks: []string{"piqa", "arc_easy"}},
		{File: "dense.zeroshot-mmlu.json", Limit: 10, Tasks: []string{"mmlu"}},
	}}
	want := "all items of each task in ROW.zeroshot.json and the first 10 items of each MMLU subject in ROW.zeroshot-mmlu.json (--limit 10)"
	if got := z.scored(); got != want {
		t.Errorf("scored() = %q, want %q", got, want)
	}
}
