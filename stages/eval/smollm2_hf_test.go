package eval

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/optima-llm/optima/internal/testenv"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/gguf"
	"github.com/optima-llm/optima/model/hf"
)

// firstBlocks is a model.Source that shows only the first n blocks of src
// (model.layers.i for i < n, and num_hidden_layers n), with every tensor
// outside the blocks (embeddings, final norm).
type firstBlocks struct {
	model.Source
	n   int
	cfg *model.Config
}

func newFirstBlocks(src model.Source, n int) *firstBlocks {
	cfg := *src.Config()
	cfg.NumHiddenLayers = n
	return &firstBlocks{Source: src, n: n, cfg: &cfg}
}

func (f *firstBlocks) Config() *model.Config { return f.cfg }

func (f *firstBlocks) Names() []string {
	var out []string
	for _, name := range f.Source.Names() {
		if rest, ok := strings.CutPrefix(name, "model.layers."); ok {
			var i int
			if _, err := fmt.Sscanf(rest, "%d.", &i); err != nil || i >= f.n {
				continue
			}
		}
		out = append(out, name)
	}
	return out
}

// TestSmolLM2GGUFvsHFDir writes the SmolLM2 GGUF's dequantized weights as a
// float32 Hugging Face directory (hf.WriteModel, in shards with an index),
// reopens it with hf.Open (config.json parsed back, tensors read lazily)
// and checks that every tensor reads back bit for bit and that both sources
// give the same WikiText-2 perplexity over 2 windows of 512 tokens, within
// 1e-5 relative. Both use the GGUF's tokenizer.
//
// It keeps the first 2 of the 30 blocks (num_hidden_layers 2) and every
// tensor outside the blocks: the other 28 blocks take the same write and
// read paths, and the whole model in float32 would put 540 MB on disk
// (1.1 GB at the peak, the writer's shard data file plus the shard) where
// this writes about 140 MB (250 MB at the peak).
//
//	OPTIMA_SMOLLM2_GGUF=/work/models/SmolLM2-135M-Instruct.Q4_1.gguf go test -run SmolLM2GGUFvsHFDir ./stages/eval
func TestSmolLM2GGUFvsHFDir(t *testing.T) {
	path := testenv.SmolLM2(t)
	full, err := gguf.OpenModel(path)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	if full.Config().NumHiddenLayers != 30 {
		t.Fatalf("%s: %d blocks, want SmolLM2's 30", path, full.Config().NumHiddenLayers)
	}
	src := newFirstBlocks(full, 2)
	dir := filepath.Join(t.TempDir(), "smollm2-hf")
	// 32 MiB shards: the embedding (113 MB) gets a shard of its own, the
	// blocks share others, so the index is exercised too.
	if err := hf.WriteModel(dir, src.Config(), src.Names(), src.Load, nil, hf.WriteOptions{MaxShardBytes: 32 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors.index.json")); err != nil {
		t.Errorf("no shard index: %v", err)
	}
	dst, err := hf.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if got := dst.Config().NumHiddenLayers; got != 2 {
		t.Errorf("config.json read back: %d blocks, want 2", got)
	}
	names := src.Names()
	if !slices.Equal(names, dst.Names()) {
		t.Fatalf("tensors written %v, read back %v", names, dst.Names())
	}
	if !slices.Contains(names, "model.layers.1.mlp.down_proj.weight") || slices.Contains(names, "model.layers.2.mlp.down_proj.weight") {
		t.Fatalf("tensors %v: want blocks 0 and 1 only", names)
	}
	sameTensors(t, src, dst, names)
	text, err := WikiText2Text(testenv.DataDir(t))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := full.Tokenizer()
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
		if fam.NumBlocks() != 2 {
			t.Fatalf("%s: %d blocks, want 2", name, fam.NumBlocks())
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
	t.Logf("perplexity of the first 2 blocks over %d windows of %d: GGUF %.7f, HF directory %.7f", windows, seqlen, ppl["gguf"], ppl["hf"])
	if math.IsNaN(ppl["gguf"]) || math.IsInf(ppl["gguf"], 0) {
		t.Fatalf("GGUF perplexity %v", ppl["gguf"])
	}
	if relDiff(ppl["hf"], ppl["gguf"]) > 1e-5 {
		t.Errorf("HF directory perplexity %.7f, GGUF %.7f: rel diff %.3g > 1e-5", ppl["hf"], ppl["gguf"], relDiff(ppl["hf"], ppl["gguf"]))
	}
}

// sameTensors fails t unless every tensor of names loads from src and dst
// with the same shape and the same float32 bits.
func sameTensors(t *testing.T, src, dst model.Source, names []string) {
	t.Helper()
	for _, name := range names {
		a, err := src.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		b, err := dst.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a.Shape, b.Shape) || len(a.Data) != len(b.Data) {
			t.Fatalf("%s: shape %v written, %v read back", name, a.Shape, b.Shape)
		}
		for i := range a.Data {
			if math.Float32bits(a.Data[i]) != math.Float32bits(b.Data[i]) {
				t.Fatalf("%s[%d]: %v written, %v read back", name, i, a.Data[i], b.Data[i])
			}
		}
	}
}
