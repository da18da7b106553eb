package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// WriteTensor is one tensor for Write.
type WriteTensor struct {
	Name string
	// Dims are GGUF ne[0..n) (ne[0] fastest), e.g. {in, out} for a Hugging
	// Face [out, in] matrix.
	Dims []uint64
	// Type is the encoding: F32, F16, BF16, Q8_0, Q4_0 or Q4_1.
	Type TensorType
	// Data holds the values in GGUF element order (ne[0] fastest), which is
	// the row-major order of the reversed dims.
	Data []float32
}

// Write writes a GGUF v3 file with the given metadata (in order) and tensors
// (in order, each aligned to general.alignment from meta or 32). The
// encoding of a metadata value follows its Go type (see KV; KV.Type is not
// consulted). Tensors are quantized with Quantize. It returns an error for an
// unsupported value type, a tensor whose len(Data) does not match Dims, or a
// ne[0] that is not a multiple of the type's block size.
//
// Write exists for tests and tiny generated models; it holds every encoded
// tensor in memory.
func Write(w io.Writer, meta []KV, tensors []WriteTensor) error {
	align := uint64(DefaultAlignment)
	for _, kv := range meta {
		if kv.Key == "general.alignment" {
			a, ok := kv.Value.(uint32)
			if !ok || a == 0 || a&(a-1) != 0 {
				return fmt.Errorf("gguf: general.alignment must be a power-of-two uint32, got %v", kv.Value)
			}
			align = uint64(a)
		}
	}
	bw := bufio.NewWriter(w)
	e := &enc{w: bw}
	e.bytes([]byte(Magic))
	e.u32(3)
	e.u64(uint64(len(tensors)))
	e.u64(uint64(len(meta)))
	for _, kv := range meta {
		t, err := valueTypeOf(kv.Value)
		if err != nil {
			return fmt.Errorf("gguf: key %q: %w", kv.Key, err)
		}
		e.str(kv.Key)
		e.u32(uint32(t))
		if err := e.value(kv.Value); err != nil {
			return fmt.Errorf("gguf: key %q: %w", kv.Key, err)
		}
	}
	encoded := make([][]byte, len(tensors))
	var off uint64
	for i, t := range tensors {
		n := uint64(1)
		for _, d := range t.Dims {
			n *= d
		}
		if n != uint64(len(t.Data)) {
			return fmt.Errorf("gguf: tensor %q: dims %v need %d values, have %d", t.Name, t.Dims, n, len(t.Data))
		}
		if bs := t.Type.BlockSize(); bs == 0 || (len(t.Dims) > 0 && t.Dims[0]%uint64(bs) != 0) {
			return fmt.Errorf("gguf: tensor %q: ne[0] of dims %v does not fit type %s", t.Name, t.Dims, t.Type)
		}
		b, err := Quantize(t.Data, t.Type)
		if err != nil {
			return fmt.Errorf("gguf: tensor %q: %w", t.Name, err)
		}
		encoded[i] = b
		e.str(t.Name)
		e.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			e.u64(d)
		}
		e.u32(uint32(t.Type))
		e.u64(off)
		off = alignUp(off+uint64(len(b)), align)
	}
	e.pad(align)
	for _, b := range encoded {
		e.bytes(b)
		e.pad(align)
	}
	if e.err != nil {
		return fmt.Errorf("gguf: write: %w", e.err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("gguf: write: %w", err)
	}
	return nil
}

type enc struct {
	w   *bufio.Writer
	n   uint64
	err error
	buf [8]byte
}

func (e *enc) bytes(b []byte) {
	if e.err != nil {
		return
	}
	_, e.err = e.w.Write(b)
	e.n += uint64(len(b))
}
func (e *enc) u8(v uint8)   { e.bytes([]byte{v}) }
func (e *enc) u16(v uint16) { binary.LittleEndian.PutUint16(e.buf[:], v); e.bytes(e.buf[:2]) }
func (e *enc) u32(v uint32) { binary.LittleEndian.PutUint32(e.buf[:], v); e.bytes(e.buf[:4]) }
func (e *enc) u64(v uint64) { binary.LittleEndian.PutUint64(e.buf[:], v); e.bytes(e.buf[:8]) }
func (e *enc) str(s string) { e.u64(uint64(len(s))); e.bytes([]byte(s)) }
func (e *enc) pad(a uint64) {
	for e.n%a != 0 {
		e.u8(0)
	}
}

func valueTypeOf(v any) (ValueType, error) {
	switch v.(type) {
	case uint8:
		return TypeUint8, nil
	case int8:
		return TypeInt8, nil
	case uint16:
		return TypeUint16, nil
	case int16:
		return TypeInt16, nil
	case uint32:
		return TypeUint32, nil
	case int32:
		return TypeInt32, nil
	case float32:
		return TypeFloat32, nil
	case bool:
		return TypeBool, nil
	case string:
		return TypeString, nil
	case uint64:
		return TypeUint64, nil
	case int64:
		return TypeInt64, nil
	case float64:
		return TypeFloat64, nil
	case []uint8, []int8, []uint16, []int16, []uint32, []int32, []float32, []bool, []string, []uint64, []int64, []float64, []any:
		return TypeArray, nil
	}
	return 0, fmt.Errorf("unsupported metadata value type %T", v)
}

func writeSlice[T any](e *enc, t ValueType, s []T) error {
	e.u32(uint32(t))
	e.u64(uint64(len(s)))
	for _, x := range s {
		if err := e.value(x); err != nil {
			return err
		}
	}
	return nil
}

func (e *enc) value(v any) error {
	switch x := v.(type) {
	case uint8:
		e.u8(x)
	case int8:
		e.u8(uint8(x))
	case uint16:
		e.u16(x)
	case int16:
		e.u16(uint16(x))
	case uint32:
		e.u32(x)
	case int32:
		e.u32(uint32(x))
	case float32:
		e.u32(math.Float32bits(x))
	case bool:
		if x {
			e.u8(1)
		} else {
			e.u8(0)
		}
	case string:
		e.str(x)
	case uint64:
		e.u64(x)
	case int64:
		e.u64(uint64(x))
	case float64:
		e.u64(math.Float64bits(x))
	case []uint8:
		return writeSlice(e, TypeUint8, x)
	case []int8:
		return writeSlice(e, TypeInt8, x)
	case []uint16:
		return writeSlice(e, TypeUint16, x)
	case []int16:
		return writeSlice(e, TypeInt16, x)
	case []uint32:
		return writeSlice(e, TypeUint32, x)
	case []int32:
		return writeSlice(e, TypeInt32, x)
	case []float32:
		return writeSlice(e, TypeFloat32, x)
	case []bool:
		return writeSlice(e, TypeBool, x)
	case []string:
		return writeSlice(e, TypeString, x)
	case []uint64:
		return writeSlice(e, TypeUint64, x)
	case []int64:
		return writeSlice(e, TypeInt64, x)
	case []float64:
		return writeSlice(e, TypeFloat64, x)
	case []any:
		// Arrays of arrays: every element must itself be an array.
		for i, el := range x {
			if t, err := valueTypeOf(el); err != nil || t != TypeArray {
				return fmt.Errorf("element %d of a nested array is %T, not an array", i, el)
			}
		}
		return writeSlice(e, TypeArray, x)
	default:
		return fmt.Errorf("unsupported metadata value type %T", v)
	}
	return nil
}
