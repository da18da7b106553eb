package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/hf"
	_ "github.com/optima-llm/optima/model/opt" // OPTForCausalLM for TestSparsityFamilyLinears
	"github.com/optima-llm/optima/model/tokenizer"
)

func TestTotalize(t *testing.T) {
	var a, b LinearReport
	a = LinearReport{Name: "q", Out: 4, In: 10, Sparsity: 0.5, CGIterations: 10, FallbackRows: 1, Seconds: 0.5}
	a.SetErrors(2, 1, 10)
	b = LinearReport{Name: "down", Out: 2, In: 30, Sparsity: 0.25, CGIterations: 5, Seconds: 0.25}
	b.SetErrors(6, 3, 10)
	if a.ErrBefore != 0.2 || a.ErrAfter != 0.1 {
		t.Errorf("SetErrors: %v, %v", a.ErrBefore, a.ErrAfter)
	}
	got := Totalize([]LinearReport{a, b})
	want := Totals{
		Linears: 2, Params: 100,
		Sparsity:  (0.5*40 + 0.25*60) / 100, // 0.35, not the plain mean 0.375
		NumBefore: 8, NumAfter: 4, Den: 20,
		ErrBefore: 0.4, ErrAfter: 0.2, // Σnum/Σden, not the mean of ratios
		CGIterations: 15, FallbackRows: 1, Seconds: 0.75,
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-15)); diff != "" {
		t.Errorf("Totalize (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Totals{}, Totalize(nil)); diff != "" {
		t.Errorf("Totalize(nil) (-want +got):\n%s", diff)
	}
	var z LinearReport
	z.SetErrors(1, 1, 0)
	if z.ErrBefore != 0 || z.ErrAfter != 0 {
		t.Errorf("zero denominator gives %v, %v; want 0", z.ErrBefore, z.ErrAfter)
	}
}

