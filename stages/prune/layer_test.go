package prune

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/stages/hessian"
	"github.com/optima-llm/optima/stages/mask"
	"github.com/optima-llm/optima/stages/solve"
	"github.com/optima-llm/optima/stages/update"
)

// randomLayer returns a [rows, in] weight and the Hessian of tokens
// heavy-tailed calibration inputs.
func randomLayer(t *testing.T, rng *rand.Rand, rows, in, tokens int) ([]float32, *hessian.Hessian) {
	t.Helper()
	x := make([]float32, tokens*in)
	for j := range in {
		sc := math.Exp(rng.NormFloat64())
		for k := range tokens {
			x[k*in+j] = float32(rng.NormFloat64() * sc)
		}
	}
	h := hessian.New("g", in)
	if err := h.Add(cpu.New(1), x, tokens); err != nil {
		t.Fatal(err)
	}
	w := make([]float32, rows*in)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	return w, h
}

func maskOf(w []float32) []bool {
	m := make([]bool, len(w))
	for i, v := range w {
		m[i] = v == 0
	}
	return m
}

// TestOptimaNoWorseThanOwn: for every selector, --update optima on the
// selector's mask leaves a layer objective no larger than the selector's own
// update (own = none for magnitude and Wanda), when the solve is undamped and
// thus the exact minimiser of the reported (undamped) objective. With the
// default 1% damping the results are only logged: optima then minimises the
// damped objective and can end above an own update by a fraction of a
// percent (ADMM 2:4 here).
func TestOptimaNoWorseThanOwn(t *testing.T) {
	be := cpu.New(2)
	rng := rand.New(rand.NewPCG(11, 12))
	rows, in := 24, 64
	w0, h := randomLayer(t, rng, rows, in, 400)
	for _, method := range []string{"sparsegpt", "thanos", "admm", "wanda", "magnitude"} {
		for _, pat := range []string{"", "2:4"} {
			for _, damping := range []float64{0, 0.01} {
				name := method + "/" + pat + "/damping=" + strconv.FormatFloat(damping, 'g', -1, 64)
				t.Run(name, func(t *testing.T) {
					cfg := &Config{Method: method, Sparsity: 0.5, Pattern: pat, Solve: solve.DefaultOptions()}
					if pat != "" {
						cfg.Sparsity = 0
					}
					cfg.Solve.Damping = damping
					if method == "sparsegpt" || method == "thanos" {
						cfg.MethodParams = map[string]string{"blocksize": "16"}
					}
					sel, err := mask.New(method, cfg.MethodParams)
					if err != nil {
						t.Fatal(err)
					}
					p, err := cfg.MaskPattern()
					if err != nil {
						t.Fatal(err)
					}
					run := func(upd string) ([]float32, BatchResult) {
						c := *cfg
						c.Update = upd
						w := slices.Clone(w0)
						res, err := SelectAndUpdate(be, &c, sel, p, "l", 0, w, rows, in, h)
						if err != nil {
							t.Fatal(err)
						}
						return w, res
					}
					baseline := UpdateOwn
					if !mask.IsLayerSelector(method) {
						baseline = UpdateNone
					}
					wOwn, own := run(baseline)
					wOpt, opt := run(UpdateOptima)
					_, none := run(UpdateNone)
					if d := cmp.Diff(maskOf(wOwn), maskOf(wOpt)); d != "" && baseline == UpdateOwn {
						// a kept weight may be exactly 0 only by accident
						t.Errorf("own and optima masks differ:\n%s", d)
					}
					if own.Pruned != opt.Pruned || own.Pruned == 0 {
						t.Errorf("pruned %d (own) vs %d (optima)", own.Pruned, opt.Pruned)
					}
					// Undamped, optima is the exact minimiser of the reported
					// objective on this mask. Damped, it minimises another
					// objective and may lose a little (seen: ADMM 2:4, 0.2%).
					if damping == 0 && !(opt.Stats.ObjAfter <= own.Stats.ObjAfter*(1+1e-9)) {
						t.Errorf("optima objective %.6g > %s %.6g", opt.Stats.ObjAfter, baseline, own.Stats.ObjAfter)
					}
					if !(own.Stats.ObjBefore == none.Stats.ObjAfter && opt.Stats.ObjBefore > 0) {
						t.Errorf("mask-only objectives disagree: own %g, none %g", own.Stats.ObjBefore, none.Stats.ObjAfter)
					}
					if baseline == UpdateOwn && !(own.Stats.ObjAfter < own.Stats.ObjBefore) {
						t.Errorf("own update %g not below masking %g", own.Stats.ObjAfter, own.Stats.ObjBefore)
					}
					t.Logf("rel. error: mask %.4g, %s %.4g, optima %.4g", own.Stats.ObjBefore/own.Stats.Denom, baseline, own.Stats.ObjAfter/own.Stats.Denom, opt.Stats.ObjAfter/opt.Stats.Denom)
				})
			}
		}
	}
}

func TestValidateOwn(t *testing.T) {
	base := Config{Model: "m", Calib: "c", Sparsity: 0.5, NSamples: 4, SeqLen: 8, Shards: 2, Solve: solve.DefaultOptions()}
	for _, tc := range []struct {
		method, update string
		params         map[string]string
		wantErr        string
	}{
		{"sparsegpt", UpdateOwn, nil, ""},
		{"thanos", UpdateOptima, nil, ""},
		{"admm", UpdateNone, map[string]string{"iters": "5", "prune_iters": "3"}, ""},
		{"wanda", UpdateOwn, nil, "has no weight update of its own"},
		{"magnitude", UpdateOwn, nil, "--update own"},
		{"sparsegpt", UpdateOwn, map[string]string{"bogus": "1"}, "--method"},
	} {
		c := base
		c.Method, c.Update, c.MethodParams = tc.method, tc.update, tc.params
		err := c.Validate()
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s/%s: err %v, want %q", tc.method, tc.update, err, tc.wantErr)
		}
	}
	c := base
	c.Method, c.RowBatch = "thanos", 3
	if got := c.RowBatches(10, 4); !cmp.Equal(got, [][2]int{{0, 10}}) {
		t.Errorf("layer-wide RowBatches = %v, want one batch", got)
	}
}

// TestSelectLayerNotPositiveDefinite: a Hessian that no damping step fixes
// is an error naming the layer and wrapping kernels.ErrNotPositiveDefinite.
func TestSelectLayerNotPositiveDefinite(t *testing.T) {
	be := cpu.New(1)
	in := 8
	h := hessian.New("g", in)
	h.Tokens = 1
	for j := range in {
		h.Sum[j*in+j] = 1
	}
	h.Sum[0] = -100 // H_00 far below −mean(diag H)
	sel, _ := mask.New("sparsegpt", map[string]string{"blocksize": "8"})
	w := make([]float32, 2*in)
	for i := range w {
		w[i] = float32(i + 1)
	}
	_, _, _, err := SelectLayer(be, sel.(mask.LayerSelector), mask.Pattern{Sparsity: 0.5}, "model.layers.0.mlp.up_proj", w, 2, in, h)
	var npd *update.NotPositiveDefiniteError
	if !errors.As(err, &npd) || npd.Layer != "model.layers.0.mlp.up_proj" || !errors.Is(err, kernels.ErrNotPositiveDefinite) {
		t.Fatalf("err = %v, want *update.NotPositiveDefiniteError naming the layer", err)
	}
}
