package update

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/stages/mask"
	"github.com/optima-llm/optima/stages/quant"
)

// Algorithm is the signature shared by SparseGPT, Thanos and ADMM.
type Algorithm func(be kernels.Backend, w []float64, rows, cols int, h []float64, p mask.Pattern, o Options, pruned []bool) (Result, error)

// Selector adapts an Algorithm to mask.LayerSelector. The registered names
// are "sparsegpt", "thanos" and "admm"; their parameters (all optional) are
// "blocksize" (SparseGPT, Thanos), "damping" (all), "iters", "prune_iters"
// and "rho" (ADMM).
type Selector struct {
	name string
	alg  Algorithm
	opts Options
}

// NewSelector returns the layer selector name running alg with opts.
func NewSelector(name string, alg Algorithm, opts Options) *Selector {
	return &Selector{name: name, alg: alg, opts: opts}
}

// Name is the registered name.
func (s *Selector) Name() string { return s.name }

// Options returns the selector's options with defaults filled in.
func (s *Selector) Options() Options { return s.opts }

// Select returns mask.ErrNeedsLayer: these selectors need the whole layer.
func (s *Selector) Select(w []float32, rows, cols int, colNorms []float64, p mask.Pattern, dst *mask.Mask) error {
	return fmt.Errorf("%s: %w", s.name, mask.ErrNeedsLayer)
}

// SelectUpdate implements mask.LayerSelector (see there for the contract):
// it converts w to float64, runs the algorithm and writes the mask and the
// updated weights (rounded to float32).
func (s *Selector) SelectUpdate(be kernels.Backend, w []float32, rows, cols int, h []float64, p mask.Pattern, dst *mask.Mask, upd []float32) (float64, error) {
	if len(w) != rows*cols || len(upd) != rows*cols {
		panic(fmt.Sprintf("update %s: len(w) = %d, len(upd) = %d, want %d×%d", s.name, len(w), len(upd), rows, cols))
	}
	if dst.Rows != rows || dst.Cols != cols || len(dst.Pruned) != rows*cols {
		panic(fmt.Sprintf("update %s: dst is %d×%d, want %d×%d", s.name, dst.Rows, dst.Cols, rows, cols))
	}
	if err := p.Check(cols); err != nil {
		panic(fmt.Sprintf("update %s: %v", s.name, err))
	}
	w64 := make([]float64, len(w))
	for i, v := range w {
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, &mask.NonFiniteError{What: "weight", Row: i / cols, Col: i % cols, Value: f}
		}
		w64[i] = f
	}
	for i, v := range h {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, fmt.Errorf("%s: non-finite hessian value %v at [%d, %d]", s.name, v, i/cols, i%cols)
		}
	}
	res, err := s.alg(be, w64, rows, cols, h, p, s.opts, dst.Pruned)
	if err != nil {
		return res.Damping, err
	}
	for i, v := range w64 {
		upd[i] = float32(v)
		if dst.Pruned[i] {
			upd[i] = 0
		}
	}
	return res.Damping, nil
}

// DefaultOptions returns the defaults of the named algorithm ("sparsegpt",
// "thanos", "admm"): block size 128, damping 0.01 (0.1 for ADMM), ADMM 20
// iterations of which 15 select the mask, ρ = 1.
func DefaultOptions(name string) Options {
	o := Options{BlockSize: 128, Damping: 0.01}
	if name == "admm" {
		o = Options{Damping: 0.1, Iters: 20, PruneIters: 15, Rho: 1}
	}
	return o
}

// ParseOptions reads string parameters over the defaults of name. Unknown
// keys and bad values are errors that name the key.
func ParseOptions(name string, params map[string]string) (Options, error) {
	o := DefaultOptions(name)
	for k, v := range params {
		var err error
		switch {
		case k == "blocksize" && name != "admm":
			o.BlockSize, err = strconv.Atoi(v)
			if err == nil && o.BlockSize <= 0 {
				err = errors.New("must be positive")
			}
		case k == "damping":
			o.Damping, err = strconv.ParseFloat(v, 64)
			if err == nil && !(o.Damping >= 0 && o.Damping <= 1) {
				err = errors.New("must be in [0, 1]")
			}
		case k == "iters" && name == "admm":
			o.Iters, err = strconv.Atoi(v)
			if err == nil && o.Iters <= 0 {
				err = errors.New("must be positive")
			}
		case k == "prune_iters" && name == "admm":
			o.PruneIters, err = strconv.Atoi(v)
			if err == nil && o.PruneIters <= 0 {
				err = errors.New("must be positive")
			}
		case k == "bits" && name == "sparsegpt":
			if o.Quant == nil {
				o.Quant = &quant.Options{Method: quant.GPTQ}
			}
			o.Quant.Bits, err = strconv.Atoi(v)
			if err == nil && (o.Quant.Bits < 2 || o.Quant.Bits > 8) {
				err = errors.New("must be 2 to 8")
			}
		case k == "group_size" && name == "sparsegpt":
			if o.Quant == nil {
				o.Quant = &quant.Options{Method: quant.GPTQ}
			}
			o.Quant.GroupSize, err = strconv.Atoi(v)
			if err == nil && o.Quant.GroupSize < 0 {
				err = errors.New("must not be negative")
			}
		case k == "scale_important" && name == "sparsegpt":
			if o.Quant == nil {
				o.Quant = &quant.Options{Method: quant.GPTQ}
			}
			o.Quant.ScaleImportant, err = strconv.ParseBool(v)
		case k == "rho" && name == "admm":
			o.Rho, err = strconv.ParseFloat(v, 64)
			if err == nil && !(o.Rho > 0) || math.IsInf(o.Rho, 0) {
				err = errors.New("must be positive")
			}
		default:
			return o, fmt.Errorf("unknown parameter %q", k)
		}
		if err != nil {
			return o, fmt.Errorf("parameter %s=%q: %v", k, v, err)
		}
	}
	if q := o.Quant; q != nil {
		if q.Bits == 0 {
			return o, errors.New("parameters group_size and scale_important quantize inside the sweep and need bits")
		}
		if g := q.GroupSize; g > 0 && o.BlockSize%g != 0 && g%o.BlockSize != 0 {
			return o, fmt.Errorf("parameter group_size=%d: blocksize=%d and the group size must divide one another (a group's step is taken when all its columns are compensated)", g, o.BlockSize)
		}
	}
	if name == "admm" && o.PruneIters > o.Iters {
		return o, fmt.Errorf("parameter prune_iters=%d: more than iters=%d", o.PruneIters, o.Iters)
	}
	return o, nil
}

func init() {
	for name, alg := range map[string]Algorithm{"sparsegpt": SparseGPT, "thanos": Thanos, "admm": ADMM} {
		mask.Register(name, func(params map[string]string) (mask.Selector, error) {
			o, err := ParseOptions(name, params)
			if err != nil {
				return nil, err
			}
			return NewSelector(name, alg, o), nil
		})
	}
}
