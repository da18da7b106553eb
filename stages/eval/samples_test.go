package eval

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// randomTask builds a task of n items with 2–4 choices of random text and
// random log-likelihoods (some tied, so argmax's first-index rule matters).
func randomTask(r *rand.Rand, name string, n int, hasNorm bool, subjects []string) (*Task, [][]float64) {
	t := &Task{Name: name, HasNorm: hasNorm}
	lls := make([][]float64, n)
	for i := range n {
		k := 2 + r.IntN(3)
		it := Item{Gold: r.IntN(k)}
		if subjects != nil {
			it.Subject = subjects[r.IntN(len(subjects))]
		}
		lls[i] = make([]float64, k)
		for c := range k {
			it.Choices = append(it.Choices, strings.Repeat("é", 1+r.IntN(9)))
			it.Contexts = append(it.Contexts, "q")
			it.Continuations = append(it.Continuations, " "+it.Choices[c])
			lls[i][c] = -float64(r.IntN(40)) / 4
		}
		t.Items = append(t.Items, it)
	}
	return t, lls
}

// TestSamplesMatchAggregate: the samples' acc and acc_norm average to
// Aggregate's exactly, pred and pred_norm are the first argmax, doc ids
// count per MMLU subject, and the samples survive a write and read, plain
// and gzipped.
func TestSamplesMatchAggregate(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, tc := range []struct {
		name     string
		n        int
		hasNorm  bool
		subjects []string
	}{
		{"arc_easy", 37, true, nil},
		{"winogrande", 1, false, nil},
		{"mmlu", 101, false, []string{"anatomy", "virology", "world_religions"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task, lls := randomTask(r, tc.name, tc.n, tc.hasNorm, tc.subjects)
			res := Aggregate(task, lls)
			res.Greedy = make([][]bool, len(lls))
			for i := range lls {
				for range lls[i] {
					res.Greedy[i] = append(res.Greedy[i], r.IntN(2) == 0)
				}
			}
			ss := Samples(task, res)
			var acc, norm float64
			perSubject := map[string]int{}
			for i, s := range ss {
				it := task.Items[i]
				acc += s.Acc
				if (s.AccNorm != nil) != tc.hasNorm || (s.PredNorm != nil) != tc.hasNorm {
					t.Fatalf("item %d: acc_norm %v pred_norm %v with hasNorm %v", i, s.AccNorm, s.PredNorm, tc.hasNorm)
				}
				// pred: the first index of the maximum, by hand.
				best := 0
				for c, v := range lls[i] {
					if v > lls[i][best] {
						best = c
					}
				}
				if s.Pred != best || (s.Acc == 1) != (best == it.Gold) || s.Target != it.Gold {
					t.Errorf("item %d: pred %d acc %v target %d, want pred %d gold %d", i, s.Pred, s.Acc, s.Target, best, it.Gold)
				}
				if tc.hasNorm {
					norm += *s.AccNorm
					bn := 0
					for c := range lls[i] {
						if lls[i][c]/float64(len([]rune(it.Choices[c]))) > lls[i][bn]/float64(len([]rune(it.Choices[bn]))) {
							bn = c
						}
					}
					if *s.PredNorm != bn {
						t.Errorf("item %d: pred_norm %d, want %d", i, *s.PredNorm, bn)
					}
				}
				for c, ch := range it.Choices {
					if s.CompletionLen[c] != len([]rune(ch)) {
						t.Errorf("item %d choice %d: completion_len %d for %q", i, c, s.CompletionLen[c], ch)
					}
				}
				want := i
				if tc.subjects != nil {
					want = perSubject[it.Subject]
					perSubject[it.Subject]++
				}
				if s.DocID != want || s.Subject != it.Subject {
					t.Errorf("item %d: doc_id %d subject %q, want %d %q", i, s.DocID, s.Subject, want, it.Subject)
				}
			}
			if got := acc / float64(len(ss)); got != res.Acc {
				t.Errorf("mean acc %v, Aggregate %v", got, res.Acc)
			}
			if tc.hasNorm {
				if got := norm / float64(len(ss)); got != *res.AccNorm {
					t.Errorf("mean acc_norm %v, Aggregate %v", got, *res.AccNorm)
				}
			}
			for _, name := range []string{"s.jsonl", "s.jsonl.gz"} {
				path := filepath.Join(t.TempDir(), name)
				if err := WriteSamplesFile(path, ss); err != nil {
					t.Fatal(err)
				}
				back, err := ReadSamplesFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(ss, back); diff != "" {
					t.Errorf("%s: read back (-wrote +read):\n%s", name, diff)
				}
				raw, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if gz := len(raw) > 2 && raw[0] == 0x1f && raw[1] == 0x8b; gz != strings.HasSuffix(name, ".gz") {
					t.Errorf("%s: gzip magic %v", name, gz)
				}
			}
		})
	}
}

