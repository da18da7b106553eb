package solve

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/kernels/cpu"
)

type problemCase struct {
	name              string
	in, rows, tokens  int
	dist              scaleDist
	mask              maskKind
	seed              uint64
	emptyRow, fullRow bool // make row 0 fully pruned / row 1 fully kept
}

var problemCases = []problemCase{
	{name: "in64_lognormal_unstructured", in: 64, rows: 32, tokens: 32, dist: logNormal, mask: unstructured50, seed: 1},
	{name: "in128_pareto_2of4", in: 128, rows: 48, tokens: 64, dist: pareto, mask: nm24, seed: 2, emptyRow: true, fullRow: true},
	{name: "in256_lognormal_2of4", in: 256, rows: 40, tokens: 128, dist: logNormal, mask: nm24, seed: 3},
	{name: "in320_pareto_unstructured", in: 320, rows: 24, tokens: 200, dist: pareto, mask: unstructured50, seed: 4},
	{name: "in96_manytokens_random", in: 96, rows: 20, tokens: 400, dist: logNormal, mask: random50, seed: 5, emptyRow: true},
}

func (c problemCase) build() (h []float64, w []float32, pruned []bool) {
	rng := rand.New(rand.NewPCG(c.seed, 0x0971))
	h, norms := genHessian(rng, c.in, c.tokens, c.dist)
	w = genWeights(rng, c.rows, c.in)
	pruned = genMask(rng, w, norms, c.rows, c.in, c.mask)
	if c.emptyRow {
		for j := range c.in {
			pruned[j] = true
		}
	}
	if c.fullRow {
		for j := range c.in {
			pruned[c.in+j] = false
		}
	}
	return h, w, pruned
}

func modes() []struct {
	name    string
	float64 bool
} {
	return []struct {
		name    string
		float64 bool
	}{{"f64", true}, {"f32", false}}
}

// TestPCGMatchesDirect is requirement (a): for every row, the damped objective
// of the PCG result (default tolerance, no fallback) is within 1e-6 relative of
// the float64 direct solve's, in both GEMM precisions.
func TestPCGMatchesDirect(t *testing.T) {
	be := cpu.New(0)
	for _, c := range problemCases {
		for _, m := range modes() {
			t.Run(c.name+"/"+m.name, func(t *testing.T) {
				h, w, pruned := c.build()
				opts := DefaultOptions()
				opts.Float64 = m.float64
				opts.Fallback = false
				opts.MaxIter = 10 * c.in
				p, err := Prepare(h, c.in, opts)
				if err != nil {
					t.Fatal(err)
				}
				got := append([]float32(nil), w...)
				st, err := p.SolveRows(be, got, pruned, c.rows)
				if err != nil {
					t.Fatal(err)
				}
				if st.NotConverged != 0 || st.FallbackRows != 0 {
					t.Fatalf("PCG did not converge on all rows: %+v", st)
				}
				hd := damped(h, c.in, opts.Damping)
				in := c.in
				var worst float64
				for i := range c.rows {
					want := make([]float32, in)
					if err := DirectRow(h, in, w[i*in:i*in+in], pruned[i*in:i*in+in], want, opts.Damping); err != nil {
						t.Fatalf("row %d: DirectRow: %v", i, err)
					}
					fPCG, _ := Objective(hd, in, w[i*in:i*in+in], got[i*in:i*in+in], 1)
					fDir, _ := Objective(hd, in, w[i*in:i*in+in], want, 1)
					gap := math.Abs(fPCG - fDir)
					if fDir > 0 {
						gap /= fDir
					}
					worst = max(worst, gap)
					if gap > 1e-6 {
						t.Errorf("row %d: damped objective PCG %.12g, direct %.12g: relative gap %.3g > 1e-6", i, fPCG, fDir, gap)
					}
					for j := range in {
						if pruned[i*in+j] && got[i*in+j] != 0 {
							t.Fatalf("row %d: pruned input %d is %g, want exactly 0", i, j, got[i*in+j])
						}
					}
				}
				t.Logf("worst relative objective gap %.2g; iterations max %d mean %.1f", worst, st.Iterations, st.MeanIterations)
			})
		}
	}
}

