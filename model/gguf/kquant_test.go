package gguf

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// TestKQuantGolden checks Q4_K, Q5_K and Q6_K dequantization bit for bit
// against gguf-py's dequantize on random super-blocks
// (tools/oracle/kquant_golden.py).
func TestKQuantGolden(t *testing.T) {
	b, err := os.ReadFile("testdata/kquant.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx map[string]struct {
		Blocks int    `json:"blocks"`
		Raw    string `json:"raw"`
		Want   string `json:"want"`
	}
	if err := json.Unmarshal(b, &fx); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []TensorType{Q4_K, Q5_K, Q6_K} {
		t.Run(typ.String(), func(t *testing.T) {
			c, ok := fx[typ.String()]
			if !ok {
				t.Fatal("no fixture")
			}
			raw, err := base64.StdEncoding.DecodeString(c.Raw)
			if err != nil {
				t.Fatal(err)
			}
			want := b64floats(t, c.Want)
			if len(want) != c.Blocks*256 || len(raw) != typ.RowBytes(len(want)) {
				t.Fatalf("fixture sizes: %d values, %d bytes", len(want), len(raw))
			}
			got := make([]float32, len(want))
			if err := Dequantize(got, raw, typ); err != nil {
				t.Fatal(err)
			}
			bad := 0
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					if bad < 5 {
						t.Errorf("element %d: got %g, want %g", i, got[i], want[i])
					}
					bad++
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d elements differ", bad, len(want))
			}
		})
	}
}

func TestQ8K(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	src := make([]byte, 2*292)
	want := make([]float32, 512)
	for b := range 2 {
		d := float32(r.NormFloat64())
		binary.LittleEndian.PutUint32(src[b*292:], math.Float32bits(d))
		for l := range 256 {
			q := int8(r.IntN(256) - 128)
			src[b*292+4+l] = byte(q)
			want[b*256+l] = d * float32(q)
		}
	}
	got := make([]float32, 512)
	if err := Dequantize(got, src, Q8_K); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("element %d: got %g, want %g", i, got[i], want[i])
		}
	}
}

func TestKQuantErrors(t *testing.T) {
	if err := Dequantize(make([]float32, 256), make([]byte, 143), Q4_K); err == nil {
		t.Error("short Q4_K block accepted")
	}
	if err := Dequantize(make([]float32, 255), make([]byte, 144), Q4_K); err == nil {
		t.Error("partial super-block accepted")
	}
	if _, err := Quantize(make([]float32, 256), Q6_K); err == nil || !strings.Contains(err.Error(), "Q6_K") {
		t.Errorf("Quantize to Q6_K: %v", err)
	}
	if err := Dequantize(make([]float32, 256), make([]byte, 84), Q2_K); err == nil || !strings.Contains(err.Error(), "Q2_K") {
		t.Errorf("Q2_K: %v", err)
	}
}

// BenchmarkDequantizeQ4K decodes a 576×1536 Q4_K matrix.
func BenchmarkDequantizeQ4K(b *testing.B) {
	n := 576 * 1536
	src := make([]byte, Q4_K.RowBytes(n))
	r := rand.New(rand.NewPCG(1, 2))
	for i := range src {
		src[i] = byte(r.IntN(256))
	}
	for i := 0; i < len(src); i += 144 {
		binary.LittleEndian.PutUint16(src[i:], Float32ToFloat16(0.01))
		binary.LittleEndian.PutUint16(src[i+2:], Float32ToFloat16(0.02))
	}
	dst := make([]float32, n)
	for b.Loop() {
		if err := Dequantize(dst, src, Q4_K); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Melem/s")
}
