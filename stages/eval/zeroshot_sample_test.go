package eval

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/internal/testenv"
)

// docKey names one document of a task as lm-evaluation-harness's doc_id
// does: its index in the task's data file, for MMLU in its subject's file
// (Subject is empty for the other tasks).
type docKey struct {
	Subject string
	DocID   int
}

func (k docKey) String() string {
	if k.Subject == "" {
		return fmt.Sprintf("doc %d", k.DocID)
	}
	return fmt.Sprintf("%s doc %d", k.Subject, k.DocID)
}

// docKeys returns the key of each of full's items, in order: the item's
// subject and its index among the items of that subject. full must hold
// every document (LoadTask with limit 0) for the keys to be doc ids.
func docKeys(full *Task) []docKey {
	next := map[string]int{}
	keys := make([]docKey, len(full.Items))
	for i, it := range full.Items {
		keys[i] = docKey{it.Subject, next[it.Subject]}
		next[it.Subject]++
	}
	return keys
}

// docsTask returns a task with full's name and HasNorm holding the documents
// keys names, in that order (full is LoadTask(data, name, 0)). A key that
// names no document of full is an error.
func docsTask(full *Task, keys []docKey) (*Task, error) {
	index := map[docKey]int{}
	for i, k := range docKeys(full) {
		index[k] = i
	}
	t := &Task{Name: full.Name, HasNorm: full.HasNorm, Items: make([]Item, len(keys))}
	for i, k := range keys {
		j, ok := index[k]
		if !ok {
			return nil, fmt.Errorf("%s: no %s", full.Name, k)
		}
		t.Items[i] = full.Items[j]
	}
	return t, nil
}

// stratifiedSample returns k of the doc ids 0 … n-1, ascending: one drawn
// uniformly from each of k consecutive strata [i·n/k, (i+1)·n/k), so the
// sample spreads over the whole data and always holds one of its last
// ⌈n/k⌉ documents. k ≥ n returns every id.
func stratifiedSample(rng *rand.Rand, n, k int) []int {
	if k >= n {
		ids := make([]int, n)
		for i := range ids {
			ids[i] = i
		}
		return ids
	}
	ids := make([]int, k)
	for i := range ids {
		lo, hi := i*n/k, (i+1)*n/k
		ids[i] = lo + rng.IntN(hi-lo)
	}
	return ids
}

// sampleDocs picks the documents to score from a full-data reference: for
// each of tasks (LoadTask(data, name, 0) each), perTask documents by
// stratifiedSample; for MMLU, perSubject documents of each of subjects
// subjects, themselves a stratifiedSample of the task's subjects in their
// (alphabetical) order (subjects ≤ 0: every subject). The draws come from
// one PCG stream seeded with seed, task by task in the given order.
func sampleDocs(tasks []*Task, perTask, subjects, perSubject int, seed uint64) map[string][]docKey {
	rng := rand.New(rand.NewPCG(seed, 0x5a3d1e))
	out := map[string][]docKey{}
	for _, t := range tasks {
		// The task's subjects ("" for a task without) and their sizes.
		var names []string
		size := map[string]int{}
		for _, it := range t.Items {
			if size[it.Subject] == 0 {
				names = append(names, it.Subject)
			}
			size[it.Subject]++
		}
		k := perTask
		if t.Name == "mmlu" {
			k = perSubject
			if subjects > 0 {
				var picked []string
				for _, i := range stratifiedSample(rng, len(names), subjects) {
					picked = append(picked, names[i])
				}
				names = picked
			}
		}
		for _, s := range names {
			for _, id := range stratifiedSample(rng, size[s], k) {
				out[t.Name] = append(out[t.Name], docKey{s, id})
			}
		}
	}
	return out
}

