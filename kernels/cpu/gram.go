package cpu

import (
	"fmt"
	"sync"
)

// gramBlock is the most tokens whose products are summed in float32 before
// being added into the float64 accumulator.
const gramBlock = 256

var gramPool sync.Pool // *[]float32 scratch of in*in

// AccumulateGram adds XᵀX to h: h is in×in float64 row-major (both triangles
// written), x is tokens×in float32 row-major. Each block of at most 256
// tokens is multiplied in float32 with the Sgemm micro-kernel and added into h in
// float64, so the rounding error is bounded by the block length, not the token
// count. Only the lower triangle of each block product is computed (micro-tiles
// above the diagonal are skipped): the lower triangle of h is read and
// accumulated, then copied onto the upper triangle, so h comes out exactly
// symmetric (h must be symmetric on entry, as every sum of Gram matrices is).
// It panics when len(h) < in*in or len(x) < tokens*in.
func (b *Backend) AccumulateGram(h []float64, x []float32, tokens, in int) {
	if tokens < 0 || in < 0 {
		panic(fmt.Sprintf("cpu: AccumulateGram: negative dimension tokens=%d in=%d", tokens, in))
	}
	if len(h) < in*in {
		panic(fmt.Sprintf("cpu: AccumulateGram: len(h) = %d < in*in = %d", len(h), in*in))
	}
	if len(x) < tokens*in {
		panic(fmt.Sprintf("cpu: AccumulateGram: len(x) = %d < tokens*in = %d", len(x), tokens*in))
	}
	if tokens == 0 || in == 0 {
		return
	}
	var tmp []float32
	if p, ok := gramPool.Get().(*[]float32); ok && cap(*p) >= in*in {
		tmp = (*p)[:in*in]
	} else {
		tmp = make([]float32, in*in)
	}
	for t0 := 0; t0 < tokens; t0 += gramBlock {
		bt := min(gramBlock, tokens-t0)
		xb := x[t0*in : (t0+bt)*in]
		gramLower(b.kern32, b.threads, in, bt, xb, tmp, func(m0, m1 int) {
			for i := m0; i < m1; i++ {
				hi := h[i*in : i*in+i+1]
				for j, v := range tmp[i*in : i*in+i+1] {
					hi[j] += float64(v)
				}
			}
		})
	}
	mirrorLower(h, in)
	gramPool.Put(&tmp)
}

// mirrorLower copies the lower triangle of the n×n matrix h onto its upper
// triangle, in square tiles to stay in cache.
func mirrorLower(h []float64, n int) {
	const tile = 32
	for i0 := 0; i0 < n; i0 += tile {
		i1 := min(i0+tile, n)
		for j0 := 0; j0 <= i0; j0 += tile {
			j1 := min(j0+tile, n)
			for i := i0; i < i1; i++ {
				for j := j0; j < min(j1, i); j++ {
					h[j*n+i] = h[i*n+j]
				}
			}
		}
	}
}
