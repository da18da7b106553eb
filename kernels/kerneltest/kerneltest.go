// Package kerneltest is the conformance suite every kernels.Backend passes.
// A backend's own test calls Run:
//
//	func TestConformance(t *testing.T) { kerneltest.Run(t, cpu.New(0)) }
//
// The suite checks Sgemm and Dgemm against a float64 reference (Sgemm also
// against gonum on the same inputs), over all four transpose
// cases, odd sizes from 1 to 67, leading dimensions larger than the row width,
// several alpha/beta values (beta = 0 with NaN in C must not propagate), and
// poison around and between the rows of every operand (NaN in A and B, so a
// read outside the matrix spoils the result; a marker in C, so a write is
// seen). It checks AccumulateGram against a float64
// XᵀX, including 10240 tokens whose float32 running sum would lose accuracy,
// and Cholesky by reconstruction and its ErrNotPositiveDefinite error. A
// backend that implements kernels.BatchedCholesky also runs RunBatched.
//
// CheckSgemm and CheckDgemm check one GEMM problem the same way, for a
// backend's fuzz target.
//
// Tolerances: a GEMM element may differ from the exact result by at most
// tol·sqrt(k)·(|alpha|·Σ|a||b| + |beta|·|c|) + tiny, with tol 1e-5 for float32 and
// 1e-13 for float64 (far above the float64 reference's own rounding), which is
// loose enough for any summation order and tight enough to catch a wrong
// operand.
package kerneltest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/optima-llm/optima/kernels"
)

// Run runs the whole conformance suite against b as subtests of t.
func Run(t *testing.T, b kernels.Backend) {
	t.Run("Capabilities", func(t *testing.T) { testCapabilities(t, b) })
	t.Run("Sgemm", func(t *testing.T) { testSgemm(t, b) })
	t.Run("SgemmLarge", func(t *testing.T) { testSgemmLarge(t, b) })
	t.Run("SgemmConcurrent", func(t *testing.T) { testSgemmConcurrent(t, b) })
	t.Run("Dgemm", func(t *testing.T) { testDgemm(t, b) })
	t.Run("GemmPanics", func(t *testing.T) { testGemmPanics(t, b) })
	t.Run("AccumulateGram", func(t *testing.T) { testGram(t, b) })
	t.Run("AccumulateGramLong", func(t *testing.T) { testGramLong(t, b) })
	t.Run("SetGram", func(t *testing.T) { testSetGram(t, b) })
	t.Run("Cholesky", func(t *testing.T) { testCholesky(t, b) })
	t.Run("CholeskyNotPD", func(t *testing.T) { testCholeskyNotPD(t, b) })
	if _, ok := b.(kernels.BatchedCholesky); ok {
		RunBatched(t, b)
	}
}

func testCapabilities(t *testing.T, b kernels.Backend) {
	c := b.Capabilities()
	if b.Name() == "" {
		t.Error("Name() is empty")
	}
	if c.Device != "cpu" && c.Device != "cuda" {
		t.Errorf("Capabilities().Device = %q, want cpu or cuda", c.Device)
	}
	if c.Device == "cpu" && c.Threads < 1 {
		t.Errorf("Capabilities().Threads = %d, want >= 1", c.Threads)
	}
	if c.SIMD == "" {
		t.Error("Capabilities().SIMD is empty")
	}
}

// guard is how many elements surround every operand; their value is poison.
const guard = 7

// poison values: NaN in inputs (reading them corrupts the result), a
// recognisable finite value in C's guards (writing them is detected).
var (
	nan32     = float32(math.NaN())
	cGuard32  = float32(-31337.25)
	cGuard64  = -31337.25
	poisonPad = math.NaN()
)

// matrix is a row-major rows×cols matrix with stride ld inside buf, which has
// guard poison elements before and after and in the stride padding.
type matrix[T float32 | float64] struct {
	rows, cols, ld int
	buf            []T // guard + data + guard
}

// data is the slice handed to the backend: exactly (rows-1)*ld+cols long.
func (m *matrix[T]) data() []T {
	n := 0
	if m.rows > 0 && m.cols > 0 {
		n = (m.rows-1)*m.ld + m.cols
	}
	return m.buf[guard : guard+n : guard+n]
}

func (m *matrix[T]) at(i, j int) T { return m.buf[guard+i*m.ld+j] }

// inside reports whether buffer index p is an element of the matrix.
func (m *matrix[T]) inside(p int) bool {
	p -= guard
	if p < 0 || m.rows == 0 || m.cols == 0 || p >= (m.rows-1)*m.ld+m.cols {
		return false
	}
	return p%m.ld < m.cols
}

