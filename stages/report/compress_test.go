package report

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

// TestTotalizeCompress: compression errors total as Den-weighted means,
// bytes as sums; reports without compression keep no compress totals.
func TestTotalizeCompress(t *testing.T) {
	if tot := Totalize([]LinearReport{{Out: 2, In: 2, Den: 1}}); tot.Compress != nil {
		t.Fatalf("compress totals %+v for a run without compression", tot.Compress)
	}
	ls := []LinearReport{
		{Name: "a", Out: 2, In: 4, Den: 1, Compress: &CompressReport{Pruned: 0.1, Quantized: 0.2, Adapter: 0.15, Bits: 4, Bytes: 10, DenseBytes: 16}},
		{Name: "b", Out: 4, In: 4, Den: 3, Compress: &CompressReport{Pruned: 0.3, Quantized: 0.4, Adapter: 0.35, Bits: 4, AdapterRank: 1, Bytes: 20, DenseBytes: 32}},
	}
	r := New(nil, ls)
	c := r.Totals.Compress
	if c == nil {
		t.Fatal("no compress totals")
	}
	for _, tc := range []struct {
		name      string
		got, want float64
	}{
		{"pruned", c.Pruned, (0.1 + 3*0.3) / 4},
		{"quantized", c.Quantized, (0.2 + 3*0.4) / 4},
		{"adapter", c.Adapter, (0.15 + 3*0.35) / 4},
		{"ratio", c.Ratio, 30.0 / 48},
	} {
		if math.Abs(tc.got-tc.want) > 1e-15 {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if c.Linears != 2 || c.Bytes != 30 || c.DenseBytes != 48 {
		t.Errorf("totals %+v", *c)
	}
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "compressed 2 linears") {
		t.Errorf("text report lacks the compression line:\n%s", b.String())
	}
}
