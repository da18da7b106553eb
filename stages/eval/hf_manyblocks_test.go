package eval

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/optima-llm/optima/internal/tinymodel"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/gguf"
	"github.com/optima-llm/optima/model/hf"
)

// TestGGUFvsHFDirManyBlocks covers what TestSmolLM2GGUFvsHFDir gave up
// when it kept only SmolLM2's first 2 blocks: block indices of two digits
// (model.layers.10 and .11, which sort before model.layers.2 as strings)
// through hf.WriteModel, the shard index, hf.Open and the family's block
// lookup. A tiny random Llama of 12 blocks goes from a GGUF to a sharded
// float32 Hugging Face directory: every tensor reads back bit for bit, both
// sources have 12 blocks, and they give the same perplexity on random
// token ids.
func TestGGUFvsHFDirManyBlocks(t *testing.T) {
	o := tinymodel.Default()
	o.Layers = 12
	dir := t.TempDir()
	path := filepath.Join(dir, "tiny.gguf")
	if _, _, err := tinymodel.WriteGGUF(path, o); err != nil {
		t.Fatal(err)
	}
	src, err := gguf.OpenModel(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out := filepath.Join(dir, "hf")
	// 64 KiB shards: the 12 blocks (about 100 KiB each) spread over many.
	if err := hf.WriteModel(out, src.Config(), src.Names(), src.Load, nil, hf.WriteOptions{MaxShardBytes: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "model.safetensors.index.json")); err != nil {
		t.Errorf("no shard index: %v", err)
	}
	dst, err := hf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	names := slices.Sorted(slices.Values(src.Names()))
	if got := slices.Sorted(slices.Values(dst.Names())); !slices.Equal(names, got) {
		t.Fatalf("tensors written %v, read back %v", names, got)
	}
	if !slices.Contains(names, "model.layers.11.mlp.down_proj.weight") {
		t.Fatalf("tensors %v: no block 11", names)
	}
	sameTensors(t, src, dst, names)
	r := rand.New(rand.NewPCG(12, 1))
	const seqlen, windows = 32, 2
	ids := make([]int32, seqlen*windows)
	for i := range ids {
		ids[i] = int32(r.IntN(o.Vocab))
	}
	ppl := map[string]float64{}
	for name, s := range map[string]model.Source{"gguf": src, "hf": dst} {
		fam, err := model.New(s.Config())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if fam.NumBlocks() != 12 {
			t.Fatalf("%s: %d blocks, want 12", name, fam.NumBlocks())
		}
		res, err := Perplexity(context.Background(), cpu.New(1), fam, SourceLoader(s), ids, seqlen, windows, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ppl[name] = res.Perplexity
	}
	t.Logf("perplexity over %d windows of %d random ids: GGUF %.9g, HF directory %.9g", windows, seqlen, ppl["gguf"], ppl["hf"])
	if math.IsNaN(ppl["gguf"]) || math.IsInf(ppl["gguf"], 0) || relDiff(ppl["hf"], ppl["gguf"]) > 1e-6 {
		t.Errorf("perplexity: HF directory %.9g, GGUF %.9g", ppl["hf"], ppl["gguf"])
	}
}
