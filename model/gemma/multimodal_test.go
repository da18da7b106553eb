package gemma

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/optima-llm/optima/kernels/cpu"
)

// TestGoldenMultimodal opens a Gemma3ForConditionalGeneration checkpoint
// (testdata/gemma3mm, saved by transformers with
// tools/oracle/gemma3_multimodal.py: language_model.model.* tensors, a
// vision tower, text_config) through hf.Open, which exposes it as a Gemma 3
// text model, and checks the logits of a text-only sequence against
// transformers' Gemma3ForConditionalGeneration.
func TestGoldenMultimodal(t *testing.T) {
	fam, w := openFixture(t, "gemma3mm")
	if fam.Config().Architecture != Gemma3 {
		t.Fatalf("architecture %s, want %s", fam.Config().Architecture, Gemma3)
	}
	for n := range w {
		if len(n) < 6 || (n[:6] != "model." && n != "lm_head.weight") {
			t.Errorf("tensor %s is not a text model tensor", n)
		}
	}
	b, err := os.ReadFile("testdata/gemma3mm/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		IDs    []int32     `json:"ids"`
		Logits [][]float64 `json:"logits"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	cfg := fam.Config()
	be := cpu.New(1)
	x := make([]float32, len(g.IDs)*cfg.HiddenSize)
	if err := fam.Embed(w, g.IDs, x); err != nil {
		t.Fatal(err)
	}
	for i := range fam.NumBlocks() {
		if err := fam.ForwardBlock(be, i, w, x, 1, len(g.IDs), nil); err != nil {
			t.Fatal(err)
		}
	}
	logits := make([]float32, len(g.IDs)*cfg.VocabSize)
	if err := fam.Logits(be, w, x, len(g.IDs), logits); err != nil {
		t.Fatal(err)
	}
	e := relErr(logits, flatten(g.Logits))
	t.Logf("logits rel err %.3g", e)
	if e > tol {
		t.Errorf("logits: rel err %.3g > %g", e, tol)
	}
}
