package families_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/optima-llm/optima/internal/tinymodel"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
	_ "github.com/optima-llm/optima/model/families"
)

// prefixCases are tiny models of every family that implements
// model.PrefixForwarder, with sliding windows shorter than the prefixes so
// that the window crosses the cached prefix.
func prefixCases() []struct {
	name string
	o    tinymodel.Options
} {
	mk := func(f func(o *tinymodel.Options)) tinymodel.Options {
		o := tinymodel.Default()
		o.Layers = 3
		f(&o)
		return o
	}
	return []struct {
		name string
		o    tinymodel.Options
	}{
		{"llama", mk(func(o *tinymodel.Options) {})},
		{"llama-mha-bias", mk(func(o *tinymodel.Options) { o.KVHeads, o.AttentionBias = 4, true })},
		{"mistral-window3", mk(func(o *tinymodel.Options) { o.Arch, o.SlidingWindow = "MistralForCausalLM", 3 })},
		{"qwen2-window5", mk(func(o *tinymodel.Options) { o.Arch, o.SlidingWindow, o.MaxWindowLayers = "Qwen2ForCausalLM", 5, 1 })},
		{"opt", mk(func(o *tinymodel.Options) { o.Arch = tinymodel.OPT })},
		{"opt-postln-proj", mk(func(o *tinymodel.Options) { o.Arch, o.PostLN, o.ProjDim = tinymodel.OPT, true, 32 })},
		{"gemma2-window4", mk(func(o *tinymodel.Options) { o.Arch, o.SlidingWindow = tinymodel.Gemma2, 4 })},
		{"gemma3-window6", mk(func(o *tinymodel.Options) { o.Arch, o.SlidingWindow = tinymodel.Gemma3, 6 })},
	}
}

// TestForwardSpansMatchesForwardBlock runs two prefixes and several
// continuations of each through every block with ForwardSpans (prefixes
// kept in a KV cache that is reused from block to block, continuations of
// one prefix batched with the other prefix's Keep span) and checks that
// every hidden state equals ForwardBlock's on the whole sequence
// prefix+continuation, to 1e-5 of the row's largest magnitude.
func TestForwardSpansMatchesForwardBlock(t *testing.T) {
	for _, c := range prefixCases() {
		t.Run(c.name, func(t *testing.T) {
			cfg := tinymodel.Config(c.o)
			w := tinymodel.Weights(c.o)
			fam, err := model.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			pf, ok := fam.(model.PrefixForwarder)
			if !ok {
				t.Fatalf("%T does not implement model.PrefixForwarder", fam)
			}
			be := cpu.New(2)
			d := cfg.HiddenSize
			r := rand.New(rand.NewPCG(7, uint64(len(c.name))))
			ids := func(n int) []int32 {
				s := make([]int32, n)
				for i := range s {
					s[i] = int32(r.IntN(cfg.VocabSize))
				}
				return s
			}
			prefixes := [][]int32{ids(11), ids(7)}
			conts := [][][]int32{{ids(1), ids(4), ids(9)}, {ids(3), ids(2)}}

			// Reference: each whole sequence through ForwardBlock.
			run := func(seq []int32) []float32 {
				x := make([]float32, len(seq)*d)
				if err := fam.Embed(w, seq, x); err != nil {
					t.Fatal(err)
				}
				for b := range fam.NumBlocks() {
					if err := fam.ForwardBlock(be, b, w, x, 1, len(seq), nil); err != nil {
						t.Fatal(err)
					}
				}
				return x
			}
			embed := func(seq []int32) []float32 {
				x := make([]float32, len(seq)*d)
				if err := fam.Embed(w, seq, x); err != nil {
					t.Fatal(err)
				}
				return x
			}
			// Call 1: prefix 0 kept. Call 2: prefix 1 kept and prefix 0's
			// continuations. Call 3: prefix 1's continuations.
			type call struct {
				spans []model.Span
				x     []float32
			}
			var calls [3]call
			add := func(k int, s model.Span, seq []int32) {
				calls[k].spans = append(calls[k].spans, s)
				calls[k].x = append(calls[k].x, embed(seq)...)
			}
			add(0, model.Span{Seq: 0, Start: 0, Len: len(prefixes[0]), Keep: true}, prefixes[0])
			add(1, model.Span{Seq: 1, Start: 0, Len: len(prefixes[1]), Keep: true}, prefixes[1])
			for _, s := range conts[0] {
				add(1, model.Span{Seq: 0, Start: len(prefixes[0]), Len: len(s)}, s)
			}
			for _, s := range conts[1] {
				add(2, model.Span{Seq: 1, Start: len(prefixes[1]), Len: len(s)}, s)
			}
			kv := model.NewKVCache(2)
			for b := range fam.NumBlocks() {
				for _, cl := range calls {
					if err := pf.ForwardSpans(be, b, w, cl.x, cl.spans, kv); err != nil {
						t.Fatal(err)
					}
				}
			}
			got := map[string][]float32{}
			for _, cl := range calls {
				off := 0
				for _, s := range cl.spans {
					key := fmt.Sprintf("seq %d start %d len %d", s.Seq, s.Start, s.Len)
					got[key] = cl.x[off*d : (off+s.Len)*d]
					off += s.Len
				}
			}
			for p, pre := range prefixes {
				for _, cont := range conts[p] {
					want := run(append(append([]int32(nil), pre...), cont...))
					checkRows(t, fmt.Sprintf("prefix %d", p), got[fmt.Sprintf("seq %d start 0 len %d", p, len(pre))], want[:len(pre)*d], d)
					key := fmt.Sprintf("seq %d start %d len %d", p, len(pre), len(cont))
					checkRows(t, key, got[key], want[len(pre)*d:], d)
				}
			}
		})
	}
}

// checkRows compares rows of width d to 1e-5 of each wanted row's largest
// magnitude.
func checkRows(t *testing.T, what string, got, want []float32, d int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for r := 0; r < len(want)/d; r++ {
		var scale float64
		for _, v := range want[r*d : (r+1)*d] {
			scale = max(scale, math.Abs(float64(v)))
		}
		for j := r * d; j < (r+1)*d; j++ {
			if diff := math.Abs(float64(got[j] - want[j])); !(diff <= 1e-5*scale) {
				t.Fatalf("%s: row %d col %d: %g, want %g (row scale %g)", what, r, j-r*d, got[j], want[j], scale)
			}
		}
	}
}

// TestForwardSpansPanicsOnShortCache checks that a span reading positions
// the cache does not hold panics instead of reading garbage.
func TestForwardSpansPanicsOnShortCache(t *testing.T) {
	o := tinymodel.Default()
	fam, err := model.New(tinymodel.Config(o))
	if err != nil {
		t.Fatal(err)
	}
	w := tinymodel.Weights(o)
	pf := fam.(model.PrefixForwarder)
	kv := model.NewKVCache(1)
	x := make([]float32, 2*o.Hidden)
	if err := pf.ForwardSpans(cpu.New(1), 0, w, x, []model.Span{{Seq: 0, Start: 0, Len: 2, Keep: true}}, kv); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("no panic for a span starting at 5 after a 2-token prefix")
		}
	}()
	pf.ForwardSpans(cpu.New(1), 0, w, x, []model.Span{{Seq: 0, Start: 5, Len: 2}}, kv)
}
