package mask

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"

	"github.com/optima-llm/optima/kernels"
)

// Mask marks the pruned weights of a [Rows, Cols] weight, row-major; true
// means pruned.
type Mask struct {
	Rows, Cols int
	Pruned     []bool
}

// NewMask returns an all-kept mask of rows×cols. It panics on a negative size.
func NewMask(rows, cols int) *Mask {
	if rows < 0 || cols < 0 {
		panic(fmt.Sprintf("mask.NewMask: negative size %d×%d", rows, cols))
	}
	return &Mask{Rows: rows, Cols: cols, Pruned: make([]bool, rows*cols)}
}

// Row returns row i of the mask (aliasing Pruned).
func (m *Mask) Row(i int) []bool { return m.Pruned[i*m.Cols : (i+1)*m.Cols] }

// Count is the number of pruned weights.
func (m *Mask) Count() int {
	n := 0
	for _, p := range m.Pruned {
		if p {
			n++
		}
	}
	return n
}

// Apply zeroes the pruned entries of w ([Rows, Cols] row-major float32). It
// panics when len(w) != Rows·Cols.
func (m *Mask) Apply(w []float32) {
	if len(w) != len(m.Pruned) {
		panic(fmt.Sprintf("mask.Apply: len(w) = %d, want %d×%d", len(w), m.Rows, m.Cols))
	}
	for i, p := range m.Pruned {
		if p {
			w[i] = 0
		}
	}
}

// NonFiniteError reports a NaN or ±Inf weight, or a NaN, ±Inf or negative
// column norm, met by a selector. Row and Col index the weight as given to Select (Row is relative
// to the row batch); Layer is set by SelectLayer.
type NonFiniteError struct {
	Layer    string
	What     string // "weight" or "column norm"
	Row, Col int
	Value    float64
}

func (e *NonFiniteError) Error() string {
	where := fmt.Sprintf("row %d, column %d", e.Row, e.Col)
	if e.What != "weight" {
		where = fmt.Sprintf("column %d", e.Col)
	}
	layer := e.Layer
	if layer == "" {
		layer = "(unnamed layer)"
	}
	return fmt.Sprintf("mask: %s: %s %v at %s", layer, e.What, e.Value, where)
}

// Selector chooses a mask for a row batch of a linear weight.
//
// Select reads w ([rows, cols] row-major float32) and colNorms (‖X_j‖₂ per
// input channel, length cols, from hessian.ColumnNorms; nil is allowed by
// selectors that do not need it) and overwrites dst (which must be rows×cols)
// so that p holds in every row. The mask of a row depends only on that row
// and colNorms. It returns a *NonFiniteError for a NaN/±Inf weight or norm and
// an error when it needs colNorms and gets nil; it panics on mismatched shapes
// or a pattern that fails p.Check(cols). Implementations are safe for
// concurrent use.
type Selector interface {
	Name() string
	Select(w []float32, rows, cols int, colNorms []float64, p Pattern, dst *Mask) error
}

// Factory builds a selector from string parameters (from the command line or
// a pipeline's JSON configuration); unknown parameters are an error.
type Factory func(params map[string]string) (Selector, error)

// ErrUnknownSelector is wrapped by New for a name no selector registered.
var ErrUnknownSelector = errors.New("mask: unknown selector")

var (
	regMu    sync.RWMutex
	registry = map[string]Factory{}
)

// Register makes a selector available under name. It panics when name is
// empty or already registered.
func Register(name string, f Factory) {
	regMu.Lock()
	defer regMu.Unlock()
	if name == "" {
		panic("mask: Register with an empty name")
	}
	if _, dup := registry[name]; dup {
		panic("mask: Register called twice for " + name)
	}
	registry[name] = f
}

// Names lists the registered selector names, sorted.
func Names() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// New builds the selector registered under name. An unregistered name gives
// an error wrapping ErrUnknownSelector that lists the known names.
func New(name string, params map[string]string) (Selector, error) {
	regMu.RLock()
	f, ok := registry[name]
	regMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q (known: %v)", ErrUnknownSelector, name, Names())
	}
	s, err := f(params)
	if err != nil {
		return nil, fmt.Errorf("mask: selector %s: %w", name, err)
	}
	return s, nil
}

// SelectLayer checks p against the layer width, then runs s.Select on a row
// batch of the linear named layer. Errors name the layer (a *NonFiniteError
// gets its Layer field set and its Row shifted by firstRow, the batch's first
// row in the layer).
func SelectLayer(s Selector, layer string, firstRow int, w []float32, rows, cols int, colNorms []float64, p Pattern, dst *Mask) error {
	if err := p.Check(cols); err != nil {
		return fmt.Errorf("mask: %s: %w", layer, err)
	}
	err := s.Select(w, rows, cols, colNorms, p, dst)
	if err == nil {
		return nil
	}
	if nf, ok := errors.AsType[*NonFiniteError](err); ok {
		nf.Layer = layer
		if nf.What == "weight" {
			nf.Row += firstRow
		}
		return nf
	}
	return fmt.Errorf("mask: %s: %s: %w", layer, s.Name(), err)
}

func init() {
	Register("magnitude", func(params map[string]string) (Selector, error) {
		if err := noParams(params); err != nil {
			return nil, err
		}
		return scoreSelector{name: "magnitude"}, nil
	})
	Register("wanda", func(params map[string]string) (Selector, error) {
		if err := noParams(params); err != nil {
			return nil, err
		}
		return scoreSelector{name: "wanda", useNorms: true}, nil
	})
}

