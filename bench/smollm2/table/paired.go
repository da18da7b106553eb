package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/optima-llm/optima/stages/eval"
)

// samplesSuffixes are the per-document files run.sh writes with
// ZEROSHOT_SAMPLES=1 (optima eval --log-samples), beside zeroShotSuffixes.
var samplesSuffixes = []string{".zeroshot.samples.jsonl.gz", ".zeroshot-mmlu.samples.jsonl.gz"}

// loadSamples reads dir/ROW.zeroshot.samples.jsonl.gz and
// dir/ROW.zeroshot-mmlu.samples.jsonl.gz, both optional, and returns their
// documents grouped by task. Neither file gives nil and no error; a task in
// both files is an error naming them.
func loadSamples(dir, row string) (map[string][]eval.Sample, error) {
	var byTask map[string][]eval.Sample
	from := map[string]string{}
	for _, suf := range samplesSuffixes {
		name := row + suf
		s, err := eval.ReadSamplesFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if byTask == nil {
			byTask = map[string][]eval.Sample{}
		}
		for _, x := range s {
			if other, ok := from[x.Task]; ok && other != name {
				return nil, fmt.Errorf("task %q is in both %s and %s", x.Task, other, name)
			}
			from[x.Task] = name
			byTask[x.Task] = append(byTask[x.Task], x)
		}
	}
	return byTask, nil
}

// PairedTask is one task of a Paired comparison, in accuracy points (0–1).
type PairedTask struct {
	Task string
	// N is the number of documents both rows scored.
	N int
	// Diff is acc(B) − acc(A) over those documents.
	Diff float64
	// SE is the paired standard error of Diff (eval.PairedDifference),
	// NaN (printed "N/A", the harness's word) where undefined: fewer than
	// two documents, or a subject of one;
	// Unpaired the standard error were the two runs independent,
	// sqrt(se_A² + se_B²) with se each row's acc_stderr as
	// lm-evaluation-harness reports it: sqrt(p(1−p)/(N−1)), or for a task
	// of subjects (MMLU, whose acc is the micro average over its items, the
	// harness's weight_by_size) eval.PooledSampleStderr of the subjects'
	// stderrs. SE pools the subjects' paired errors the same way: both
	// leave out the spread between the subjects' means, as the subjects
	// are fixed strata, not a sample.
	SE, Unpaired float64
}

// Paired compares row B with row A (B − A) on every task both rows have
// per-document samples for.
type Paired struct {
	A, B  string
	Tasks []PairedTask
	// AvgDiff is the difference of the unweighted averages over Tasks, the
	// tasks with samples (the table's avg acc column only when those are
	// all the row's tasks: bench/device/paired_rows.sh keeps no MMLU
	// samples, so there it averages five tasks, the table six), AvgSE its
	// paired standard error
	// sqrt(Σ SE²)/T (tasks are disjoint documents), AvgUnpaired the same
	// from the unpaired errors; NaN when a task's is.
	AvgDiff, AvgSE, AvgUnpaired float64
}

// pairs are the comparisons of -paired: each selector's mask with its own
// update (none for Wanda) against the same mask re-fit by OPTIMA, in the
// order of Rows. (Dense is compared with no row.)
func pairs() [][2]string {
	var p [][2]string
	for _, row := range Rows {
		if base, ok := strings.CutSuffix(row, "-optima"); ok {
			b := base + "-own"
			if strings.HasPrefix(base, "wanda") {
				b = base + "-none"
			}
			p = append(p, [2]string{b, row})
		}
	}
	return p
}

// binomialSE is lm-evaluation-harness' acc_stderr of a 0/1 metric over n
// documents with mean p: sqrt(p(1−p)/(n−1)) (sample standard deviation over
// sqrt(n)); NaN for n < 2, where the harness reports "N/A".
func binomialSE(p float64, n int) float64 {
	if n < 2 {
		return math.NaN()
	}
	return math.Sqrt(p * (1 - p) / float64(n-1))
}

// meanAcc is the mean acc of s.
func meanAcc(s []eval.Sample) float64 {
	var t float64
	for _, x := range s {
		t += x.Acc
	}
	return t / float64(len(s))
}

