package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// dumpStats is what cudabench measured on one dumped linear (block 0).
type dumpStats struct {
	PrepareSec     float64 `json:"prepare_sec"` // 0 for a linear that reused its group's prepared Problem
	SolveSec       float64 `json:"solve_sec"`   // SolveRows
	PCGSec         float64 `json:"pcg_sec"`     // the device PCG loop alone
	GEMMRows       int64   `json:"gemm_rows"`   // Σ rows of the PCG's [rows, in] × [in, in] products
	MeanIterations float64 `json:"mean_iterations"`
	MaxIterations  int     `json:"max_iterations"`
	FallbackRows   int     `json:"fallback_rows"`
	RelErrMaskOnly float64 `json:"rel_err_mask_only"` // undamped, whole layer
	RelErrAfter    float64 `json:"rel_err_after"`
}

// dumpLayer is one linear of manifest.json.
type dumpLayer struct {
	Name    string `json:"name"`
	Group   string `json:"group"`
	Rows    int    `json:"rows"`
	In      int    `json:"in"`
	Hessian string `json:"hessian"`  // <group>.H.npy: [in, in] float64, undamped XᵀX summed over Tokens
	W       string `json:"w"`        // <name>.W.npy: [rows, in] float32, the weights before pruning
	Mask    string `json:"mask"`     // <name>.mask.npy: [rows, in] bool, true = pruned (Wanda 50%)
	WOptima string `json:"w_optima"` // <name>.Wopt.npy: [rows, in] float32, stages/solve's result
	dumpStats
	FloorSec  float64 `json:"gemm_floor_sec"`    // GEMMRows × SecPerRow
	SecPerRow float64 `json:"sgemm_sec_per_row"` // FP32 SGEMM of the full layer shape, per row
}

// dumpManifest is manifest.json.
type dumpManifest struct {
	Device   string      `json:"device"`
	Tokens   int         `json:"tokens"`
	Damping  float64     `json:"damping"` // relative: H + Damping·mean(diag H)·I
	Tol      float64     `json:"tol"`
	MaxIter  int         `json:"max_iter"`
	Fallback bool        `json:"fallback"`
	Layers   []dumpLayer `json:"layers"`
}

// dumper writes block 0's layers for the Python anchors. A nil *dumper
// writes nothing.
type dumper struct {
	dir    string
	types  map[string]bool
	groups map[string]bool // Hessians written
	man    dumpManifest
}

// newDumper returns nil when dir is empty; an error names a --dump-types
// entry that is not a Llama linear.
func newDumper(dir, types string) (*dumper, error) {
	if dir == "" {
		return nil, nil
	}
	d := &dumper{dir: dir, types: map[string]bool{}, groups: map[string]bool{}}
	known := map[string]bool{}
	for _, l := range shape8B(1, 1, 1) {
		known[l.name] = true
	}
	for _, t := range strings.Split(types, ",") {
		t = strings.TrimSpace(t)
		if !known[t] {
			return nil, fmt.Errorf("--dump-types: unknown linear %q (want names from q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj)", t)
		}
		d.types[t] = true
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--dump: %w", err)
	}
	return d, nil
}

// layer writes l's Hessian (once per group), original weights w0, mask and
// re-fitted weights w.
func (d *dumper) layer(l linear, h []float64, w0 []float32, pruned []bool, w []float32, st dumpStats) error {
	if d == nil || !d.types[l.name] {
		return nil
	}
	e := dumpLayer{Name: l.name, Group: l.group, Rows: l.rows, In: l.in, Hessian: l.group + ".H.npy",
		W: l.name + ".W.npy", Mask: l.name + ".mask.npy", WOptima: l.name + ".Wopt.npy", dumpStats: st}
	if !d.groups[l.group] {
		if err := writeNpyFloat64(filepath.Join(d.dir, e.Hessian), h, l.in, l.in); err != nil {
			return err
		}
		d.groups[l.group] = true
	}
	if err := writeNpyFloat32(filepath.Join(d.dir, e.W), w0, l.rows, l.in); err != nil {
		return err
	}
	if err := writeNpyBool(filepath.Join(d.dir, e.Mask), pruned, l.rows, l.in); err != nil {
		return err
	}
	if err := writeNpyFloat32(filepath.Join(d.dir, e.WOptima), w, l.rows, l.in); err != nil {
		return err
	}
	d.man.Layers = append(d.man.Layers, e)
	return nil
}

