package gemma

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/hf"
)

// golden is testdata/<variant>/golden.json, written by
// tools/oracle/gemma_golden.py from transformers' Gemma2ForCausalLM /
// Gemma3ForCausalLM.
type golden struct {
	IDs           [][]int32              `json:"ids"`
	Logits        [][][]float64          `json:"logits"`
	HiddenBlock0  [][][]float64          `json:"hidden_block0"`
	CaptureBlock0 map[string][][]float64 `json:"capture_block0"`
}

var variants = []string{"gemma2", "gemma3"}

// loadWeights reads every tensor of src.
func loadWeights(t testing.TB, src model.Source) model.Weights {
	t.Helper()
	w := model.Weights{}
	for _, n := range src.Names() {
		tt, err := src.Load(n)
		if err != nil {
			t.Fatal(err)
		}
		w[n] = tt
	}
	return w
}

func loadGolden(t testing.TB, name string) *golden {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return &g
}

// openFixture opens testdata/<name> with hf.Open and builds its family
// through the registry.
func openFixture(t testing.TB, name string) (*Family, model.Weights) {
	t.Helper()
	src, err := hf.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	fam, err := model.New(src.Config())
	if err != nil {
		t.Fatal(err)
	}
	return fam.(*Family), loadWeights(t, src)
}

func flatten[T any](x [][]T) []T {
	var out []T
	for _, r := range x {
		out = append(out, r...)
	}
	return out
}

// relErr is max|got-want| / max|want|.
func relErr(got []float32, want []float64) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var md, mr float64
	for i, w := range want {
		md = max(md, math.Abs(float64(got[i])-w))
		mr = max(mr, math.Abs(w))
	}
	return md / mr
}

const tol = 1e-4

// forward runs the whole model on g.IDs and returns the logits, checking
// block 0's hidden state and captures against g.
func forward(t *testing.T, fam *Family, w model.Weights, g *golden) []float32 {
	t.Helper()
	be := cpu.New(0)
	nseq, seqlen := len(g.IDs), len(g.IDs[0])
	d, vocab := fam.Config().HiddenSize, fam.Config().VocabSize
	tokens := nseq * seqlen
	x := make([]float32, tokens*d)
	if err := fam.Embed(w, flatten(g.IDs), x); err != nil {
		t.Fatal(err)
	}
	captured := map[string][]float32{}
	capture := func(group string, linears []string, in []float32, ntok, width int) {
		if ntok != tokens || len(in) != ntok*width {
			t.Errorf("%s: tokens %d width %d len %d", group, ntok, width, len(in))
		}
		if _, dup := captured[group]; dup {
			t.Errorf("group %s captured twice", group)
		}
		for _, l := range linears {
			if !strings.HasPrefix(l, "model.layers.0.") {
				t.Errorf("group %s captures linear %s", group, l)
			}
		}
		captured[group] = append([]float32(nil), in...)
	}
	for i := range fam.NumBlocks() {
		c := capture
		if i != 0 {
			c = nil
		}
		if err := fam.ForwardBlock(be, i, w, x, nseq, seqlen, c); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if e := relErr(x, flatten(flatten(g.HiddenBlock0))); e > tol {
				t.Errorf("hidden after block 0: rel err %.3g > %g", e, tol)
			}
		}
	}
	if len(captured) != len(g.CaptureBlock0) {
		t.Errorf("captured %d groups, want %d", len(captured), len(g.CaptureBlock0))
	}
	for group, want := range g.CaptureBlock0 {
		if e := relErr(captured[group], flatten(want)); e > tol {
			t.Errorf("capture %s: rel err %.3g > %g", group, e, tol)
		}
	}
	logits := make([]float32, tokens*vocab)
	if err := fam.Logits(be, w, x, tokens, logits); err != nil {
		t.Fatal(err)
	}
	return logits
}

func TestGoldenLogits(t *testing.T) {
	for _, name := range variants {
		t.Run(name, func(t *testing.T) {
			fam, w := openFixture(t, name)
			g := loadGolden(t, name)
			logits := forward(t, fam, w, g)
			e := relErr(logits, flatten(flatten(g.Logits)))
			t.Logf("logits rel err %.3g", e)
			if e > tol {
				t.Errorf("logits: rel err %.3g > %g", e, tol)
			}
		})
	}
}

// TestGoldenSensitivity checks that the fixtures exercise each feature: the
// same weights with one feature switched off give logits far from the
// golden ones, so a forward pass that ignored the feature would fail.
func TestGoldenSensitivity(t *testing.T) {
	cases := []struct {
		variant string
		change  func(f *Family)
	}{
		{"gemma2", func(f *Family) { f.attnCap = 0 }},
		{"gemma2", func(f *Family) { f.finalCap = 0 }},
		{"gemma2", func(f *Family) { f.scale = float32(math.Pow(float64(f.headDim), -0.5)) }},
		{"gemma2", func(f *Family) {
			for i := range f.layers {
				f.layers[i].window = 0
			}
		}},
		{"gemma3", func(f *Family) { f.finalCap = 0 }},
		{"gemma3", func(f *Family) {
			for i := range f.layers {
				f.layers[i].rope = f.layers[0].rope // local rope everywhere
			}
		}},
		{"gemma3", func(f *Family) {
			for i := range f.layers {
				f.layers[i].rope = f.layers[1].rope // global rope everywhere
			}
		}},
		{"gemma3", func(f *Family) { f.embedScale = 1 }},
	}
	for i, c := range cases {
		fam, w := openFixture(t, c.variant)
		g := loadGolden(t, c.variant)
		c.change(fam)
		// Reproduce the forward pass without the per-block checks.
		be := cpu.New(0)
		nseq, seqlen := len(g.IDs), len(g.IDs[0])
		d := fam.hidden
		x := make([]float32, nseq*seqlen*d)
		if err := fam.Embed(w, flatten(g.IDs), x); err != nil {
			t.Fatal(err)
		}
		for b := range fam.NumBlocks() {
			if err := fam.ForwardBlock(be, b, w, x, nseq, seqlen, nil); err != nil {
				t.Fatal(err)
			}
		}
		logits := make([]float32, nseq*seqlen*fam.vocab)
		if err := fam.Logits(be, w, x, nseq*seqlen, logits); err != nil {
			t.Fatal(err)
		}
		if e := relErr(logits, flatten(flatten(g.Logits))); e < 100*tol {
			t.Errorf("case %d (%s): logits rel err %.3g with the feature off; the fixture does not test it", i, c.variant, e)
		}
	}
}
