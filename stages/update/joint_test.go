package update

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/stages/mask"
	"github.com/optima-llm/optima/stages/quant"
)

type jointCase struct {
	goldenCase
	Bits      int       `json:"bits"`
	GroupSize int       `json:"group_size"`
	Codes     []int     `json:"codes"`
	Steps     []float64 `json:"steps"`
}

// TestJointGolden compares SparseGPT's joint sweep (Options.Quant) with the
// numpy transcription in tools/oracle/sparsegpt_quant_golden.py: masks and
// codes exactly, steps and weights to 1e-5 of the largest weight.
func TestJointGolden(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "sparsegpt_quant_golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []jointCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Cases) == 0 {
		t.Fatal("no cases")
	}
	be := cpu.New(1)
	for _, c := range g.Cases {
		t.Run(c.Name, func(t *testing.T) {
			p := mask.Pattern{Sparsity: c.Sparsity, N: c.N, M: c.M}
			o := Options{BlockSize: c.BlockSize, Damping: c.Damping, Quant: &quant.Options{Bits: c.Bits, Method: quant.GPTQ, GroupSize: c.GroupSize}}
			w := append([]float64(nil), c.W...)
			pr := make([]bool, len(w))
			res, err := SparseGPT(be, w, c.Rows, c.Cols, c.H, p, o, pr)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]bool, len(c.Mask))
			for i, v := range c.Mask {
				want[i] = v != 0
			}
			if d := cmp.Diff(want, pr); d != "" {
				t.Errorf("mask differs (-want +got):\n%s", d)
			}
			q := res.Quantized
			if q == nil {
				t.Fatal("no codes returned")
			}
			codes := make([]int, len(q.Codes))
			for i, k := range q.Codes {
				codes[i] = int(k)
			}
			if d := cmp.Diff(c.Codes, codes); d != "" {
				t.Errorf("codes differ (-want +got):\n%s", d)
			}
			if len(q.Steps) != len(c.Steps) {
				t.Fatalf("%d steps, want %d", len(q.Steps), len(c.Steps))
			}
			for i, s := range q.Steps {
				if math.Abs(float64(s)-c.Steps[i]) > 1e-6*math.Abs(c.Steps[i]) {
					t.Errorf("step %d = %g, want %g", i, s, c.Steps[i])
				}
			}
			tol := 1e-5 * maxAbs(c.WOut)
			for i := range w {
				if math.Abs(w[i]-c.WOut[i]) > tol {
					t.Fatalf("w[%d,%d] = %.12g, want %.12g (tol %g)", i/c.Cols, i%c.Cols, w[i], c.WOut[i], tol)
				}
			}
		})
	}
}

// checkOnGrid fails unless every weight of w is its code times its step,
// pruned weights are exactly 0 with code 0, and codes are in range.
func checkOnGrid(t *testing.T, w []float64, pr []bool, q *quant.Quantized) {
	t.Helper()
	maxq := quant.MaxCode(q.Bits)
	for k, v := range w {
		i, j := k/q.Cols, k%q.Cols
		c := q.Codes[k]
		if int(c) < -maxq-1 || int(c) > maxq {
			t.Fatalf("code (%d, %d) = %d outside %d bits", i, j, c, q.Bits)
		}
		if pr[k] && (v != 0 || c != 0) {
			t.Fatalf("pruned (%d, %d) = %g code %d, want exactly 0", i, j, v, c)
		}
		if v != float64(c)*q.Step(i, j) {
			t.Fatalf("w(%d, %d) = %.17g is not code %d × step %.9g", i, j, v, c, q.Step(i, j))
		}
	}
}

// twoStep is SparseGPT (no quantization) followed by GPTQ on its fixed mask,
// with the same damped Hessian: what compress does without the joint mode.
func twoStep(t *testing.T, w0, h []float64, rows, cols int, p mask.Pattern, o Options, q quant.Options) []float64 {
	t.Helper()
	w := append([]float64(nil), w0...)
	pr := make([]bool, len(w))
	o.Quant = nil
	if _, err := SparseGPT(cpu.New(1), w, rows, cols, h, p, o, pr); err != nil {
		t.Fatal(err)
	}
	w32 := make([]float32, len(w))
	for k, v := range w {
		w32[k] = float32(v)
	}
	hd := append([]float64(nil), h...)
	mean := 0.0
	for j := range cols {
		mean += h[j*cols+j] / float64(cols)
	}
	for j := range cols {
		hd[j*cols+j] += o.Damping * mean
	}
	if _, err := quant.GPTQQuantize(w32, rows, cols, hd, pr, q, nil); err != nil {
		t.Fatal(err)
	}
	out := make([]float64, len(w))
	for k, v := range w32 {
		out[k] = float64(v)
	}
	return out
}

// TestJointGridAndError checks on random layers that the joint sweep keeps
// every weight on its grid with pruned weights exactly zero, and compares its
// layer error tr(ΔHΔᵀ) with SparseGPT followed by GPTQ on the fixed mask
// (logged per layer where it is worse). With one step per tensor (the
// reference's setting) and with groups of 64 the joint sweep must be no
// worse on average. With small groups it can be worse (seen: up to 18% with
// 2:4, groups of 16 or 32): a group's step is fixed at its first column,
// before the pruning inside the group compensates its later columns, which
// then clip; there the test only bounds the loss to 25%.
func TestJointGridAndError(t *testing.T) {
	rng := rand.New(rand.NewPCG(81, 82))
	rows, cols := 16, 128
	for _, p := range []mask.Pattern{{Sparsity: 0.5}, {N: 2, M: 4}} {
		for _, qo := range []quant.Options{{Bits: 4}, {Bits: 3}, {Bits: 3, GroupSize: 16}, {Bits: 4, GroupSize: 16}, {Bits: 4, GroupSize: 64}, {Bits: 8, GroupSize: 16}, {Bits: 4, GroupSize: 32, ScaleImportant: true}} {
			qo.Method = quant.GPTQ
			name := fmt.Sprintf("%v/%dbit/g%d", p, qo.Bits, qo.GroupSize)
			if qo.ScaleImportant {
				name += "-important"
			}
			t.Run(name, func(t *testing.T) {
				var joint, sep float64
				for layer := range 4 {
					w0, h := randomProblem(rng, rows, cols, 150)
					o := Options{BlockSize: 16, Damping: 0.01, Quant: &qo}
					w := append([]float64(nil), w0...)
					pr := make([]bool, len(w))
					res, err := SparseGPT(cpu.New(2), w, rows, cols, h, p, o, pr)
					if err != nil {
						t.Fatal(err)
					}
					checkOnGrid(t, w, pr, res.Quantized)
					if qo.ScaleImportant && len(res.Quantized.Important) == 0 {
						t.Fatal("no important columns")
					}
					ej := objective(w0, w, rows, cols, h)
					es := objective(w0, twoStep(t, w0, h, rows, cols, p, o, qo), rows, cols, h)
					if ej > es {
						t.Logf("layer %d: joint error %.5g above two-step %.5g", layer, ej, es)
					}
					joint += ej
					sep += es
				}
				t.Logf("mean layer error: joint %.5g, SparseGPT then GPTQ %.5g", joint/4, sep/4)
				limit := sep
				if qo.GroupSize > 0 && qo.GroupSize < 64 {
					limit = 1.25 * sep
				}
				if joint > limit {
					t.Errorf("joint sweep's mean error %.5g above SparseGPT then GPTQ %.5g", joint/4, sep/4)
				}
			})
		}
	}
}
