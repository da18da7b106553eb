package main

import (
	"bytes"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optima-llm/optima/stages/eval"
)

// writeSamples writes dir/NAME with one sample per acc of each task.
func writeSamples(t *testing.T, dir, name string, accs map[string][]float64) {
	t.Helper()
	var s []eval.Sample
	for task, a := range accs {
		for i, v := range a {
			s = append(s, eval.Sample{Task: task, DocID: i, LogLiks: []float64{-1, -2}, CompletionLen: []int{1, 1}, Acc: v})
		}
	}
	if err := eval.WriteSamplesFile(filepath.Join(dir, name), s); err != nil {
		t.Fatal(err)
	}
}

// TestLoadPaired checks the paired differences against values worked by
// hand: piqa d = B − A = (0, 1, 0, −1, 1), mean 0.2, sample sd
// sqrt(2.8/4), SE sqrt(0.7/5) = 0.374166; unpaired hypot(sqrt(.24/4),
// sqrt(.16/4)) = 0.316228. arc_easy d = (1, 0, 0): 1/3, SE 1/3, unpaired
// hypot(1/3, 1/3). Averages: 0.266667, sqrt(0.14 + 1/9)/2 = 0.250555,
// sqrt(0.1 + 2/9)/2 = 0.283823.
func TestLoadPaired(t *testing.T) {
	dir := t.TempDir()
	writeSamples(t, dir, "wanda50-none.zeroshot.samples.jsonl.gz", map[string][]float64{"piqa": {1, 0, 1, 1, 0}})
	writeSamples(t, dir, "wanda50-none.zeroshot-mmlu.samples.jsonl.gz", map[string][]float64{"arc_easy": {0, 0, 1}})
	writeSamples(t, dir, "wanda50-optima.zeroshot.samples.jsonl.gz", map[string][]float64{"piqa": {1, 1, 1, 0, 1}, "arc_easy": {1, 0, 1}})
	// A row without its pair's samples is left out.
	writeSamples(t, dir, "sgpt24-own.zeroshot.samples.jsonl.gz", map[string][]float64{"piqa": {1}})
	ps, err := LoadPaired(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].A != "wanda50-none" || ps[0].B != "wanda50-optima" {
		t.Fatalf("pairs %+v, want wanda50-none vs wanda50-optima only", ps)
	}
	p := ps[0]
	want := []PairedTask{
		{Task: "piqa", N: 5, Diff: 0.2, SE: 0.374166, Unpaired: 0.316228},
		{Task: "arc_easy", N: 3, Diff: 1.0 / 3, SE: 1.0 / 3, Unpaired: 0.471405},
	}
	if len(p.Tasks) != len(want) {
		t.Fatalf("tasks %+v, want %+v", p.Tasks, want)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-6 }
	for i, w := range want {
		g := p.Tasks[i]
		if g.Task != w.Task || g.N != w.N || !near(g.Diff, w.Diff) || !near(g.SE, w.SE) || !near(g.Unpaired, w.Unpaired) {
			t.Errorf("task %d: %+v, want %+v", i, g, w)
		}
	}
	if !near(p.AvgDiff, 0.266667) || !near(p.AvgSE, 0.250555) || !near(p.AvgUnpaired, 0.283823) {
		t.Errorf("averages %.6f ± %.6f (unpaired %.6f), want 0.266667 ± 0.250555 (0.283823)", p.AvgDiff, p.AvgSE, p.AvgUnpaired)
	}
	var b bytes.Buffer
	MarkdownPaired(&b, ps)
	for _, s := range []string{"| Wanda 50% / optima − Wanda 50% / none | +20.00 ± 37.42 | +33.33 ± 33.33 | +26.67 ± 25.06 | 28.38 |", "piqa 5, arc_easy 3"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("markdown lacks %q:\n%s", s, b.String())
		}
	}
}

// TestLoadPairedErrors: a task only one row of a pair scored, or scored on
// other documents, is an error naming the rows.
func TestLoadPairedErrors(t *testing.T) {
	for _, tc := range []struct {
		name         string
		a, b         map[string][]float64
		wantContains string
	}{
		{"task only in the optima row", map[string][]float64{"piqa": {1}}, map[string][]float64{"piqa": {1}, "arc_easy": {0}}, "wanda24-optima has samples of arc_easy"},
		{"task only in the base row", map[string][]float64{"piqa": {1}, "winogrande": {0}}, map[string][]float64{"piqa": {1}}, "wanda24-none has samples of winogrande"},
		{"different documents", map[string][]float64{"piqa": {1, 0}}, map[string][]float64{"piqa": {1}}, "wanda24-optima vs wanda24-none, piqa: wanda24-none scored 2 documents, wanda24-optima 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeSamples(t, dir, "wanda24-none.zeroshot.samples.jsonl.gz", tc.a)
			writeSamples(t, dir, "wanda24-optima.zeroshot.samples.jsonl.gz", tc.b)
			_, err := LoadPaired(dir)
			if err == nil || !strings.Contains(err.Error(), tc.wantContains) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantContains)
			}
		})
	}
}