func TestReportJSONRoundTripAndText(t *testing.T) {
	l := LinearReport{Name: "model.layers.0.mlp.up_proj", Group: "model.layers.0.mlp.gate_up", Out: 1536, In: 576,
		Sparsity: 0.5, CGIterations: 25, FallbackRows: 2, Seconds: 1.5, Damping: 0.003}
	l.SetErrors(0.3, 0.1, 1)
	r := New(map[string]any{"sparsity": 0.5, "selector": "wanda"}, []LinearReport{l})
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"err_before": 0.3`, `"cg_iterations": 25`, `"num_after": 0.1`, `"selector": "wanda"`} {
		if !strings.Contains(buf.String(), key) {
			t.Errorf("JSON lacks %s:\n%s", key, buf.String())
		}
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, &back, cmpopts.IgnoreFields(Report{}, "Config")); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	buf.Reset()
	if err := r.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"model.layers.0.mlp.up_proj", "1536×576", "50.00%", "0.3", "total (1 linears)", "884736 params"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("text lacks %q:\n%s", s, buf.String())
		}
	}
}

// dgemm is a reference backend with only Dgemm (no transposes), so that the
// tests do not depend on kernels/cpu.
type dgemm struct{ kernels.Backend }

func (dgemm) Dgemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	if transA || transB {
		panic("dgemm: transposes not supported")
	}
	for i := range m {
		for j := range n {
			var s float64
			for l := range k {
				s += a[i*lda+l] * b[l*ldb+j]
			}
			c[i*ldc+j] = alpha*s + beta*c[i*ldc+j]
		}
	}
}

func TestQuadratic(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	const rows, cols = 300, 5 // more rows than one block
	d := make([]float32, rows*cols)
	for i := range d {
		d[i] = float32(r.NormFloat64())
	}
	// h = AᵀA, symmetric positive semi-definite.
	a := make([]float64, 7*cols)
	for i := range a {
		a[i] = r.NormFloat64()
	}
	h := make([]float64, cols*cols)
	for i := range cols {
		for j := range cols {
			for k := range 7 {
				h[i*cols+j] += a[k*cols+i] * a[k*cols+j]
			}
		}
	}
	var want float64
	for i := range rows {
		for j := range cols {
			for k := range cols {
				want += float64(d[i*cols+j]) * h[j*cols+k] * float64(d[i*cols+k])
			}
		}
	}
	got := Quadratic(dgemm{}, d, rows, cols, h)
	if math.Abs(got-want) > 1e-10*math.Abs(want) {
		t.Errorf("Quadratic = %v, want %v", got, want)
	}
	// With H = I it is the squared Frobenius norm.
	eye := []float64{1, 0, 0, 1}
	if got := Quadratic(dgemm{}, []float32{1, 2, 3, 4}, 2, 2, eye); got != 30 {
		t.Errorf("Quadratic with I = %v, want 30", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("no panic on a short h")
		}
	}()
	Quadratic(dgemm{}, d, rows, cols, h[1:])
}

// fakeSource serves tensors from memory and records what was loaded.
type fakeSource struct {
	tensors map[string]*model.Tensor
	loaded  []string
	fail    string
	cfg     *model.Config // nil: an empty config (no family)
}

func (f *fakeSource) Path() string { return "/fake/model" }
func (f *fakeSource) Config() *model.Config {
	if f.cfg == nil {
		return &model.Config{}
	}
	return f.cfg
}
func (f *fakeSource) Names() []string {
	var n []string
	for k := range f.tensors {
		n = append(n, k)
	}
	slices.Sort(n)
	return n
}
func (f *fakeSource) Load(name string) (*model.Tensor, error) {
	f.loaded = append(f.loaded, name)
	if name == f.fail {
		return nil, fmt.Errorf("model.safetensors: tensor %s: %w", name, errors.New("truncated"))
	}
	t, ok := f.tensors[name]
	if !ok {
		return nil, fmt.Errorf("model.safetensors: no tensor %s", name)
	}
	return t, nil
}
func (f *fakeSource) Tokenizer() (tokenizer.Tokenizer, error) { return nil, errors.New("none") }
func (f *fakeSource) Close() error                            { return nil }

func tensor(name string, shape []int, data ...float32) *model.Tensor {
	return &model.Tensor{Name: name, Shape: shape, Data: data}
}

func TestSparsity(t *testing.T) {
	negz := float32(math.Copysign(0, -1))
	src := &fakeSource{tensors: map[string]*model.Tensor{
		// 2:4 in both rows (the second row has 3 zeros in one group), -0 counts.
		"model.layers.0.mlp.up_proj.weight": tensor("", []int{2, 8},
			0, 1, 0, 2, 3, 0, negz, 4,
			0, 0, 0, 5, 6, 0, 7, 0),
		// One group of 4 with a single zero.
		"model.layers.0.self_attn.q_proj.weight": tensor("", []int{1, 8},
			0, 0, 1, 1, 1, 0, 1, 1),
		// Width 6: no 2:4 check.
		"model.layers.0.self_attn.o_proj.weight": tensor("", []int{1, 6}, 0, 0, 0, 1, 1, 1),
		"model.layers.0.input_layernorm.weight":  tensor("", []int{4}, 0, 0, 0, 0),
		"model.embed_tokens.weight":              tensor("", []int{2, 2}, 0, 0, 0, 0),
		"lm_head.weight":                         tensor("", []int{2, 2}, 0, 0, 0, 0),
		"model.layers.0.self_attn.q_proj.bias":   tensor("", []int{2, 2}, 0, 0, 0, 0),
	}}
	got, err := Sparsity(src)
	if err != nil {
		t.Fatal(err)
	}
	want := SparsityReport{
		Path: "/fake/model",
		Tensors: []TensorSparsity{
			{Name: "model.layers.0.mlp.up_proj.weight", Rows: 2, Cols: 8, Zeros: 9, Sparsity: 9.0 / 16, Groups: 4, NM24: true},
			{Name: "model.layers.0.self_attn.o_proj.weight", Rows: 1, Cols: 6, Zeros: 3, Sparsity: 0.5},
			{Name: "model.layers.0.self_attn.q_proj.weight", Rows: 1, Cols: 8, Zeros: 3, Sparsity: 3.0 / 8, Groups: 2, BadGroups: 1},
		},
		Params: 30, Zeros: 15, Sparsity: 0.5, NM24: false, Selection: SelectNames,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Sparsity (-want +got):\n%s", diff)
	}
	for _, n := range src.loaded {
		if strings.Contains(n, "embed") || strings.Contains(n, "lm_head") || strings.HasSuffix(n, ".bias") {
			t.Errorf("loaded %s, which is not a linear weight", n)
		}
	}
	var buf bytes.Buffer
	if err := got.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"up_proj.weight", "56.25%", "yes", "no (1 of 2 groups)", "n/a", "total (3 tensors)", "50.00%"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("text lacks %q:\n%s", s, buf.String())
		}
	}
	buf.Reset()
	if err := got.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back SparsityReport
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, back); diff != "" {
		t.Errorf("JSON round trip (-want +got):\n%s", diff)
	}

	// All tensors 2:4 → overall 2:4.
	delete(src.tensors, "model.layers.0.self_attn.q_proj.weight")
	delete(src.tensors, "model.layers.0.self_attn.o_proj.weight")
	if got, _ := Sparsity(src); !got.NM24 {
		t.Errorf("overall NM24 false with only 2:4 tensors")
	}
	// Load errors are returned with the tensor name.
	src.fail = "model.layers.0.mlp.up_proj.weight"
	if _, err := Sparsity(src); err == nil || !strings.Contains(err.Error(), src.fail) {
		t.Errorf("load failure: err = %v", err)
	}
	// No linear weights: empty, not 2:4.
	empty, err := Sparsity(&fakeSource{tensors: map[string]*model.Tensor{}})
	if err != nil || empty.NM24 || empty.Sparsity != 0 || len(empty.Tensors) != 0 {
		t.Errorf("empty source: %+v, %v", empty, err)
	}
}

func TestCountZerosRandom(t *testing.T) {
	// Against a direct count on random 2:4-pruned and unpruned data.
	r := rand.New(rand.NewPCG(2, 2))
	const rows, cols = 7, 12
	w := make([]float32, rows*cols)
	for i := range w {
		if r.IntN(2) == 0 {
			w[i] = float32(r.NormFloat64())
		}
	}
	ts := countZeros("w", w, rows, cols)
	var zeros, bad int64
	for g := 0; g < len(w)/4; g++ {
		z := 0
		for _, v := range w[4*g : 4*g+4] {
			if v == 0 {
				z++
			}
		}
		zeros += int64(z)
		if z < 2 {
			bad++
		}
	}
	if ts.Zeros != zeros || ts.BadGroups != bad || ts.Groups != rows*cols/4 || ts.NM24 != (bad == 0) {
		t.Errorf("countZeros = %+v, want zeros %d, bad %d", ts, zeros, bad)
	}
}

// TestSparsityFamilyLinears audits a projected OPT checkpoint (hidden 8,
// word_embed_proj_dim 4) whose six block linears are exactly 2:4 sparse and
// whose project_in / project_out are dense: the audit must count only the
// family's linears (50%, 2:4), and the name rule used without a family
// must agree now that it excludes project_in/out (it counted them before:
// 46.67% on a real projected OPT).
func TestSparsityFamilyLinears(t *testing.T) {
	cfg, err := hf.ParseConfig([]byte(`{"model_type":"opt","hidden_size":8,"word_embed_proj_dim":4,"num_attention_heads":2,
		"num_hidden_layers":2,"ffn_dim":16,"vocab_size":10,"max_position_embeddings":16,"do_layer_norm_before":false}`), "config.json")
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(9, 9))
	dense := func(shape ...int) *model.Tensor {
		n := 1
		for _, s := range shape {
			n *= s
		}
		d := make([]float32, n)
		for i := range d {
			d[i] = float32(r.NormFloat64()) + 3 // never 0
		}
		return &model.Tensor{Shape: shape, Data: d}
	}
	sparse24 := func(rows, cols int) *model.Tensor {
		x := dense(rows, cols)
		for i := 0; i < len(x.Data); i += 4 {
			for _, j := range r.Perm(4)[:2] {
				x.Data[i+j] = 0
			}
		}
		return x
	}
	ts := map[string]*model.Tensor{
		"model.decoder.embed_tokens.weight":    dense(10, 4),
		"model.decoder.embed_positions.weight": dense(18, 8),
		"model.decoder.project_in.weight":      dense(8, 4),
		"model.decoder.project_out.weight":     dense(4, 8),
		"lm_head.weight":                       dense(10, 4),
	}
	var linears []string
	for i := range 2 {
		p := fmt.Sprintf("model.decoder.layers.%d.", i)
		for n, s := range map[string][2]int{"self_attn.q_proj": {8, 8}, "self_attn.k_proj": {8, 8}, "self_attn.v_proj": {8, 8},
			"self_attn.out_proj": {8, 8}, "fc1": {16, 8}, "fc2": {8, 16}} {
			ts[p+n+".weight"] = sparse24(s[0], s[1])
			ts[p+n+".bias"] = dense(s[0])
			linears = append(linears, p+n+".weight")
		}
		for _, n := range []string{"self_attn_layer_norm", "final_layer_norm"} {
			ts[p+n+".weight"], ts[p+n+".bias"] = dense(8), dense(8)
		}
	}
	slices.Sort(linears)
	for _, tc := range []struct {
		name string
		cfg  *model.Config
		sel  string
	}{{"family", cfg, SelectFamily}, {"names", nil, SelectNames}} {
		t.Run(tc.name, func(t *testing.T) {
			src := &fakeSource{tensors: ts, cfg: tc.cfg}
			rep, err := Sparsity(src)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, x := range rep.Tensors {
				got = append(got, x.Name)
			}
			if diff := cmp.Diff(linears, got); diff != "" {
				t.Errorf("audited tensors (-want +got):\n%s", diff)
			}
			if rep.Sparsity != 0.5 || !rep.NM24 || rep.Selection != tc.sel {
				t.Errorf("sparsity %g, 2:4 %v, selection %q; want 0.5, true, %q", rep.Sparsity, rep.NM24, rep.Selection, tc.sel)
			}
		})
	}
	// A linear of the family that the checkpoint lacks is an error naming it.
	missing := "model.decoder.layers.1.fc2.weight"
	ts2 := maps.Clone(ts)
	delete(ts2, missing)
	if _, err := Sparsity(&fakeSource{tensors: ts2, cfg: cfg}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing linear: err = %v", err)
	}
}

func TestIsLinearWeight(t *testing.T) {
	for name, want := range map[string]bool{
		"model.layers.0.self_attn.q_proj.weight": true,
		"model.decoder.layers.3.fc1.weight":      true,
		"model.layers.0.self_attn.q_proj.bias":   false,
		"model.embed_tokens.weight":              false,
		"model.decoder.embed_positions.weight":   false,
		"lm_head.weight":                         false,
		"model.decoder.project_in.weight":        false,
		"model.decoder.project_out.weight":       false,
		"decoder.project_out.weight":             false,
	} {
		if got := IsLinearWeight(name); got != want {
			t.Errorf("IsLinearWeight(%q) = %v, want %v", name, got, want)
		}
	}
}
