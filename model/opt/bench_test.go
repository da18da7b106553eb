package opt_test

import (
	"testing"

	"github.com/optima-llm/optima/kernels/cpu"
)

// BenchmarkBlock runs one decoder block with random weights on one
// 2048-token sequence, with OPT-125m's shapes (hidden 768, ffn_dim 3072, 12
// heads of 64, pre-LN) and with SmolLM2-135M's widths (hidden 576, ffn_dim
// 1536, 9 heads of 64) for a comparison with model/llama's
// BenchmarkBlockSmolLM2Shape.
//
// Sample (2 shared cores, AMD EPYC, AVX-512 GEMM, load average about 7;
// go test -run '^$' -bench Block -benchtime 3x ./model/opt/ ./model/llama/):
//
//	BenchmarkBlock/opt-125m-2          3  2171868648 ns/op  16.31 GFLOP/s   943.0 tokens/s
//	BenchmarkBlock/smollm2-widths-2    3  1137984843 ns/op  15.39 GFLOP/s  1800 tokens/s
//	BenchmarkBlockSmolLM2Shape-2       3   489938199 ns/op                 4180 tokens/s (model/llama)
//
// At SmolLM2's widths the OPT block did fewer FLOPs than the Llama block
// yet took 2.3× as long: about half of its time was its scalar softmax.
// With the shared AVX2 softmax of kernels/cpu/vec (same command, load
// average about 15, so absolute numbers are low):
//
//	BenchmarkBlock/opt-125m-2          3   843067342 ns/op  42.03 GFLOP/s  2429 tokens/s
//	BenchmarkBlock/smollm2-widths-2    3   434567793 ns/op  40.31 GFLOP/s  4713 tokens/s
//	BenchmarkBlockSmolLM2Shape-2       3   428714930 ns/op                 4777 tokens/s (model/llama)
func BenchmarkBlock(b *testing.B) {
	for _, bc := range []struct {
		name string
		o    tinyOPT
	}{
		{"opt-125m", tinyOPT{preLN: true, hidden: 768, proj: 768, ffn: 3072, layers: 1, heads: 12, vocab: 16, maxPos: 2048, seed: 3}},
		{"smollm2-widths", tinyOPT{preLN: true, hidden: 576, proj: 576, ffn: 1536, layers: 1, heads: 9, vocab: 16, maxPos: 2048, seed: 3}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			_, fam, w := tinyWeights(b, bc.o)
			const seqlen = 2048
			x0 := make([]float32, seqlen*bc.o.hidden)
			for i := range x0 {
				x0[i] = float32(i%13) - 6
			}
			x := make([]float32, len(x0))
			be := cpu.New(0)
			d, f := float64(bc.o.hidden), float64(bc.o.ffn)
			// 2·tokens·(4d² + 2df) for the linears, 2·2·d·seqlen²/2 for causal attention.
			flops := 2*seqlen*(4*d*d+2*d*f) + 2*d*seqlen*seqlen
			for b.Loop() {
				copy(x, x0)
				if err := fam.ForwardBlock(be, 0, w, x, 1, seqlen, nil); err != nil {
					b.Fatal(err)
				}
			}
			s := b.Elapsed().Seconds()
			b.ReportMetric(float64(seqlen*b.N)/s, "tokens/s")
			b.ReportMetric(flops*float64(b.N)/s/1e9, "GFLOP/s")
		})
	}
}
