// Package safetensors reads and writes the safetensors format
// (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON
//
//	{"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [out, in], "data_offsets": [begin, end]}, ...}
//
// padded with spaces to a multiple of 8, then the data; offsets are relative
// to the end of the header. Tensors are row-major little-endian.
//
// Reading is lazy through io.ReaderAt; F32, F16, BF16 and F64 tensors load as
// float32. Writing goes through a temporary file in the target directory, an
// fsync and a rename, so a reader never sees a half-written file.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"

	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/gguf"
)

// MaxHeaderSize bounds the JSON header (the Python package uses the same
// 100 MB limit).
const MaxHeaderSize = 100_000_000

// ErrFormat is wrapped by every error about a malformed file.
var ErrFormat = errors.New("safetensors: bad file")

// DType is a safetensors element type name.
type DType string

// The element types this package knows. Only F32, F16, BF16 and F64 load as
// float32; F32, F16 and BF16 can be written.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U8   DType = "U8"
	U16  DType = "U16"
	U32  DType = "U32"
	U64  DType = "U64"
	Bool DType = "BOOL"
	F8E4 DType = "F8_E4M3"
	F8E5 DType = "F8_E5M2"
)

var dtypeSizes = map[DType]int64{F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1,
	U16: 2, U32: 4, U64: 8, Bool: 1, F8E4: 1, F8E5: 1}

// Size is the byte size of one element, 0 for an unknown type.
func (d DType) Size() int64 { return dtypeSizes[d] }

// TensorInfo is one header entry.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int
	// Begin and End are byte offsets relative to the start of the data.
	Begin, End int64
}

// Numel is the number of elements.
func (t TensorInfo) Numel() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// File is an open safetensors file. It is safe for concurrent Load calls.
type File struct {
	// Name is the path (or the name given to Parse), used in errors.
	Name string
	// Metadata is the __metadata__ map (nil when absent).
	Metadata map[string]string

	infos     map[string]TensorInfo
	names     []string
	dataStart int64
	r         io.ReaderAt
	closer    io.Closer
}

// Open opens and parses the file at path; the File keeps it open until Close.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	f, err := Parse(fh, st.Size(), path)
	if err != nil {
		fh.Close()
		return nil, err
	}
	f.closer = fh
	return f, nil
}