// LoadPaired computes the comparisons of pairs() for which both rows have
// samples files in dir. A task present in one row of a pair and not the
// other, or scored on different documents, is an error naming both rows.
func LoadPaired(dir string) ([]Paired, error) {
	cache := map[string]map[string][]eval.Sample{}
	load := func(row string) (map[string][]eval.Sample, error) {
		if s, ok := cache[row]; ok {
			return s, nil
		}
		s, err := loadSamples(dir, row)
		cache[row] = s
		return s, err
	}
	var out []Paired
	for _, pr := range pairs() {
		a, err := load(pr[0])
		if err != nil {
			return nil, err
		}
		b, err := load(pr[1])
		if err != nil {
			return nil, err
		}
		if a == nil || b == nil {
			continue
		}
		tasks := make([]string, 0, len(a))
		for t := range a {
			tasks = append(tasks, t)
		}
		for t := range b {
			if _, ok := a[t]; !ok {
				return nil, fmt.Errorf("%s has samples of %s, %s has none", pr[1], t, pr[0])
			}
		}
		if len(tasks) != len(b) {
			for _, t := range tasks {
				if _, ok := b[t]; !ok {
					return nil, fmt.Errorf("%s has samples of %s, %s has none", pr[0], t, pr[1])
				}
			}
		}
		slices.SortFunc(tasks, func(x, y string) int { return taskOrder(x) - taskOrder(y) })
		p := Paired{A: pr[0], B: pr[1]}
		var se2, un2 float64
		for _, t := range tasks {
			pt, err := pairedTask(t, pr[0], pr[1], a[t], b[t])
			if err != nil {
				return nil, fmt.Errorf("%s vs %s, %s: %w", pr[1], pr[0], t, err)
			}
			diff, se, un := pt.Diff, pt.SE, pt.Unpaired
			p.Tasks = append(p.Tasks, pt)
			p.AvgDiff += diff
			se2 += se * se
			un2 += un * un
		}
		k := float64(len(tasks))
		p.AvgDiff /= k
		p.AvgSE = math.Sqrt(se2) / k
		p.AvgUnpaired = math.Sqrt(un2) / k
		out = append(out, p)
	}
	return out, nil
}

// pairedTask compares task's samples b of row rowB with a of row rowA. Diff
// is over all documents (for MMLU the difference of the micro averages,
// which its acc is); with subjects, SE and Unpaired pool the subjects'
// errors (PairedTask). Rows that scored different documents, or a document
// twice, are an error naming the rows and the document.
func pairedTask(task, rowA, rowB string, a, b []eval.Sample) (PairedTask, error) {
	type doc struct {
		subject string
		id      int
	}
	docs := func(row string, s []eval.Sample) (map[doc]bool, error) {
		m := make(map[doc]bool, len(s))
		for _, x := range s {
			d := doc{x.Subject, x.DocID}
			if m[d] {
				return nil, fmt.Errorf("%s scored %s doc %d twice", row, strings.TrimSpace(x.Subject+" "), x.DocID)
			}
			m[d] = true
		}
		return m, nil
	}
	da, err := docs(rowA, a)
	if err != nil {
		return PairedTask{}, err
	}
	if _, err := docs(rowB, b); err != nil {
		return PairedTask{}, err
	}
	if len(a) != len(b) {
		return PairedTask{}, fmt.Errorf("%s scored %d documents, %s %d: run both rows with the same limit and data", rowA, len(a), rowB, len(b))
	}
	for _, x := range b {
		if !da[doc{x.Subject, x.DocID}] {
			return PairedTask{}, fmt.Errorf("%s scored %s doc %d, %s did not: run both rows with the same data", rowB, strings.TrimSpace(x.Subject+" "), x.DocID, rowA)
		}
	}
	diff, se, n, err := eval.PairedDifference(b, a)
	if err != nil {
		return PairedTask{}, err
	}
	pt := PairedTask{Task: task, N: n, Diff: diff, SE: naBelow2(se, n),
		Unpaired: math.Hypot(binomialSE(meanAcc(a), n), binomialSE(meanAcc(b), n))}
	bySubject := func(s []eval.Sample) map[string][]eval.Sample {
		m := map[string][]eval.Sample{}
		for _, x := range s {
			m[x.Subject] = append(m[x.Subject], x)
		}
		return m
	}
	as, bs := bySubject(a), bySubject(b)
	if _, plain := as[""]; plain && len(as) == 1 {
		return pt, nil
	}
	subjects := make([]string, 0, len(as))
	for s := range as {
		subjects = append(subjects, s)
	}
	slices.Sort(subjects)
	ses, seA, seB := make([]float64, len(subjects)), make([]float64, len(subjects)), make([]float64, len(subjects))
	sizes := make([]int, len(subjects))
	for i, s := range subjects {
		_, se, n, err := eval.PairedDifference(bs[s], as[s])
		if err != nil {
			return PairedTask{}, err
		}
		ses[i], sizes[i] = naBelow2(se, n), n
		seA[i], seB[i] = binomialSE(meanAcc(as[s]), n), binomialSE(meanAcc(bs[s]), n)
	}
	pt.SE = eval.PooledSampleStderr(ses, sizes)
	pt.Unpaired = math.Hypot(eval.PooledSampleStderr(seA, sizes), eval.PooledSampleStderr(seB, sizes))
	return pt, nil
}

