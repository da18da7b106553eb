// Package blockops holds the small pieces every family's float32 forward
// pass shares: checked tensor access, a linear layer y = x·Wᵀ + b through a
// kernels.Backend, buffer reuse and row-parallel loops.
package blockops

import (
	"fmt"
	"sync"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/model"
)

// Tensor returns the data of w[name] after checking its shape. A missing
// tensor or a wrong shape is an error naming the tensor, prefixed with
// family ("llama: missing tensor ...").
func Tensor(family string, w model.Weights, name string, shape ...int) ([]float32, error) {
	t, ok := w[name]
	if !ok || t == nil {
		return nil, fmt.Errorf("%s: missing tensor %s", family, name)
	}
	good := len(t.Shape) == len(shape)
	for i := 0; good && i < len(shape); i++ {
		good = t.Shape[i] == shape[i]
	}
	n := 1
	for _, d := range shape {
		n *= d
	}
	if !good || len(t.Data) != n {
		return nil, fmt.Errorf("%s: tensor %s: shape %v with %d values, want %v", family, name, t.Shape, len(t.Data), shape)
	}
	return t.Data, nil
}

// Linear is one linear layer's weight W [Out, In] and optional bias B [Out],
// float32 row-major.
type Linear struct {
	W, B    []float32
	Out, In int
}

// LoadLinear reads l's weight (and its bias when bias is true) from w; errors
// are Tensor's.
func LoadLinear(family string, w model.Weights, l model.Linear, bias bool) (Linear, error) {
	lw := Linear{Out: l.Out, In: l.In}
	var err error
	if lw.W, err = Tensor(family, w, l.Weight(), l.Out, l.In); err != nil {
		return lw, err
	}
	if bias {
		if lw.B, err = Tensor(family, w, l.Name+".bias", l.Out); err != nil {
			return lw, err
		}
	}
	return lw, nil
}

// Apply computes y = x·Wᵀ + b for x [tokens, In] and y [tokens, Out].
func (l Linear) Apply(be kernels.Backend, x []float32, tokens int, y []float32) {
	be.Sgemm(false, true, tokens, l.Out, l.In, 1, x, l.In, l.W, l.In, 0, y, l.Out)
	if l.B != nil {
		for t := range tokens {
			row := y[t*l.Out : (t+1)*l.Out]
			for j, b := range l.B {
				row[j] += b
			}
		}
	}
}

// Grow returns b resliced to n elements, reallocating when its capacity is
// too small. Contents are unspecified.
func Grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// Threads is the backend's thread count, at least 1.
func Threads(be kernels.Backend) int {
	if n := be.Capabilities().Threads; n > 0 {
		return n
	}
	return 1
}

// ParallelFor splits [0, n) into at most workers contiguous ranges and runs
// fn on each in its own goroutine.
func ParallelFor(n, workers int, fn func(lo, hi int)) {
	if workers > n {
		workers = n
	}
	if workers <= 1 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Go(func() { fn(lo, hi) })
	}
	wg.Wait()
}

// AddInto adds y to x elementwise (len(y) ≥ len(x)).
func AddInto(x, y []float32, workers int) {
	ParallelFor(len(x), workers, func(lo, hi int) {
		xs, ys := x[lo:hi], y[lo:hi]
		for j := range xs {
			xs[j] += ys[j]
		}
	})
}