// TestWriteSamplesNonFinite: a NaN log-likelihood is an error naming the
// document, and WriteSamplesFile then leaves no file behind.
func TestWriteSamplesNonFinite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.jsonl")
	ss := []Sample{{Task: "piqa", DocID: 7, LogLiks: []float64{-1, math.NaN()}, CompletionLen: []int{1, 1}}}
	err := WriteSamplesFile(path, ss)
	if err == nil || !strings.Contains(err.Error(), "doc 7") || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %v does not name the document and file", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("%d files left in %s", len(ents), dir)
	}
}

func TestCheckSamplesPath(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		path, want string
	}{
		{filepath.Join(dir, "s.jsonl.gz"), ""},
		{filepath.Join(dir, "missing", "s.jsonl"), "no such file"},
		{dir, "is a directory"},
		{"", "empty"},
	} {
		err := CheckSamplesPath(tc.path)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.path, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one mentioning %q", tc.path, err, tc.want)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("CheckSamplesPath left %d files", len(ents))
	}
}

func TestReadSamplesErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"not json", "{\n", "line 1"},
		{"unknown field", `{"task":"piqa","doc_id":0,"target":0,"lls":[-1,-2],"completion_len":[1,1],"pred":0,"acc":1,"x":1}`, "unknown field"},
		{"no task", `{"doc_id":0,"target":0,"lls":[-1,-2],"completion_len":[1,1],"pred":0,"acc":1}`, "no task"},
		{"no lls", `{"task":"piqa","doc_id":0,"target":0,"completion_len":[],"pred":0,"acc":1}`, "no lls"},
		{"target", "\n" + `{"task":"piqa","doc_id":0,"target":2,"lls":[-1,-2],"completion_len":[1,1],"pred":0,"acc":0}`, "line 2: target 2"},
		{"pred", `{"task":"piqa","doc_id":0,"target":0,"lls":[-1,-2],"completion_len":[1,1],"pred":-1,"acc":0}`, "pred -1"},
		{"pred_norm", `{"task":"piqa","doc_id":0,"target":0,"lls":[-1,-2],"completion_len":[1,1],"pred":0,"pred_norm":5,"acc":1}`, "pred_norm 5"},
		{"greedy", `{"task":"piqa","doc_id":0,"target":0,"lls":[-1,-2],"is_greedy":[true],"completion_len":[1,1],"pred":0,"acc":1}`, "is_greedy"},
		{"completion_len", `{"task":"piqa","doc_id":0,"target":0,"lls":[-1,-2],"completion_len":[1],"pred":0,"acc":1}`, "completion_len"},
		{"acc", `{"task":"piqa","doc_id":0,"target":0,"lls":[-1,-2],"completion_len":[1,1],"pred":0,"acc":0.5}`, "acc 0.5"},
		{"trailing", `{"task":"piqa","doc_id":0,"target":0,"lls":[-1,-2],"completion_len":[1,1],"pred":0,"acc":1} {}`, "after the JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadSamples(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// FuzzReadSamples: ReadSamples does not panic, and what it accepts writes
// and reads back unchanged.
func FuzzReadSamples(f *testing.F) {
	f.Add([]byte(`{"task":"mmlu","subject":"anatomy","doc_id":3,"target":1,"lls":[-1.5,-0.25,-3,-9],"is_greedy":[false,true,false,false],"completion_len":[1,1,1,1],"pred":1,"acc":1}`))
	f.Add([]byte(`{"task":"piqa","doc_id":0,"target":0,"lls":[-1,-2],"completion_len":[3,4],"pred":0,"pred_norm":1,"acc":1,"acc_norm":0}` + "\n\n"))
	f.Add([]byte("\ufeff{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ss, err := ReadSamples(bytes.NewReader(b))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := WriteSamples(&buf, ss); err != nil {
			t.Fatal(err)
		}
		back, err := ReadSamples(&buf)
		if err != nil {
			t.Fatalf("reading what WriteSamples wrote: %v", err)
		}
		if diff := cmp.Diff(ss, back); diff != "" {
			t.Errorf("round trip (-first +second):\n%s", diff)
		}
	})
}