// TestLoadPairedOtherDocuments: rows that scored as many documents but
// not the same ones, or one twice, are errors naming the row and the
// document (the base row is A, the optima row B, as in the table).
func TestLoadPairedOtherDocuments(t *testing.T) {
	sample := func(subject string, id int) eval.Sample {
		return eval.Sample{Task: "mmlu", Subject: subject, DocID: id, LogLiks: []float64{-1, -2}, CompletionLen: []int{1, 1}}
	}
	for _, tc := range []struct {
		name         string
		a, b         []eval.Sample
		wantContains string
	}{
		{"other document", []eval.Sample{sample("anatomy", 0), sample("anatomy", 1)}, []eval.Sample{sample("anatomy", 0), sample("anatomy", 2)},
			"thanos24-optima vs thanos24-own, mmlu: thanos24-optima scored anatomy doc 2, thanos24-own did not"},
		{"document twice", []eval.Sample{sample("anatomy", 0), sample("anatomy", 0)}, []eval.Sample{sample("anatomy", 0), sample("anatomy", 1)},
			"thanos24-optima vs thanos24-own, mmlu: thanos24-own scored anatomy doc 0 twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, s := range map[string][]eval.Sample{"thanos24-own.zeroshot-mmlu.samples.jsonl.gz": tc.a, "thanos24-optima.zeroshot-mmlu.samples.jsonl.gz": tc.b} {
				if err := eval.WriteSamplesFile(filepath.Join(dir, name), s); err != nil {
					t.Fatal(err)
				}
			}
			_, err := LoadPaired(dir)
			if err == nil || !strings.Contains(err.Error(), tc.wantContains) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantContains)
			}
		})
	}
}

// TestLoadPairedMMLU: MMLU's difference is that of the micro averages over
// its items (its acc, the harness's weight_by_size), and its errors leave
// out the spread between subjects as the harness's group acc_stderr does:
// each row's unpaired error is the acc_stderr optima eval reports for mmlu
// (eval.MMLUGroups), and the paired SE is sqrt(W/(N−k)/N) with W the
// within-subject sum of squares of d = B − A (k subjects, N documents).
// The subjects' accuracies differ widely, so pooling the items would give
// visibly larger errors.
func TestLoadPairedMMLU(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 1))
	type subject struct {
		name   string
		n      int
		pa, pb float64
	}
	subjects := []subject{{"abstract_algebra", 40, 0.9, 0.8}, {"anatomy", 30, 0.1, 0.2}, {"virology", 25, 0.5, 0.6}}
	var a, b []eval.Sample
	for _, s := range subjects {
		for i := range s.n {
			x := eval.Sample{Task: "mmlu", Subject: s.name, DocID: i, LogLiks: []float64{-1, -2}, CompletionLen: []int{1, 1}}
			y := x
			if r.Float64() < s.pa {
				x.Acc = 1
			}
			if r.Float64() < s.pb {
				y.Acc = 1
			}
			a, b = append(a, x), append(b, y)
		}
	}
	dir := t.TempDir()
	for name, s := range map[string][]eval.Sample{"sgpt50-own.zeroshot-mmlu.samples.jsonl.gz": a, "sgpt50-optima.zeroshot-mmlu.samples.jsonl.gz": b} {
		if err := eval.WriteSamplesFile(filepath.Join(dir, name), s); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := LoadPaired(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || len(ps[0].Tasks) != 1 {
		t.Fatalf("%+v: want one pair with mmlu", ps)
	}
	got := ps[0].Tasks[0]
	// The harness's mmlu acc_stderr of each row, as optima eval reports it.
	groupSE := func(s []eval.Sample) float64 {
		sub := map[string]eval.SubjectResult{}
		for _, x := range s {
			r := sub[x.Subject]
			r.Items++
			r.Acc += x.Acc
			sub[x.Subject] = r
		}
		for k, r := range sub {
			p := r.Acc / float64(r.Items)
			se := math.Sqrt(p * (1 - p) / float64(r.Items-1))
			sub[k] = eval.SubjectResult{Acc: p, Items: r.Items, AccStderr: &se}
		}
		g, _ := eval.MMLUGroups(sub)
		return *g.AccStderr
	}
	var sumA, sumB float64
	mean := map[string]float64{}
	for i := range a {
		sumA += a[i].Acc
		sumB += b[i].Acc
		mean[a[i].Subject] += (b[i].Acc - a[i].Acc)
	}
	for _, s := range subjects {
		mean[s.name] /= float64(s.n)
	}
	var w float64
	for i := range a {
		d := b[i].Acc - a[i].Acc - mean[a[i].Subject]
		w += d * d
	}
	n := float64(len(a))
	want := PairedTask{Task: "mmlu", N: len(a), Diff: (sumB - sumA) / n,
		SE: math.Sqrt(w / (n - float64(len(subjects))) / n), Unpaired: math.Hypot(groupSE(a), groupSE(b))}
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-12 }
	if got.Task != want.Task || got.N != want.N || !near(got.Diff, want.Diff) || !near(got.SE, want.SE) || !near(got.Unpaired, want.Unpaired) {
		t.Errorf("mmlu %+v, want %+v", got, want)
	}
}