// Parse reads the header of a safetensors file of size bytes from r. name is
// used in errors. Errors wrap ErrFormat.
func Parse(r io.ReaderAt, size int64, name string) (*File, error) {
	var lb [8]byte
	if size < 8 {
		return nil, fmt.Errorf("%w %s: %d bytes is too short for a header", ErrFormat, name, size)
	}
	if _, err := r.ReadAt(lb[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors %s: %w", name, err)
	}
	n := binary.LittleEndian.Uint64(lb[:])
	if n > MaxHeaderSize || n > uint64(size-8) {
		return nil, fmt.Errorf("%w %s: header length %d exceeds the file (%d bytes) or the %d byte limit", ErrFormat, name, n, size, MaxHeaderSize)
	}
	hdr := make([]byte, n)
	if _, err := r.ReadAt(hdr, 8); err != nil && n > 0 {
		return nil, fmt.Errorf("safetensors %s: read header: %w", name, err)
	}
	infos, meta, err := ParseHeader(hdr, size-8-int64(n), name)
	if err != nil {
		return nil, err
	}
	f := &File{Name: name, Metadata: meta, infos: infos, dataStart: 8 + int64(n), r: r}
	for k := range infos {
		f.names = append(f.names, k)
	}
	sort.Strings(f.names)
	return f, nil
}

type rawInfo struct {
	DType       DType    `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets []uint64 `json:"data_offsets"`
}

// ParseHeader parses the JSON header hdr for a data section of dataSize
// bytes. It checks every entry: known dtype, non-negative shape, offsets
// inside the data with end − begin = numel × dtype size, and no two tensors
// overlapping. name is used in errors, which wrap ErrFormat.
func ParseHeader(hdr []byte, dataSize int64, name string) (map[string]TensorInfo, map[string]string, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, nil, fmt.Errorf("%w %s: header JSON: %v", ErrFormat, name, err)
	}
	var meta map[string]string
	infos := make(map[string]TensorInfo, len(raw))
	for k, v := range raw {
		if k == "__metadata__" {
			if err := json.Unmarshal(v, &meta); err != nil {
				return nil, nil, fmt.Errorf("%w %s: __metadata__ must map strings to strings: %v", ErrFormat, name, err)
			}
			continue
		}
		var ri rawInfo
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ri); err != nil {
			return nil, nil, fmt.Errorf("%w %s: tensor %q: %v", ErrFormat, name, k, err)
		}
		sz := ri.DType.Size()
		if sz == 0 {
			return nil, nil, fmt.Errorf("%w %s: tensor %q: unknown dtype %q", ErrFormat, name, k, ri.DType)
		}
		if len(ri.DataOffsets) != 2 {
			return nil, nil, fmt.Errorf("%w %s: tensor %q: data_offsets must have 2 entries", ErrFormat, name, k)
		}
		b, e := ri.DataOffsets[0], ri.DataOffsets[1]
		if b > e || e > uint64(dataSize) {
			return nil, nil, fmt.Errorf("%w %s: tensor %q: data_offsets [%d, %d] outside the %d data bytes", ErrFormat, name, k, b, e, dataSize)
		}
		ti := TensorInfo{Name: k, DType: ri.DType, Shape: make([]int, len(ri.Shape)), Begin: int64(b), End: int64(e)}
		numel := int64(1)
		for i, d := range ri.Shape {
			if d < 0 || (d > 0 && numel > math.MaxInt64/sz/d) {
				return nil, nil, fmt.Errorf("%w %s: tensor %q: bad shape %v", ErrFormat, name, k, ri.Shape)
			}
			numel *= d
			ti.Shape[i] = int(d)
		}
		if numel*sz != int64(e-b) {
			return nil, nil, fmt.Errorf("%w %s: tensor %q: shape %v of %s needs %d bytes, data_offsets give %d", ErrFormat, name, k, ri.Shape, ri.DType, numel*sz, e-b)
		}
		infos[k] = ti
	}
	spans := make([]TensorInfo, 0, len(infos))
	for _, ti := range infos {
		spans = append(spans, ti)
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].Begin != spans[j].Begin {
			return spans[i].Begin < spans[j].Begin
		}
		return spans[i].End < spans[j].End
	})
	for i := 1; i < len(spans); i++ {
		if spans[i].Begin < spans[i-1].End {
			return nil, nil, fmt.Errorf("%w %s: tensors %q and %q overlap", ErrFormat, name, spans[i-1].Name, spans[i].Name)
		}
	}
	return infos, meta, nil
}

// Close closes the file if Open opened it.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	c := f.closer
	f.closer = nil
	return c.Close()
}

// Names lists the tensor names, sorted.
func (f *File) Names() []string { return append([]string(nil), f.names...) }

// Info returns a tensor's header entry.
func (f *File) Info(name string) (TensorInfo, bool) {
	ti, ok := f.infos[name]
	return ti, ok
}

// ReadRaw reads a tensor's bytes.
func (f *File) ReadRaw(name string) ([]byte, TensorInfo, error) {
	ti, ok := f.infos[name]
	if !ok {
		return nil, ti, fmt.Errorf("safetensors %s: no tensor %q", f.Name, name)
	}
	b := make([]byte, ti.End-ti.Begin)
	if _, err := f.r.ReadAt(b, f.dataStart+ti.Begin); err != nil {
		return nil, ti, fmt.Errorf("safetensors %s: read tensor %q: %w", f.Name, name, err)
	}
	return b, ti, nil
}

// Load reads a tensor as float32 (F32, F16, BF16 or F64). Errors name the
// file and tensor.
func (f *File) Load(name string) (*model.Tensor, error) {
	b, ti, err := f.ReadRaw(name)
	if err != nil {
		return nil, err
	}
	data, err := Decode(b, ti.DType)
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: tensor %q: %w", f.Name, name, err)
	}
	return &model.Tensor{Name: name, Shape: slices.Clone(ti.Shape), Data: data}, nil
}

// Decode converts little-endian F32, F16, BF16 or F64 bytes to float32
// (F64 rounds to nearest). It returns an error for other types or a length
// that is not a multiple of the element size.
func Decode(b []byte, dt DType) ([]float32, error) {
	sz := dt.Size()
	if sz == 0 || len(b)%int(sz) != 0 {
		return nil, fmt.Errorf("%d bytes of dtype %q", len(b), dt)
	}
	out := make([]float32, len(b)/int(sz))
	le := binary.LittleEndian
	switch dt {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
	case F16:
		for i := range out {
			out[i] = gguf.Float16ToFloat32(le.Uint16(b[2*i:]))
		}
	case BF16:
		for i := range out {
			out[i] = math.Float32frombits(uint32(le.Uint16(b[2*i:])) << 16)
		}
	case F64:
		for i := range out {
			out[i] = float32(math.Float64frombits(le.Uint64(b[8*i:])))
		}
	default:
		return nil, fmt.Errorf("dtype %s cannot be read as float32 (supported: F32, F16, BF16, F64)", dt)
	}
	return out, nil
}
