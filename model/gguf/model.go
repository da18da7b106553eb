package gguf

import (
	"fmt"
	"sort"

	"github.com/optima-llm/optima/model"
)

// Model is a GGUF checkpoint seen as a model.Source: Hugging Face tensor
// names, Hugging Face layout (dims reversed, llama.cpp's q/k row permutation
// undone), float32 values. It is safe for concurrent Load calls.
type Model struct {
	f       *File
	spec    *archSpec
	cfg     *model.Config
	names   []string
	tensors map[string]hfTensor
}

type hfTensor struct {
	info  *TensorInfo
	shape []int
	// heads > 0 means the rows were permuted by the converter for that many
	// heads and Load undoes it.
	heads int
}

var _ model.Source = (*Model)(nil)

// OpenModel opens the GGUF file at path and maps it to Hugging Face names.
// Errors name the file: a malformed file (ErrFormat), an architecture with
// no mapping (ErrUnsupportedArchitecture, listing the supported ones), a
// tensor the mapping does not know, or metadata the config needs.
func OpenModel(path string) (*Model, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	m, err := NewModel(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return m, nil
}

// NewModel maps a parsed file to Hugging Face names; see OpenModel. Closing
// the Model closes f.
func NewModel(f *File) (*Model, error) {
	arch, err := f.String("general.architecture")
	if err != nil {
		return nil, err
	}
	spec, ok := archs[arch]
	if !ok {
		return nil, fmt.Errorf("%w %q in %s (supported: %v)", ErrUnsupportedArchitecture, arch, f.Name, SupportedArchitectures())
	}
	byName := make(map[string]*TensorInfo, len(f.Tensors))
	for i := range f.Tensors {
		byName[f.Tensors[i].Name] = &f.Tensors[i]
	}
	cfg, err := spec.config(f, arch, byName)
	if err != nil {
		return nil, err
	}
	m := &Model{f: f, spec: spec, cfg: cfg, tensors: make(map[string]hfTensor, len(f.Tensors))}
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		if spec.ignored[ti.Name] {
			continue
		}
		hf, base, ok := spec.hfName(ti.Name)
		if !ok {
			return nil, fmt.Errorf("%w %s: tensor %q has no %s mapping to Hugging Face names", ErrFormat, f.Name, ti.Name, arch)
		}
		if len(ti.Dims) == 0 {
			return nil, fmt.Errorf("%w %s: tensor %q has no dimensions", ErrFormat, f.Name, ti.Name)
		}
		shape := make([]int, len(ti.Dims))
		for j, d := range ti.Dims {
			shape[len(shape)-1-j] = int(d)
		}
		t := hfTensor{info: ti, shape: shape}
		if key, ok := spec.permuted[base]; ok {
			heads := cfg.NumAttentionHeads
			if key == "attention.head_count_kv" {
				heads = cfg.NumKeyValueHeads
			}
			rows := shape[0]
			if rows%(2*heads) != 0 {
				return nil, fmt.Errorf("%w %s: tensor %q: %d rows do not split into %d heads of even size", ErrFormat, f.Name, ti.Name, rows, heads)
			}
			t.heads = heads
		}
		if _, dup := m.tensors[hf]; dup {
			return nil, fmt.Errorf("%w %s: two tensors map to %q", ErrFormat, f.Name, hf)
		}
		m.tensors[hf] = t
		m.names = append(m.names, hf)
	}
	sort.Strings(m.names)
	return m, nil
}

// File is the underlying parsed GGUF file.
func (m *Model) File() *File { return m.f }

// Path is the GGUF file path.
func (m *Model) Path() string { return m.f.Name }

// Config is the configuration built from the metadata. Callers must not
// modify it.
func (m *Model) Config() *model.Config { return m.cfg }

// Names lists the Hugging Face tensor names, sorted.
func (m *Model) Names() []string { return append([]string(nil), m.names...) }

// Shape is the Hugging Face shape of a tensor, without reading it.
func (m *Model) Shape(name string) ([]int, bool) {
	t, ok := m.tensors[name]
	if !ok {
		return nil, false
	}
	return append([]int(nil), t.shape...), true
}

// Load reads one tensor by Hugging Face name, dequantized to float32 in
// Hugging Face layout ([out, in] for linears). Errors name the file and the
// tensor.
func (m *Model) Load(name string) (*model.Tensor, error) {
	t, ok := m.tensors[name]
	if !ok {
		return nil, fmt.Errorf("gguf %s: no tensor %q", m.f.Name, name)
	}
	data, err := m.f.ReadFloat32(t.info.Name)
	if err != nil {
		return nil, err
	}
	if t.heads > 0 {
		data = Unpermute(data, t.shape[0], t.heads)
	}
	if m.spec.adjust != nil {
		m.spec.adjust(name, data)
	}
	return &model.Tensor{Name: name, Shape: append([]int(nil), t.shape...), Data: data}, nil
}

// Unpermute undoes the row permutation that llama.cpp's convert_hf_to_gguf.py
// (LlamaModel.permute) applies to q_proj and k_proj:
//
//	w.reshape(heads, 2, rows/heads/2, in).swapaxes(1, 2).reshape(rows, in)
//
// w is rows×in row-major (len(w) = rows·in); heads is the head count (heads
// for q, kv heads for k). It returns a new slice with HF row
// h·hd + j·hd/2 + i taken from GGUF row h·hd + 2i + j (hd = rows/heads). It
// panics if rows is not a multiple of 2·heads or len(w) of rows.
func Unpermute(w []float32, rows, heads int) []float32 {
	return permuteRows("Unpermute", w, rows, heads, true)
}

// Permute applies the converter's permutation (the inverse of Unpermute),
// turning HF q_proj/k_proj rows into GGUF order. Shapes and panics as
// Unpermute.
func Permute(w []float32, rows, heads int) []float32 {
	return permuteRows("Permute", w, rows, heads, false)
}

// permuteRows maps between GGUF row h·hd + 2i + j and HF row
// h·hd + j·hd/2 + i; toHF picks the direction.
func permuteRows(op string, w []float32, rows, heads int, toHF bool) []float32 {
	if heads <= 0 || rows%(2*heads) != 0 || len(w)%rows != 0 {
		panic(fmt.Sprintf("gguf: %s: %d values, %d rows, %d heads", op, len(w), rows, heads))
	}
	in := len(w) / rows
	hd := rows / heads
	half := hd / 2
	out := make([]float32, len(w))
	for h := range heads {
		for j := range 2 {
			for i := range half {
				hf := (h*hd + j*half + i) * in
				gg := (h*hd + 2*i + j) * in
				if toHF {
					copy(out[hf:hf+in], w[gg:gg+in])
				} else {
					copy(out[gg:gg+in], w[hf:hf+in])
				}
			}
		}
	}
	return out
}

// Close closes the file.
func (m *Model) Close() error { return m.f.Close() }
