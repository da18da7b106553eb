// Package mask chooses which weights of a linear layer to prune: sparsity
// patterns (unstructured ratio or N:M), the Mask value, and the Selector
// registry with the built-in "magnitude" and "wanda" selectors.
//
// A linear weight W is [rows, cols] = [out, in] row-major float32. Every
// built-in selector decides each output row on its own (Wanda's per-output
// comparison group), so a layer's mask may be computed over any split of its
// rows into batches with the same result.
//
// A LayerSelector (SparseGPT, Thanos, ADMM: package stages/update, which
// registers them here) instead needs all rows of a linear and its Hessian,
// and computes its own weight update; its Select returns ErrNeedsLayer.
package mask

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Pattern is a sparsity pattern: either unstructured (N == M == 0), pruning
// floor(Sparsity·cols) weights in every row, or N:M, keeping N and pruning
// M−N weights in every group of M consecutive input weights of a row.
type Pattern struct {
	// Sparsity is the unstructured pruned fraction in [0, 1); 0 for N:M.
	Sparsity float64
	// N and M describe an N:M pattern (0 < N < M); both 0 when unstructured.
	N, M int
}

// ParsePattern builds a pattern from the --sparsity and --pattern flags;
// exactly one may be set: nm == "" means unstructured with the given sparsity
// (in [0, 1)), otherwise nm is "N:M" with 0 < N < M and sparsity must be 0.
// Errors name the offending flag.
func ParsePattern(sparsity float64, nm string) (Pattern, error) {
	if nm == "" {
		if !(sparsity >= 0 && sparsity < 1) { // also rejects NaN
			return Pattern{}, fmt.Errorf("--sparsity must be in [0, 1), got %v", sparsity)
		}
		return Pattern{Sparsity: sparsity}, nil
	}
	if sparsity != 0 {
		return Pattern{}, fmt.Errorf("give either --sparsity (%v) or --pattern (%q), not both", sparsity, nm)
	}
	ns, ms, ok := strings.Cut(nm, ":")
	n, errN := strconv.Atoi(strings.TrimSpace(ns))
	m, errM := strconv.Atoi(strings.TrimSpace(ms))
	if !ok || errN != nil || errM != nil {
		return Pattern{}, fmt.Errorf("--pattern %q: want N:M, e.g. 2:4", nm)
	}
	if n <= 0 || m <= 0 || n >= m {
		return Pattern{}, fmt.Errorf("--pattern %q: want 0 < N < M", nm)
	}
	if m > 1<<16 {
		return Pattern{}, fmt.Errorf("--pattern %q: M larger than %d", nm, 1<<16)
	}
	return Pattern{N: n, M: m}, nil
}

// IsNM reports whether p is an N:M pattern.
func (p Pattern) IsNM() bool { return p.M != 0 }

// Fraction is the fraction of weights p prunes: Sparsity, or (M−N)/M. The
// unstructured count per row is rounded down, so a row of width cols loses
// PerRow(cols) weights, which may be a little less than Fraction·cols.
func (p Pattern) Fraction() float64 {
	if p.IsNM() {
		return float64(p.M-p.N) / float64(p.M)
	}
	return p.Sparsity
}

// PerRow is the number of weights pruned in a row of width cols:
// int(cols·Sparsity) (rounded toward zero in float64, as the Wanda reference
// computes int(W.shape[1]*sparsity_ratio)), or (cols/M)·(M−N) for N:M.
func (p Pattern) PerRow(cols int) int {
	if p.IsNM() {
		return cols / p.M * (p.M - p.N)
	}
	return int(math.Floor(float64(cols) * p.Sparsity))
}

// String is "2:4" or the unstructured sparsity, e.g. "0.5".
func (p Pattern) String() string {
	if p.IsNM() {
		return fmt.Sprintf("%d:%d", p.N, p.M)
	}
	return strconv.FormatFloat(p.Sparsity, 'g', -1, 64)
}

// Check returns an error when p cannot apply to a layer of input width in:
// in must be positive and, for N:M, a multiple of M. The error gives the width.
func (p Pattern) Check(in int) error {
	if in <= 0 {
		return fmt.Errorf("pattern %s: layer width %d is not positive", p, in)
	}
	if p.IsNM() && in%p.M != 0 {
		return fmt.Errorf("pattern %s needs the layer input width to be a multiple of %d, got %d", p, p.M, in)
	}
	return nil
}
