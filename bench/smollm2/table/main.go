// Command table renders the SmolLM2 results of bench/smollm2/run.sh as a
// Markdown table (WikiText-2 perplexity and total relative reconstruction
// error per row) and draws the perplexities as one PNG bar chart with
// gonum/plot.
//
//	go run ./bench/smollm2/table -results bench/smollm2/results -windows 32 -png bench/smollm2/ppl.png
//
// For each row it reads RESULTS/ROW.eval.json (optima eval --json) and, except
// for dense, RESULTS/ROW.report.json (the prune report). The perplexity is
// exp of the mean of the first -windows window NLLs, so rows scored on more
// windows are compared on the same text. Rows whose files are missing are
// listed as missing, not dropped silently. When any row has
// RESULTS/ROW.zeroshot.json or RESULTS/ROW.zeroshot-mmlu.json (optima eval
// --task ... --json, written by run.sh when ZEROSHOT_TASKS is set; the
// second when ZEROSHOT_MMLU_LIMIT runs MMLU on its own limit), the row's
// tasks from both files are merged (a task in both files is an error), the
// table gains one acc column per zero-shot task and their average, and a
// note gives the --limit of each file; without such files those columns
// are left out. The average is recomputed from the merged tasks: the
// unweighted mean of the tasks' acc, as lm-evaluation-harness' six-task
// average in the OPTIMA paper. A row whose MMLU lists fewer than its 57
// subjects (a data directory that lacks some) is flagged in its mmlu cell,
// its average and a note.
//
// With -paired it prints, instead, each base row (the selector's own update,
// none for Wanda) against its optima row on the per-document zero-shot
// results that run.sh keeps with ZEROSHOT_SAMPLES=1: per task the difference
// in accuracy points with its paired standard error, and the difference of
// the averages with its paired and unpaired errors (paired.go).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Rows is the table's row order: the Table 1 structure.
var Rows = []string{
	"dense",
	"wanda50-none", "wanda50-optima", "sgpt50-own", "sgpt50-optima", "thanos50-own", "thanos50-optima", "admm50-own",
	"wanda24-none", "wanda24-optima", "sgpt24-own", "sgpt24-optima", "thanos24-own", "thanos24-optima", "admm24-own",
}

// Label is the human name of a row, e.g. "SparseGPT 50% / own".
func Label(row string) string {
	if row == "dense" {
		return "dense"
	}
	sel, rest, _ := strings.Cut(row, "50-")
	pat := "50%"
	if rest == "" {
		sel, rest, _ = strings.Cut(row, "24-")
		pat = "2:4"
	}
	name := map[string]string{"wanda": "Wanda", "sgpt": "SparseGPT", "thanos": "Thanos", "admm": "ADMM"}[sel]
	if name == "" {
		name = sel
	}
	return fmt.Sprintf("%s %s / %s", name, pat, rest)
}

type evalFile struct {
	Perplexity float64   `json:"perplexity"`
	Windows    int       `json:"windows"`
	Seqlen     int       `json:"seqlen"`
	WindowNLL  []float64 `json:"window_nll"`
}

type reportFile struct {
	Linears []struct {
		Damping float64 `json:"damping"`
	} `json:"linears"`
	Totals struct {
		Sparsity  float64 `json:"sparsity"`
		ErrBefore float64 `json:"err_before"`
		ErrAfter  float64 `json:"err_after"`
		Seconds   float64 `json:"seconds"`
	} `json:"totals"`
}

// zeroShotFile is the part of `optima eval --task ... --json` the table
// reads.
type zeroShotFile struct {
	Tasks []struct {
		Task  string  `json:"task"`
		Items int     `json:"items"`
		Acc   float64 `json:"acc"`
		// Subjects is MMLU's per-subject results (only counted here);
		// nil when the file lists none.
		Subjects map[string]json.RawMessage `json:"subjects"`
	} `json:"tasks"`
	// Limit is eval's --limit (0 or absent: every item).
	Limit int `json:"limit"`
}

