package hessian

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/optima-llm/optima/kernels"
)

// naive is a reference backend: AccumulateGram in float64, full matrix.
// Only AccumulateGram is used by this package.
type naive struct{ kernels.Backend }

func (naive) AccumulateGram(h []float64, x []float32, tokens, in int) {
	for t := range tokens {
		row := x[t*in : (t+1)*in]
		for i, a := range row {
			for j, b := range row {
				h[i*in+j] += float64(a) * float64(b)
			}
		}
	}
}

func randX(r *rand.Rand, tokens, in int) []float32 {
	x := make([]float32, tokens*in)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// gram is XᵀX in float64, the test's own reference.
func gram(x []float32, tokens, in int) []float64 {
	g := make([]float64, in*in)
	for i := range in {
		for j := range in {
			var s float64
			for t := range tokens {
				s += float64(x[t*in+i]) * float64(x[t*in+j])
			}
			g[i*in+j] = s
		}
	}
	return g
}

var approx = cmpopts.EquateApprox(1e-6, 1e-9)

func TestAddMatchesGram(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	// The tests use their own reference backend so that they do not depend
	// on kernels/cpu (which kernels/kerneltest checks); a float32 backend
	// such as cpu needs a tolerance near 1e-5·Sum_ii (checked by hand with
	// cpu.New(2): EquateApprox(0, 1e-3) passes on this data).
	for _, tc := range []struct {
		be  kernels.Backend
		tol cmp.Option
	}{{naive{}, approx}, {asym{}, approx}} {
		be := tc.be
		t.Run(be.Name(), func(t *testing.T) {
			const in = 7
			h := New("g", in)
			x := randX(r, 300, in)
			// Uneven chunks, including an empty one.
			for _, c := range [][2]int{{0, 0}, {0, 1}, {1, 260}, {260, 300}} {
				if err := h.Add(be, x[c[0]*in:c[1]*in], c[1]-c[0]); err != nil {
					t.Fatal(err)
				}
			}
			if h.Tokens != 300 {
				t.Errorf("Tokens = %d, want 300", h.Tokens)
			}
			if diff := cmp.Diff(gram(x, 300, in), h.Sum, tc.tol); diff != "" {
				t.Errorf("Sum (-want +got):\n%s", diff)
			}
			for i := range in {
				for j := range in {
					if h.Sum[i*in+j] != h.Sum[j*in+i] {
						t.Fatalf("Sum not exactly symmetric at (%d,%d)", i, j)
					}
				}
			}
		})
	}
}

func (naive) Name() string { return "naive" }

// asym is naive with rounding noise in the lower triangle, as a backend
// that computes both triangles independently may leave.
type asym struct{ naive }

func (asym) Name() string { return "asym" }

func (a asym) AccumulateGram(h []float64, x []float32, tokens, in int) {
	a.naive.AccumulateGram(h, x, tokens, in)
	for i := range in {
		for j := range i {
			h[i*in+j] *= 1 + 1e-15
		}
	}
}

func TestAddNonFinite(t *testing.T) {
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		h := New("model.layers.2.mlp.gate_up", 3)
		x := []float32{1, 2, 3, 4, bad, 6}
		err := h.Add(naive{}, x, 2)
		if !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), "model.layers.2.mlp.gate_up") ||
			!strings.Contains(err.Error(), "token 1, channel 1") {
			t.Errorf("err = %v, want ErrNonFinite naming the group, token 1, channel 1", err)
		}
		if h.Tokens != 0 || h.Sum[0] != 0 {
			t.Errorf("h changed by a failed Add")
		}
	}
}

