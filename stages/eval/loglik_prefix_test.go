package eval

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

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
	return []Request{
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
					if got[2] != got[4] {
						t.Errorf("duplicate requests differ: %+v, %+v", got[2], got[4])
					}
				})
			}
		})
	}
}