// compareLogLiks compares each choice's log-likelihood, got[i][c] against
// want[i][c] for the documents keys, by |got-want| / max(1, |want|) (relative
// for large values), and returns the largest such difference and one line per
// document or choice outside tol (a differing number of choices included).
func compareLogLiks(task string, keys []docKey, got, want [][]float64, tol float64) (worst float64, bad []string) {
	if len(got) != len(keys) || len(want) != len(keys) {
		panic(fmt.Sprintf("compareLogLiks: %d keys, %d and %d documents", len(keys), len(got), len(want)))
	}
	for i, k := range keys {
		if len(got[i]) != len(want[i]) {
			bad = append(bad, fmt.Sprintf("%s %s: %d choices, harness %d", task, k, len(got[i]), len(want[i])))
			continue
		}
		for c, w := range want[i] {
			d := math.Abs(got[i][c]-w) / max(1, math.Abs(w))
			if math.IsNaN(d) {
				d = math.Inf(1)
			}
			worst = max(worst, d)
			if d > tol {
				bad = append(bad, fmt.Sprintf("%s %s choice %d: loglik %.5f, harness %.5f (%.2g relative)", task, k, c, got[i][c], w, d))
			}
		}
	}
	return worst, bad
}

func TestStratifiedSample(t *testing.T) {
	for _, c := range []struct{ n, k int }{{1838, 10}, {500, 10}, {100, 1}, {13, 5}, {7, 7}, {5, 10}, {2376, 200}} {
		t.Run(fmt.Sprintf("%d of %d", c.k, c.n), func(t *testing.T) {
			ids := stratifiedSample(rand.New(rand.NewPCG(1, 2)), c.n, c.k)
			if want := min(c.n, c.k); len(ids) != want {
				t.Fatalf("%d ids, want %d", len(ids), want)
			}
			for i, id := range ids {
				if id < 0 || id >= c.n || (i > 0 && id <= ids[i-1]) {
					t.Fatalf("ids %v: not ascending within [0, %d)", ids, c.n)
				}
				if lo, hi := i*c.n/c.k, (i+1)*c.n/c.k; c.k < c.n && (id < lo || id >= hi) {
					t.Errorf("id %d outside stratum %d [%d, %d)", id, i, lo, hi)
				}
			}
			if last := ids[len(ids)-1]; last < c.n-(c.n+c.k-1)/c.k {
				t.Errorf("last id %d: not among the last %d of %d", last, (c.n+c.k-1)/c.k, c.n)
			}
			again := stratifiedSample(rand.New(rand.NewPCG(1, 2)), c.n, c.k)
			if d := cmp.Diff(ids, again); d != "" {
				t.Errorf("same seed, other sample (-first +second):\n%s", d)
			}
		})
	}
	// Another seed draws another sample (of 10 from 1838, equal only by an
	// improbable coincidence).
	a := stratifiedSample(rand.New(rand.NewPCG(1, 2)), 1838, 10)
	b := stratifiedSample(rand.New(rand.NewPCG(3, 2)), 1838, 10)
	if slices.Equal(a, b) {
		t.Errorf("seeds 1 and 3 both sample %v", a)
	}
}

// TestSampleDocs checks the sample TestSmolLM2ZeroShot scores on the real
// data: the counts (perTask per task, perSubject per MMLU subject), keys that
// name documents, and documents beyond the first ten.
func TestSampleDocs(t *testing.T) {
	data := testenv.DataDir(t)
	var full []*Task
	for _, name := range ZeroShotTasks {
		task, err := LoadTask(data, name, 0)
		if err != nil {
			t.Fatal(err)
		}
		full = append(full, task)
	}
	subjects, err := MMLUSubjects(data)
	if err != nil {
		t.Fatal(err)
	}
	sample := sampleDocs(full, 10, 0, 1, 7)
	for _, task := range full {
		keys := sample[task.Name]
		want := 10
		if task.Name == "mmlu" {
			want = len(subjects)
		}
		if len(keys) != want {
			t.Errorf("%s: %d documents, want %d", task.Name, len(keys), want)
		}
		late := 0
		for _, k := range keys {
			if k.DocID >= 10 {
				late++
			}
		}
		if late < len(keys)/2 {
			t.Errorf("%s: %d of %d documents beyond the first 10: %v", task.Name, late, len(keys), keys)
		}
		sub, err := docsTask(task, keys)
		if err != nil {
			t.Fatal(err)
		}
		for i, k := range keys {
			if sub.Items[i].Subject != k.Subject {
				t.Errorf("%s %s: item of subject %q", task.Name, k, sub.Items[i].Subject)
			}
		}
	}
	if d := cmp.Diff(sample, sampleDocs(full, 10, 0, 1, 7)); d != "" {
		t.Errorf("same seed, other sample (-first +second):\n%s", d)
	}
}