func newMatrix[T float32 | float64](r *rand.Rand, rows, cols, pad int, pois T) *matrix[T] {
	ld := max(1, cols) + pad
	n := 0
	if rows > 0 && cols > 0 {
		n = (rows-1)*ld + cols
	}
	m := &matrix[T]{rows: rows, cols: cols, ld: ld, buf: make([]T, n+2*guard)}
	for p := range m.buf {
		if m.inside(p) {
			m.buf[p] = T(r.Float64()*2 - 1)
		} else {
			m.buf[p] = pois
		}
	}
	return m
}

type gemmCase struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float64
	padA, padB     int
	padC           int
}

// Case is one GEMM problem for CheckSgemm and CheckDgemm: op(A) is M×K, op(B)
// is K×N, and each operand's leading dimension exceeds its stored row width
// by PadA, PadB, PadC elements (0 to 8).
type Case struct {
	TransA, TransB bool
	M, N, K        int
	Alpha, Beta    float64
	PadA, PadB     int
	PadC           int
}

func (c Case) internal() gemmCase {
	return gemmCase{c.TransA, c.TransB, c.M, c.N, c.K, c.Alpha, c.Beta, c.PadA, c.PadB, c.PadC}
}

// CheckSgemm runs b.Sgemm on random operands for c (seeded by seed), poison
// around and between the rows of every operand, and NaN in C when Beta is 0,
// and reports through t any element off the float64 reference by more than
// 1e-5·sqrt(K)·(|alpha|·Σ|a||b| + |beta|·|c|), and any write outside C. For
// fuzz targets; Run covers a fixed table.
func CheckSgemm(t *testing.T, b kernels.Backend, c Case, seed uint64) {
	t.Helper()
	checkCase(t, b, c.internal(), rand.New(rand.NewPCG(seed, 1)), false)
}

// CheckDgemm is CheckSgemm for Dgemm, with tolerance 1e-13·sqrt(K).
func CheckDgemm(t *testing.T, b kernels.Backend, c Case, seed uint64) {
	t.Helper()
	checkCase(t, b, c.internal(), rand.New(rand.NewPCG(seed, 1)), true)
}

func checkCase(t *testing.T, b kernels.Backend, c gemmCase, r *rand.Rand, f64 bool) {
	t.Helper()
	if f64 {
		a, bm, cm := operands(r, c, poisonPad, cGuard64)
		want, scale := reference(c, a, bm, cm)
		b.Dgemm(c.transA, c.transB, c.m, c.n, c.k, c.alpha, a.data(), a.ld, bm.data(), bm.ld, c.beta, cm.data(), cm.ld)
		checkC(t, c.String(), cm, want, scale, 1e-13, c.k, cGuard64)
		return
	}
	a, bm, cm := operands(r, c, nan32, cGuard32)
	want, scale := reference(c, a, bm, cm)
	b.Sgemm(c.transA, c.transB, c.m, c.n, c.k, float32(c.alpha), a.data(), a.ld, bm.data(), bm.ld, float32(c.beta), cm.data(), cm.ld)
	checkC(t, c.String(), cm, want, scale, 1e-5, c.k, cGuard32)
}

func (c gemmCase) String() string {
	return fmt.Sprintf("tA=%v,tB=%v,m=%d,n=%d,k=%d,alpha=%g,beta=%g,pad=%d/%d/%d",
		c.transA, c.transB, c.m, c.n, c.k, c.alpha, c.beta, c.padA, c.padB, c.padC)
}

// gemmCases lists all transpose cases over odd and edge sizes up to 67 and
// several alpha/beta pairs.
func gemmCases(r *rand.Rand) []gemmCase {
	sizes := [][3]int{
		{1, 1, 1}, {1, 7, 3}, {5, 1, 9}, {3, 5, 1}, {2, 3, 4}, {7, 9, 11}, {17, 16, 15},
		{16, 24, 32}, {6, 16, 8}, {13, 31, 29}, {33, 17, 65}, {67, 67, 67}, {64, 1, 67},
		{1, 67, 64}, {49, 53, 3}, {0, 5, 3}, {4, 0, 3}, {4, 5, 0},
	}
	ab := [][2]float64{{1, 0}, {1, 1}, {-0.5, 0.75}, {2.5, 0}, {0, 0.5}, {0, 0}}
	var cs []gemmCase
	i := 0
	for _, s := range sizes {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				p := ab[i%len(ab)]
				i++
				cs = append(cs, gemmCase{
					transA: tA, transB: tB, m: s[0], n: s[1], k: s[2], alpha: p[0], beta: p[1],
					padA: r.IntN(4), padB: r.IntN(4), padC: r.IntN(4),
				})
			}
		}
	}
	// Every alpha/beta pair on one mid-sized case per transpose combination.
	for _, p := range ab {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				cs = append(cs, gemmCase{transA: tA, transB: tB, m: 23, n: 37, k: 41, alpha: p[0], beta: p[1], padA: 3, padB: 1, padC: 2})
			}
		}
	}
	return cs
}

