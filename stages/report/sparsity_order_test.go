package report

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/hf"
)

// TestSparsityNaturalOrder: with 12 blocks the report and its table list
// block 2 before block 10 (numeric-aware order), with the family's linears
// and with the name rule alike.
func TestSparsityNaturalOrder(t *testing.T) {
	cfg, err := hf.ParseConfig([]byte(`{"model_type":"opt","hidden_size":4,"num_attention_heads":1,
		"num_hidden_layers":12,"ffn_dim":4,"vocab_size":10,"max_position_embeddings":16}`), "config.json")
	if err != nil {
		t.Fatal(err)
	}
	ts := map[string]*model.Tensor{}
	var want []string
	for i := range 12 {
		for _, n := range []string{"fc1", "fc2", "self_attn.k_proj", "self_attn.out_proj", "self_attn.q_proj", "self_attn.v_proj"} {
			name := fmt.Sprintf("model.decoder.layers.%d.%s.weight", i, n)
			ts[name] = &model.Tensor{Shape: []int{4, 4}, Data: make([]float32, 16)}
			want = append(want, name)
		}
	}
	for _, tc := range []struct {
		name string
		cfg  *model.Config
		sel  string
	}{{"family", cfg, SelectFamily}, {"names", nil, SelectNames}} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Sparsity(&fakeSource{tensors: ts, cfg: tc.cfg})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Selection != tc.sel {
				t.Fatalf("selection %q, want %q", rep.Selection, tc.sel)
			}
			var got []string
			for _, x := range rep.Tensors {
				got = append(got, x.Name)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("tensor order (-want +got):\n%s", diff)
			}
			var buf bytes.Buffer
			if err := rep.WriteText(&buf); err != nil {
				t.Fatal(err)
			}
			var rows []string
			for _, line := range strings.Split(buf.String(), "\n") {
				if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "model.") {
					rows = append(rows, f[0])
				}
			}
			if diff := cmp.Diff(want, rows); diff != "" {
				t.Errorf("table order (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCompareNatural checks the order on hand-picked pairs and, on random
// names of letters, dots and digits, that it is a total order: antisymmetric,
// transitive, and 0 only for equal strings.
func TestCompareNatural(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"model.layers.2.mlp", "model.layers.10.mlp", -1},
		{"model.layers.10.mlp", "model.layers.2.mlp", 1},
		{"model.layers.2.mlp", "model.layers.2.mlp", 0},
		{"model.layers.2.mlp.down_proj", "model.layers.2.self_attn.q_proj", -1},
		{"a9", "a10", -1},
		{"a", "a0", -1},
		{"a1b", "a01b", -1}, // equal numbers: fewer leading zeros first
		{"a01b", "a1c", -1}, // the text after the number decides first
		{"x99999999999999999999999", "x100000000000000000000000", -1}, // past uint64
		{"a.b", "a0", -1}, // non-digits compare as bytes
		{"", "0", -1},
	} {
		if got := compareNatural(tc.a, tc.b); got != tc.want {
			t.Errorf("compareNatural(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
	r := rand.New(rand.NewPCG(3, 14))
	word := func() string {
		const alpha = "ab.0019"
		b := make([]byte, r.IntN(7))
		for i := range b {
			b[i] = alpha[r.IntN(len(alpha))]
		}
		return string(b)
	}
	for range 20000 {
		a, b, c := word(), word(), word()
		ab, ba := compareNatural(a, b), compareNatural(b, a)
		if ab != -ba || (ab == 0) != (a == b) {
			t.Fatalf("compareNatural(%q, %q) = %d, reversed %d", a, b, ab, ba)
		}
		if ab <= 0 && compareNatural(b, c) <= 0 && compareNatural(a, c) > 0 {
			t.Fatalf("not transitive: %q ≤ %q ≤ %q but %q > %q", a, b, c, a, c)
		}
	}
}