func noParams(params map[string]string) error {
	for k := range params {
		return fmt.Errorf("unknown parameter %q (this selector takes none)", k)
	}
	return nil
}

// scoreSelector prunes the lowest scores of each row: score |W_ij|
// (magnitude) or |W_ij|·‖X_j‖₂ (Wanda, Sun et al. 2023, eq. 1, compared per
// output row), computed in float64.
//
// Unstructured: the row's indices are sorted by ascending score, ties broken
// by lower column index first (what the Wanda reference's
// torch.sort(stable=True) does), and the first p.PerRow(cols) are pruned. N:M:
// the same order within each group of M consecutive columns, pruning M−N.
// (The Wanda reference uses torch.topk for N:M, whose tie order is not
// specified; on distinct scores the results agree.)
type scoreSelector struct {
	name     string
	useNorms bool
}

func (s scoreSelector) Name() string { return s.name }

func (s scoreSelector) Select(w []float32, rows, cols int, colNorms []float64, p Pattern, dst *Mask) error {
	if rows < 0 || cols <= 0 || len(w) != rows*cols {
		panic(fmt.Sprintf("mask %s: len(w) = %d, want rows×cols = %d×%d", s.name, len(w), rows, cols))
	}
	if dst.Rows != rows || dst.Cols != cols || len(dst.Pruned) != rows*cols {
		panic(fmt.Sprintf("mask %s: dst is %d×%d (len %d), want %d×%d", s.name, dst.Rows, dst.Cols, len(dst.Pruned), rows, cols))
	}
	if err := p.Check(cols); err != nil {
		panic(fmt.Sprintf("mask %s: %v", s.name, err))
	}
	if s.useNorms {
		if colNorms == nil {
			return errors.New("needs the input column norms ‖X_j‖₂ (no Hessian given)")
		}
		if len(colNorms) != cols {
			panic(fmt.Sprintf("mask %s: len(colNorms) = %d, want %d", s.name, len(colNorms), cols))
		}
		for j, v := range colNorms {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				return &NonFiniteError{What: "column norm", Col: j, Value: v}
			}
		}
	}
	for i, v := range w {
		if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
			return &NonFiniteError{What: "weight", Row: i / cols, Col: i % cols, Value: f}
		}
	}
	score := make([]float64, cols)
	idx := make([]int, cols)
	sorted := make([]float64, cols)
	byScore := func(a, b int) int {
		if c := cmp.Compare(score[a], score[b]); c != 0 {
			return c
		}
		return a - b
	}
	k := p.PerRow(cols)
	for r := range rows {
		row := w[r*cols : (r+1)*cols]
		out := dst.Pruned[r*cols : (r+1)*cols]
		clear(out)
		for j, v := range row {
			score[j] = math.Abs(float64(v))
			if s.useNorms {
				score[j] *= colNorms[j]
			}
		}
		if !p.IsNM() {
			if k == 0 {
				continue
			}
			// The stable-sort prefix of length k, found from the k-th
			// smallest score t: every score below t, then the
			// lowest-indexed scores equal to t.
			copy(sorted, score)
			slices.Sort(sorted)
			t := sorted[k-1]
			ties := k - sort.SearchFloat64s(sorted, t)
			for j, v := range score {
				if v < t {
					out[j] = true
				} else if v == t && ties > 0 {
					out[j] = true
					ties--
				}
			}
			continue
		}
		g := idx[:p.M]
		for base := 0; base < cols; base += p.M {
			for j := range g {
				g[j] = base + j
			}
			if p.M <= 32 { // insertion sort for the usual small M
				for a := 1; a < len(g); a++ {
					for b := a; b > 0 && byScore(g[b-1], g[b]) > 0; b-- {
						g[b-1], g[b] = g[b], g[b-1]
					}
				}
			} else {
				slices.SortFunc(g, byScore)
			}
			for _, j := range g[:p.M-p.N] {
				out[j] = true
			}
		}
	}
	return nil
}

// ErrNeedsLayer is returned by the Select method of a LayerSelector: its
// mask depends on all rows of a linear and on the layer's Hessian, so it
// cannot run on a row batch with column norms only. Call SelectUpdate.
var ErrNeedsLayer = errors.New("mask: selector needs the whole layer and its Hessian (use SelectUpdate)")

// LayerSelector is a Selector whose mask depends on the whole linear layer
// and its Hessian, and which computes its own weight update while it selects
// (SparseGPT, Thanos, ADMM in package stages/update, registered in this
// registry by that package's init).
//
// SelectUpdate reads w ([rows, cols] row-major float32: every row of one
// linear) and h ([cols, cols] row-major float64, the undamped normalised
// Hessian XᵀX/N, both triangles), writes the mask into dst (rows×cols) and the
// selector's own updated weights into upd ([rows, cols] float32, pruned
// entries exactly 0; it may alias nothing else). It returns the relative
// damping λ actually used (H + λ·mean(diag H)·I). Errors: *NonFiniteError for
// a NaN/±Inf weight, an error for a non-finite Hessian, and an error wrapping
// kernels.ErrNotPositiveDefinite when no damping step makes H positive
// definite. It panics on mismatched shapes or a pattern that fails
// p.Check(cols).
type LayerSelector interface {
	Selector
	SelectUpdate(be kernels.Backend, w []float32, rows, cols int, h []float64, p Pattern, dst *Mask, upd []float32) (float64, error)
}

// IsLayerSelector reports whether the selector registered under name is a
// LayerSelector (false for an unknown name).
func IsLayerSelector(name string) bool {
	s, err := New(name, nil)
	if err != nil {
		return false
	}
	_, ok := s.(LayerSelector)
	return ok
}