// TestNeverWorseThanMasking is requirement (b), per row and with the UNDAMPED
// H. Proof that damping cannot break it: let f(v) = (v−w)ᵀH(v−w) and
// μ = λ·mean(diag H) ≥ 0. The solve minimises g(v) = f(v) + μ‖v−w‖² over
// F = {v : v_P = 0}, and the masked row w_m = w ⊙ 1_S lies in F, so
// f(ŵ) + μ‖ŵ−w‖² ≤ f(w_m) + μ‖w_m−w‖² = f(w_m) + μ‖w_P‖². Every v ∈ F has
// ‖v−w‖² = ‖v_S−w_S‖² + ‖w_P‖² ≥ ‖w_P‖², hence f(ŵ) ≤ f(w_m). For the PCG
// iterate the same holds because CG decreases g monotonically from its start
// δ = 0, i.e. from w_m; the slack below covers only rounding.
func TestNeverWorseThanMasking(t *testing.T) {
	be := cpu.New(0)
	for _, c := range problemCases {
		for _, m := range modes() {
			t.Run(c.name+"/"+m.name, func(t *testing.T) {
				h, w, pruned := c.build()
				opts := DefaultOptions()
				opts.Float64 = m.float64
				opts.Damping = 0.1 // large damping: the case the proof is about
				p, err := Prepare(h, c.in, opts)
				if err != nil {
					t.Fatal(err)
				}
				got := append([]float32(nil), w...)
				st, err := p.SolveRows(be, got, pruned, c.rows)
				if err != nil {
					t.Fatal(err)
				}
				in := c.in
				masked := maskedCopy(w, pruned)
				for i := range c.rows {
					before, _ := Objective(h, in, w[i*in:i*in+in], masked[i*in:i*in+in], 1)
					after, _ := Objective(h, in, w[i*in:i*in+in], got[i*in:i*in+in], 1)
					if after > before*(1+1e-9) {
						t.Errorf("row %d: undamped objective rose from %.12g to %.12g", i, before, after)
					}
				}
				// The statistics agree with Objective.
				nb, den := Objective(h, in, w, masked, c.rows)
				na, _ := Objective(h, in, w, got, c.rows)
				for _, q := range []struct {
					name      string
					got, want float64
				}{{"ObjBefore", st.ObjBefore, nb}, {"ObjAfter", st.ObjAfter, na}, {"Denom", st.Denom, den}} {
					if math.Abs(q.got-q.want) > 1e-9*math.Abs(q.want)+1e-12*den {
						t.Errorf("Stats.%s = %.12g, Objective gives %.12g", q.name, q.got, q.want)
					}
				}
				if !(st.ObjAfter < st.ObjBefore) {
					t.Errorf("no improvement: %+v", st)
				}
			})
		}
	}
}

// TestGEMMRowIndependence checks the backend property that batch invariance
// rests on: row i of A·B does not depend on how many rows A has.
func TestGEMMRowIndependence(t *testing.T) {
	be := cpu.New(0)
	rng := rand.New(rand.NewPCG(9, 9))
	const m, n = 37, 203
	a64, b64 := make([]float64, m*n), make([]float64, n*n)
	a32, b32 := make([]float32, m*n), make([]float32, n*n)
	for i := range a64 {
		a64[i] = rng.NormFloat64()
		a32[i] = float32(a64[i])
	}
	for i := range b64 {
		b64[i] = rng.NormFloat64()
		b32[i] = float32(b64[i])
	}
	full64, full32 := make([]float64, m*n), make([]float32, m*n)
	be.Dgemm(false, false, m, n, n, 1, a64, n, b64, n, 0, full64, n)
	be.Sgemm(false, false, m, n, n, 1, a32, n, b32, n, 0, full32, n)
	for _, k := range []int{1, 5, 16, 36} {
		part64, part32 := make([]float64, (m-k)*n), make([]float32, (m-k)*n)
		be.Dgemm(false, false, m-k, n, n, 1, a64[k*n:], n, b64, n, 0, part64, n)
		be.Sgemm(false, false, m-k, n, n, 1, a32[k*n:], n, b32, n, 0, part32, n)
		if d := cmp.Diff(full64[k*n:], part64); d != "" {
			t.Errorf("Dgemm rows from %d differ when computed alone (-all +part):\n%s", k, d)
		}
		if d := cmp.Diff(full32[k*n:], part32); d != "" {
			t.Errorf("Sgemm rows from %d differ when computed alone (-all +part):\n%s", k, d)
		}
	}
}