// accSamples builds samples of task with the given 0/1 accuracies, doc ids 0….
func accSamples(task, subject string, acc ...float64) []Sample {
	var out []Sample
	for i, a := range acc {
		out = append(out, Sample{Task: task, Subject: subject, DocID: i, LogLiks: []float64{-1, -2}, CompletionLen: []int{1, 1}, Acc: a})
	}
	return out
}

func join(parts ...[]Sample) []Sample {
	var out []Sample
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func reversed(s []Sample) []Sample {
	out := make([]Sample, len(s))
	for i := range s {
		out[len(s)-1-i] = s[i]
	}
	return out
}

// TestPairedDifference checks hand-computed values: d = acc(a) − acc(b),
// diff = mean(d), stderr = sqrt(Σ(d−diff)²/(n−1))/sqrt(n).
func TestPairedDifference(t *testing.T) {
	for _, tc := range []struct {
		name         string
		a, b         []Sample
		diff, stderr float64
		n            int
		err          string
	}{
		// d = [0, 1, -1, 0]: mean 0, Σd² = 2, sd = sqrt(2/3),
		// stderr = sqrt(2/3)/2.
		{name: "balanced", a: accSamples("piqa", "", 1, 1, 0, 0), b: accSamples("piqa", "", 1, 0, 1, 0),
			diff: 0, stderr: 0.40824829046386302, n: 4},
		// d = [1, 0, 1, 0, 0] over two MMLU subjects with the same doc ids
		// (b in reverse order): mean 0.4, Σ(d−0.4)² = 2·0.36 + 3·0.16 =
		// 1.2, sd² = 0.3, stderr = sqrt(0.3/5) = sqrt(0.06).
		{name: "subjects", a: join(accSamples("mmlu", "anatomy", 1, 1, 1), accSamples("mmlu", "virology", 0, 1)),
			b:    reversed(join(accSamples("mmlu", "anatomy", 0, 1, 0), accSamples("mmlu", "virology", 0, 1))),
			diff: 0.4, stderr: 0.24494897427831781, n: 5},
		// One document: no spread, stderr 0.
		{name: "one", a: accSamples("winogrande", "", 1), b: accSamples("winogrande", "", 0), diff: 1, stderr: 0, n: 1},
		{name: "missing in b", a: accSamples("piqa", "", 1, 0), b: join(accSamples("piqa", "", 1), accSamples("arc_easy", "", 1)), err: "piqa  doc 1 is in a but not in b"},
		{name: "sizes", a: accSamples("piqa", "", 1, 0, 1), b: accSamples("piqa", "", 1, 0), err: "a has 3 documents, b 2"},
		{name: "duplicate", a: join(accSamples("piqa", "", 1), accSamples("piqa", "", 1)), b: accSamples("piqa", "", 1, 0), err: "appears twice"},
		{name: "subject differs", a: accSamples("mmlu", "anatomy", 1), b: accSamples("mmlu", "virology", 1), err: "mmlu anatomy doc 0 is in a"},
		{name: "empty", a: nil, b: accSamples("piqa", "", 1), err: "0 and 1 samples"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			diff, se, n, err := PairedDifference(tc.a, tc.b)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(diff-tc.diff) > 1e-15 || math.Abs(se-tc.stderr) > 1e-15 || n != tc.n {
				t.Errorf("got diff %.17g stderr %.17g n %d, want %.17g %.17g %d", diff, se, n, tc.diff, tc.stderr, tc.n)
			}
		})
	}
}
