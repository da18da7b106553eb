package eval

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/internal/testenv"
	"github.com/optima-llm/optima/internal/tinymodel"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/loader"
)

var writeTiny = flag.String("write-tiny", "", "write the zero-shot tiny model to this directory (for tools/oracle/zeroshot_tiny.py)")

// zsTinyOptions is the tiny model of testdata/zeroshot_tiny.json.
func zsTinyOptions() tinymodel.Options {
	o := tinymodel.Default()
	o.Seed = 5
	return o
}

type tinyReq struct {
	Context      string  `json:"context"`
	Continuation string  `json:"continuation"`
	ContextIDs   []int32 `json:"context_ids"`
	ContIDs      []int32 `json:"continuation_ids"`
	LogLik       float64 `json:"loglik"`
	Greedy       bool    `json:"greedy"`
}

type tinyGolden struct {
	Limit    int      `json:"limit"`
	Subjects []string `json:"mmlu_subjects"`
	Tasks    map[string][]struct {
		DocID    int       `json:"doc_id"`
		Requests []tinyReq `json:"requests"`
	} `json:"tasks"`
	Extra []tinyReq `json:"extra"`
}

// openTiny writes the tiny model into a temporary directory and opens it the
// way the CLI does (loader.Open: config, safetensors, tokenizer.json).
func openTiny(t *testing.T) (*Scorer, model.Source) {
	t.Helper()
	dir := t.TempDir()
	if _, _, err := tinymodel.Write(dir, zsTinyOptions()); err != nil {
		t.Fatal(err)
	}
	src, err := loader.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	fam, err := model.New(src.Config())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := src.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	return &Scorer{Backend: cpu.New(2), Family: fam, Load: SourceLoader(src), Tokenizer: tok}, src
}

func readTinyGolden(t *testing.T) tinyGolden {
	t.Helper()
	b, err := os.ReadFile("testdata/zeroshot_tiny.json")
	if err != nil {
		t.Fatal(err)
	}
	var g tinyGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func closeLL(a, b float64) bool { return math.Abs(a-b) <= 1e-4*max(1, math.Abs(b)) }

// TestZeroShotTinyGolden checks, against lm-evaluation-harness on a tiny
// random Llama (testdata/zeroshot_tiny.json, tools/oracle/zeroshot_tiny.py),
// the prompts LoadTask builds from the data directory, EncodePair's token
// ids and each request's log-likelihood and greediness, for the first
// documents of every task and for requests that exercise the tokenization
// rules.
func TestZeroShotTinyGolden(t *testing.T) {
	if *writeTiny != "" {
		if _, _, err := tinymodel.Write(*writeTiny, zsTinyOptions()); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote the tiny model to %s", *writeTiny)
		return
	}
	g := readTinyGolden(t)
	s, _ := openTiny(t)
	data := testenv.DataDir(t)
	var reqs []Request
	var want []tinyReq
	for _, name := range ZeroShotTasks {
		gi := g.Tasks[name]
		if len(gi) == 0 {
			t.Fatalf("golden has no items for %s", name)
		}
		task, err := LoadTask(data, name, g.Limit)
		if err != nil {
			t.Fatal(err)
		}
		items := task.Items
		if name == "mmlu" {
			items = nil
			for _, it := range task.Items {
				for _, sub := range g.Subjects {
					if it.Subject == sub {
						items = append(items, it)
					}
				}
			}
		}
		if len(items) != len(gi) {
			t.Fatalf("%s: %d items, golden %d", name, len(items), len(gi))
		}
		for i, it := range items {
			var got, exp [][2]string
			for c := range it.Contexts {
				got = append(got, [2]string{it.Contexts[c], it.Continuations[c]})
			}
			for _, r := range gi[i].Requests {
				exp = append(exp, [2]string{r.Context, r.Continuation})
				want = append(want, r)
			}
			if diff := cmp.Diff(exp, got); diff != "" {
				t.Errorf("%s item %d prompts (-harness +ours):\n%s", name, i, diff)
			}
		}
		r, err := s.Requests(items)
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, r...)
	}
	for _, e := range g.Extra {
		r, err := EncodePair(s.Tokenizer, e.Context, e.Continuation)
		if err != nil {
			t.Fatalf("EncodePair(%q, %q): %v", e.Context, e.Continuation, err)
		}
		reqs = append(reqs, r)
		want = append(want, e)
	}
	if len(reqs) != len(want) {
		t.Fatalf("%d requests, golden %d", len(reqs), len(want))
	}
	for i, w := range want {
		if diff := cmp.Diff(Request{w.ContextIDs, w.ContIDs}, reqs[i]); diff != "" {
			t.Errorf("request %d (%q | %q) ids (-harness +ours):\n%s", i, w.Context, w.Continuation, diff)
		}
	}
	for _, pl := range []plan{
		{hiddenBudget, callTokens, logitRows},
		// Many passes, one or two sequences per ForwardBlock call, 3 logit rows at a time.
		{hiddenBytes: 300 * 64 * 4, callTokens: 100, logitRows: 3},
	} {
		for _, plain := range []bool{false, true} {
			t.Run(fmt.Sprintf("%+v/plain=%v", pl, plain), func(t *testing.T) {
				got, err := logLikelihoods(context.Background(), s.Backend, s.Family, s.Load, reqs, 0, nil, pl, plain)
				if err != nil {
					t.Fatal(err)
				}
				for i, w := range want {
					if !closeLL(got[i].LogProb, w.LogLik) || got[i].Greedy != w.Greedy {
						t.Errorf("request %d (%q | %q): loglik %.6f greedy %v, harness %.6f %v",
							i, w.Context, w.Continuation, got[i].LogProb, got[i].Greedy, w.LogLik, w.Greedy)
					}
				}
			})
		}
	}
}