// ZeroShotSource is one zero-shot file a row's results came from.
type ZeroShotSource struct {
	// File is the file's name without the directory, e.g.
	// "wanda50-none.zeroshot-mmlu.json".
	File string
	// Limit is the file's --limit: items per task (per MMLU subject); 0: all.
	Limit int
	// Tasks are the file's tasks in its order.
	Tasks []string
}

// ZeroShot is a row's zero-shot accuracy, merged from ROW.zeroshot.json and
// ROW.zeroshot-mmlu.json.
type ZeroShot struct {
	// Acc is each task's acc (fraction in [0, 1]) by task name; Tasks keeps
	// the files' order, ROW.zeroshot.json first.
	Acc   map[string]float64
	Tasks []string
	// Average is the unweighted mean of the merged tasks' acc, recomputed
	// here (not the files' average_acc), as lm-evaluation-harness' six-task
	// average in the OPTIMA paper: every task counts once, whatever its
	// number of items.
	Average float64
	// Sources are the files read, ROW.zeroshot.json first.
	Sources []ZeroShotSource
	// MMLUSubjects is the number of subjects the mmlu task lists; nil when
	// there is no mmlu task or its file lists no subjects (older or
	// hand-written files), so the count is unknown.
	MMLUSubjects *int
}

// mmluSubjectCount is the number of MMLU subjects (lm-evaluation-harness
// lm_eval/tasks/mmlu/default: 57 leaf tasks, stages/eval.MMLUCategories).
const mmluSubjectCount = 57

// partialMMLU reports whether z's mmlu lists fewer than its 57 subjects,
// and how many it lists.
func (z *ZeroShot) partialMMLU() (n int, partial bool) {
	if z == nil || z.MMLUSubjects == nil || *z.MMLUSubjects >= mmluSubjectCount {
		return 0, false
	}
	return *z.MMLUSubjects, true
}

// Result is one rendered row.
type Result struct {
	Row, Label string
	PPL        float64
	// Seqlen is the eval file's window length in tokens (0: not given).
	Seqlen     int
	HasReport  bool
	Sparsity   float64
	ErrBefore  float64
	ErrAfter   float64
	MaxDamping float64
	Seconds    float64
	// ZeroShot is nil when the row has neither ROW.zeroshot.json nor
	// ROW.zeroshot-mmlu.json.
	ZeroShot *ZeroShot
}

// zeroShotSuffixes are the files loadZeroShot merges, in order: the tasks
// run.sh scores with $ZEROSHOT_LIMIT, and MMLU on its own with
// $ZEROSHOT_MMLU_LIMIT.
var zeroShotSuffixes = []string{".zeroshot.json", ".zeroshot-mmlu.json"}

// loadZeroShot reads dir/ROW.zeroshot.json and dir/ROW.zeroshot-mmlu.json,
// both optional, and merges their tasks. Neither file gives nil and no
// error. Malformed JSON, a file without tasks, an empty or repeated task
// name within a file, and a task listed in both files are errors naming
// the file(s).
func loadZeroShot(dir, row string) (*ZeroShot, error) {
	var z *ZeroShot
	from := map[string]string{} // task -> file
	for _, suf := range zeroShotSuffixes {
		name := row + suf
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var f zeroShotFile
		if err := json.Unmarshal(raw, &f); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if len(f.Tasks) == 0 {
			return nil, fmt.Errorf("%s: no tasks", name)
		}
		if z == nil {
			z = &ZeroShot{Acc: map[string]float64{}}
		}
		src := ZeroShotSource{File: name, Limit: f.Limit}
		for _, t := range f.Tasks {
			if other, dup := from[t.Task]; dup && other != name {
				return nil, fmt.Errorf("task %q is in both %s and %s", t.Task, other, name)
			}
			if _, dup := from[t.Task]; dup || t.Task == "" {
				return nil, fmt.Errorf("%s: task %q empty or listed twice", name, t.Task)
			}
			from[t.Task] = name
			z.Acc[t.Task] = t.Acc
			if t.Task == "mmlu" && t.Subjects != nil {
				n := len(t.Subjects)
				z.MMLUSubjects = &n
			}
			z.Tasks = append(z.Tasks, t.Task)
			src.Tasks = append(src.Tasks, t.Task)
		}
		z.Sources = append(z.Sources, src)
	}
	if z == nil {
		return nil, nil
	}
	for _, t := range z.Tasks {
		z.Average += z.Acc[t]
	}
	z.Average /= float64(len(z.Tasks))
	return z, nil
}

