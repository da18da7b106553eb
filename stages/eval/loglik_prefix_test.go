package eval

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/internal/tinymodel"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
	_ "github.com/optima-llm/optima/model/families"
)

// prefixRequests draws requests that exercise every case of the prefix
// path, for maxLen 24: contexts shared by continuations of several lengths
// (with a duplicate and one the harness truncates), MMLU-like one-token
// answers, a context with one multi-token and one one-token continuation
// (run as one sequence), WinoGrande-like different contexts before one
// continuation, and a context longer than maxLen.
func prefixRequests(vocab int, seed uint64) []Request {
	r := rand.New(rand.NewPCG(seed, 3))
	ids := func(n int) []int32 {
		s := make([]int32, n)
		for i := range s {
			s[i] = int32(r.IntN(vocab))
		}
		return s
	}
	c1, c2, c3, w1, w2, c4 := ids(20), ids(13), ids(9), ids(6), ids(8), ids(30)
	a := ids(5)
	shared := append(append([]int32(nil), a[:2]...), ids(3)...)
	wc := ids(4)
	// Two contexts that share a 6-token header; answers of the first that
	// share 4 tokens (a tree four levels deep).
	h, x4 := ids(6), ids(4)
	c5 := append(append([]int32(nil), h...), ids(5)...)
	c6 := append(append([]int32(nil), h...), ids(7)...)
	cat := func(a, b []int32) []int32 { return append(append([]int32(nil), a...), b...) }
	return []Request{
		{c5, ids(1)}, {c5, ids(3)}, {c5, cat(x4, ids(2))}, {c5, cat(x4, ids(3))}, {c6, ids(1)}, {c6, ids(2)},
		{c1, ids(1)}, {c1, ids(3)}, {c1, a}, {c1, shared}, {c1, a}, {c1, ids(6)},
		{c2, ids(1)}, {c2, ids(1)}, {c2, ids(1)}, {c2, ids(1)},
		{c3, ids(4)}, {c3, ids(1)},
		{w1, wc}, {w2, wc},
		{c4, ids(2)},
	}
}

// TestPrefixPathMatchesPlain checks, on tiny random models of every family
// that implements model.PrefixForwarder (sliding windows shorter than the
// contexts included), that LogLikelihoods through the prefix path gives
// the per-request log-likelihoods and greediness of PlainLogLikelihoods, to
// 1e-5 relative, with the default plan and with one that forces many
// passes, small ForwardSpans calls and few logit rows at a time.
func TestPrefixPathMatchesPlain(t *testing.T) {
	mk := func(f func(o *tinymodel.Options)) tinymodel.Options {
		o := tinymodel.Default()
		f(&o)
		return o
	}
	for _, c := range []struct {
		name string
		o    tinymodel.Options
	}{
		{"llama", mk(func(o *tinymodel.Options) {})},
		{"mistral-window5", mk(func(o *tinymodel.Options) { o.Arch, o.SlidingWindow = "MistralForCausalLM", 5 })},
		{"qwen2-window7", mk(func(o *tinymodel.Options) { o.Arch, o.SlidingWindow, o.MaxWindowLayers = "Qwen2ForCausalLM", 7, 1 })},
		{"opt", mk(func(o *tinymodel.Options) { o.Arch = tinymodel.OPT })},
		{"gemma2-window6", mk(func(o *tinymodel.Options) { o.Arch, o.SlidingWindow = tinymodel.Gemma2, 6 })},
		{"gemma3-window4", mk(func(o *tinymodel.Options) { o.Arch, o.SlidingWindow = tinymodel.Gemma3, 4 })},
	} {
		t.Run(c.name, func(t *testing.T) {
			fam, err := model.New(tinymodel.Config(c.o))
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := fam.(model.PrefixForwarder); !ok {
				t.Fatalf("%T does not implement model.PrefixForwarder", fam)
			}
			load := WeightsLoader(tinymodel.Weights(c.o))
			be := cpu.New(2)
			reqs := prefixRequests(c.o.Vocab, 11)
			want, err := PlainLogLikelihoods(context.Background(), be, fam, load, reqs, 24, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, pl := range []plan{
				{hiddenBudget, callTokens, logitRows},
				{hiddenBytes: 40 * c.o.Hidden * 4, callTokens: 8, logitRows: 3},
			} {
				t.Run(fmt.Sprintf("%+v", pl), func(t *testing.T) {
					var last, total int
					got, err := logLikelihoods(context.Background(), be, fam, load, reqs, 24, func(d, n int) { last, total = d, n }, pl, false)
					if err != nil {
						t.Fatal(err)
					}
					if last != total || total == 0 {
						t.Errorf("progress ended at %d of %d", last, total)
					}
					for i := range reqs {
						if d := math.Abs(got[i].LogProb - want[i].LogProb); !(d <= 1e-5*max(1, math.Abs(want[i].LogProb))) || got[i].Greedy != want[i].Greedy {
							t.Errorf("request %d: prefix path %+v, plain %+v", i, got[i], want[i])
						}
					}
					if got[8] != got[10] {
						t.Errorf("duplicate requests differ: %+v, %+v", got[8], got[10])
					}
				})
			}
		})
	}
}

// TestPrefixTree checks the radix tree the prefix path runs: shared runs
// of at least minShare tokens become nodes with a KV slot, shorter ones are
// pushed down into each branch, an input that another extends is a node
// with children, and levels and token offsets follow the tree.
func TestPrefixTree(t *testing.T) {
	inputs := [][]int32{
		{1, 2, 3, 4, 5, 6, 7},    // 0: header 1 2 3 4 5, then 6 7
		{1, 2, 3, 4, 5, 8},       // 1: header, then 8
		{1, 2, 3, 4, 5, 8, 9, 9}, // 2: input 1 extended
		{1, 2, 7, 7},             // 3: shares only 1 2 with the rest
		{5, 5},                   // 4
	}
	order := []int{0, 1, 2, 3, 4}
	slices.SortFunc(order, func(a, b int) int { return slices.Compare(inputs[a], inputs[b]) })
	lcp := make([]int, len(order))
	for i := 1; i < len(order); i++ {
		a, b := inputs[order[i-1]], inputs[order[i]]
		for lcp[i] < min(len(a), len(b)) && a[lcp[i]] == b[lcp[i]] {
			lcp[i]++
		}
	}
	term := map[int]*prefixNode{}
	root := buildPrefixTree(inputs, order, lcp, term)
	levels, slots, tokens := layoutPrefixTree(root)
	type nd struct {
		Level, Start, End int
		Tokens            []int32
		Slot              bool
	}
	var got [][]nd
	for _, lv := range levels {
		var row []nd
		for _, n := range lv {
			row = append(row, nd{n.level, n.start, n.end, n.seq[n.start:n.end], n.slot >= 0})
		}
		got = append(got, row)
	}
	want := [][]nd{
		{{1, 0, 5, []int32{1, 2, 3, 4, 5}, true}, {1, 0, 4, []int32{1, 2, 7, 7}, false}, {1, 0, 2, []int32{5, 5}, false}},
		{{2, 5, 7, []int32{6, 7}, false}, {2, 5, 6, []int32{8}, true}},
		{{3, 6, 8, []int32{9, 9}, false}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tree (-want +got):\n%s", diff)
	}
	if slots != 2 || tokens != 5+4+2+2+1+2 {
		t.Errorf("slots %d, tokens %d; want 2, 16", slots, tokens)
	}
	for k, n := range term {
		if n.end != len(inputs[k]) {
			t.Errorf("input %d ends at node [%d, %d)", k, n.start, n.end)
		}
	}
}
