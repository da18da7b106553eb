package update

import (
	"math/rand/v2"
	"testing"

	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/stages/mask"
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
