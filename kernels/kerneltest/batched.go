package kerneltest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/kernels"
)

// RunBatched runs the kernels.BatchedCholesky cases against b (which must
// implement it) as subtests of t: factors and solutions of random SPD
// batches (n from 0 to 260, batch from 0 to 9) against b.Cholesky of each
// matrix and by reconstruction and residual, poison in the unread upper
// triangles and after the batch, batches mixing failing and good matrices
// (the error must list exactly the failing ones and the good ones must still
// be right), and the shape panics. Run calls it for backends that implement
// the interface; a backend's own tests call it again with small device
// chunks.
func RunBatched(t *testing.T, b kernels.Backend) {
	bc, ok := b.(kernels.BatchedCholesky)
	if !ok {
		t.Fatalf("%s backend (%T) does not implement kernels.BatchedCholesky", b.Name(), b)
	}
	t.Run("CholeskyBatched", func(t *testing.T) { testCholeskyBatched(t, b, bc) })
	t.Run("CholeskySolveBatched", func(t *testing.T) { testCholeskySolveBatched(t, b, bc) })
	t.Run("CholeskyBatchedNotPD", func(t *testing.T) { testCholeskyBatchedNotPD(t, bc) })
	t.Run("CholeskyBatchedPanics", func(t *testing.T) { testCholeskyBatchedPanics(t, bc) })
}

// batchShapes are the (n, batch) pairs of the batched cases.
var batchShapes = []struct{ n, batch int }{
	{0, 3}, {1, 1}, {5, 0}, {1, 9}, {5, 3}, {33, 7}, {100, 4}, {260, 2},
}

// spd returns the n×n row-major matrix G·Gᵀ + n·I for a standard normal G
// (symmetric positive definite, condition number below 6).
func spd(r *rand.Rand, n int) []float64 {
	g := make([]float64, n*n)
	for i := range g {
		g[i] = r.NormFloat64()
	}
	a := make([]float64, n*n)
	for i := range n {
		for j := range i + 1 {
			var s float64
			for l := range n {
				s += g[i*n+l] * g[j*n+l]
			}
			a[i*n+j], a[j*n+i] = s, s
		}
		a[i*n+i] += float64(n)
	}
	return a
}

// packBatch returns the batch matrices packed back to back with NaN in
// every upper triangle (which must not be read), inside a buffer followed by
// guard poison elements: the slice to pass and the whole buffer.
func packBatch(ms [][]float64, n int) (data, buf []float64) {
	buf = make([]float64, len(ms)*n*n+guard)
	for k, m := range ms {
		copy(buf[k*n*n:], m)
		for i := range n {
			for j := i + 1; j < n; j++ {
				buf[k*n*n+i*n+j] = math.NaN()
			}
		}
	}
	for p := len(ms) * n * n; p < len(buf); p++ {
		buf[p] = cGuard64
	}
	return buf[: len(ms)*n*n : len(ms)*n*n], buf
}

// checkGuard fails unless the guard elements after the first used elements
// of buf still hold cGuard64.
func checkGuard(t *testing.T, what string, buf []float64, used int) {
	t.Helper()
	for p := used; p < len(buf); p++ {
		if buf[p] != cGuard64 {
			t.Fatalf("%s: element %d past the end written (%v)", what, p-used, buf[p])
		}
	}
}

// checkFactor fails unless l (n×n) is lower triangular with L·Lᵀ = orig to
// 1e-13·n relative to Σ|l_ik·l_jk|.
func checkFactor(t *testing.T, label string, l, orig []float64, n int) {
	t.Helper()
	for i := range n {
		for j := i + 1; j < n; j++ {
			if l[i*n+j] != 0 {
				t.Fatalf("%s: L[%d,%d] = %v above the diagonal, want 0", label, i, j, l[i*n+j])
			}
		}
		for j := range i + 1 {
			var s, abs float64
			for k := range j + 1 {
				s += l[i*n+k] * l[j*n+k]
				abs += math.Abs(l[i*n+k] * l[j*n+k])
			}
			if d := math.Abs(s - orig[i*n+j]); !(d <= 1e-13*float64(n)*abs) {
				t.Fatalf("%s: (L·Lᵀ)[%d,%d] = %v, want %v", label, i, j, s, orig[i*n+j])
			}
		}
	}
}