// finish adds the run's settings and floors and writes manifest.json.
func (d *dumper) finish(rep *report) error {
	if d == nil {
		return nil
	}
	d.man.Device, d.man.Tokens = rep.Device, rep.Tokens
	d.man.Damping, d.man.Tol, d.man.MaxIter, d.man.Fallback = rep.Options.Damping, rep.Options.Tol, rep.Options.MaxIter, rep.Options.Fallback
	for i := range d.man.Layers {
		e := &d.man.Layers[i]
		for _, tr := range rep.Types {
			if tr.Name == e.Name {
				e.SecPerRow = tr.SecPerRow
				e.FloorSec = float64(e.GEMMRows) * tr.SecPerRow
			}
		}
	}
	b, err := json.MarshalIndent(&d.man, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(d.dir, "manifest.json"), func(w *bufio.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
}

// npyHeader returns a NumPy format 1.0 header for a C-order array of the
// given dtype descriptor ('<f8', '<f4', '|b1') and shape, padded with
// spaces and a newline so that the data starts at a multiple of 64 bytes
// (numpy/lib/format.py, "Format Version 1.0").
func npyHeader(descr string, shape ...int) []byte {
	dims := make([]string, len(shape))
	for i, s := range shape {
		dims[i] = strconv.Itoa(s)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, tuple)
	const pre = 10 // magic (6) + version (2) + header length (2)
	n := pre + len(dict) + 1
	dict += strings.Repeat(" ", (64-n%64)%64) + "\n"
	if len(dict) > math.MaxUint16 {
		panic("cudabench: npy header too long")
	}
	h := append([]byte("\x93NUMPY\x01\x00"), byte(len(dict)), byte(len(dict)>>8))
	return append(h, dict...)
}

func writeNpyFloat64(path string, v []float64, rows, cols int) error {
	if len(v) != rows*cols {
		panic(fmt.Sprintf("cudabench: writeNpyFloat64: len %d, want %d×%d", len(v), rows, cols))
	}
	return writeAtomic(path, func(w *bufio.Writer) error {
		if _, err := w.Write(npyHeader("<f8", rows, cols)); err != nil {
			return err
		}
		var b [8]byte
		for _, x := range v {
			binary.LittleEndian.PutUint64(b[:], math.Float64bits(x))
			if _, err := w.Write(b[:]); err != nil {
				return err
			}
		}
		return nil
	})
}

func writeNpyFloat32(path string, v []float32, rows, cols int) error {
	if len(v) != rows*cols {
		panic(fmt.Sprintf("cudabench: writeNpyFloat32: len %d, want %d×%d", len(v), rows, cols))
	}
	return writeAtomic(path, func(w *bufio.Writer) error {
		if _, err := w.Write(npyHeader("<f4", rows, cols)); err != nil {
			return err
		}
		var b [4]byte
		for _, x := range v {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(x))
			if _, err := w.Write(b[:]); err != nil {
				return err
			}
		}
		return nil
	})
}

func writeNpyBool(path string, v []bool, rows, cols int) error {
	if len(v) != rows*cols {
		panic(fmt.Sprintf("cudabench: writeNpyBool: len %d, want %d×%d", len(v), rows, cols))
	}
	return writeAtomic(path, func(w *bufio.Writer) error {
		if _, err := w.Write(npyHeader("|b1", rows, cols)); err != nil {
			return err
		}
		for _, x := range v {
			var c byte
			if x {
				c = 1
			}
			if err := w.WriteByte(c); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeAtomic writes path through a temporary file in the same folder and
// a rename.
func writeAtomic(path string, fill func(*bufio.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	if err = fill(w); err != nil {
		return fmt.Errorf("dump %s: %w", path, err)
	}
	if err = w.Flush(); err != nil {
		return fmt.Errorf("dump %s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("dump %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("dump %s: %w", path, err)
	}
	return os.Rename(f.Name(), path)
}