// naBelow2 is se, or NaN (the harness's "N/A": a sample standard deviation
// needs two documents) when n < 2.
func naBelow2(se float64, n int) float64 {
	if n < 2 {
		return math.NaN()
	}
	return se
}

// pct formats a fraction in points with 2 decimals, "N/A" for NaN (an
// undefined standard error).
func pct(x float64) string {
	if math.IsNaN(x) {
		return "N/A"
	}
	return fmt.Sprintf("%.2f", 100*x)
}

// taskOrder orders tasks as the OPTIMA paper's Table 1 lists them, unknown
// tasks last.
func taskOrder(t string) int {
	if i := slices.Index([]string{"piqa", "arc_easy", "arc_challenge", "winogrande", "openbookqa", "mmlu"}, t); i >= 0 {
		return i
	}
	return 100
}

// MarkdownPaired writes one line per comparison: each task's difference
// B − A in accuracy points with its paired standard error, and the
// difference of the averages with its paired and unpaired errors.
func MarkdownPaired(w io.Writer, ps []Paired) {
	if len(ps) == 0 {
		fmt.Fprintln(w, "No pair of rows has per-document samples (run.sh with ZEROSHOT_SAMPLES=1).")
		return
	}
	var tasks []string
	for _, p := range ps {
		for _, t := range p.Tasks {
			if !slices.Contains(tasks, t.Task) {
				tasks = append(tasks, t.Task)
			}
		}
	}
	slices.SortFunc(tasks, func(x, y string) int { return taskOrder(x) - taskOrder(y) })
	fmt.Fprintf(w, "| B − A (acc points ± paired SE) | %s | avg (paired SE) | avg unpaired SE |\n", strings.Join(tasks, " | "))
	fmt.Fprintf(w, "|---|%s---|---|\n", strings.Repeat("---|", len(tasks)))
	for _, p := range ps {
		cells := make([]string, len(tasks))
		for i, t := range tasks {
			cells[i] = "—"
			for _, pt := range p.Tasks {
				if pt.Task == t {
					cells[i] = fmt.Sprintf("%+.2f ± %s", 100*pt.Diff, pct(pt.SE))
				}
			}
		}
		fmt.Fprintf(w, "| %s − %s | %s | %+.2f ± %s | %s |\n", Label(p.B), Label(p.A), strings.Join(cells, " | "),
			100*p.AvgDiff, pct(p.AvgSE), pct(p.AvgUnpaired))
	}
	// The documents of each task, per pair: pairs run with other limits
	// scored other numbers of documents, and the note says so.
	n := map[string][]int{}
	for _, p := range ps {
		for _, t := range p.Tasks {
			if !slices.Contains(n[t.Task], t.N) {
				n[t.Task] = append(n[t.Task], t.N)
			}
		}
	}
	var parts []string
	for _, t := range tasks {
		ns := n[t]
		if len(ns) == 1 {
			parts = append(parts, fmt.Sprintf("%s %d", t, ns[0]))
			continue
		}
		slices.Sort(ns)
		s := make([]string, len(ns))
		for i, v := range ns {
			s[i] = fmt.Sprint(v)
		}
		parts = append(parts, fmt.Sprintf("%s %s (differs between pairs)", t, strings.Join(s, " or ")))
	}
	fmt.Fprintf(w, "\nDocuments per task: %s. Paired SE: eval.PairedDifference over the documents both rows scored;\n", strings.Join(parts, ", "))
	fmt.Fprintln(w, "MMLU's, and its unpaired SE, pool its subjects' errors as lm-evaluation-harness's group acc_stderr does; the averages' SE is sqrt(Σ SE²)/T over the T tasks.")
}