func TestAddPanics(t *testing.T) {
	tests := map[string]func(){
		"short x":    func() { New("g", 3).Add(naive{}, make([]float32, 5), 2) },
		"neg tokens": func() { New("g", 3).Add(naive{}, nil, -1) },
		"zero value": func() { new(Hessian).Add(naive{}, nil, 0) },
		"New(0)":     func() { New("g", 0) },
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

func TestMergeOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	const in, shards = 6, 5
	parts := make([]*Hessian, shards)
	var all []float32
	for i := range parts {
		tokens := 10 + 7*i
		x := randX(r, tokens, in)
		all = append(all, x...)
		parts[i] = New("g", in)
		if err := parts[i].Add(naive{}, x, tokens); err != nil {
			t.Fatal(err)
		}
	}
	merge := func(order []int) *Hessian {
		var acc Hessian // zero value, as a Beam accumulator starts
		for _, i := range order {
			if err := acc.Merge(parts[i]); err != nil {
				t.Fatal(err)
			}
		}
		return &acc
	}
	a := merge([]int{0, 1, 2, 3, 4})
	b := merge([]int{4, 2, 0, 3, 1})
	if a.Tokens != b.Tokens || a.Tokens != int64(len(all)/in) {
		t.Errorf("Tokens %d, %d, want %d", a.Tokens, b.Tokens, len(all)/in)
	}
	if diff := cmp.Diff(a, b, approx); diff != "" {
		t.Errorf("merge order changes the result beyond rounding:\n%s", diff)
	}
	if diff := cmp.Diff(gram(all, len(all)/in, in), a.Sum, approx); diff != "" {
		t.Errorf("merged Sum (-want +got):\n%s", diff)
	}
	// Two partials: bit-identical in either order.
	var x, y Hessian
	x.Merge(parts[0])
	x.Merge(parts[1])
	y.Merge(parts[1])
	y.Merge(parts[0])
	if !cmp.Equal(x, y) {
		t.Errorf("two-way merge not commutative")
	}
	// The first merge copies: the accumulator does not alias its input.
	x.Sum[0] = -1
	if parts[0].Sum[0] == -1 {
		t.Errorf("Merge aliases the merged Hessian's Sum")
	}
	// Merging an empty accumulator is a no-op.
	before := a.Sum[3]
	if err := a.Merge(new(Hessian)); err != nil || a.Sum[3] != before {
		t.Errorf("merging a zero Hessian: err %v, changed %v", err, a.Sum[3] != before)
	}
}

func TestMergeErrors(t *testing.T) {
	h := New("a", 3)
	for _, o := range []*Hessian{New("a", 4), New("b", 3)} {
		if err := h.Merge(o); err == nil {
			t.Errorf("merge %s/%d into a/3: no error", o.Group, o.In)
		}
	}
}

func TestHAndColumnNorms(t *testing.T) {
	h := New("g", 3)
	x := []float32{1, 0, 2, 3, 0, -2} // 2 tokens; channel 1 dead
	if err := h.Add(naive{}, x, 2); err != nil {
		t.Fatal(err)
	}
	want := []float64{10, 0, -4, 0, 0, 0, -4, 0, 8}
	if diff := cmp.Diff(want, h.Sum); diff != "" {
		t.Errorf("Sum (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]float64{5, 0, -2, 0, 0, 0, -2, 0, 4}, h.H()); diff != "" {
		t.Errorf("H (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]float64{math.Sqrt(10), 0, math.Sqrt(8)}, h.ColumnNorms()); diff != "" {
		t.Errorf("ColumnNorms (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{1}, h.Dead()); diff != "" {
		t.Errorf("Dead (-want +got):\n%s", diff)
	}
	if got := New("g", 2).H(); !cmp.Equal(got, make([]float64, 4)) {
		t.Errorf("H of an empty Hessian = %v, want zeros", got)
	}
}

func TestDamp(t *testing.T) {
	withSum := func(tokens int64, sum ...float64) *Hessian {
		n := int(math.Sqrt(float64(len(sum))))
		return &Hessian{Group: "grp", In: n, Tokens: tokens, Sum: sum}
	}
	tests := []struct {
		name    string
		h       *Hessian
		lambda  float64
		want    []float64
		wantErr string
	}{
		// H = diag(2, 4) + offdiag 1; mean diag 3; +0.1·3.
		{"plain", withSum(2, 4, 2, 2, 8), 0.1, []float64{2.3, 1, 1, 4.3}, ""},
		{"no damping", withSum(2, 4, 2, 2, 8), 0, []float64{2, 1, 1, 4}, ""},
		// Dead channel 1 gets 1 before the mean: mean(4, 1, 1)=2, damp 0.02.
		{"dead channel", withSum(1, 4, 0, 0, 0, 0, 0, 0, 0, 1), 0.01,
			[]float64{4.02, 0, 0, 0, 1.02, 0, 0, 0, 1.02}, ""},
		{"all zero", withSum(5, 0, 0, 0, 0), 0.01, nil, "all 2 input channels are zero"},
		{"no tokens", withSum(0, 1, 0, 0, 1), 0.01, nil, "no calibration tokens"},
		{"NaN", withSum(1, 1, math.NaN(), math.NaN(), 1), 0.01, nil, "non-finite"},
		{"Inf", withSum(1, math.Inf(1), 0, 0, 1), 0.01, nil, "non-finite"},
		{"negative lambda", withSum(1, 1, 0, 0, 1), -0.01, nil, "damping"},
		{"NaN lambda", withSum(1, 1, 0, 0, 1), math.NaN(), nil, "damping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := append([]float64(nil), tt.h.Sum...)
			got, err := tt.h.Damp(tt.lambda)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "grp") {
					t.Fatalf("err = %v, want one naming grp with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateApprox(0, 1e-12)); diff != "" {
				t.Errorf("Damp (-want +got):\n%s", diff)
			}
			if !cmp.Equal(before, tt.h.Sum, cmpopts.EquateNaNs()) {
				t.Errorf("Damp modified Sum")
			}
		})
	}
}

func TestCodecRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for _, in := range []int{1, 2, 17} {
		h := New("model.layers.0.self_attn.qkv", in)
		if err := h.Add(naive{}, randX(r, 20, in), 20); err != nil {
			t.Fatal(err)
		}
		b, err := h.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != EncodedSize(len(h.Group), in) {
			t.Errorf("in %d: %d bytes, EncodedSize says %d", in, len(b), EncodedSize(len(h.Group), in))
		}
		got, err := Unmarshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(h, got); diff != "" {
			t.Errorf("in %d: round trip (-want +got):\n%s", in, diff)
		}
	}
}

func TestCodecErrors(t *testing.T) {
	good, _ := (&Hessian{Group: "g", In: 2, Tokens: 3, Sum: []float64{1, 2, 2, 5}}).MarshalBinary()
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "header"},
		{"magic", mod(func(b []byte) []byte { b[0] = 'X'; return b }), "magic"},
		{"version", mod(func(b []byte) []byte { b[4] = 2; return b }), "version"},
		{"huge group", mod(func(b []byte) []byte { b[8] = 0xff; return b }), "group name"},
		{"zero width", mod(func(b []byte) []byte { b[10] = 0; return b }), "width 0"},
		{"huge width", mod(func(b []byte) []byte { b[13] = 0x7f; return b }), "width"},
		{"negative tokens", mod(func(b []byte) []byte { b[21] = 0x80; return b }), "negative"},
		{"truncated", good[:len(good)-1], "want"},
		{"trailing", append(append([]byte(nil), good...), 0), "want"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &Hessian{Group: "keep"}
			err := h.UnmarshalBinary(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one with %q", err, tt.want)
			}
			if h.Group != "keep" {
				t.Errorf("h changed on error")
			}
		})
	}
	for _, h := range []*Hessian{{In: 0}, {Group: "g", In: 2, Sum: make([]float64, 3)}, {Group: "g", In: 1, Tokens: -1, Sum: []float64{1}}} {
		if _, err := h.MarshalBinary(); err == nil {
			t.Errorf("MarshalBinary(%+v): no error", h)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	good, _ := (&Hessian{Group: "g", In: 2, Tokens: 3, Sum: []float64{1, 2, 2, math.NaN()}}).MarshalBinary()
	f.Add(good)
	f.Add([]byte("OPTH\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := Unmarshal(data)
		if err != nil {
			return
		}
		if len(h.Sum) != h.In*h.In {
			t.Fatalf("len(Sum) %d for width %d", len(h.Sum), h.In)
		}
		again, err := h.MarshalBinary()
		if err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		if string(again) != string(data) {
			t.Fatalf("re-marshal differs")
		}
	})
}

// nop is a backend whose AccumulateGram does nothing.
type nop struct{ naive }

func (nop) AccumulateGram([]float64, []float32, int, int) {}

// BenchmarkAddOverhead measures what Add costs besides AccumulateGram (the
// NaN/Inf scan of x and the symmetrization of Sum) on a 2048-token, 576-wide
// shard. For scale, Add with kernels/cpu on the same shard measured
// 88.6 ms/op (15.3 GFLOP/s, 23112 tokens/s) on 2 cores:
//
//	go test -run XXX -bench AddOverhead ./stages/hessian
//	BenchmarkAddOverhead-2   760   1893982 ns/op   1081320 tokens/s (load average 9)
func BenchmarkAddOverhead(b *testing.B) {
	const tokens, in = 2048, 576
	x := randX(rand.New(rand.NewPCG(4, 4)), tokens, in)
	h := New("g", in)
	for b.Loop() {
		if err := h.Add(nop{}, x, tokens); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*tokens/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkMarshal measures a marshal/unmarshal round trip of a 1536-wide
// Hessian (down_proj, 9.4 MB encoded).
//
//	BenchmarkMarshal-2   20   56960383 ns/op   165.79 MB/s
func BenchmarkMarshal(b *testing.B) {
	h := New("g", 1536)
	for i := range h.Sum {
		h.Sum[i] = float64(i)
	}
	for b.Loop() {
		data, _ := h.MarshalBinary()
		if _, err := Unmarshal(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*float64(EncodedSize(1, 1536))/b.Elapsed().Seconds()/1e6, "MB/s")
}

func TestSymmetrizeTiles(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for _, n := range []int{1, 63, 64, 65, 130} {
		h := New("g", n)
		for i := range h.Sum {
			h.Sum[i] = r.Float64()
		}
		upper := append([]float64(nil), h.Sum...)
		h.symmetrize()
		for i := range n {
			for j := range n {
				if want := upper[min(i, j)*n+max(i, j)]; h.Sum[i*n+j] != want {
					t.Fatalf("n %d: Sum[%d,%d] = %v, want the upper entry %v", n, i, j, h.Sum[i*n+j], want)
				}
			}
		}
	}
}

// setter is naive with kernels.GramSetter, counting the calls of each.
type setter struct {
	naive
	sets, adds int
}

func (s *setter) SetGram(h []float64, x []float32, tokens, in int) {
	s.sets++
	for i := range h[:in*in] {
		h[i] = 0
	}
	s.naive.AccumulateGram(h, x, tokens, in)
}

func (s *setter) AccumulateGram(h []float64, x []float32, tokens, in int) {
	s.adds++
	s.naive.AccumulateGram(h, x, tokens, in)
}

// TestAddSetsFirst: on a backend with SetGram, the first Add of a Hessian
// (no tokens yet) sets Sum with SetGram and later ones accumulate; Sum is
// what AccumulateGram alone gives. An empty Add changes nothing.
func TestAddSetsFirst(t *testing.T) {
	const in = 5
	r := rand.New(rand.NewPCG(21, 22))
	x := make([]float32, 9*in)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	want := New("g", in)
	s := &setter{}
	got := New("g", in)
	for _, part := range [][2]int{{0, 0}, {0, 4}, {4, 9}} {
		a, b := part[0], part[1]
		if err := want.Add(naive{}, x[a*in:b*in], b-a); err != nil {
			t.Fatal(err)
		}
		if err := got.Add(s, x[a*in:b*in], b-a); err != nil {
			t.Fatal(err)
		}
	}
	if s.sets != 1 || s.adds != 1 {
		t.Errorf("SetGram %d times, AccumulateGram %d times; want 1 and 1", s.sets, s.adds)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Hessian (-AccumulateGram only +SetGram first):\n%s", diff)
	}
}