// checkSolve fails unless x solves orig·x = rhs with a residual below
// 1e-13·n·(‖A‖·‖x‖ + ‖rhs‖) in the max norm (backward stability), and x is
// within 1e-11 (relative to ‖want‖∞) of want, the solution through
// Backend.Cholesky.
func checkSolve(t *testing.T, label string, orig []float64, n int, x, rhs, want []float64) {
	t.Helper()
	var aNorm, xNorm, bNorm, wNorm float64
	for i := range n {
		var row float64
		for j := range n {
			row += math.Abs(orig[i*n+j])
		}
		aNorm = max(aNorm, row)
		xNorm = max(xNorm, math.Abs(x[i]))
		bNorm = max(bNorm, math.Abs(rhs[i]))
		wNorm = max(wNorm, math.Abs(want[i]))
	}
	for i := range n {
		r := -rhs[i]
		for j := range n {
			r += orig[i*n+j] * x[j]
		}
		if !(math.Abs(r) <= 1e-13*float64(n)*(aNorm*xNorm+bNorm)) {
			t.Fatalf("%s: residual (A·x − b)[%d] = %v (‖A‖ %v, ‖x‖ %v, ‖b‖ %v)", label, i, r, aNorm, xNorm, bNorm)
		}
		if d := math.Abs(x[i] - want[i]); !(d <= 1e-11*wNorm) {
			t.Fatalf("%s: x[%d] = %v, want %v (through Cholesky)", label, i, x[i], want[i])
		}
	}
}

// refSolve returns A⁻¹·rhs through b.Cholesky and substitution in float64.
func refSolve(t *testing.T, b kernels.Backend, orig []float64, n int, rhs []float64) []float64 {
	t.Helper()
	l := append([]float64(nil), orig...)
	if err := b.Cholesky(l, n); err != nil {
		t.Fatalf("Cholesky: %v", err)
	}
	return substitute(l, n, rhs)
}

// substitute solves L·Lᵀ·x = rhs for the lower triangle l ([n, n]
// row-major) by forward and back substitution in float64.
func substitute(l []float64, n int, rhs []float64) []float64 {
	x := append([]float64(nil), rhs...)
	for i := range n {
		v := x[i]
		for k := range i {
			v -= l[i*n+k] * x[k]
		}
		x[i] = v / l[i*n+i]
	}
	for i := n - 1; i >= 0; i-- {
		v := x[i]
		for k := i + 1; k < n; k++ {
			v -= l[k*n+i] * x[k]
		}
		x[i] = v / l[i*n+i]
	}
	return x
}

func testCholeskyBatched(t *testing.T, b kernels.Backend, bc kernels.BatchedCholesky) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, sh := range batchShapes {
		n, batch := sh.n, sh.batch
		t.Run(fmt.Sprintf("n=%d/batch=%d", n, batch), func(t *testing.T) {
			ms := make([][]float64, batch)
			for k := range ms {
				ms[k] = spd(r, n)
			}
			a, buf := packBatch(ms, n)
			if err := bc.CholeskyBatched(a, n, batch); err != nil {
				t.Fatalf("CholeskyBatched: %v", err)
			}
			checkGuard(t, "CholeskyBatched", buf, batch*n*n)
			for k, m := range ms {
				l := a[k*n*n : (k+1)*n*n]
				checkFactor(t, fmt.Sprintf("matrix %d", k), l, m, n)
				one := append([]float64(nil), m...)
				if err := b.Cholesky(one, n); err != nil {
					t.Fatalf("Cholesky of matrix %d: %v", k, err)
				}
				for p := range one {
					if d := math.Abs(l[p] - one[p]); !(d <= 1e-12*math.Sqrt(float64(n))*math.Abs(one[p/n*n+p/n])) {
						t.Fatalf("matrix %d: L[%d,%d] batched %v, one by one %v", k, p/n, p%n, l[p], one[p])
					}
				}
			}
		})
	}
}

func testCholeskySolveBatched(t *testing.T, b kernels.Backend, bc kernels.BatchedCholesky) {
	r := rand.New(rand.NewPCG(23, 24))
	for _, sh := range batchShapes {
		n, batch := sh.n, sh.batch
		t.Run(fmt.Sprintf("n=%d/batch=%d", n, batch), func(t *testing.T) {
			ms := make([][]float64, batch)
			for k := range ms {
				ms[k] = spd(r, n)
			}
			a, _ := packBatch(ms, n)
			xbuf := make([]float64, batch*n+guard)
			for p := range xbuf {
				xbuf[p] = cGuard64
				if p < batch*n {
					xbuf[p] = 10 * r.NormFloat64()
				}
			}
			rhs := append([]float64(nil), xbuf[:batch*n]...)
			if err := bc.CholeskySolveBatched(a, n, batch, xbuf[:batch*n:batch*n]); err != nil {
				t.Fatalf("CholeskySolveBatched: %v", err)
			}
			checkGuard(t, "CholeskySolveBatched x", xbuf, batch*n)
			for k, m := range ms {
				bk := rhs[k*n : (k+1)*n]
				checkSolve(t, fmt.Sprintf("matrix %d", k), m, n, xbuf[k*n:(k+1)*n], bk, refSolve(t, b, m, n, bk))
			}
		})
	}
}