// TestLoadPairedOneDocument: a standard error over one document (or an
// MMLU subject of one) is undefined, the harness's "N/A", and so are the
// averages' errors; it is not printed as ± 0.00.
func TestLoadPairedOneDocument(t *testing.T) {
	dir := t.TempDir()
	writeSamples(t, dir, "wanda24-none.zeroshot.samples.jsonl.gz", map[string][]float64{"piqa": {0}, "arc_easy": {0, 1, 1}})
	writeSamples(t, dir, "wanda24-optima.zeroshot.samples.jsonl.gz", map[string][]float64{"piqa": {1}, "arc_easy": {1, 1, 0}})
	mmlu := func(acc ...float64) []eval.Sample {
		var s []eval.Sample
		for i, a := range acc {
			subject := "anatomy"
			if i == 0 {
				subject = "virology" // one document
			}
			s = append(s, eval.Sample{Task: "mmlu", Subject: subject, DocID: i, LogLiks: []float64{-1, -2}, CompletionLen: []int{1, 1}, Acc: a})
		}
		return s
	}
	for name, s := range map[string][]eval.Sample{"wanda24-none.zeroshot-mmlu.samples.jsonl.gz": mmlu(0, 1, 0, 1), "wanda24-optima.zeroshot-mmlu.samples.jsonl.gz": mmlu(1, 1, 1, 0)} {
		if err := eval.WriteSamplesFile(filepath.Join(dir, name), s); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := LoadPaired(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	MarkdownPaired(&b, ps)
	want := "| Wanda 2:4 / optima − Wanda 2:4 / none | +100.00 ± N/A | +0.00 ± 57.74 | +25.00 ± N/A | +41.67 ± N/A | N/A |"
	if !strings.Contains(b.String(), want) {
		t.Errorf("markdown lacks %q:\n%s", want, b.String())
	}
}

// TestMarkdownPairedDocuments: the note gives each task's documents, and
// says so when pairs scored different numbers of them.
func TestMarkdownPairedDocuments(t *testing.T) {
	dir := t.TempDir()
	writeSamples(t, dir, "wanda50-none.zeroshot.samples.jsonl.gz", map[string][]float64{"piqa": {1, 0, 1}, "arc_easy": {0, 1}})
	writeSamples(t, dir, "wanda50-optima.zeroshot.samples.jsonl.gz", map[string][]float64{"piqa": {1, 1, 0}, "arc_easy": {1, 1}})
	writeSamples(t, dir, "sgpt50-own.zeroshot.samples.jsonl.gz", map[string][]float64{"piqa": {1, 0, 1, 1, 0}, "arc_easy": {0, 0}})
	writeSamples(t, dir, "sgpt50-optima.zeroshot.samples.jsonl.gz", map[string][]float64{"piqa": {1, 1, 1, 0, 1}, "arc_easy": {1, 0}})
	ps, err := LoadPaired(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	MarkdownPaired(&b, ps)
	if want := "Documents per task: piqa 3 or 5 (differs between pairs), arc_easy 2."; !strings.Contains(b.String(), want) {
		t.Errorf("markdown lacks %q:\n%s", want, b.String())
	}
}
