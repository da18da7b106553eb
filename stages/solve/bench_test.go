package solve

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/optima-llm/optima/kernels/cpu"
)

// benchLayer is one weight matrix with its Hessian and a 50% Wanda mask.
type benchLayer struct {
	name      string
	rows, in  int
	h         []float64
	w         []float32
	pruned    []bool
	synthetic bool
}

// syntheticLayer makes a [rows, in] layer whose Hessian comes from 2048
// synthetic tokens (log-normal channel scales, low-rank correlation; see
// genHessian), accumulated with the CPU backend's AccumulateGram.
func syntheticLayer(rows, in int) benchLayer {
	rng := rand.New(rand.NewPCG(uint64(rows), uint64(in)))
	const tokens = 2048
	scale := make([]float64, in)
	for j := range scale {
		scale[j] = math.Exp(1.5 * rng.NormFloat64())
	}
	rank := in / 16
	load := make([]float64, rank*in)
	for i := range load {
		load[i] = rng.NormFloat64() / math.Sqrt(float64(rank))
	}
	x := make([]float32, tokens*in)
	f := make([]float64, rank)
	for t := range tokens {
		for r := range f {
			f[r] = rng.NormFloat64()
		}
		for j := range in {
			v := 0.5 * rng.NormFloat64()
			for r := range rank {
				v += f[r] * load[r*in+j]
			}
			x[t*in+j] = float32(v * scale[j])
		}
	}
	h := make([]float64, in*in)
	cpu.New(0).AccumulateGram(h, x, tokens, in)
	w := genWeights(rng, rows, in)
	return wandaLayer(fmt.Sprintf("synthetic_%dx%d", rows, in), rows, in, h, w, true)
}

func wandaLayer(name string, rows, in int, h []float64, w []float32, synthetic bool) benchLayer {
	norms := make([]float64, in)
	for j := range in {
		norms[j] = math.Sqrt(h[j*in+j])
	}
	pruned := genMask(nil, w, norms, rows, in, unstructured50)
	return benchLayer{name: name, rows: rows, in: in, h: h, w: w, pruned: pruned, synthetic: synthetic}
}

// realLayers reads the SmolLM2 block-10 Hessians written by
// tools/oracle/solve_hessians.py when OPTIMA_SOLVE_HESSIANS names their
// directory; otherwise it returns nothing.
func realLayers(tb testing.TB) []benchLayer {
	dir := os.Getenv("OPTIMA_SOLVE_HESSIANS")
	if dir == "" {
		return nil
	}
	var out []benchLayer
	for _, l := range []struct {
		name     string
		rows, in int
	}{{"q_proj", 576, 576}, {"down_proj", 576, 1536}} {
		hb, err := os.ReadFile(filepath.Join(dir, l.name+".h.f64"))
		if err != nil {
			tb.Fatal(err)
		}
		wb, err := os.ReadFile(filepath.Join(dir, l.name+".w.f32"))
		if err != nil {
			tb.Fatal(err)
		}
		if len(hb) != 8*l.in*l.in || len(wb) != 4*l.rows*l.in {
			tb.Fatalf("%s: %d and %d bytes, want [%d, %d] float64 and [%d, %d] float32", l.name, len(hb), len(wb), l.in, l.in, l.rows, l.in)
		}
		h := make([]float64, l.in*l.in)
		for i := range h {
			h[i] = math.Float64frombits(binary.LittleEndian.Uint64(hb[8*i:]))
		}
		w := make([]float32, l.rows*l.in)
		for i := range w {
			w[i] = math.Float32frombits(binary.LittleEndian.Uint32(wb[4*i:]))
		}
		out = append(out, wandaLayer("smollm2_b10_"+l.name, l.rows, l.in, h, w, false))
	}
	return out
}

// BenchmarkSolveLayer solves whole layers (SmolLM2 shapes: down_proj
// 576×1536, up/gate 1536×576) with a 50% Wanda mask: PCG with float64 or
// float32 GEMMs (default Tol and MaxIter, fallback on), and the direct
// Cholesky per row (on the first 32 rows only; ns/row is comparable).
//
//	go test ./stages/solve -run '^$' -bench SolveLayer -benchtime 1x
//
// Sample (2 shared cores, Intel Xeon, gonum-based kernels/cpu, machine loaded
// by other jobs, so ±2×; OPTIMA_SOLVE_HESSIANS=/tmp/optima-hessians for the
// smollm2 rows):
//
//	synthetic_576x1536/pcg64   315518808 ns/row  iter-max 62  iter-mean 59.4
//	synthetic_576x1536/pcg32    28296884 ns/row  iter-max 64  iter-mean 60.4
//	synthetic_576x1536/direct  105738485 ns/row
//	synthetic_1536x576/pcg64    12648598 ns/row  iter-max 48  iter-mean 43.1
//	synthetic_1536x576/pcg32     3102030 ns/row  iter-max 51  iter-mean 44.9
//	synthetic_1536x576/direct    2695193 ns/row
//	smollm2_b10_q_proj/pcg64     7098037 ns/row  iter-max 88  iter-mean 74.1
//	smollm2_b10_q_proj/pcg32     2174202 ns/row  iter-max 103 iter-mean 87.0
//	smollm2_b10_q_proj/direct    3232966 ns/row
//	smollm2_b10_down_proj/pcg32 22039481 ns/row  iter-max 129 iter-mean 112.5
//	smollm2_b10_down_proj/direct 32277814 ns/row
func BenchmarkSolveLayer(b *testing.B) {
	be := cpu.New(0)
	layers := append([]benchLayer{syntheticLayer(576, 1536), syntheticLayer(1536, 576)}, realLayers(b)...)
	for _, l := range layers {
		for _, mode := range []string{"pcg64", "pcg32", "direct"} {
			b.Run(l.name+"/"+mode, func(b *testing.B) {
				opts := DefaultOptions()
				opts.Float64 = mode == "pcg64"
				p, err := Prepare(l.h, l.in, opts)
				if err != nil {
					b.Fatal(err)
				}
				rows := l.rows
				if mode == "direct" {
					rows = 32
					opts.MaxIter = 0 // every row takes the Cholesky fallback
					if p, err = Prepare(l.h, l.in, opts); err != nil {
						b.Fatal(err)
					}
				}
				w := make([]float32, rows*l.in)
				var st Stats
				for b.Loop() {
					copy(w, l.w[:rows*l.in])
					if st, err = p.SolveRows(be, w, l.pruned[:rows*l.in], rows); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
				b.ReportMetric(float64(st.Iterations), "iter-max")
				b.ReportMetric(st.MeanIterations, "iter-mean")
				b.ReportMetric(float64(st.FallbackRows), "fallback-rows")
				b.ReportMetric(st.ObjBefore/st.Denom, "relerr-mask")
				b.ReportMetric(st.ObjAfter/st.Denom, "relerr-refit")
			})
		}
	}
}
