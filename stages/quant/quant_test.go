package quant

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

type golden struct {
	AbsMax struct {
		Rows, Cols, Bits int
		W                []float32
		Codes            []int
		Step             float64
	} `json:"absmax"`
	Tiled struct {
		Rows, Cols, Bits, Group int
		W                       []float32
		Codes                   []int
		Steps                   []float64
	} `json:"tiled"`
	SLiM struct {
		Rows, Cols int
		Caps       map[string]float64
		SmallCaps  map[string]float64 `json:"small_caps"`
	} `json:"slim"`
	GPTQ0  gptqCase `json:"gptq_g0"`
	GPTQ16 gptqCase `json:"gptq_g16"`
}

type gptqCase struct {
	Rows, Cols, Bits, Group int
	W                       []float32
	H                       []float64
	Pruned                  []int
	Wq                      []float64
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

func relClose(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(math.Abs(b), 1e-30)
}

func TestAbsMaxGolden(t *testing.T) {
	g := loadGolden(t).AbsMax
	q, err := Quantize(g.W, g.Rows, g.Cols, Options{Bits: g.Bits, Method: AbsMax}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !relClose(float64(q.Steps[0]), g.Step, 1e-6) {
		t.Errorf("step %v, want %v", q.Steps[0], g.Step)
	}
	for k, c := range g.Codes {
		if int(q.Codes[k]) != c {
			t.Fatalf("code %d = %d, want %d", k, q.Codes[k], c)
		}
	}
}

func TestTiledGolden(t *testing.T) {
	g := loadGolden(t).Tiled
	q, err := Quantize(g.W, g.Rows, g.Cols, Options{Bits: g.Bits, Method: AbsMax, GroupSize: g.Group}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Steps) != g.Rows*g.Cols/g.Group {
		t.Fatalf("%d steps, want %d (one per row and group of %d columns)", len(q.Steps), g.Rows*g.Cols/g.Group, g.Group)
	}
	for k, s := range g.Steps {
		if !relClose(float64(q.Steps[k]), s, 1e-6) {
			t.Fatalf("step %d = %v, want %v", k, q.Steps[k], s)
		}
	}
	for k, c := range g.Codes {
		if int(q.Codes[k]) != c {
			t.Fatalf("code %d = %d, want %d", k, q.Codes[k], c)
		}
	}
}

func TestSLiMCapGolden(t *testing.T) {
	g := loadGolden(t)
	raw, err := os.ReadFile("testdata/slim_w.f32")
	if err != nil {
		t.Fatal(err)
	}
	w := make([]float32, len(raw)/4)
	for i := range w {
		w[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	if len(w) != g.SLiM.Rows*g.SLiM.Cols {
		t.Fatalf("slim_w.f32 has %d weights, want %d", len(w), g.SLiM.Rows*g.SLiM.Cols)
	}
	cases := []struct {
		name string
		w    []float32
		caps map[string]float64
	}{{"520x1000", w, g.SLiM.Caps}, {"24x64", g.AbsMax.W, g.SLiM.SmallCaps}}
	for _, c := range cases {
		for bits, want := range c.caps {
			var b int
			if err := json.Unmarshal([]byte(bits), &b); err != nil {
				t.Fatal(err)
			}
			if got := SLiMCap(c.w, b); !relClose(got, want, 1e-9) {
				t.Errorf("%s: SLiMCap(%d bits) = %v, want %v", c.name, b, got, want)
			}
		}
	}
}

func TestGPTQGolden(t *testing.T) {
	g := loadGolden(t)
	for _, c := range []gptqCase{g.GPTQ0, g.GPTQ16} {
		w := append([]float32(nil), c.W...)
		pruned := make([]bool, len(c.Pruned))
		for k, p := range c.Pruned {
			pruned[k] = p == 1
		}
		q, err := GPTQQuantize(w, c.Rows, c.Cols, c.H, pruned, Options{Bits: c.Bits, Method: GPTQ, GroupSize: c.Group}, nil)
		if err != nil {
			t.Fatal(err)
		}
		deq := make([]float32, len(w))
		q.Dequantize(deq)
		for k := range w {
			if pruned[k] && w[k] != 0 {
				t.Fatalf("group %d: pruned weight %d = %v, want exactly 0", c.Group, k, w[k])
			}
			if !relClose(float64(w[k]), c.Wq[k], 1e-5) && math.Abs(float64(w[k])-c.Wq[k]) > 1e-7 {
				t.Fatalf("group %d: weight %d = %v, want %v", c.Group, k, w[k], c.Wq[k])
			}
			if deq[k] != w[k] {
				t.Fatalf("group %d: Dequantize gives %v at %d, the sweep left %v", c.Group, deq[k], k, w[k])
			}
		}
	}
}

// GPTQ must beat plain rounding on the Hessian objective it minimises.
func TestGPTQBeatsRounding(t *testing.T) {
	g := loadGolden(t).GPTQ0
	w0 := g.W
	pruned := make([]bool, len(g.Pruned))
	for k, p := range g.Pruned {
		pruned[k] = p == 1
	}
	obj := func(w []float32) float64 {
		s := 0.0
		for i := 0; i < g.Rows; i++ {
			d := make([]float64, g.Cols)
			for j := range d {
				d[j] = float64(w[i*g.Cols+j] - w0[i*g.Cols+j])
			}
			for a := range d {
				for b := range d {
					s += d[a] * g.H[a*g.Cols+b] * d[b]
				}
			}
		}
		return s
	}
	masked := append([]float32(nil), w0...)
	for k, p := range pruned {
		if p {
			masked[k] = 0
		}
	}
	rq, err := Quantize(masked, g.Rows, g.Cols, Options{Bits: 4, Method: AbsMax}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rtn := make([]float32, len(masked))
	rq.Dequantize(rtn)
	gw := append([]float32(nil), w0...)
	if _, err := GPTQQuantize(gw, g.Rows, g.Cols, g.H, pruned, Options{Bits: 4, Method: GPTQ}, nil); err != nil {
		t.Fatal(err)
	}
	if a, b := obj(gw), obj(rtn); a >= b {
		t.Errorf("GPTQ objective %v is not below round-to-nearest's %v", a, b)
	}
}

func TestZerosStayZero(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	rows, cols := 8, 32
	w := make([]float32, rows*cols)
	for k := range w {
		if k%2 == 0 {
			w[k] = float32(r.NormFloat64())
		}
	}
	for _, o := range []Options{{Bits: 2, Method: AbsMax}, {Bits: 4, Method: SLiM}, {Bits: 3, Method: AbsMax, GroupSize: 8}, {Bits: 8, Method: AbsMax, ScaleImportant: true}} {
		q, err := Quantize(w, rows, cols, o, []int{0, 1})
		if err != nil {
			t.Fatal(err)
		}
		deq := make([]float32, len(w))
		q.Dequantize(deq)
		for k := range w {
			if w[k] == 0 && deq[k] != 0 {
				t.Errorf("%+v: weight %d is 0, dequantized %v", o, k, deq[k])
			}
			if c := int(q.Codes[k]); c < -MaxCode(o.Bits)-1 || c > MaxCode(o.Bits) {
				t.Errorf("%+v: code %d outside %d bits", o, c, o.Bits)
			}
		}
	}
}

// Round trip against a float64 reference: every dequantized weight is
// within half a step of the original unless it was clipped.
func TestRoundTripHalfStep(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	rows, cols := 16, 64
	w := make([]float32, rows*cols)
	for k := range w {
		w[k] = float32(r.NormFloat64() * 0.05)
	}
	for _, o := range []Options{{Bits: 4, Method: AbsMax}, {Bits: 4, Method: AbsMax, GroupSize: 16}, {Bits: 6, Method: SLiM}} {
		q, err := Quantize(w, rows, cols, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		deq := make([]float32, len(w))
		q.Dequantize(deq)
		for i := 0; i < rows; i++ {
			for j := 0; j < cols; j++ {
				k := i*cols + j
				s := q.Step(i, j)
				clipped := math.Abs(float64(w[k])) > s*float64(MaxCode(o.Bits))
				if !clipped && math.Abs(float64(deq[k])-float64(w[k])) > s/2*(1+1e-6) {
					t.Fatalf("%+v: (%d,%d) %v -> %v, more than half a step %v", o, i, j, w[k], deq[k], s)
				}
			}
		}
	}
}

func TestImportantColumnsHalfStep(t *testing.T) {
	rows, cols := 4, 200
	w := make([]float32, rows*cols)
	norms := make([]float64, cols)
	for j := range norms {
		norms[j] = 1
		for i := 0; i < rows; i++ {
			w[i*cols+j] = 0.01
		}
	}
	norms[17], norms[3] = 50, 40
	imp := ImportantColumns(w, rows, cols, norms)
	if len(imp) != 2 || imp[0] != 3 || imp[1] != 17 {
		t.Fatalf("ImportantColumns = %v, want [3 17] (top 1%% of 200)", imp)
	}
	q, err := Quantize(w, rows, cols, Options{Bits: 4, Method: AbsMax, ScaleImportant: true}, imp)
	if err != nil {
		t.Fatal(err)
	}
	if q.Step(0, 3) != q.Step(0, 4)/2 {
		t.Errorf("important column step %v, want half of %v", q.Step(0, 3), q.Step(0, 4))
	}
}

func TestBadOptions(t *testing.T) {
	for _, c := range []struct {
		o    Options
		cols int
	}{
		{Options{Bits: 1, Method: AbsMax}, 8},
		{Options{Bits: 9, Method: AbsMax}, 8},
		{Options{Bits: 4, Method: "nf4"}, 8},
		{Options{Bits: 4, Method: SLiM, GroupSize: 4}, 8},
		{Options{Bits: 4, Method: AbsMax, GroupSize: 3}, 8},
		{Options{Bits: 4, Method: AbsMax, GroupSize: -1}, 8},
	} {
		w := make([]float32, 2*c.cols)
		if _, err := Quantize(w, 2, c.cols, c.o, nil); !errors.Is(err, ErrOptions) {
			t.Errorf("%+v on 2×%d: err %v, want ErrOptions", c.o, c.cols, err)
		}
	}
	h := []float64{1, 2, 2, 1}
	if _, err := GPTQQuantize(make([]float32, 4), 2, 2, h, nil, Options{Bits: 4, Method: GPTQ}, nil); !errors.Is(err, ErrNotPositiveDefinite) {
		t.Errorf("indefinite Hessian: err %v, want ErrNotPositiveDefinite", err)
	}
}

// TestEncode: weights already on a grid (Quantize then Dequantize, with
// zeros, groups and important columns) are re-encoded to codes and steps
// that dequantize to the same float32 weights with the same storage; an
// all-zero group gets step 0; a weight on no grid is ErrNotOnGrid.
func TestEncode(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	rows, cols := 8, 200
	w := make([]float32, rows*cols)
	for k := range w {
		if k%3 != 0 {
			w[k] = float32(r.NormFloat64() * 0.05)
		}
	}
	for k := 0; k < 8; k++ { // an all-zero group of 8 in row 0
		w[k] = 0
	}
	imp := []int{3, 17}
	for _, o := range []Options{{Bits: 2, Method: AbsMax}, {Bits: 4, Method: AbsMax, GroupSize: 8}, {Bits: 3, Method: SLiM}, {Bits: 8, Method: AbsMax, GroupSize: 40, ScaleImportant: true}} {
		t.Run(fmt.Sprintf("%dbit/%s/g%d/important=%v", o.Bits, o.Method, o.GroupSize, o.ScaleImportant), func(t *testing.T) {
			q, err := Quantize(w, rows, cols, o, imp)
			if err != nil {
				t.Fatal(err)
			}
			deq := make([]float32, len(w))
			q.Dequantize(deq)
			e, err := Encode(deq, rows, cols, Options{Bits: o.Bits, Method: GPTQ, GroupSize: o.GroupSize, ScaleImportant: o.ScaleImportant}, imp)
			if err != nil {
				t.Fatal(err)
			}
			again := make([]float32, len(w))
			e.Dequantize(again)
			for k := range deq {
				if math.Abs(float64(again[k]-deq[k])) > 1e-6*math.Abs(float64(deq[k])) || (deq[k] == 0) != (e.Codes[k] == 0) {
					t.Fatalf("weight %d: %v re-encoded as code %d → %v", k, deq[k], e.Codes[k], again[k])
				}
			}
			if e.Bytes() != q.Bytes() {
				t.Errorf("bytes %d, want %d", e.Bytes(), q.Bytes())
			}
			if o.GroupSize == 8 && e.Steps[0] != 0 {
				t.Errorf("all-zero group has step %v", e.Steps[0])
			}
			deq[1] = deq[2] + 1e-3*float32(q.Step(0, 2)+1e-3)
			deq[4] = 0.3 * float32(q.Step(0, 4)+1e-3)
			if _, err := Encode(deq, rows, cols, Options{Bits: o.Bits, Method: GPTQ, GroupSize: o.GroupSize, ScaleImportant: o.ScaleImportant}, imp); !errors.Is(err, ErrNotOnGrid) {
				t.Errorf("off-grid weights: err %v, want ErrNotOnGrid", err)
			}
		})
	}
}