// Load reads row's files under dir and computes its perplexity over the
// first windows windows (at least 1). A missing eval file returns an error
// wrapping os.ErrNotExist.
func Load(dir, row string, windows int) (Result, error) {
	r := Result{Row: row, Label: Label(row)}
	if windows < 1 {
		return r, fmt.Errorf("-windows %d: want at least 1", windows)
	}
	raw, err := os.ReadFile(filepath.Join(dir, row+".eval.json"))
	if err != nil {
		return r, err
	}
	var ev evalFile
	if err := json.Unmarshal(raw, &ev); err != nil {
		return r, fmt.Errorf("%s.eval.json: %w", row, err)
	}
	if len(ev.WindowNLL) < windows {
		return r, fmt.Errorf("%s.eval.json: %d windows scored, want at least %d", row, len(ev.WindowNLL), windows)
	}
	var s float64
	for _, v := range ev.WindowNLL[:windows] {
		s += v
	}
	r.PPL = math.Exp(s / float64(windows))
	r.Seqlen = ev.Seqlen
	if r.ZeroShot, err = loadZeroShot(dir, row); err != nil {
		return r, err
	}
	if row == "dense" {
		return r, nil
	}
	raw, err = os.ReadFile(filepath.Join(dir, row+".report.json"))
	if err != nil {
		return r, err
	}
	var rep reportFile
	if err := json.Unmarshal(raw, &rep); err != nil {
		return r, fmt.Errorf("%s.report.json: %w", row, err)
	}
	r.HasReport = true
	r.Sparsity, r.ErrBefore, r.ErrAfter, r.Seconds = rep.Totals.Sparsity, rep.Totals.ErrBefore, rep.Totals.ErrAfter, rep.Totals.Seconds
	for _, l := range rep.Linears {
		r.MaxDamping = max(r.MaxDamping, l.Damping)
	}
	return r, nil
}