func TestDocsTask(t *testing.T) {
	item := func(subject, q string) Item {
		return Item{Contexts: []string{q, q}, Continuations: []string{" a", " b"}, Choices: []string{"a", "b"}, Subject: subject}
	}
	full := &Task{Name: "mmlu", Items: []Item{item("anatomy", "a0"), item("anatomy", "a1"), item("virology", "v0"), item("virology", "v1"), item("virology", "v2")}}
	got, err := docsTask(full, []docKey{{"virology", 2}, {"anatomy", 0}, {"virology", 0}})
	if err != nil {
		t.Fatal(err)
	}
	want := &Task{Name: "mmlu", Items: []Item{item("virology", "v2"), item("anatomy", "a0"), item("virology", "v0")}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("docsTask (-want +got):\n%s", d)
	}
	plain := &Task{Name: "piqa", HasNorm: true, Items: []Item{item("", "p0"), item("", "p1"), item("", "p2")}}
	got, err = docsTask(plain, []docKey{{"", 2}, {"", 1}})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(&Task{Name: "piqa", HasNorm: true, Items: []Item{item("", "p2"), item("", "p1")}}, got); d != "" {
		t.Errorf("docsTask (-want +got):\n%s", d)
	}
	for _, c := range []struct {
		task *Task
		key  docKey
		want string
	}{
		{full, docKey{"anatomy", 2}, "mmlu: no anatomy doc 2"},
		{full, docKey{"law", 0}, "mmlu: no law doc 0"},
		{full, docKey{"", 0}, "mmlu: no doc 0"},
		{plain, docKey{"", 3}, "piqa: no doc 3"},
		{plain, docKey{"", -1}, "piqa: no doc -1"},
	} {
		if _, err := docsTask(c.task, []docKey{c.key}); err == nil || err.Error() != c.want {
			t.Errorf("docsTask(%s): error %v, want %q", c.key, err, c.want)
		}
	}
}

func TestCompareLogLiks(t *testing.T) {
	keys := []docKey{{"", 3}, {"", 1500}}
	want := [][]float64{{-110.69882, -110.98293}, {-0.5, -2.25}}
	for _, c := range []struct {
		name  string
		got   [][]float64
		worst float64
		bad   []string // substrings of the complaints, in order
	}{
		{"equal", [][]float64{{-110.69882, -110.98293}, {-0.5, -2.25}}, 0, nil},
		{"within 1e-4 relative", [][]float64{{-110.69882 * (1 + 5e-5), -110.98293}, {-0.5, -2.25}}, 5e-5, nil},
		{"within 1e-4 absolute below 1", [][]float64{{-110.69882, -110.98293}, {-0.5 + 9e-5, -2.25}}, 9e-5, nil},
		{"perturbed relative", [][]float64{{-110.69882, -110.98293 * (1 + 3e-4)}, {-0.5, -2.25}}, 3e-4, []string{"doc 3 choice 1: loglik -111.01622, harness -110.98293 (0.0003 relative)"}},
		{"perturbed below 1", [][]float64{{-110.69882, -110.98293}, {-0.5 + 2e-4, -2.25}}, 2e-4, []string{"doc 1500 choice 0"}},
		{"NaN", [][]float64{{-110.69882, -110.98293}, {-0.5, math.NaN()}}, math.Inf(1), []string{"doc 1500 choice 1: loglik NaN"}},
		{"choices", [][]float64{{-110.69882}, {-0.5, -2.25}}, 0, []string{"doc 3: 1 choices, harness 2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			worst, bad := compareLogLiks("piqa", keys, c.got, want, 1e-4)
			if math.Abs(worst-c.worst) > 1e-9 && !(math.IsInf(c.worst, 1) && math.IsInf(worst, 1)) {
				t.Errorf("worst %g, want %g", worst, c.worst)
			}
			if len(bad) != len(c.bad) {
				t.Fatalf("complaints %q, want %d like %q", bad, len(c.bad), c.bad)
			}
			for i := range bad {
				if !strings.Contains(bad[i], c.bad[i]) {
					t.Errorf("complaint %d: %q, want it to contain %q", i, bad[i], c.bad[i])
				}
			}
		})
	}
}
