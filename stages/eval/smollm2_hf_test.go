package eval

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/optima-llm/optima/internal/testenv"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/gguf"
	"github.com/optima-llm/optima/model/hf"
)

// TestSmolLM2GGUFvsHFDir writes the SmolLM2 GGUF's dequantized weights as a
// float32 Hugging Face directory (hf.WriteModel), reopens it with hf.Open
// (config.json parsed back, tensors read lazily) and checks that both
// sources give the same WikiText-2 perplexity over 2 windows of 512 tokens,
// within 1e-5 relative. Both use the GGUF's tokenizer.
//
//	OPTIMA_SMOLLM2_GGUF=/work/models/SmolLM2-135M-Instruct.Q4_1.gguf go test -run SmolLM2GGUFvsHFDir ./stages/eval
func TestSmolLM2GGUFvsHFDir(t *testing.T) {
	path := testenv.SmolLM2(t)
	src, err := gguf.OpenModel(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dir := filepath.Join(t.TempDir(), "smollm2-hf")
	if err := hf.WriteModel(dir, src.Config(), src.Names(), src.Load, nil, hf.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	dst, err := hf.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	text, err := WikiText2Text(testenv.DataDir(t))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := src.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	ids := Tokenize(tok, text)
	const seqlen, windows = 512, 2
	ppl := map[string]float64{}
	for name, s := range map[string]model.Source{"gguf": src, "hf": dst} {
		fam, err := model.New(s.Config())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		res, err := Perplexity(context.Background(), cpu.New(0), fam, SourceLoader(s), ids, seqlen, windows, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.Windows != windows {
			t.Fatalf("%s: scored %d windows, want %d", name, res.Windows, windows)
		}
		ppl[name] = res.Perplexity
	}
	t.Logf("perplexity over %d windows of %d: GGUF %.7f, HF directory %.7f", windows, seqlen, ppl["gguf"], ppl["hf"])
	if relDiff(ppl["hf"], ppl["gguf"]) > 1e-5 {
		t.Errorf("HF directory perplexity %.7f, GGUF %.7f: rel diff %.3g > 1e-5", ppl["hf"], ppl["gguf"], relDiff(ppl["hf"], ppl["gguf"]))
	}
}
