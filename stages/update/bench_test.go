package update

import (
	"math/rand/v2"
	"testing"

	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/stages/mask"
	"github.com/optima-llm/optima/stages/quant"
)

// BenchmarkAlgorithms times each selector on a synthetic q_proj-sized layer
// (576×576, Hessian of 1152 tokens), reporting ms per layer. The OPTIMA solve
// on the same shape is in stages/solve's benchmarks.
//
// Sample (this 2-core machine, shared with other jobs, -benchtime 2x):
// sparsegpt/0.5 158 ms, thanos/0.5 888 ms, admm/0.5 1851 ms per layer. On
// the 16-core device the whole SmolLM2 model took 44 s (SparseGPT), 53 s
// (Thanos), 126 s (ADMM), summed over its 210 linears (bench/smollm2).
func BenchmarkAlgorithms(b *testing.B) {
	be := cpu.New(0)
	rng := rand.New(rand.NewPCG(1, 2))
	rows, cols := 576, 576
	w0, h := randomProblem(rng, rows, cols, 2*cols)
	for _, name := range []string{"sparsegpt", "thanos", "admm"} {
		alg := map[string]Algorithm{"sparsegpt": SparseGPT, "thanos": Thanos, "admm": ADMM}[name]
		for _, p := range []mask.Pattern{{Sparsity: 0.5}, {N: 2, M: 4}} {
			b.Run(name+"/"+p.String(), func(b *testing.B) {
				w := make([]float64, len(w0))
				pr := make([]bool, len(w0))
				for b.Loop() {
					copy(w, w0)
					if _, err := alg(be, w, rows, cols, h, p, DefaultOptions(name), pr); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/layer")
			})
		}
	}
}

// BenchmarkJointSweep times SparseGPT's joint sweep (4 bits, per tensor and
// in groups of 64) against the plain SparseGPT sweep on the same 576×576
// layer, and GPTQ on the fixed mask after it (what the joint sweep replaces),
// reporting ms per layer.
//
// Sample (this 2-core machine, shared, -benchtime 3x, 2:4): sparsegpt 55 ms,
// joint-tensor 64 ms, joint-g64 65 ms, gptq-after-mask 140 ms: the joint
// sweep costs 1.16× SparseGPT alone and a third of SparseGPT then GPTQ.
func BenchmarkJointSweep(b *testing.B) {
	be := cpu.New(0)
	rng := rand.New(rand.NewPCG(3, 4))
	rows, cols := 576, 576
	w0, h := randomProblem(rng, rows, cols, 2*cols)
	p := mask.Pattern{N: 2, M: 4}
	for _, tc := range []struct {
		name string
		q    *quant.Options
	}{
		{"sparsegpt", nil},
		{"joint-tensor", &quant.Options{Bits: 4, Method: quant.GPTQ}},
		{"joint-g64", &quant.Options{Bits: 4, Method: quant.GPTQ, GroupSize: 64}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			w := make([]float64, len(w0))
			pr := make([]bool, len(w0))
			o := DefaultOptions("sparsegpt")
			o.Quant = tc.q
			for b.Loop() {
				copy(w, w0)
				if _, err := SparseGPT(be, w, rows, cols, h, p, o, pr); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/layer")
		})
	}
	b.Run("gptq-after-mask", func(b *testing.B) {
		w := append([]float64(nil), w0...)
		pr := make([]bool, len(w0))
		o := DefaultOptions("sparsegpt")
		if _, err := SparseGPT(be, w, rows, cols, h, p, o, pr); err != nil {
			b.Fatal(err)
		}
		w32 := make([]float32, len(w))
		hd := append([]float64(nil), h...)
		for j := range cols {
			hd[j*cols+j] += 0.01
		}
		for b.Loop() {
			for k, v := range w {
				w32[k] = float32(v)
			}
			if _, err := quant.GPTQQuantize(w32, rows, cols, hd, pr, quant.Options{Bits: 4, Method: quant.GPTQ}, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/layer")
	})
}