// operands builds A, B and C for a case. C holds NaN when beta is 0.
func operands[T float32 | float64](r *rand.Rand, c gemmCase, pois, cg T) (a, b, cm *matrix[T]) {
	ar, ac := c.m, c.k
	if c.transA {
		ar, ac = c.k, c.m
	}
	br, bc := c.k, c.n
	if c.transB {
		br, bc = c.n, c.k
	}
	a = newMatrix(r, ar, ac, c.padA, pois)
	b = newMatrix(r, br, bc, c.padB, pois)
	cm = newMatrix(r, c.m, c.n, c.padC, cg)
	if c.beta == 0 {
		for p := range cm.buf {
			if cm.inside(p) {
				cm.buf[p] = T(math.NaN())
			}
		}
	}
	return a, b, cm
}

// reference returns the exact-ish (float64) result and the error scale
// |alpha|·Σ|a||b| + |beta|·|c| for every element of C.
func reference[T float32 | float64](c gemmCase, a, b, cm *matrix[T]) (want, scale []float64) {
	want = make([]float64, c.m*c.n)
	scale = make([]float64, c.m*c.n)
	for i := range c.m {
		for j := range c.n {
			var s, abs float64
			for l := range c.k {
				var x, y float64
				if c.transA {
					x = float64(a.at(l, i))
				} else {
					x = float64(a.at(i, l))
				}
				if c.transB {
					y = float64(b.at(j, l))
				} else {
					y = float64(b.at(l, j))
				}
				s += x * y
				abs += math.Abs(x * y)
			}
			w := c.alpha * s
			sc := math.Abs(c.alpha) * abs
			if c.beta != 0 {
				old := float64(cm.at(i, j))
				w += c.beta * old
				sc += math.Abs(c.beta * old)
			}
			want[i*c.n+j] = w
			scale[i*c.n+j] = sc
		}
	}
	return want, scale
}

// checkC compares C with want and checks that every guard and padding
// element still holds cg. It reports at most a few mismatches.
func checkC[T float32 | float64](t *testing.T, label string, cm *matrix[T], want, scale []float64, tol float64, k int, cg T) {
	t.Helper()
	bad := 0
	for p, v := range cm.buf {
		if cm.inside(p) {
			continue
		}
		if v != cg {
			if bad < 3 {
				t.Errorf("%s: element %d outside C (guard/stride padding) changed to %v", label, p-guard, v)
			}
			bad++
		}
	}
	lim := tol * math.Sqrt(float64(max(k, 1)))
	for i := range cm.rows {
		for j := range cm.cols {
			got := float64(cm.at(i, j))
			w := want[i*cm.cols+j]
			d := math.Abs(got - w)
			if !(d <= lim*scale[i*cm.cols+j]+1e-30) {
				if bad < 3 {
					t.Errorf("%s: C[%d,%d] = %v, want %v (|diff| %.3g > %.3g)", label, i, j, got, w, d, lim*scale[i*cm.cols+j])
				}
				bad++
			}
		}
	}
	if bad > 3 {
		t.Errorf("%s: %d bad elements in all", label, bad)
	}
}

func testSgemm(t *testing.T, b kernels.Backend) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range gemmCases(r) {
		t.Run(c.String(), func(t *testing.T) {
			a, bm, cm := operands(r, c, nan32, cGuard32)
			want, scale := reference(c, a, bm, cm)
			// gonum on the same inputs (its own copy of C).
			gc := &matrix[float32]{rows: cm.rows, cols: cm.cols, ld: cm.ld, buf: append([]float32(nil), cm.buf...)}
			b.Sgemm(c.transA, c.transB, c.m, c.n, c.k, float32(c.alpha), a.data(), a.ld, bm.data(), bm.ld, float32(c.beta), cm.data(), cm.ld)
			checkC(t, "backend", cm, want, scale, 1e-5, c.k, cGuard32)
			if c.m > 0 && c.n > 0 && c.k > 0 && c.alpha != 0 {
				gonum.Implementation{}.Sgemm(trans(c.transA), trans(c.transB), c.m, c.n, c.k, float32(c.alpha), a.data(), a.ld, bm.data(), bm.ld, float32(c.beta), gc.data(), gc.ld)
				g := make([]float64, c.m*c.n)
				for i := range c.m {
					for j := range c.n {
						g[i*c.n+j] = float64(gc.at(i, j))
					}
				}
				checkC(t, "vs gonum", cm, g, scale, 2e-5, c.k, cGuard32)
			}
		})
	}
}