// Markdown writes the table of res and a line naming the missing rows.
// When a row has zero-shot results, one "acc" column per task (in the order
// the rows first list them) and "avg acc" follow, "—" where a row lacks
// them (its average, over fewer tasks, then says "(K of N tasks)"), and a
// note below the table gives the --limit of each zero-shot file. A row
// whose MMLU lists fewer than 57 subjects has its mmlu cell say "(K of 57
// subjects)", its average "(MMLU on K of 57 subjects)", and a note names
// it: neither number is comparable with full-MMLU rows.
func Markdown(w io.Writer, res []Result, missing []string, windows int) {
	var tasks []string
	seen := map[string]bool{}
	var scorings []scoring
	var partial []string // "Label (K)" of rows with a partial MMLU
	for _, r := range res {
		if r.ZeroShot == nil {
			continue
		}
		if n, ok := r.ZeroShot.partialMMLU(); ok {
			partial = append(partial, fmt.Sprintf("%s (%d)", r.Label, n))
		}
		for _, t := range r.ZeroShot.Tasks {
			if !seen[t] {
				seen[t] = true
				tasks = append(tasks, t)
			}
		}
		scorings = addScoring(scorings, r.ZeroShot.scored(), r.Label)
	}
	head := fmt.Sprintf("| row | WikiText-2 ppl (%d windows) | sparsity | rel. error, mask only | rel. error, after update | max damping | seconds (Σ linears) |", windows)
	rule := "|---|---|---|---|---|---|---|"
	for _, t := range tasks {
		head += " " + t + " acc |"
		rule += "---|"
	}
	if len(tasks) > 0 {
		head += " avg acc |"
		rule += "---|"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, rule)
	for _, r := range res {
		line := fmt.Sprintf("| %s | %.3f | — | — | — | — | — |", r.Label, r.PPL)
		if r.HasReport {
			line = fmt.Sprintf("| %s | %.3f | %.4f | %.5f | %.5f | %g | %.0f |", r.Label, r.PPL, r.Sparsity, r.ErrBefore, r.ErrAfter, r.MaxDamping, r.Seconds)
		}
		for _, t := range tasks {
			if a, ok := r.ZeroShot.accOf(t); ok {
				line += fmt.Sprintf(" %.4f", a)
				if n, part := r.ZeroShot.partialMMLU(); part && t == "mmlu" {
					line += fmt.Sprintf(" (%d of %d subjects)", n, mmluSubjectCount)
				}
				line += " |"
			} else {
				line += " — |"
			}
		}
		if len(tasks) > 0 {
			if r.ZeroShot != nil {
				line += fmt.Sprintf(" %.4f", r.ZeroShot.Average)
				// Not comparable with the rows that have every task, or
				// all of MMLU.
				var flags []string
				if n := len(r.ZeroShot.Tasks); n < len(tasks) {
					flags = append(flags, fmt.Sprintf("%d of %d tasks", n, len(tasks)))
				}
				if n, part := r.ZeroShot.partialMMLU(); part {
					flags = append(flags, fmt.Sprintf("MMLU on %d of %d subjects", n, mmluSubjectCount))
				}
				if len(flags) > 0 {
					line += " (" + strings.Join(flags, "; ") + ")"
				}
				line += " |"
			} else {
				line += " — |"
			}
		}
		fmt.Fprintln(w, line)
	}
	if len(tasks) > 0 {
		fmt.Fprintf(w, "\nZero-shot acc as lm-evaluation-harness 0.4 scores it (optima eval); avg acc is the unweighted mean over the row's tasks. %s\n", limitNote(scorings))
	}
	if len(partial) > 0 {
		fmt.Fprintf(w, "\nMMLU was scored on fewer than its %d subjects for %s (subjects scored in parentheses): their mmlu acc and avg acc are over those subjects only and not comparable with full-MMLU rows.\n",
			mmluSubjectCount, strings.Join(partial, ", "))
	}
	if len(missing) > 0 {
		fmt.Fprintf(w, "\nNot computed: %s.\n", strings.Join(missing, ", "))
	}
}

// accOf is task's acc, false when z is nil or lacks the task.
func (z *ZeroShot) accOf(task string) (float64, bool) {
	if z == nil {
		return 0, false
	}
	a, ok := z.Acc[task]
	return a, ok
}

// scoring is one way rows were scored (scored's sentence part) and the
// labels of the rows scored that way, in row order.
type scoring struct {
	how  string
	rows []string
}

// addScoring adds label to the group of how, appending a new group at the
// end when how is new.
func addScoring(s []scoring, how, label string) []scoring {
	for i := range s {
		if s[i].how == how {
			s[i].rows = append(s[i].rows, label)
			return s
		}
	}
	return append(s, scoring{how: how, rows: []string{label}})
}

// scored says which items z's files scored, e.g. "the first 200 items of
// each task in ROW.zeroshot.json (--limit 200) and the first 10 items of
// each MMLU subject in ROW.zeroshot-mmlu.json (--limit 10)". A row with
// only ROW.zeroshot.json keeps the shorter wording of one limit for every
// task.
func (z *ZeroShot) scored() string {
	if len(z.Sources) == 1 && strings.HasSuffix(z.Sources[0].File, zeroShotSuffixes[0]) {
		if l := z.Sources[0].Limit; l != 0 {
			return fmt.Sprintf("the first %d items of each task (of each MMLU subject; --limit %d)", l, l)
		}
		return "all items of each task"
	}
	var parts []string
	for _, s := range z.Sources {
		file := "ROW" + s.File[strings.Index(s.File, ".zeroshot"):]
		unit := "each task"
		switch {
		case len(s.Tasks) == 1 && s.Tasks[0] == "mmlu":
			unit = "each MMLU subject"
		case slices.Contains(s.Tasks, "mmlu"):
			unit = "each task (of each MMLU subject)"
		}
		if s.Limit == 0 {
			parts = append(parts, fmt.Sprintf("all items of %s in %s", unit, file))
			continue
		}
		parts = append(parts, fmt.Sprintf("the first %d items of %s in %s (--limit %d)", s.Limit, unit, file, s.Limit))
	}
	return strings.Join(parts, " and ")
}