// TestLogLikelihoodsSharingAndTruncation checks that answers do not depend
// on which requests are scored together (shared sequences, duplicates,
// batching) and that a request longer than maxLen is left-truncated as the
// harness does (the same as scoring the truncated request).
func TestLogLikelihoodsSharingAndTruncation(t *testing.T) {
	s, _ := openTiny(t)
	enc := func(ctx, cont string) Request {
		r, err := EncodePair(s.Tokenizer, ctx, cont)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	ctx := "The tiny model reads the text one token at a time.\nAnswer:"
	reqs := []Request{enc(ctx, " A"), enc(ctx, " B"), enc(ctx, " then it merges"), enc(ctx, " A"), enc("In the beginning", " there were only bytes")}
	all, err := LogLikelihoods(context.Background(), s.Backend, s.Family, s.Load, reqs, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range reqs {
		one, err := LogLikelihoods(context.Background(), s.Backend, s.Family, s.Load, []Request{r}, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !closeLL(all[i].LogProb, one[0].LogProb) || all[i].Greedy != one[0].Greedy {
			t.Errorf("request %d: %+v together, %+v alone", i, all[i], one[0])
		}
	}
	if all[0] != all[3] {
		t.Errorf("duplicate requests differ: %+v, %+v", all[0], all[3])
	}
	// Truncation: with maxLen 8 the input is the last 8 of ctx+cont[:-1].
	r := reqs[2]
	full := append(append([]int32(nil), r.Context...), r.Continuation...)
	trunc := Request{Context: full[len(full)-9 : len(r.Context)], Continuation: r.Continuation}
	a, err := LogLikelihoods(context.Background(), s.Backend, s.Family, s.Load, []Request{r}, 8, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LogLikelihoods(context.Background(), s.Backend, s.Family, s.Load, []Request{trunc}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !closeLL(a[0].LogProb, b[0].LogProb) {
		t.Errorf("truncated to 8: %v, scoring the last 9 tokens: %v", a[0], b[0])
	}
	if closeLL(a[0].LogProb, all[2].LogProb) {
		t.Errorf("truncation to 8 tokens changed nothing (%v)", a[0])
	}
}

func TestLogLikelihoodsErrors(t *testing.T) {
	s, _ := openTiny(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	vocab := int32(s.Family.Config().VocabSize)
	for _, tc := range []struct {
		name string
		ctx  context.Context
		reqs []Request
		want string
	}{
		{"empty context", context.Background(), []Request{{nil, []int32{1}}}, "empty context"},
		{"empty continuation", context.Background(), []Request{{[]int32{1}, nil}}, "empty context or continuation"},
		{"bad id", context.Background(), []Request{{[]int32{1}, []int32{vocab}}}, "outside the vocabulary"},
		{"cancelled", cancelled, []Request{{[]int32{1}, []int32{2}}}, "context canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LogLikelihoods(tc.ctx, s.Backend, s.Family, s.Load, tc.reqs, 0, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestAggregate(t *testing.T) {
	task := &Task{Name: "t", HasNorm: true, Items: []Item{
		// acc picks 0 (-3 > -4); acc_norm picks 1 (-4/8 > -3/2).
		{Choices: []string{"ab", "abcdefgh"}, Gold: 1, Subject: "x"},
		// Tie: numpy.argmax takes the first.
		{Choices: []string{"a", "b"}, Gold: 0, Subject: "y"},
		// Code points, not bytes: "éé" has length 2 (4 bytes), so acc_norm
		// compares -1 with -0.967 and picks 1 (with bytes: -0.5, picks 0).
		{Choices: []string{"éé", "abc"}, Gold: 0, Subject: "y"},
	}}
	lls := [][]float64{{-3, -4}, {-1, -1}, {-2, -2.9}}
	got := Aggregate(task, lls)
	norm := 2.0 / 3
	if got.Acc != 2.0/3 || got.AccNorm == nil || *got.AccNorm != norm {
		t.Fatalf("acc %v acc_norm %v, want 2/3 and 2/3", got.Acc, got.AccNorm)
	}
	want := map[string]SubjectResult{"x": {Acc: 0, Items: 1}, "y": {Acc: 1, Items: 2, AccStderr: ptr(0)}}
	if diff := cmp.Diff(want, got.Subjects); diff != "" {
		t.Errorf("subjects (-want +got):\n%s", diff)
	}
	// With subjects, the stderr is the harness's group stderr, which pools
	// the within-subject variances only; x has one item, so it is "N/A"
	// (nil). x and y are no MMLU subjects, so there are no categories.
	if got.AccStderr != nil || len(got.Categories) != 0 {
		t.Errorf("with subjects: stderr %v categories %v, want nil and none", got.AccStderr, got.Categories)
	}
	// Without subjects it is mean_stderr over the items.
	plain := &Task{Name: "t", HasNorm: true}
	for _, it := range task.Items {
		it.Subject = ""
		plain.Items = append(plain.Items, it)
	}
	se := math.Sqrt((2*math.Pow(1-2.0/3, 2)+math.Pow(2.0/3, 2))/2) / math.Sqrt(3)
	if p := Aggregate(plain, lls); p.AccStderr == nil || math.Abs(*p.AccStderr-se) > 1e-12 || p.Acc != got.Acc || p.Subjects != nil {
		t.Errorf("without subjects: stderr %v, want %v; acc %v, subjects %v", p.AccStderr, se, p.Acc, p.Subjects)
	}
	sum := Summarize([]TaskResult{got, {Acc: 0.5}})
	if math.Abs(sum.Average-(2.0/3+0.5)/2) > 1e-12 || math.Abs(sum.AverageNorm-(norm+0.5)/2) > 1e-12 {
		t.Errorf("summary %+v", sum)
	}
}

// TestEvaluateTooLong: a choice whose continuation does not fit the
// maximum length is an error naming the task, the item and the choice, not
// the index of a request among all tasks'.
func TestEvaluateTooLong(t *testing.T) {
	s, _ := openTiny(t)
	s.MaxLength = 8
	short := Item{Contexts: []string{"a b", "a b"}, Continuations: []string{" c", " d"}, Choices: []string{"c", "d"}}
	long := Item{Contexts: []string{"a b", "a b"}, Continuations: []string{" c", " " + strings.Repeat("d e ", 20)}, Choices: []string{"c", "x"}}
	tasks := []*Task{
		{Name: "piqa", Items: []Item{short, short}},
		{Name: "arc_easy", Items: []Item{short, short, long}},
	}
	_, err := s.Evaluate(context.Background(), tasks, nil)
	for _, w := range []string{"arc_easy", "item 2", "choice 1", "maximum length 8"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not mention %q", err, w)
		}
	}
}