// TestBatchInvariance is requirement (c): solving rows [0,k) and [k,rows)
// separately gives bit-for-bit the same weights as solving all at once.
func TestBatchInvariance(t *testing.T) {
	be := cpu.New(0)
	for _, c := range problemCases[:3] {
		for _, m := range modes() {
			t.Run(c.name+"/"+m.name, func(t *testing.T) {
				h, w, pruned := c.build()
				opts := DefaultOptions()
				opts.Float64 = m.float64
				opts.MaxIter = 15 // some rows converge, some fall back
				p, err := Prepare(h, c.in, opts)
				if err != nil {
					t.Fatal(err)
				}
				all := append([]float32(nil), w...)
				if _, err := p.SolveRows(be, all, pruned, c.rows); err != nil {
					t.Fatal(err)
				}
				in := c.in
				for _, k := range []int{1, c.rows / 3, c.rows - 1} {
					split := append([]float32(nil), w...)
					if _, err := p.SolveRows(be, split[:k*in], pruned[:k*in], k); err != nil {
						t.Fatal(err)
					}
					if _, err := p.SolveRows(be, split[k*in:], pruned[k*in:], c.rows-k); err != nil {
						t.Fatal(err)
					}
					if d := cmp.Diff(all, split); d != "" {
						t.Errorf("split at %d differs (-all +split):\n%s", k, d)
					}
				}
			})
		}
	}
}

// TestFallbackMatchesDirect forces every row through the Cholesky fallback.
func TestFallbackMatchesDirect(t *testing.T) {
	be := cpu.New(0)
	c := problemCases[1]
	h, w, pruned := c.build()
	opts := DefaultOptions()
	opts.MaxIter = 0
	p, err := Prepare(h, c.in, opts)
	if err != nil {
		t.Fatal(err)
	}
	got := append([]float32(nil), w...)
	st, err := p.SolveRows(be, got, pruned, c.rows)
	if err != nil {
		t.Fatal(err)
	}
	// Row 0 is empty and row 1 fully kept: neither needs a solve.
	if want := c.rows - 2; st.FallbackRows != want || st.EmptyRows != 1 {
		t.Fatalf("FallbackRows = %d, EmptyRows = %d; want %d, 1", st.FallbackRows, st.EmptyRows, want)
	}
	in := c.in
	want := make([]float32, c.rows*in)
	for i := range c.rows {
		if err := DirectRow(h, in, w[i*in:i*in+in], pruned[i*in:i*in+in], want[i*in:i*in+in], opts.Damping); err != nil {
			t.Fatal(err)
		}
	}
	// Two float64 Cholesky implementations: equal to float32 rounding.
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-6*math.Abs(float64(want[i]))+1e-9 {
			t.Fatalf("entry %d: fallback %g, DirectRow %g", i, got[i], want[i])
		}
	}
	if d := cmp.Diff(make([]float32, in), got[:in]); d != "" {
		t.Errorf("empty row not zeroed:\n%s", d)
	}
	if d := cmp.Diff(w[in:2*in], got[in:2*in]); d != "" {
		t.Errorf("fully kept row changed:\n%s", d)
	}
}