// limitNote says how many items the zero-shot columns scored: one sentence
// when every row was scored the same way, else one part per way.
func limitNote(s []scoring) string {
	if len(s) == 1 {
		return "Scored on " + s[0].how + "."
	}
	var parts []string
	for _, g := range s {
		parts = append(parts, fmt.Sprintf("%s: %s", strings.Join(g.rows, ", "), g.how))
	}
	return "Rows were scored with different limits, so their accuracies are not comparable: " + strings.Join(parts, "; ") + "."
}

// Plot draws one bar per row (perplexity) into a PNG at path,
// written to a temporary name and renamed.
func Plot(res []Result, windows int, path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("SmolLM2-135M, WikiText-2 perplexity (%d windows of 2048)", windows)
	p.Y.Label.Text = "perplexity"
	vals := make(plotter.Values, len(res))
	names := make([]string, len(res))
	for i, r := range res {
		vals[i] = r.PPL
		names[i] = strings.ReplaceAll(r.Label, " / ", "\n")
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(18))
	if err != nil {
		return err
	}
	p.Add(bars)
	p.NominalX(names...)
	p.Y.Min = 0
	tmp := strings.TrimSuffix(path, ".png") + ".tmp.png"
	if err := p.Save(vg.Length(max(8, len(res)))*vg.Inch, 5*vg.Inch, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// LoadAll loads every row of Rows from dir (Load), which must be a
// directory; rows without an eval file are returned as missing. Rows scored with different window lengths
// (seqlen, where the files give it) are an error naming both files: their
// perplexities are not comparable. Other errors stop it.
func LoadAll(dir string, windows int) (res []Result, missing []string, err error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, nil, fmt.Errorf("-results %s: not a directory", dir)
	}
	first := -1 // the first row with a seqlen
	for _, row := range Rows {
		r, err := Load(dir, row, windows)
		if errors.Is(err, os.ErrNotExist) {
			missing = append(missing, row)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if r.Seqlen > 0 {
			if first < 0 {
				first = len(res)
			} else if f := res[first]; f.Seqlen != r.Seqlen {
				return nil, nil, fmt.Errorf("%s.eval.json: windows of %d tokens, %s.eval.json: %d; the perplexities are not comparable", row, r.Seqlen, f.Row, f.Seqlen)
			}
		}
		res = append(res, r)
	}
	return res, missing, nil
}

func main() {
	dir := flag.String("results", "bench/smollm2/results", "directory of ROW.eval.json, ROW.report.json and (optional) ROW.zeroshot.json, ROW.zeroshot-mmlu.json")
	windows := flag.Int("windows", 32, "WikiText-2 windows per row")
	png := flag.String("png", "", "write the perplexity bar chart here (PNG)")
	paired := flag.Bool("paired", false, "instead of the table, compare each base row (own, or none for Wanda) with its optima row on the per-document zero-shot samples (ROW.zeroshot[-mmlu].samples.jsonl.gz): differences with paired standard errors")
	flag.Parse()
	if *paired {
		ps, err := LoadPaired(*dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "table:", err)
			os.Exit(1)
		}
		MarkdownPaired(os.Stdout, ps)
		return
	}
	res, missing, err := LoadAll(*dir, *windows)
	if err != nil {
		fmt.Fprintln(os.Stderr, "table:", err)
		os.Exit(1)
	}
	Markdown(os.Stdout, res, missing, *windows)
	if *png != "" {
		if err := Plot(res, *windows, *png); err != nil {
			fmt.Fprintln(os.Stderr, "table:", err)
			os.Exit(1)
		}
	}
}
