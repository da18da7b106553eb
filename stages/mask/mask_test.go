package mask

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParsePattern(t *testing.T) {
	tests := []struct {
		sparsity float64
		nm       string
		want     Pattern
		wantErr  string
	}{
		{0.5, "", Pattern{Sparsity: 0.5}, ""},
		{0, "", Pattern{}, ""},
		{0, "2:4", Pattern{N: 2, M: 4}, ""},
		{0, " 4 : 8 ", Pattern{N: 4, M: 8}, ""},
		{1, "", Pattern{}, "--sparsity"},
		{-0.1, "", Pattern{}, "--sparsity"},
		{math.NaN(), "", Pattern{}, "--sparsity"},
		{0.5, "2:4", Pattern{}, "not both"},
		{0, "2/4", Pattern{}, "--pattern"},
		{0, "4:4", Pattern{}, "--pattern"},
		{0, "0:4", Pattern{}, "--pattern"},
		{0, "3:2", Pattern{}, "--pattern"},
		{0, "-2:4", Pattern{}, "--pattern"},
		{0, "2:", Pattern{}, "--pattern"},
		{0, "2:4:8", Pattern{}, "--pattern"},
		{0, "1:99999999", Pattern{}, "--pattern"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/%q", tt.sparsity, tt.nm), func(t *testing.T) {
			got, err := ParsePattern(tt.sparsity, tt.nm)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParsePattern(f *testing.F) {
	f.Add(0.5, "")
	f.Add(0.0, "2:4")
	f.Fuzz(func(t *testing.T, sparsity float64, nm string) {
		p, err := ParsePattern(sparsity, nm)
		if err != nil {
			return
		}
		if p.IsNM() {
			if !(0 < p.N && p.N < p.M) {
				t.Fatalf("accepted %+v", p)
			}
			if q, err := ParsePattern(0, p.String()); err != nil || q != p {
				t.Fatalf("String round trip: %+v -> %q -> %+v, %v", p, p.String(), q, err)
			}
		} else if !(p.Sparsity >= 0 && p.Sparsity < 1) {
			t.Fatalf("accepted %+v", p)
		}
	})
}

func TestPatternCheckAndPerRow(t *testing.T) {
	nm24 := Pattern{N: 2, M: 4}
	if err := nm24.Check(576); err != nil {
		t.Errorf("2:4 on 576: %v", err)
	}
	if err := nm24.Check(18); err == nil || !strings.Contains(err.Error(), "18") {
		t.Errorf("2:4 on 18: err = %v, want one naming the width 18", err)
	}
	if err := (Pattern{Sparsity: 0.5}).Check(0); err == nil {
		t.Errorf("width 0: no error")
	}
	for _, tt := range []struct {
		p    Pattern
		cols int
		want int
	}{
		{Pattern{Sparsity: 0.5}, 576, 288},
		{Pattern{Sparsity: 0.3}, 24, 7},    // 7.2
		{Pattern{Sparsity: 0.29}, 100, 28}, // 28.999999999999996 in float64, as in Python
		{Pattern{Sparsity: 0.7}, 100, 70},  // 70.00000000000001
		{Pattern{Sparsity: 0}, 10, 0},
		{Pattern{N: 2, M: 4}, 16, 8},
		{Pattern{N: 1, M: 4}, 16, 12},
	} {
		if got := tt.p.PerRow(tt.cols); got != tt.want {
			t.Errorf("%v.PerRow(%d) = %d, want %d", tt.p, tt.cols, got, tt.want)
		}
	}
}

type golden struct {
	Rows, Cols, Tokens int
	W                  []float32
	X                  []float32
	Norms              []float64
	Cases              []struct {
		Selector string
		Sparsity float64
		Pattern  string
		Pruned   []int
	}
}

// TestGolden compares with masks from tools/oracle/mask_golden.py (numpy,
// cross-checked there against the Wanda reference's torch formulation).
func TestGolden(t *testing.T) {
	data, err := os.ReadFile("testdata/mask_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	// The fixture's norms are ‖X_j‖₂ of its X.
	for j := range g.Cols {
		var s float64
		for t := range g.Tokens {
			v := float64(g.X[t*g.Cols+j])
			s += v * v
		}
		if d := math.Abs(math.Sqrt(s) - g.Norms[j]); d > 1e-12 {
			t.Fatalf("norm %d: %v vs fixture %v", j, math.Sqrt(s), g.Norms[j])
		}
	}
	if len(g.Cases) != 12 {
		t.Fatalf("%d cases in the fixture, want 12", len(g.Cases))
	}
	for _, c := range g.Cases {
		t.Run(fmt.Sprintf("%s/%v/%s", c.Selector, c.Sparsity, c.Pattern), func(t *testing.T) {
			sel, err := New(c.Selector, nil)
			if err != nil {
				t.Fatal(err)
			}
			p, err := ParsePattern(c.Sparsity, c.Pattern)
			if err != nil {
				t.Fatal(err)
			}
			m := NewMask(g.Rows, g.Cols)
			if err := sel.Select(g.W, g.Rows, g.Cols, g.Norms, p, m); err != nil {
				t.Fatal(err)
			}
			got := make([]int, len(m.Pruned))
			for i, b := range m.Pruned {
				if b {
					got[i] = 1
				}
			}
			if diff := cmp.Diff(c.Pruned, got); diff != "" {
				t.Errorf("mask (-oracle +got):\n%s", diff)
			}
		})
	}
}

// tiedLayer has small integer weights (many ties) and norms with repeats.
func tiedLayer(r *rand.Rand, rows, cols int) ([]float32, []float64) {
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(r.IntN(9) - 4)
	}
	norms := make([]float64, cols)
	for j := range norms {
		norms[j] = float64(r.IntN(3))
	}
	return w, norms
}

// checkRowOrder verifies the defining property of the selection for one
// group of columns [lo, hi) of one row: exactly k pruned, and every pruned
// index comes before every kept one in (score, index) order.
func checkRowOrder(t *testing.T, score []float64, pruned []bool, lo, hi, k int) {
	t.Helper()
	n := 0
	for j := lo; j < hi; j++ {
		if !pruned[j] {
			continue
		}
		n++
		for l := lo; l < hi; l++ {
			if !pruned[l] && (score[j] > score[l] || score[j] == score[l] && j > l) {
				t.Fatalf("pruned column %d (score %v) but kept %d (score %v)", j, score[j], l, score[l])
			}
		}
	}
	if n != k {
		t.Fatalf("columns [%d,%d): %d pruned, want %d", lo, hi, n, k)
	}
}

func TestSelectBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	patterns := []Pattern{{Sparsity: 0.5}, {Sparsity: 0.3}, {Sparsity: 0.95}, {Sparsity: 0}, {N: 2, M: 4}, {N: 1, M: 8}, {N: 7, M: 8}}
	for _, name := range []string{"magnitude", "wanda"} {
		sel, _ := New(name, nil)
		for _, p := range patterns {
			t.Run(name+"/"+p.String(), func(t *testing.T) {
				const rows, cols = 9, 40
				w, norms := tiedLayer(r, rows, cols)
				m := NewMask(rows, cols)
				for i := range m.Pruned {
					m.Pruned[i] = true // Select must overwrite
				}
				if err := sel.Select(w, rows, cols, norms, p, m); err != nil {
					t.Fatal(err)
				}
				for i := range rows {
					score := make([]float64, cols)
					for j := range cols {
						score[j] = math.Abs(float64(w[i*cols+j]))
						if name == "wanda" {
							score[j] *= norms[j]
						}
					}
					if p.IsNM() {
						for lo := 0; lo < cols; lo += p.M {
							checkRowOrder(t, score, m.Row(i), lo, lo+p.M, p.M-p.N)
						}
					} else {
						checkRowOrder(t, score, m.Row(i), 0, cols, p.PerRow(cols))
					}
				}
				if got, want := m.Count(), rows*p.PerRow(cols); got != want {
					t.Errorf("Count = %d, want %d", got, want)
				}
			})
		}
	}
}

// TestRowBatches: any split of the rows into batches gives the same mask.
func TestRowBatches(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	const rows, cols = 23, 32
	w, norms := tiedLayer(r, rows, cols)
	for _, p := range []Pattern{{Sparsity: 0.6}, {N: 2, M: 4}} {
		sel, _ := New("wanda", nil)
		whole := NewMask(rows, cols)
		if err := sel.Select(w, rows, cols, norms, p, whole); err != nil {
			t.Fatal(err)
		}
		for _, bs := range []int{1, 5, 22} {
			var got []bool
			for lo := 0; lo < rows; lo += bs {
				hi := min(rows, lo+bs)
				m := NewMask(hi-lo, cols)
				if err := SelectLayer(sel, "l", lo, w[lo*cols:hi*cols], hi-lo, cols, norms, p, m); err != nil {
					t.Fatal(err)
				}
				got = append(got, m.Pruned...)
			}
			if diff := cmp.Diff(whole.Pruned, got); diff != "" {
				t.Errorf("%v, batches of %d (-whole +batched):\n%s", p, bs, diff)
			}
		}
	}
}

func TestWandaUsesNorms(t *testing.T) {
	// |W| alone would prune column 0; the norms make column 1 the weakest.
	w := []float32{1, 2, 3, 4}
	norms := []float64{10, 0.1, 1, 1}
	for name, want := range map[string][]bool{
		"magnitude": {true, true, false, false},
		"wanda":     {false, true, true, false},
	} {
		sel, _ := New(name, nil)
		m := NewMask(1, 4)
		if err := sel.Select(w, 1, 4, norms, Pattern{Sparsity: 0.5}, m); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, m.Pruned); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
}

func TestNonFinite(t *testing.T) {
	nan := float32(math.NaN())
	tests := []struct {
		name   string
		sel    string
		w      []float32
		norms  []float64
		target any
		want   []string
	}{
		{"NaN weight", "magnitude", []float32{1, 2, 3, 4, 5, nan, 7, 8}, nil, &NonFiniteError{},
			[]string{"model.layers.1.mlp.up_proj", "row 11", "column 1", "NaN"}},
		{"Inf weight", "wanda", []float32{float32(math.Inf(-1)), 2, 3, 4, 5, 6, 7, 8}, []float64{1, 1, 1, 1}, &NonFiniteError{},
			[]string{"model.layers.1.mlp.up_proj", "row 10", "column 0", "-Inf"}},
		{"NaN norm", "wanda", []float32{1, 2, 3, 4, 5, 6, 7, 8}, []float64{1, math.NaN(), 1, 1}, &NonFiniteError{},
			[]string{"model.layers.1.mlp.up_proj", "column norm", "column 1"}},
		{"negative norm", "wanda", []float32{1, 2, 3, 4, 5, 6, 7, 8}, []float64{1, 1, -1, 1}, &NonFiniteError{},
			[]string{"column 2"}},
		{"no norms", "wanda", []float32{1, 2, 3, 4, 5, 6, 7, 8}, nil, nil,
			[]string{"model.layers.1.mlp.up_proj", "wanda", "norms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel, _ := New(tt.sel, nil)
			err := SelectLayer(sel, "model.layers.1.mlp.up_proj", 10, tt.w, 2, 4, tt.norms, Pattern{Sparsity: 0.5}, NewMask(2, 4))
			if err == nil {
				t.Fatal("no error")
			}
			if tt.target != nil {
				if _, ok := errors.AsType[*NonFiniteError](err); !ok {
					t.Errorf("err %v is not a *NonFiniteError", err)
				}
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
	// The layer width is checked against the pattern first.
	sel, _ := New("magnitude", nil)
	err := SelectLayer(sel, "model.layers.0.mlp.down_proj", 0, make([]float32, 6), 1, 6, nil, Pattern{N: 2, M: 4}, NewMask(1, 6))
	if err == nil || !strings.Contains(err.Error(), "down_proj") || !strings.Contains(err.Error(), "6") {
		t.Errorf("2:4 on width 6: err = %v", err)
	}
}

func TestRegistry(t *testing.T) {
	if diff := cmp.Diff([]string{"magnitude", "wanda"}, Names()); diff != "" {
		t.Errorf("Names (-want +got):\n%s", diff)
	}
	_, err := New("sparsegptt", nil)
	if !errors.Is(err, ErrUnknownSelector) || !strings.Contains(err.Error(), "wanda") {
		t.Errorf("unknown name: err = %v, want ErrUnknownSelector listing the names", err)
	}
	if _, err := New("wanda", map[string]string{"alpha": "1"}); err == nil || !strings.Contains(err.Error(), "alpha") {
		t.Errorf("unknown parameter: err = %v", err)
	}
	s, err := New("magnitude", map[string]string{})
	if err != nil || s.Name() != "magnitude" {
		t.Errorf("New(magnitude) = %v, %v", s, err)
	}
	defer func() {
		if recover() == nil {
			t.Error("duplicate Register did not panic")
		}
	}()
	Register("wanda", nil)
}

func TestSelectPanics(t *testing.T) {
	sel, _ := New("wanda", nil)
	tests := map[string]func(){
		"short w":     func() { sel.Select(make([]float32, 7), 2, 4, make([]float64, 4), Pattern{}, NewMask(2, 4)) },
		"dst shape":   func() { sel.Select(make([]float32, 8), 2, 4, make([]float64, 4), Pattern{}, NewMask(4, 2)) },
		"norms len":   func() { sel.Select(make([]float32, 8), 2, 4, make([]float64, 3), Pattern{}, NewMask(2, 4)) },
		"bad pattern": func() { sel.Select(make([]float32, 6), 1, 6, make([]float64, 6), Pattern{N: 2, M: 4}, NewMask(1, 6)) },
		"apply":       func() { NewMask(2, 2).Apply(make([]float32, 3)) },
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}

func TestApply(t *testing.T) {
	m := &Mask{Rows: 1, Cols: 4, Pruned: []bool{true, false, true, false}}
	w := []float32{1, 2, 3, 4}
	m.Apply(w)
	if diff := cmp.Diff([]float32{0, 2, 0, 4}, w); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// BenchmarkWanda selects a 50% Wanda mask of a 1536×576 layer (gate_proj
// of SmolLM2-135M) on one goroutine. Sample (2 shared cores under a load
// average of 12, so several times slower than on an idle machine):
//
//	go test -run XXX -bench Wanda -cpu 1 ./stages/mask
//	BenchmarkWanda/0.5   14    99136011 ns/op   64542 ns/row
//	BenchmarkWanda/2:4   33    36050068 ns/op   23470 ns/row
func BenchmarkWanda(b *testing.B) {
	const rows, cols = 1536, 576
	r := rand.New(rand.NewPCG(7, 7))
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(r.NormFloat64())
	}
	norms := make([]float64, cols)
	for j := range norms {
		norms[j] = r.Float64()
	}
	sel, _ := New("wanda", nil)
	m := NewMask(rows, cols)
	for _, p := range []Pattern{{Sparsity: 0.5}, {N: 2, M: 4}} {
		b.Run(p.String(), func(b *testing.B) {
			for b.Loop() {
				if err := sel.Select(w, rows, cols, norms, p, m); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(b.N*rows), "ns/row")
		})
	}
}
