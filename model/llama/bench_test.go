package llama

import (
	"testing"

	"github.com/optima-llm/optima/internal/tinymodel"
	"github.com/optima-llm/optima/kernels/cpu"
)

// BenchmarkBlockSmolLM2Shape runs one decoder block with SmolLM2-135M's
// shapes (hidden 576, intermediate 1536, 9 heads, 3 KV heads, head_dim 64)
// and random weights on one 2048-token sequence.
func BenchmarkBlockSmolLM2Shape(b *testing.B) {
	o := tinymodel.Options{Vocab: 16, Hidden: 576, Intermediate: 1536, Layers: 1, Heads: 9, KVHeads: 3,
		RopeTheta: 100000, RMSNormEps: 1e-5, Seed: 3}
	fam, err := New(tinymodel.Config(o))
	if err != nil {
		b.Fatal(err)
	}
	w := tinymodel.Weights(o)
	const seqlen = 2048
	x0 := make([]float32, seqlen*o.Hidden)
	for i := range x0 {
		x0[i] = float32(i%13) - 6
	}
	x := make([]float32, len(x0))
	be := cpu.New(0)
	for b.Loop() {
		copy(x, x0)
		if err := fam.ForwardBlock(be, 0, w, x, 1, seqlen, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(seqlen*b.N)/b.Elapsed().Seconds(), "tokens/s")
}