// testSgemmLarge checks shapes that cross typical cache blocks (k > 512,
// m > 144, n > 2048) and are big enough to be split over threads.
func testSgemmLarge(t *testing.T, b kernels.Backend) {
	r := rand.New(rand.NewPCG(3, 4))
	cases := []gemmCase{
		{transA: false, transB: true, m: 151, n: 37, k: 300, alpha: 1, beta: 0, padA: 1, padB: 2, padC: 3},
		{transA: true, transB: false, m: 150, n: 40, k: 520, alpha: 0.5, beta: 1, padA: 2, padB: 0, padC: 1},
		{transA: false, transB: false, m: 13, n: 2100, k: 40, alpha: -1, beta: 0.25, padA: 0, padB: 3, padC: 0},
		{transA: true, transB: true, m: 70, n: 50, k: 600, alpha: 1, beta: 0, padA: 1, padB: 1, padC: 1},
	}
	for _, c := range cases {
		t.Run(c.String(), func(t *testing.T) { checkCase(t, b, c, r, false) })
	}
}

// testSgemmConcurrent runs products from several goroutines at once.
func testSgemmConcurrent(t *testing.T, b kernels.Backend) {
	const workers = 4
	r := rand.New(rand.NewPCG(5, 6))
	c := gemmCase{transA: false, transB: true, m: 150, n: 140, k: 130, alpha: 1, beta: 0}
	type job struct {
		a, b, c     *matrix[float32]
		want, scale []float64
	}
	jobs := make([]job, workers)
	for i := range jobs {
		a, bm, cm := operands(r, c, nan32, cGuard32)
		want, scale := reference(c, a, bm, cm)
		jobs[i] = job{a, bm, cm, want, scale}
	}
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() {
			b.Sgemm(c.transA, c.transB, c.m, c.n, c.k, 1, j.a.data(), j.a.ld, j.b.data(), j.b.ld, 0, j.c.data(), j.c.ld)
		})
	}
	wg.Wait()
	for i, j := range jobs {
		checkC(t, fmt.Sprintf("goroutine %d", i), j.c, j.want, j.scale, 1e-5, c.k, cGuard32)
	}
}

func testDgemm(t *testing.T, b kernels.Backend) {
	r := rand.New(rand.NewPCG(7, 8))
	cases := gemmCases(r)
	cases = append(cases, gemmCase{transA: true, transB: false, m: 129, n: 131, k: 257, alpha: 1, beta: 0.5, padA: 1, padB: 2, padC: 1})
	for _, c := range cases {
		t.Run(c.String(), func(t *testing.T) { checkCase(t, b, c, r, true) })
	}
}

