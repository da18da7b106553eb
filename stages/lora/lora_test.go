package lora

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

type golden struct {
	Out, In   int
	RankRatio float64 `json:"rank_ratio"`
	Rank      int
	E, H      []float64
	ColNorms  []float64 `json:"colnorms"`
	SVD       []float64 `json:"svd"`
	SLiM      []float64 `json:"slim"`
	Hessian   []float64 `json:"hessian"`
}

func loadGolden(t *testing.T) *golden {
	t.Helper()
	b, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return &g
}

// hObj is tr(D H Dᵀ) for D = e − delta.
func hObj(e, delta, h []float64, out, in int) float64 {
	s := 0.0
	d := make([]float64, in)
	for i := 0; i < out; i++ {
		for j := range d {
			d[j] = e[i*in+j] - delta[i*in+j]
		}
		for a := range d {
			for b := range d {
				s += d[a] * h[a*in+b] * d[b]
			}
		}
	}
	return s
}

func TestFitGolden(t *testing.T) {
	g := loadGolden(t)
	for _, c := range []struct {
		mode Mode
		want []float64
	}{{SVD, g.SVD}, {SLiM, g.SLiM}, {Hessian, g.Hessian}} {
		a, err := Fit(g.E, g.Out, g.In, Options{Rank: g.RankRatio, Mode: c.mode}, g.ColNorms, g.H)
		if err != nil {
			t.Fatal(err)
		}
		if a.Rank != g.Rank {
			t.Fatalf("%s: rank %d, want %d", c.mode, a.Rank, g.Rank)
		}
		d := a.Delta()
		num, den := 0.0, 0.0
		for k := range d {
			num += (d[k] - c.want[k]) * (d[k] - c.want[k])
			den += c.want[k] * c.want[k]
		}
		if rel := math.Sqrt(num / den); rel > 1e-5 {
			t.Errorf("%s: B·A differs from numpy by %.3g relative", c.mode, rel)
		}
	}
}

// The Hessian fit is the optimal rank-r correction in the H metric, so it
// beats the SVD and SLiM fits there.
func TestHessianFitIsBest(t *testing.T) {
	g := loadGolden(t)
	objs := map[Mode]float64{}
	for _, m := range []Mode{SVD, SLiM, Hessian} {
		a, err := Fit(g.E, g.Out, g.In, Options{Rank: g.RankRatio, Mode: m}, g.ColNorms, g.H)
		if err != nil {
			t.Fatal(err)
		}
		objs[m] = hObj(g.E, a.Delta(), g.H, g.Out, g.In)
	}
	base := hObj(g.E, make([]float64, len(g.E)), g.H, g.Out, g.In)
	if !(objs[Hessian] < objs[SLiM] && objs[Hessian] < objs[SVD] && objs[SVD] < base) {
		t.Errorf("H-objectives: none %v, svd %v, slim %v, hessian %v; want hessian smallest", base, objs[SVD], objs[SLiM], objs[Hessian])
	}
}

func TestExactLowRankRecovered(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	out, in, k := 12, 16, 3
	e := make([]float64, out*in)
	for c := 0; c < k; c++ {
		u, v := make([]float64, out), make([]float64, in)
		for i := range u {
			u[i] = r.NormFloat64()
		}
		for j := range v {
			v[j] = r.NormFloat64()
		}
		for i := range u {
			for j := range v {
				e[i*in+j] += u[i] * v[j]
			}
		}
	}
	a, err := Fit(e, out, in, Options{Rank: 0.25, Mode: SVD}, nil, nil) // rank 3
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range a.Delta() {
		if math.Abs(d-e[i]) > 1e-5*(1+math.Abs(e[i])) {
			t.Fatalf("entry %d: %v, want %v", i, d, e[i])
		}
	}
}

func TestPadPruneQuantize(t *testing.T) {
	g := loadGolden(t)
	o := Options{Rank: 0.1, Mode: SLiM, TileSize: 8, Prune24: true, QuantBits: 4}
	a, err := Fit(g.E, g.Out, g.In, o, g.ColNorms, g.H)
	if err != nil {
		t.Fatal(err)
	}
	if a.Rank != 8 {
		t.Fatalf("rank %d, want ⌊0.1·20⌋ = 2 padded to 8", a.Rank)
	}
	for k := 0; k < a.Rank; k++ {
		for j := 0; j < a.In; j += 4 {
			zeros := 0
			for _, v := range a.A[k*a.In+j : k*a.In+j+4] {
				if v == 0 {
					zeros++
				}
			}
			if zeros < 2 {
				t.Fatalf("A row %d columns %d..%d have %d zeros, want ≥ 2 (2:4)", k, j, j+3, zeros)
			}
		}
	}
	if base, got := hObj(g.E, make([]float64, len(g.E)), g.H, g.Out, g.In), hObj(g.E, a.Delta(), g.H, g.Out, g.In); got >= base {
		t.Errorf("pruned, quantized adapter does not lower the error: %v ≥ %v", got, base)
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []Options{
		{Rank: 0, Mode: SVD}, {Rank: 1.5, Mode: SVD}, {Rank: math.NaN(), Mode: SVD},
		{Rank: 0.1, Mode: "qr"}, {Rank: 0.1, Mode: Hessian, Prune24: true},
		{Rank: 0.1, Mode: SVD, QuantBits: 4}, {Rank: 0.1, Mode: SVD, QuantBits: 9, TileSize: 4},
		{Rank: 1, Mode: SVD, TileSize: 64},
	} {
		if _, err := Fit(make([]float64, 20*32), 20, 32, o, nil, nil); !errors.Is(err, ErrOptions) {
			t.Errorf("%+v: err %v, want ErrOptions", o, err)
		}
	}
}
