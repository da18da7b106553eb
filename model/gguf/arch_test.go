package gguf

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// converterFactors computes rope_freqs.weight as convert_hf_to_gguf.py
// does: inverse frequencies in float32, factors stored as float32.
func converterFactors(theta float64, hd int, factor, low, high, orig float64) []float32 {
	out := make([]float32, hd/2)
	for i := range out {
		inv := float64(float32(1 / math.Pow(theta, float64(2*i)/float64(hd))))
		wave := 2 * math.Pi / inv
		switch {
		case wave < orig/high:
			out[i] = 1
		case wave > orig/low:
			out[i] = float32(factor)
		default:
			s := (orig/wave - low) / (high - low)
			out[i] = float32(1 / ((1-s)/factor + s))
		}
	}
	return out
}

func TestLlama3FromRopeFreqs(t *testing.T) {
	approx := cmpopts.EquateApprox(1e-6, 0)
	for _, tc := range []struct {
		name                    string
		theta                   float64
		hd                      int
		factor, low, high, orig float64
		want                    map[string]any
	}{
		{"llama3.1 8B", 500000, 128, 8, 1, 4, 8192, map[string]any{"rope_type": "llama3", "factor": 8.0,
			"low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192.0}},
		{"llama3.2 1B", 500000, 64, 32, 1, 4, 8192, map[string]any{"rope_type": "llama3", "factor": 32.0,
			"low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192.0}},
		// Scaled band parameters give the same factors; low is normalised to 1.
		{"scaled bands", 500000, 128, 8, 2, 8, 16384, map[string]any{"rope_type": "llama3", "factor": 8.0,
			"low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192.0}},
		{"other bands", 10000, 128, 4, 1, 2, 4096, map[string]any{"rope_type": "llama3", "factor": 4.0,
			"low_freq_factor": 1.0, "high_freq_factor": 2.0, "original_max_position_embeddings": 4096.0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := converterFactors(tc.theta, tc.hd, tc.factor, tc.low, tc.high, tc.orig)
			got, err := llama3FromRopeFreqs(f, tc.theta, tc.hd)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, approx); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if got, err := llama3FromRopeFreqs([]float32{1, 1, 1, 1}, 1e4, 8); got != nil || err != nil {
		t.Errorf("all ones: %v %v, want nil, nil", got, err)
	}
	for _, tc := range []struct {
		f    []float32
		want string
	}{
		{[]float32{1, 1, 1}, "want head_dim/2 = 4"},
		{[]float32{1, 0, 1, 1}, "not positive"},
		{[]float32{1, 8, 1, 8}, "fit no llama3"},
		{[]float32{1, 2, 1, 8}, "fit no llama3"},
	} {
		if _, err := llama3FromRopeFreqs(tc.f, 1e4, 8); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.f, err, tc.want)
		}
	}
}

// FuzzLlama3FromRopeFreqs: arbitrary rope_freqs values never panic, and an
// accepted set is reproduced by the returned parameters.
func FuzzLlama3FromRopeFreqs(f *testing.F) {
	f.Add(float32(1), float32(2.5), float32(8), float32(8))
	f.Add(float32(1), float32(1), float32(1), float32(1))
	f.Fuzz(func(t *testing.T, a, b, c, d float32) {
		in := []float32{a, b, c, d}
		rs, err := llama3FromRopeFreqs(in, 10000, 8)
		if err != nil || rs == nil {
			return
		}
		got := converterFactors(10000, 8, rs["factor"].(float64), rs["low_freq_factor"].(float64),
			rs["high_freq_factor"].(float64), rs["original_max_position_embeddings"].(float64))
		for i := range in {
			if math.Abs(float64(got[i]-in[i])) > 2e-4*float64(in[i]) {
				t.Fatalf("%v: parameters %v give %v", in, rs, got)
			}
		}
	})
}