func testCholeskyBatchedNotPD(t *testing.T, bc kernels.BatchedCholesky) {
	r := rand.New(rand.NewPCG(25, 26))
	bad := map[string][]float64{
		"indefinite":        {4, 0, 0, 0, 2, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1},
		"NaN":               {1, 0, 0, 0, 0, 1, 0, 0, 0, math.NaN(), 1, 0, 0, 0, 0, 1},
		"negative diagonal": {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, -1},
		"zero":              make([]float64, 16),
	}
	tests := []struct {
		name   string
		n      int
		mats   []string // "" is a random SPD matrix, else a key of bad or "late"
		failed []int
	}{
		{"mixed", 4, []string{"", "indefinite", "", "NaN", "negative diagonal", ""}, []int{1, 3, 4}},
		{"all", 4, []string{"zero", "indefinite"}, []int{0, 1}},
		{"late pivot", 260, []string{"", "late"}, []int{1}},
	}
	for _, tt := range tests {
		for _, solve := range []bool{false, true} {
			name := tt.name + "/factor"
			if solve {
				name = tt.name + "/solve"
			}
			t.Run(name, func(t *testing.T) {
				n := tt.n
				ms := make([][]float64, len(tt.mats))
				for k, key := range tt.mats {
					switch key {
					case "":
						ms[k] = spd(r, n)
					case "late":
						ms[k] = notPDLate(n)
					default:
						ms[k] = bad[key]
					}
				}
				a, _ := packBatch(ms, n)
				x := make([]float64, len(ms)*n)
				for p := range x {
					x[p] = r.NormFloat64()
				}
				rhs := append([]float64(nil), x...)
				var err error
				if solve {
					err = bc.CholeskySolveBatched(a, n, len(ms), x)
				} else {
					err = bc.CholeskyBatched(a, n, len(ms))
				}
				if !errors.Is(err, kernels.ErrNotPositiveDefinite) {
					t.Fatalf("error = %v, want one wrapping kernels.ErrNotPositiveDefinite", err)
				}
				var be *kernels.CholeskyBatchError
				if !errors.As(err, &be) {
					t.Fatalf("error %v is not a *kernels.CholeskyBatchError", err)
				}
				if d := cmp.Diff(tt.failed, be.Failed); d != "" || be.N != n || be.Batch != len(ms) {
					t.Errorf("Failed (-want +got):\n%s N %d Batch %d, want %d %d", d, be.N, be.Batch, n, len(ms))
				}
				for k, key := range tt.mats {
					if key != "" {
						continue
					}
					if solve {
						bk := rhs[k*n : (k+1)*n]
						checkSolve(t, fmt.Sprintf("good matrix %d", k), ms[k], n, x[k*n:(k+1)*n], bk, textbookSolve(t, ms[k], n, bk))
					} else {
						checkFactor(t, fmt.Sprintf("good matrix %d", k), a[k*n*n:(k+1)*n*n], ms[k], n)
					}
				}
			})
		}
	}
}

// textbookSolve is refSolve with a textbook factorization (the backend under test
// is the one that reported failures in the same batch).
func textbookSolve(t *testing.T, m []float64, n int, rhs []float64) []float64 {
	t.Helper()
	l := append([]float64(nil), m...)
	for i := range n {
		for j := 0; j <= i; j++ {
			s := l[i*n+j]
			for k := range j {
				s -= l[i*n+k] * l[j*n+k]
			}
			if i == j {
				l[i*n+i] = math.Sqrt(s)
			} else {
				l[i*n+j] = s / l[j*n+j]
			}
		}
	}
	return substitute(l, n, rhs)
}

func testCholeskyBatchedPanics(t *testing.T, bc kernels.BatchedCholesky) {
	d := make([]float64, 18)
	tests := []struct {
		name string
		f    func()
	}{
		{"short a", func() { _ = bc.CholeskyBatched(d[:17], 3, 2) }},
		{"negative n", func() { _ = bc.CholeskyBatched(d, -1, 1) }},
		{"negative batch", func() { _ = bc.CholeskyBatched(d, 3, -1) }},
		{"solve short a", func() { _ = bc.CholeskySolveBatched(d[:17], 3, 2, d) }},
		{"solve short x", func() { _ = bc.CholeskySolveBatched(d, 3, 2, d[:5]) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", tt.name)
				}
			}()
			tt.f()
		})
	}
}