// testGemmPanics checks that bad shapes panic rather than read or write
// out of bounds.
func testGemmPanics(t *testing.T, b kernels.Backend) {
	s := make([]float32, 12)
	d := make([]float64, 12)
	tests := []struct {
		name string
		f    func()
	}{
		{"short A", func() { b.Sgemm(false, false, 3, 4, 4, 1, s[:11], 4, s, 4, 0, s, 4) }},
		{"short B", func() { b.Sgemm(false, true, 3, 3, 4, 1, s, 4, s[:11], 4, 0, s, 4) }},
		{"short C", func() { b.Sgemm(false, false, 3, 4, 3, 1, s, 4, s, 4, 0, s[:11], 4) }},
		{"lda too small", func() { b.Sgemm(false, false, 3, 3, 4, 1, s, 3, s, 4, 0, s, 4) }},
		{"ldc too small", func() { b.Sgemm(false, false, 2, 4, 2, 1, s, 4, s, 4, 0, s, 3) }},
		{"negative m", func() { b.Sgemm(false, false, -1, 4, 2, 1, s, 4, s, 4, 0, s, 4) }},
		{"Dgemm short C", func() { b.Dgemm(true, false, 3, 4, 3, 1, d, 3, d, 4, 0, d[:11], 4) }},
		{"Gram short h", func() { b.AccumulateGram(d[:8], s, 4, 3) }},
		{"Gram short x", func() { b.AccumulateGram(d, s[:11], 4, 3) }},
		{"Cholesky short a", func() { _ = b.Cholesky(d[:8], 3) }},
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

// gramRef returns h0 + XᵀX in float64 and the scale h0 + Σ|x_i||x_j|.
func gramRef(h0 []float64, x []float32, tokens, in int) (want, scale []float64) {
	want = append([]float64(nil), h0...)
	scale = make([]float64, in*in)
	for i := range scale {
		scale[i] = math.Abs(h0[i])
	}
	for tk := range tokens {
		row := x[tk*in : tk*in+in]
		for i := range in {
			xi := float64(row[i])
			for j := range in {
				p := xi * float64(row[j])
				want[i*in+j] += p
				scale[i*in+j] += math.Abs(p)
			}
		}
	}
	return want, scale
}

func checkGram(t *testing.T, got, want, scale []float64, in int, tol float64) {
	t.Helper()
	bad := 0
	for i := range in {
		for j := range in {
			g, w := got[i*in+j], want[i*in+j]
			if d := math.Abs(g - w); !(d <= tol*scale[i*in+j]+1e-30) {
				if bad < 3 {
					t.Errorf("h[%d,%d] = %v, want %v (|diff| %.3g, rel %.3g > %.3g)", i, j, g, w, d, d/scale[i*in+j], tol)
				}
				bad++
			}
		}
	}
	if bad > 3 {
		t.Errorf("%d bad elements in all", bad)
	}
}

func testGram(t *testing.T, b kernels.Backend) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, tc := range []struct{ tokens, in int }{{1, 1}, {3, 5}, {256, 17}, {257, 33}, {600, 67}, {513, 130}, {0, 4}, {5, 0}} {
		t.Run(fmt.Sprintf("tokens=%d,in=%d", tc.tokens, tc.in), func(t *testing.T) {
			x := make([]float32, tc.tokens*tc.in+guard)
			for i := range x {
				if i < tc.tokens*tc.in {
					x[i] = float32(r.NormFloat64())
				} else {
					x[i] = nan32
				}
			}
			x = x[: tc.tokens*tc.in : tc.tokens*tc.in]
			// h starts symmetric and nonzero: the call must add, not overwrite.
			h := make([]float64, tc.in*tc.in)
			for i := range tc.in {
				for j := range i + 1 {
					v := r.NormFloat64()
					h[i*tc.in+j], h[j*tc.in+i] = v, v
				}
			}
			want, scale := gramRef(h, x, tc.tokens, tc.in)
			b.AccumulateGram(h, x, tc.tokens, tc.in)
			checkGram(t, h, want, scale, tc.in, 1e-5*math.Sqrt(256))
			for i := range tc.in {
				for j := range i {
					if a, c := h[i*tc.in+j], h[j*tc.in+i]; math.Abs(a-c) > 1e-12*scale[i*tc.in+j] {
						t.Fatalf("h not symmetric: h[%d,%d] = %v, h[%d,%d] = %v", i, j, a, j, i, c)
					}
				}
			}
		})
	}
}

// testGramLong accumulates 10240 tokens, first in one call, then in calls of
// uneven sizes. Column j of every token holds the same value c_j, so float32
// rounding errors do not cancel: a float32 running sum over all tokens is off
// by up to 1e-4 (relative), while 256-token float32 blocks added in float64
// stay within 3e-6 (measured); the tolerance 1e-5 separates the two.
func testGramLong(t *testing.T, b kernels.Backend) {
	const tokens, in = 10240, 3
	r := rand.New(rand.NewPCG(11, 12))
	x := make([]float32, tokens*in)
	for i := range x {
		x[i] = float32(math.Sqrt(1.3)) * float32(1+float64(i%in)/8)
	}
	want, scale := gramRef(make([]float64, in*in), x, tokens, in)
	const tol = 1e-5
	t.Run("one call", func(t *testing.T) {
		h := make([]float64, in*in)
		b.AccumulateGram(h, x, tokens, in)
		checkGram(t, h, want, scale, in, tol)
	})
	t.Run("many calls", func(t *testing.T) {
		h := make([]float64, in*in)
		for t0 := 0; t0 < tokens; {
			n := min(tokens-t0, 1+r.IntN(700))
			b.AccumulateGram(h, x[t0*in:(t0+n)*in], n, in)
			t0 += n
		}
		checkGram(t, h, want, scale, in, tol)
	})
}

// testSetGram: kernels.SetGram (b's own SetGram when b is a
// kernels.GramSetter, else zeroing and AccumulateGram) gives bit for bit what
// AccumulateGram gives on an all-zero h, whatever h held before (NaN
// included), and zeroes h for zero tokens; elements past in·in are left
// alone.
func testSetGram(t *testing.T, b kernels.Backend) {
	r := rand.New(rand.NewPCG(15, 16))
	for _, tc := range []struct{ tokens, in int }{{0, 4}, {1, 1}, {7, 5}, {300, 33}, {600, 70}} {
		t.Run(fmt.Sprintf("%dx%d", tc.tokens, tc.in), func(t *testing.T) {
			x := make([]float32, tc.tokens*tc.in)
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			want := make([]float64, tc.in*tc.in)
			b.AccumulateGram(want, x, tc.tokens, tc.in)
			h := make([]float64, tc.in*tc.in+1)
			for i := range h {
				h[i] = math.NaN()
			}
			h[0] = 7
			kernels.SetGram(b, h, x, tc.tokens, tc.in)
			for i, w := range want {
				if math.Float64bits(h[i]) != math.Float64bits(w) {
					t.Fatalf("element %d: SetGram %v, AccumulateGram on zeros %v", i, h[i], w)
				}
			}
			if !math.IsNaN(h[len(h)-1]) {
				t.Errorf("SetGram wrote past in·in: %v", h[len(h)-1])
			}
		})
	}
}

func testCholesky(t *testing.T, b kernels.Backend) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, n := range []int{0, 1, 2, 5, 33, 100, 300} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			// A = G·Gᵀ + n·I is symmetric positive definite.
			g := make([]float64, n*n)
			for i := range g {
				g[i] = r.NormFloat64()
			}
			a := make([]float64, n*n)
			for i := range n {
				for j := range n {
					var s float64
					for l := range n {
						s += g[i*n+l] * g[j*n+l]
					}
					a[i*n+j] = s
				}
				a[i*n+i] += float64(n)
			}
			orig := append([]float64(nil), a...)
			// The upper triangle must not be read: poison it.
			for i := range n {
				for j := i + 1; j < n; j++ {
					a[i*n+j] = math.NaN()
				}
			}
			if err := b.Cholesky(a, n); err != nil {
				t.Fatalf("Cholesky: %v", err)
			}
			for i := range n {
				for j := i + 1; j < n; j++ {
					if a[i*n+j] != 0 {
						t.Fatalf("L[%d,%d] = %v above the diagonal, want 0", i, j, a[i*n+j])
					}
				}
			}
			for i := range n {
				for j := range i + 1 {
					var s, abs float64
					for l := range j + 1 {
						s += a[i*n+l] * a[j*n+l]
						abs += math.Abs(a[i*n+l] * a[j*n+l])
					}
					if d := math.Abs(s - orig[i*n+j]); d > 1e-13*float64(n)*abs {
						t.Fatalf("(L·Lᵀ)[%d,%d] = %v, want %v", i, j, s, orig[i*n+j])
					}
				}
			}
		})
	}
}

func testCholeskyNotPD(t *testing.T, b kernels.Backend) {
	tests := []struct {
		name string
		n    int
		a    []float64
	}{
		{"negative diagonal", 1, []float64{-1}},
		{"zero pivot", 2, []float64{1, 0, 1, 1}},
		{"indefinite", 3, []float64{4, 0, 0, 2, 1, 0, 0, 0, 1}},
		{"NaN", 2, []float64{1, 0, math.NaN(), 1}},
		{"late pivot", 260, notPDLate(260)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := b.Cholesky(tt.a, tt.n)
			if !errors.Is(err, kernels.ErrNotPositiveDefinite) {
				t.Errorf("Cholesky error = %v, want one wrapping kernels.ErrNotPositiveDefinite", err)
			}
		})
	}
}

func trans(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

// notPDLate returns an n×n matrix that is the identity except for a
// trailing 2×2 block [[1, 2], [2, 1]] (eigenvalue −1), so a blocked
// factorization fails only in its last block.
func notPDLate(n int) []float64 {
	a := make([]float64, n*n)
	for i := range n {
		a[i*n+i] = 1
	}
	a[(n-1)*n+n-2] = 2
	a[(n-2)*n+n-1] = 2
	return a
}
