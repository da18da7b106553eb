package gguf

import (
	"fmt"
	"math"
)

// llama3FromRopeFreqs turns the rope_freqs.weight tensor that llama.cpp's
// convert_hf_to_gguf.py (LlamaModel.generate_extra_tensors) writes for a
// rope_type "llama3" model back into the Hugging Face rope_scaling object.
// factors[i] (headDim/2 values) divides inverse frequency i: 1 where the
// wavelength 2π·theta^(2i/headDim) is below orig/high_freq_factor, factor
// above orig/low_freq_factor, and 1/((1−s)/factor + s) with
// s = (orig/wavelength − low)/(high − low) in between
// (modeling_rope_utils.py _compute_llama3_parameters).
//
// factor is the largest value. The band parameters are determined only up to
// a common scale of (orig, low, high), which leaves the frequencies
// unchanged; low_freq_factor is taken as 1, and orig and high come from the
// in-between values (two or more; with one, high is 4 and orig is solved
// for; with none, orig and high are placed between the bands, so any
// choice in the gap gives the same frequencies). The result must reproduce every factor within 1e-4
// relative, else it is an error. All factors 1 gives nil (no scaling).
func llama3FromRopeFreqs(factors []float32, theta float64, headDim int) (map[string]any, error) {
	half := headDim / 2
	if len(factors) != half {
		return nil, fmt.Errorf("%d values, want head_dim/2 = %d", len(factors), half)
	}
	factor := 0.0
	allOne := true
	for _, r := range factors {
		if !(r > 0) || math.IsInf(float64(r), 0) {
			return nil, fmt.Errorf("factor %v is not positive and finite", r)
		}
		factor = max(factor, float64(r))
		allOne = allOne && r == 1
	}
	if allOne {
		return nil, nil
	}
	wave := make([]float64, half)
	for i := range half {
		wave[i] = 2 * math.Pi * math.Pow(theta, float64(2*i)/float64(headDim))
	}
	// In-between points: s = A/wave − B with A = orig/(high−low), B = low/(high−low).
	const eps = 1e-5
	var mid []int
	for i, r := range factors {
		if float64(r) > 1+eps && float64(r) < factor*(1-eps) {
			mid = append(mid, i)
		}
	}
	low, high, orig := 1.0, 4.0, 8192.0
	firstF, last1 := -1, -1
	for i, r := range factors {
		if float64(r) >= factor*(1-eps) && firstF < 0 {
			firstF = i
		}
		if float64(r) <= 1+eps {
			last1 = i
		}
	}
	switch {
	case len(mid) == 1:
		// One in-between value: keep high 4 and solve s = (orig/wave − 1)/3.
		i := mid[0]
		s := (1/float64(factors[i]) - 1/factor) / (1 - 1/factor)
		orig = wave[i] * (1 + (high-low)*s)
		if r := math.Round(orig); math.Abs(orig-r) < 1e-4*orig {
			orig = r
		}
	case len(mid) == 0 && firstF >= 0:
		// No in-between value: put orig just below the first scaled
		// wavelength and orig/high above the last unscaled one.
		orig = wave[firstF] * (1 - 1e-6)
		if last1 >= 0 {
			high = max(high, orig/wave[last1]*(1+1e-6))
		}
	}
	if len(mid) >= 2 {
		s := func(i int) float64 { return (1/float64(factors[i]) - 1/factor) / (1 - 1/factor) }
		i, j := mid[0], mid[len(mid)-1]
		a := (s(i) - s(j)) / (1/wave[i] - 1/wave[j])
		b := a/wave[i] - s(i)
		if !(a > 0) || !(b > 0) {
			return nil, fmt.Errorf("factors %v fit no llama3 rope scaling", factors)
		}
		orig = a / b
		high = 1 + 1/b
		if r := math.Round(orig); math.Abs(orig-r) < 1e-3*orig {
			orig = r
		}
		if r := math.Round(high*1e4) / 1e4; math.Abs(high-r) < 1e-6*high {
			high = r
		}
	}
	for i, r := range factors {
		var want float64
		switch {
		case wave[i] < orig/high:
			want = 1
		case wave[i] > orig/low:
			want = factor
		default:
			s := (orig/wave[i] - low) / (high - low)
			want = 1 / ((1-s)/factor + s)
		}
		if math.Abs(want-float64(r)) > 1e-4*want {
			return nil, fmt.Errorf("factors %v fit no llama3 rope scaling (tried factor %g, low_freq_factor %g, high_freq_factor %g, original_max_position_embeddings %g: value %d is %g, want %g)",
				factors, factor, low, high, orig, i, r, want)
		}
	}
	return map[string]any{
		"rope_type": "llama3", "factor": factor, "low_freq_factor": low, "high_freq_factor": high,
		"original_max_position_embeddings": orig,
	}, nil
}
