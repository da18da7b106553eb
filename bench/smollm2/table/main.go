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
// RESULTS/ROW.zeroshot.json (optima eval --task ... --json, written by
// run.sh when ZEROSHOT_TASKS is set), the table gains one acc column per
// zero-shot task and their average, and a note gives the --limit they were
// scored with; without such files those columns are left out.
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
	"sort"
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
	} `json:"tasks"`
	Average float64 `json:"average_acc"`
	// Limit is eval's --limit (0 or absent: every item).
	Limit int `json:"limit"`
}

// ZeroShot is a row's zero-shot accuracy.
type ZeroShot struct {
	// Acc is each task's acc by task name; Tasks keeps the file's order.
	Acc   map[string]float64
	Tasks []string
	// Average is the unweighted mean of the tasks' acc (average_acc).
	Average float64
	// Limit is the items per task (per MMLU subject) scored; 0: all.
	Limit int
}

// Result is one rendered row.
type Result struct {
	Row, Label string
	PPL        float64
	HasReport  bool
	Sparsity   float64
	ErrBefore  float64
	ErrAfter   float64
	MaxDamping float64
	Seconds    float64
	// ZeroShot is nil when the row has no ROW.zeroshot.json.
	ZeroShot *ZeroShot
}

// loadZeroShot reads dir/ROW.zeroshot.json; a missing file gives nil and
// no error.
func loadZeroShot(dir, row string) (*ZeroShot, error) {
	raw, err := os.ReadFile(filepath.Join(dir, row+".zeroshot.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f zeroShotFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%s.zeroshot.json: %w", row, err)
	}
	if len(f.Tasks) == 0 {
		return nil, fmt.Errorf("%s.zeroshot.json: no tasks", row)
	}
	z := &ZeroShot{Acc: map[string]float64{}, Average: f.Average, Limit: f.Limit}
	for _, t := range f.Tasks {
		if _, dup := z.Acc[t.Task]; dup || t.Task == "" {
			return nil, fmt.Errorf("%s.zeroshot.json: task %q empty or listed twice", row, t.Task)
		}
		z.Acc[t.Task] = t.Acc
		z.Tasks = append(z.Tasks, t.Task)
	}
	return z, nil
}

// Load reads row's files under dir and computes its perplexity over the
// first windows windows. A missing eval file returns an error wrapping
// os.ErrNotExist.
func Load(dir, row string, windows int) (Result, error) {
	r := Result{Row: row, Label: Label(row)}
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
// them, and a note below the table gives the limit per task.
func Markdown(w io.Writer, res []Result, missing []string, windows int) {
	var tasks []string
	seen := map[string]bool{}
	limits := map[int][]string{}
	for _, r := range res {
		if r.ZeroShot == nil {
			continue
		}
		for _, t := range r.ZeroShot.Tasks {
			if !seen[t] {
				seen[t] = true
				tasks = append(tasks, t)
			}
		}
		limits[r.ZeroShot.Limit] = append(limits[r.ZeroShot.Limit], r.Label)
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
				line += fmt.Sprintf(" %.4f |", a)
			} else {
				line += " — |"
			}
		}
		if len(tasks) > 0 {
			if r.ZeroShot != nil {
				line += fmt.Sprintf(" %.4f |", r.ZeroShot.Average)
			} else {
				line += " — |"
			}
		}
		fmt.Fprintln(w, line)
	}
	if len(tasks) > 0 {
		fmt.Fprintf(w, "\nZero-shot acc as lm-evaluation-harness 0.4 scores it (optima eval); avg acc is the unweighted mean over the row's tasks. %s\n", limitNote(limits))
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

// limitNote says how many items per task the zero-shot columns scored:
// one sentence when every row used the same --limit, else one per limit.
func limitNote(limits map[int][]string) string {
	say := func(l int) string {
		if l == 0 {
			return "all items of each task"
		}
		return fmt.Sprintf("the first %d items of each task (of each MMLU subject; --limit %d)", l, l)
	}
	if len(limits) == 1 {
		for l := range limits {
			return "Scored on " + say(l) + "."
		}
	}
	ls := make([]int, 0, len(limits))
	for l := range limits {
		ls = append(ls, l)
	}
	sort.Ints(ls)
	var parts []string
	for _, l := range ls {
		parts = append(parts, fmt.Sprintf("%s: %s", strings.Join(limits[l], ", "), say(l)))
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

// LoadAll loads every row of Rows from dir (Load); rows without an eval
// file are returned as missing. Other errors stop it.
func LoadAll(dir string, windows int) (res []Result, missing []string, err error) {
	for _, row := range Rows {
		r, err := Load(dir, row, windows)
		if errors.Is(err, os.ErrNotExist) {
			missing = append(missing, row)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		res = append(res, r)
	}
	return res, missing, nil
}

func main() {
	dir := flag.String("results", "bench/smollm2/results", "directory of ROW.eval.json, ROW.report.json and (optional) ROW.zeroshot.json")
	windows := flag.Int("windows", 32, "WikiText-2 windows per row")
	png := flag.String("png", "", "write the perplexity bar chart here (PNG)")
	flag.Parse()
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
