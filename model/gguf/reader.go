package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
)

// Magic is the first four bytes of every GGUF file.
const Magic = "GGUF"

// DefaultAlignment is the data alignment when general.alignment is absent.
const DefaultAlignment = 32

// maxDims is GGML_MAX_DIMS.
const maxDims = 4

// maxNesting bounds nested metadata arrays so a hostile file cannot exhaust
// the stack.
const maxNesting = 16

// ErrFormat is wrapped by every error about a malformed or unsupported file.
var ErrFormat = errors.New("gguf: bad file")

// ErrKeyNotFound is wrapped by the typed metadata getters for a missing key.
var ErrKeyNotFound = errors.New("gguf: metadata key not found")

// KV is one metadata entry. Value holds a Go value of the matching type:
// uint8, int8, uint16, int16, uint32, int32, float32, bool, string, uint64,
// int64, float64, or for TypeArray a typed slice of those ([]uint32,
// []string, ...) or, for arrays of arrays, []any whose elements are again
// such slices.
type KV struct {
	Key   string
	Type  ValueType
	Value any
}

// TensorInfo describes one tensor of the file in GGUF terms.
type TensorInfo struct {
	Name string
	// Dims are ne[0..n): ne[0] varies fastest.
	Dims []uint64
	Type TensorType
	// Offset is relative to the start of the data section.
	Offset uint64
	// Numel is the element count and Size the encoded byte size.
	Numel, Size int64
}

// File is a parsed GGUF file: header, metadata and tensor infos. Tensor data
// is read lazily. A File is safe for concurrent reads.
type File struct {
	// Name is the path (or the name given to Parse), used in errors.
	Name    string
	Version uint32
	// KV holds the metadata in file order.
	KV []KV
	// Tensors holds the tensor infos in file order.
	Tensors []TensorInfo
	// Alignment is general.alignment or DefaultAlignment.
	Alignment uint64
	// DataOffset is the absolute file offset of the data section.
	DataOffset int64

	r      io.ReaderAt
	size   int64
	closer io.Closer
	kvIdx  map[string]int
	tIdx   map[string]int
}

// Open opens and parses the GGUF file at path. The returned File keeps the
// file open until Close.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("gguf: %w", err)
	}
	f, err := Parse(fh, st.Size(), path)
	if err != nil {
		fh.Close()
		return nil, err
	}
	f.closer = fh
	return f, nil
}

// Close closes the underlying file if Open opened it.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	c := f.closer
	f.closer = nil
	return c.Close()
}

// Size is the file size in bytes.
func (f *File) Size() int64 { return f.size }

// parser reads the header sequentially and knows how many bytes are left.
type parser struct {
	br   *bufio.Reader
	pos  int64
	size int64
	name string
	buf  [8]byte
}

func (p *parser) errf(format string, args ...any) error {
	return fmt.Errorf("%w %s at offset %d: %s", ErrFormat, p.name, p.pos, fmt.Sprintf(format, args...))
}

func (p *parser) left() int64 { return p.size - p.pos }

func (p *parser) read(n int) ([]byte, error) {
	if int64(n) > p.left() {
		return nil, p.errf("need %d bytes, %d left in file", n, p.left())
	}
	b := p.buf[:n]
	if _, err := io.ReadFull(p.br, b); err != nil {
		return nil, p.errf("read: %v", err)
	}
	p.pos += int64(n)
	return b, nil
}