// TestErrors is requirement (d).
func TestErrors(t *testing.T) {
	be := cpu.New(1)
	const in = 4
	eye := func(n int) []float64 {
		h := make([]float64, n*n)
		for j := range n {
			h[j*n+j] = 1
		}
		return h
	}
	t.Run("nan in weights", func(t *testing.T) {
		p, err := Prepare(eye(in), in, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		w := []float32{1, 2, 3, 4, 5, 6, float32(math.NaN()), 8}
		orig := append([]float32(nil), w...)
		_, err = p.SolveRows(be, w, make([]bool, 2*in), 2)
		var nf *NonFiniteError
		if !errors.As(err, &nf) || nf.Operand != "weight" || nf.Row != 1 || nf.Col != 2 {
			t.Fatalf("err = %v, want *NonFiniteError for weight [1, 2]", err)
		}
		if d := cmp.Diff(orig, w, cmp.Comparer(func(a, b float32) bool { return a == b || a != a && b != b })); d != "" {
			t.Errorf("weights modified on error:\n%s", d)
		}
	})
	t.Run("inf in hessian", func(t *testing.T) {
		h := eye(in)
		h[1*in+3] = math.Inf(1)
		_, err := Prepare(h, in, DefaultOptions())
		var nf *NonFiniteError
		if !errors.As(err, &nf) || nf.Operand != "hessian" || nf.Row != 1 || nf.Col != 3 {
			t.Fatalf("err = %v, want *NonFiniteError for hessian [1, 3]", err)
		}
	})
	t.Run("zero hessian", func(t *testing.T) {
		_, err := Prepare(make([]float64, in*in), in, DefaultOptions())
		var npd *NotPositiveDefiniteError
		if !errors.As(err, &npd) || !errors.Is(err, kernels.ErrNotPositiveDefinite) {
			t.Fatalf("err = %v, want *NotPositiveDefiniteError", err)
		}
	})
	t.Run("bad options", func(t *testing.T) {
		for _, o := range []Options{{Damping: -1}, {Tol: math.NaN()}, {MaxIter: -1}} {
			if _, err := Prepare(eye(in), in, o); !errors.Is(err, ErrInvalidOptions) {
				t.Errorf("Prepare(%+v) err = %v, want ErrInvalidOptions", o, err)
			}
		}
	})
	// An indefinite Hessian: inputs 0 and 1 have unit variance and
	// correlation c > 1 (impossible for XᵀX); input 2 feeds the right-hand
	// side. Keeping {0, 1} needs damping μ > c − 1 (mean(diag H) = 1).
	indefinite := func(c float64) []float64 {
		h := eye(3)
		h[0*3+1], h[1*3+0] = c, c
		h[0*3+2], h[2*3+0] = 0.5, 0.5
		return h
	}
	t.Run("damping raised", func(t *testing.T) {
		p, err := Prepare(indefinite(1.05), 3, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		w := []float32{1, 1, 1, 1, 1, 1}
		pruned := []bool{false, false, true, false, true, true}
		st, err := p.SolveRows(be, w, pruned, 2)
		if err != nil {
			t.Fatal(err)
		}
		if st.Damping != 0.1 || st.DampedRows != 1 || st.FallbackRows != 1 {
			t.Errorf("Damping = %g, DampedRows = %d, FallbackRows = %d; want 0.1, 1, 1", st.Damping, st.DampedRows, st.FallbackRows)
		}
		// Row 0 solved with damping 0.1 exactly as the oracle does.
		want := make([]float32, 3)
		if err := DirectRow(indefinite(1.05), 3, []float32{1, 1, 1}, pruned[:3], want, 0.1); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, w[:3], cmp.Comparer(func(a, b float32) bool { return math.Abs(float64(a-b)) <= 1e-6 })); d != "" {
			t.Errorf("row 0 (-DirectRow +SolveRows):\n%s", d)
		}
	})
	t.Run("damping cap", func(t *testing.T) {
		p, err := Prepare(indefinite(3), 3, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.SolveRows(be, []float32{1, 1, 1}, []bool{false, false, true}, 1)
		var npd *NotPositiveDefiniteError
		if !errors.As(err, &npd) || npd.Damping != MaxDamping || npd.Row != 0 {
			t.Fatalf("err = %v, want *NotPositiveDefiniteError{Row: 0, Damping: %g}", err, MaxDamping)
		}
		if err := DirectRow(indefinite(3), 3, []float32{1, 1, 1}, []bool{false, false, true}, make([]float32, 3), 0.01); !errors.As(err, &npd) {
			t.Errorf("DirectRow err = %v, want *NotPositiveDefiniteError", err)
		}
	})
	t.Run("no fallback", func(t *testing.T) {
		o := DefaultOptions()
		o.Fallback = false
		p, err := Prepare(indefinite(1.05), 3, o)
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.SolveRows(be, []float32{1, 1, 1}, []bool{false, false, true}, 1)
		var npd *NotPositiveDefiniteError
		if !errors.As(err, &npd) {
			t.Fatalf("err = %v, want *NotPositiveDefiniteError (PCG breakdown without fallback)", err)
		}
	})
}

// golden is testdata/golden_small.json, made by tools/oracle/solve_golden.py.
type golden struct {
	In, Rows   int
	Damping    float64
	H          []float64
	W          []float64
	Pruned     []bool
	ClosedForm []float64 `json:"closed_form"`
	OBS        []float64 `json:"obs"`
	ObjBefore  float64   `json:"obj_before"`
	ObjAfter   float64   `json:"obj_after"`
	Denom      float64
}

// TestGolden is requirement (e): numpy's closed form and OBS formula.
func TestGolden(t *testing.T) {
	raw, err := os.ReadFile("testdata/golden_small.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	in, rows := g.In, g.Rows
	w := make([]float32, len(g.W))
	for i, v := range g.W {
		w[i] = float32(v)
	}
	near := cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b)) })
	asF64 := func(v []float32) []float64 {
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(x)
		}
		return out
	}
	direct := make([]float32, rows*in)
	for i := range rows {
		if err := DirectRow(g.H, in, w[i*in:i*in+in], g.Pruned[i*in:i*in+in], direct[i*in:i*in+in], g.Damping); err != nil {
			t.Fatal(err)
		}
	}
	if d := cmp.Diff(g.ClosedForm, asF64(direct), near); d != "" {
		t.Errorf("DirectRow vs numpy closed form:\n%s", d)
	}
	if d := cmp.Diff(g.OBS, asF64(direct), near); d != "" {
		t.Errorf("DirectRow vs numpy OBS formula:\n%s", d)
	}
	for _, m := range modes() {
		opts := DefaultOptions()
		opts.Float64 = m.float64
		opts.Tol = 1e-10
		p, err := Prepare(g.H, in, opts)
		if err != nil {
			t.Fatal(err)
		}
		got := append([]float32(nil), w...)
		st, err := p.SolveRows(cpu.New(1), got, g.Pruned, rows)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(g.ClosedForm, asF64(got), near); d != "" {
			t.Errorf("%s: SolveRows vs numpy closed form:\n%s", m.name, d)
		}
		want := Stats{ObjBefore: g.ObjBefore, ObjAfter: g.ObjAfter, Denom: g.Denom}
		gotObj := Stats{ObjBefore: st.ObjBefore, ObjAfter: st.ObjAfter, Denom: st.Denom}
		if d := cmp.Diff(want, gotObj, near); d != "" {
			t.Errorf("%s: objectives (-numpy +SolveRows):\n%s", m.name, d)
		}
		if st.EmptyRows != 1 {
			t.Errorf("%s: EmptyRows = %d, want 1", m.name, st.EmptyRows)
		}
	}
}
