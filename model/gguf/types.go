// Package gguf reads and writes GGUF files (versions 2 and 3), the checkpoint
// format of llama.cpp, and exposes a GGUF checkpoint as a model.Source in
// Hugging Face names and layout.
//
// The format (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md):
//
//	magic "GGUF" | version u32 | tensor_count u64 | kv_count u64
//	kv_count × (key string | value_type u32 | value)
//	tensor_count × (name string | n_dims u32 | n_dims × u64 ne | ggml_type u32 | offset u64)
//	padding to general.alignment (default 32)
//	tensor data; each tensor at data_start + offset
//
// Strings are u64 length + bytes; arrays are elem_type u32 + count u64 +
// elements (arrays may nest). Everything is little-endian. ne[0] is the
// fastest-varying dimension, so a GGUF [ne0, ne1] matrix is the Hugging Face
// [ne1, ne0] row-major matrix.
//
// Reading is lazy: Open parses the header and tensor infos only, tensor data is
// read through io.ReaderAt when asked for. Every count, length and offset is
// checked against the file size before anything is allocated.
package gguf

import "fmt"

// ValueType is the type tag of a metadata value.
type ValueType uint32

// Metadata value types, as numbered by the GGUF specification.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var valueTypeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array", "uint64", "int64", "float64"}

func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("ValueType(%d)", uint32(t))
}

// scalarSize is the encoded size of a fixed-size value type, 0 for strings
// and arrays, -1 for an unknown type.
func (t ValueType) scalarSize() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	case TypeString, TypeArray:
		return 0
	}
	return -1
}

// minSize is the smallest encoding of one value of type t (a string or an
// array header), used to cap counts against the bytes left in the file.
func (t ValueType) minSize() int {
	switch t {
	case TypeString:
		return 8
	case TypeArray:
		return 12
	}
	return t.scalarSize()
}

// TensorType is a ggml tensor element type (enum ggml_type).
type TensorType uint32

// The ggml tensor types this package names. F32, F16, BF16, Q8_0, Q4_0,
// Q4_1, Q4_K, Q5_K, Q6_K and Q8_K can be dequantized; the others are named
// in errors. Quantize writes only the non-K types.
const (
	F32  TensorType = 0
	F16  TensorType = 1
	Q4_0 TensorType = 2
	Q4_1 TensorType = 3
	Q5_0 TensorType = 6
	Q5_1 TensorType = 7
	Q8_0 TensorType = 8
	Q8_1 TensorType = 9
	Q2_K TensorType = 10
	Q3_K TensorType = 11
	Q4_K TensorType = 12
	Q5_K TensorType = 13
	Q6_K TensorType = 14
	Q8_K TensorType = 15
	I8   TensorType = 24
	I16  TensorType = 25
	I32  TensorType = 26
	I64  TensorType = 27
	F64  TensorType = 28
	BF16 TensorType = 30
)

type typeTraits struct {
	name      string
	blockSize int // elements per block
	typeSize  int // bytes per block
	supported bool
}

// Block layouts from ggml (ggml-common.h): Q4_0 = {f16 d; u8 qs[16]},
// Q4_1 = {f16 d, m; u8 qs[16]}, Q8_0 = {f16 d; i8 qs[32]}, K-quants use
// 256-element super-blocks.
var traits = map[TensorType]typeTraits{
	F32:  {"F32", 1, 4, true},
	F16:  {"F16", 1, 2, true},
	BF16: {"BF16", 1, 2, true},
	Q4_0: {"Q4_0", 32, 18, true},
	Q4_1: {"Q4_1", 32, 20, true},
	Q8_0: {"Q8_0", 32, 34, true},
	Q5_0: {"Q5_0", 32, 22, false},
	Q5_1: {"Q5_1", 32, 24, false},
	Q8_1: {"Q8_1", 32, 36, false},
	Q2_K: {"Q2_K", 256, 84, false},
	Q3_K: {"Q3_K", 256, 110, false},
	Q4_K: {"Q4_K", 256, 144, true},
	Q5_K: {"Q5_K", 256, 176, true},
	Q6_K: {"Q6_K", 256, 210, true},
	Q8_K: {"Q8_K", 256, 292, true},
	I8:   {"I8", 1, 1, false},
	I16:  {"I16", 1, 2, false},
	I32:  {"I32", 1, 4, false},
	I64:  {"I64", 1, 8, false},
	F64:  {"F64", 1, 8, false},
}

func (t TensorType) String() string {
	if tr, ok := traits[t]; ok {
		return tr.name
	}
	return fmt.Sprintf("TensorType(%d)", uint32(t))
}

// BlockSize is the number of elements per quantization block (1 for plain
// types), or 0 for a type this package does not know.
func (t TensorType) BlockSize() int { return traits[t].blockSize }

// TypeSize is the number of bytes per block, or 0 for an unknown type.
func (t TensorType) TypeSize() int { return traits[t].typeSize }

// CanDequantize reports whether Dequantize supports t.
func (t TensorType) CanDequantize() bool { return traits[t].supported }

// RowBytes is the encoded size of n elements of type t. It panics if n is not
// a multiple of the block size or t is unknown.
func (t TensorType) RowBytes(n int) int {
	tr, ok := traits[t]
	if !ok {
		panic(fmt.Sprintf("gguf: unknown tensor type %d", uint32(t)))
	}
	if n%tr.blockSize != 0 {
		panic(fmt.Sprintf("gguf: %d elements is not a multiple of the %s block size %d", n, tr.name, tr.blockSize))
	}
	return n / tr.blockSize * tr.typeSize
}