func (p *parser) u32() (uint32, error) {
	b, err := p.read(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (p *parser) u64() (uint64, error) {
	b, err := p.read(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// count reads a u64 count and checks that count items of at least minSize
// bytes each fit in the rest of the file.
func (p *parser) count(what string, minSize int) (int, error) {
	n, err := p.u64()
	if err != nil {
		return 0, err
	}
	if minSize < 1 {
		minSize = 1
	}
	if n > uint64(p.left())/uint64(minSize) {
		return 0, p.errf("%s %d does not fit in the %d bytes left", what, n, p.left())
	}
	return int(n), nil
}

func (p *parser) str(what string) (string, error) {
	n, err := p.count(what+" length", 1)
	if err != nil {
		return "", err
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(p.br, b); err != nil {
		return "", p.errf("read %s: %v", what, err)
	}
	p.pos += int64(n)
	return string(b), nil
}

func (p *parser) scalar(t ValueType) (any, error) {
	switch t {
	case TypeString:
		return p.str("string")
	case TypeBool:
		b, err := p.read(1)
		if err != nil {
			return nil, err
		}
		if b[0] > 1 {
			return nil, p.errf("bool value %d", b[0])
		}
		return b[0] == 1, nil
	}
	sz := t.scalarSize()
	if sz <= 0 {
		return nil, p.errf("unknown value type %d", uint32(t))
	}
	b, err := p.read(sz)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	switch t {
	case TypeUint8:
		return b[0], nil
	case TypeInt8:
		return int8(b[0]), nil
	case TypeUint16:
		return le.Uint16(b), nil
	case TypeInt16:
		return int16(le.Uint16(b)), nil
	case TypeUint32:
		return le.Uint32(b), nil
	case TypeInt32:
		return int32(le.Uint32(b)), nil
	case TypeFloat32:
		return math.Float32frombits(le.Uint32(b)), nil
	case TypeUint64:
		return le.Uint64(b), nil
	case TypeInt64:
		return int64(le.Uint64(b)), nil
	default: // TypeFloat64
		return math.Float64frombits(le.Uint64(b)), nil
	}
}

func (p *parser) value(t ValueType, depth int) (any, error) {
	if t != TypeArray {
		return p.scalar(t)
	}
	if depth >= maxNesting {
		return nil, p.errf("arrays nested deeper than %d", maxNesting)
	}
	et, err := p.u32()
	if err != nil {
		return nil, err
	}
	elem := ValueType(et)
	if elem.minSize() < 0 {
		return nil, p.errf("unknown array element type %d", et)
	}
	n, err := p.count("array length", elem.minSize())
	if err != nil {
		return nil, err
	}
	switch elem {
	case TypeArray:
		out := make([]any, n)
		for i := range out {
			if out[i], err = p.value(TypeArray, depth+1); err != nil {
				return nil, err
			}
		}
		return out, nil
	case TypeString:
		out := make([]string, n)
		for i := range out {
			if out[i], err = p.str("string"); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return readScalarSlice(p, elem, n)
}

func readScalarSlice(p *parser, t ValueType, n int) (any, error) {
	switch t {
	case TypeUint8:
		return fill[uint8](p, t, n)
	case TypeInt8:
		return fill[int8](p, t, n)
	case TypeUint16:
		return fill[uint16](p, t, n)
	case TypeInt16:
		return fill[int16](p, t, n)
	case TypeUint32:
		return fill[uint32](p, t, n)
	case TypeInt32:
		return fill[int32](p, t, n)
	case TypeFloat32:
		return fill[float32](p, t, n)
	case TypeBool:
		return fill[bool](p, t, n)
	case TypeUint64:
		return fill[uint64](p, t, n)
	case TypeInt64:
		return fill[int64](p, t, n)
	default:
		return fill[float64](p, t, n)
	}
}

func fill[T any](p *parser, t ValueType, n int) ([]T, error) {
	out := make([]T, n)
	for i := range out {
		v, err := p.scalar(t)
		if err != nil {
			return nil, err
		}
		out[i] = v.(T)
	}
	return out, nil
}

// Parse reads the header, metadata and tensor infos of a GGUF file of size
// bytes from r. name is used in errors. Errors wrap ErrFormat for a malformed
// file: bad magic, a version other than 2 or 3, counts or lengths that do not
// fit in the file, unknown value or tensor types, tensors whose data lies past
// the end of the file, duplicate keys or tensor names.
func Parse(r io.ReaderAt, size int64, name string) (*File, error) {
	p := &parser{br: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 1<<16), size: size, name: name}
	magic, err := p.read(4)
	if err != nil {
		return nil, err
	}
	if string(magic) != Magic {
		return nil, fmt.Errorf("%w %s: not a GGUF file (magic %q)", ErrFormat, name, magic)
	}
	f := &File{Name: name, r: r, size: size, kvIdx: map[string]int{}, tIdx: map[string]int{}}
	if f.Version, err = p.u32(); err != nil {
		return nil, err
	}
	if f.Version != 2 && f.Version != 3 {
		return nil, fmt.Errorf("%w %s: unsupported GGUF version %d (supported: 2, 3)", ErrFormat, name, f.Version)
	}
	// A tensor info takes at least 8 (name) + 4 + 4 + 8 bytes, a KV 8 + 4 + 1.
	nt, err := p.count("tensor count", 24)
	if err != nil {
		return nil, err
	}
	nkv, err := p.count("metadata count", 13)
	if err != nil {
		return nil, err
	}
	f.KV = make([]KV, 0, nkv)
	for range nkv {
		key, err := p.str("key")
		if err != nil {
			return nil, err
		}
		t, err := p.u32()
		if err != nil {
			return nil, err
		}
		if ValueType(t).minSize() < 0 {
			return nil, p.errf("key %q: unknown value type %d", key, t)
		}
		v, err := p.value(ValueType(t), 0)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", key, err)
		}
		if _, dup := f.kvIdx[key]; dup {
			return nil, p.errf("duplicate key %q", key)
		}
		f.kvIdx[key] = len(f.KV)
		f.KV = append(f.KV, KV{Key: key, Type: ValueType(t), Value: v})
	}
	f.Alignment = DefaultAlignment
	if i, ok := f.kvIdx["general.alignment"]; ok {
		a, ok := f.KV[i].Value.(uint32)
		if !ok || a == 0 || a&(a-1) != 0 {
			return nil, fmt.Errorf("%w %s: general.alignment must be a power-of-two uint32, got %v (%s)", ErrFormat, name, f.KV[i].Value, f.KV[i].Type)
		}
		f.Alignment = uint64(a)
	}
	f.Tensors = make([]TensorInfo, 0, nt)
	for range nt {
		ti, err := p.tensorInfo()
		if err != nil {
			return nil, err
		}
		if _, dup := f.tIdx[ti.Name]; dup {
			return nil, p.errf("duplicate tensor %q", ti.Name)
		}
		f.tIdx[ti.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, ti)
	}
	f.DataOffset = int64(alignUp(uint64(p.pos), f.Alignment))
	for _, ti := range f.Tensors {
		if ti.Offset%f.Alignment != 0 {
			return nil, fmt.Errorf("%w %s: tensor %q: offset %d is not a multiple of the alignment %d", ErrFormat, name, ti.Name, ti.Offset, f.Alignment)
		}
		avail := uint64(size - f.DataOffset)
		if f.DataOffset > size || ti.Offset > avail || uint64(ti.Size) > avail-ti.Offset {
			return nil, fmt.Errorf("%w %s: tensor %q: data [%d, %d) past the end of the file (%d bytes)", ErrFormat, name, ti.Name,
				uint64(f.DataOffset)+ti.Offset, uint64(f.DataOffset)+ti.Offset+uint64(ti.Size), size)
		}
	}
	return f, nil
}

func (p *parser) tensorInfo() (TensorInfo, error) {
	var ti TensorInfo
	var err error
	if ti.Name, err = p.str("tensor name"); err != nil {
		return ti, err
	}
	nd, err := p.u32()
	if err != nil {
		return ti, err
	}
	if nd > maxDims {
		return ti, p.errf("tensor %q: %d dimensions (at most %d)", ti.Name, nd, maxDims)
	}
	ti.Dims = make([]uint64, nd)
	numel := uint64(1)
	for i := range ti.Dims {
		if ti.Dims[i], err = p.u64(); err != nil {
			return ti, err
		}
		d := ti.Dims[i]
		if d == 0 {
			return ti, p.errf("tensor %q: dimension %d is 0", ti.Name, i)
		}
		if numel > math.MaxInt64/d {
			return ti, p.errf("tensor %q: dimensions %v overflow", ti.Name, ti.Dims[:i+1])
		}
		numel *= d
	}
	t, err := p.u32()
	if err != nil {
		return ti, err
	}
	ti.Type = TensorType(t)
	tr, ok := traits[ti.Type]
	if !ok {
		return ti, p.errf("tensor %q: unknown ggml type %d", ti.Name, t)
	}
	if nd > 0 && ti.Dims[0]%uint64(tr.blockSize) != 0 {
		return ti, p.errf("tensor %q: ne[0]=%d is not a multiple of the %s block size %d", ti.Name, ti.Dims[0], tr.name, tr.blockSize)
	}
	if numel/uint64(tr.blockSize) > uint64(p.size)/uint64(tr.typeSize) {
		return ti, p.errf("tensor %q: %d elements of %s are larger than the file", ti.Name, numel, tr.name)
	}
	ti.Numel = int64(numel)
	ti.Size = int64(numel / uint64(tr.blockSize) * uint64(tr.typeSize))
	if ti.Offset, err = p.u64(); err != nil {
		return ti, err
	}
	return ti, nil
}

func alignUp(x, a uint64) uint64 { return (x + a - 1) / a * a }

// Tensor returns the info of the named tensor (GGUF name).
func (f *File) Tensor(name string) (*TensorInfo, bool) {
	i, ok := f.tIdx[name]
	if !ok {
		return nil, false
	}
	return &f.Tensors[i], true
}

// TensorReader returns a reader over the raw encoded bytes of a tensor.
func (f *File) TensorReader(ti *TensorInfo) *io.SectionReader {
	return io.NewSectionReader(f.r, f.DataOffset+int64(ti.Offset), ti.Size)
}

// ReadRaw reads the raw encoded bytes of a tensor.
func (f *File) ReadRaw(ti *TensorInfo) ([]byte, error) {
	b := make([]byte, ti.Size)
	if _, err := f.r.ReadAt(b, f.DataOffset+int64(ti.Offset)); err != nil {
		return nil, fmt.Errorf("gguf %s: read tensor %q: %w", f.Name, ti.Name, err)
	}
	return b, nil
}

// ReadFloat32 reads and dequantizes the named tensor (GGUF name) to float32
// in GGUF element order (ne[0] fastest). The error names the file and tensor
// and wraps ErrFormat for a type that cannot be dequantized.
func (f *File) ReadFloat32(name string) ([]float32, error) {
	ti, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("gguf %s: no tensor %q", f.Name, name)
	}
	if !ti.Type.CanDequantize() {
		return nil, fmt.Errorf("%w %s: tensor %q: cannot dequantize type %s (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)", ErrFormat, f.Name, name, ti.Type)
	}
	raw, err := f.ReadRaw(ti)
	if err != nil {
		return nil, err
	}
	out := make([]float32, ti.Numel)
	if err := Dequantize(out, raw, ti.Type); err != nil {
		return nil, fmt.Errorf("gguf %s: tensor %q: %w", f.Name, name, err)
	}
	return out, nil
}

// Value returns the metadata value of key.
func (f *File) Value(key string) (KV, bool) {
	i, ok := f.kvIdx[key]
	if !ok {
		return KV{}, false
	}
	return f.KV[i], true
}

func (f *File) get(key string) (KV, error) {
	kv, ok := f.Value(key)
	if !ok {
		return kv, fmt.Errorf("%w: %s in %s", ErrKeyNotFound, key, f.Name)
	}
	return kv, nil
}

func (f *File) typeErr(kv KV, want string) error {
	return fmt.Errorf("%w %s: metadata %s is %s, want %s", ErrFormat, f.Name, kv.Key, kv.Type, want)
}

// String returns a string value. It wraps ErrKeyNotFound for a missing key
// and ErrFormat for another type.
func (f *File) String(key string) (string, error) {
	kv, err := f.get(key)
	if err != nil {
		return "", err
	}
	s, ok := kv.Value.(string)
	if !ok {
		return "", f.typeErr(kv, "string")
	}
	return s, nil
}

// Bool returns a bool value; errors as String.
func (f *File) Bool(key string) (bool, error) {
	kv, err := f.get(key)
	if err != nil {
		return false, err
	}
	b, ok := kv.Value.(bool)
	if !ok {
		return false, f.typeErr(kv, "bool")
	}
	return b, nil
}

// Uint returns a non-negative integer value of any integer type; errors as
// String, and ErrFormat for a negative value.
func (f *File) Uint(key string) (uint64, error) {
	kv, err := f.get(key)
	if err != nil {
		return 0, err
	}
	var v int64
	switch x := kv.Value.(type) {
	case uint8:
		return uint64(x), nil
	case uint16:
		return uint64(x), nil
	case uint32:
		return uint64(x), nil
	case uint64:
		return x, nil
	case int8:
		v = int64(x)
	case int16:
		v = int64(x)
	case int32:
		v = int64(x)
	case int64:
		v = x
	default:
		return 0, f.typeErr(kv, "an integer")
	}
	if v < 0 {
		return 0, fmt.Errorf("%w %s: metadata %s is negative (%d)", ErrFormat, f.Name, key, v)
	}
	return uint64(v), nil
}

// Float returns a numeric value as float64. A float32 is converted through
// its shortest decimal form, so 1e-5 stored as float32 reads as 1e-05, not
// 9.99999974e-06. Errors as String.
func (f *File) Float(key string) (float64, error) {
	kv, err := f.get(key)
	if err != nil {
		return 0, err
	}
	switch x := kv.Value.(type) {
	case float32:
		v, _ := strconv.ParseFloat(strconv.FormatFloat(float64(x), 'g', -1, 32), 64)
		return v, nil
	case float64:
		return x, nil
	}
	u, err := f.Uint(key)
	if err != nil {
		return 0, f.typeErr(kv, "a number")
	}
	return float64(u), nil
}

// Strings returns a string array value; errors as String.
func (f *File) Strings(key string) ([]string, error) {
	kv, err := f.get(key)
	if err != nil {
		return nil, err
	}
	s, ok := kv.Value.([]string)
	if !ok {
		return nil, f.typeErr(kv, "array of string")
	}
	return s, nil
}

// Int32s returns an integer array value converted to int32; errors as
// String, and ErrFormat for an element that does not fit in int32.
func (f *File) Int32s(key string) ([]int32, error) {
	kv, err := f.get(key)
	if err != nil {
		return nil, err
	}
	switch x := kv.Value.(type) {
	case []int32:
		return x, nil
	case []int8:
		return convInts(f, key, x, func(v int8) (int64, bool) { return int64(v), true })
	case []uint8:
		return convInts(f, key, x, func(v uint8) (int64, bool) { return int64(v), true })
	case []int16:
		return convInts(f, key, x, func(v int16) (int64, bool) { return int64(v), true })
	case []uint16:
		return convInts(f, key, x, func(v uint16) (int64, bool) { return int64(v), true })
	case []uint32:
		return convInts(f, key, x, func(v uint32) (int64, bool) { return int64(v), true })
	case []int64:
		return convInts(f, key, x, func(v int64) (int64, bool) { return v, true })
	case []uint64:
		return convInts(f, key, x, func(v uint64) (int64, bool) { return int64(v), v <= math.MaxInt64 })
	}
	return nil, f.typeErr(kv, "array of integer")
}

func convInts[T any](f *File, key string, x []T, conv func(T) (int64, bool)) ([]int32, error) {
	out := make([]int32, len(x))
	for i, v := range x {
		w, ok := conv(v)
		if !ok || w > math.MaxInt32 || w < math.MinInt32 {
			return nil, fmt.Errorf("%w %s: metadata %s[%d] = %v does not fit in int32", ErrFormat, f.Name, key, i, v)
		}
		out[i] = int32(w)
	}
	return out, nil
}
