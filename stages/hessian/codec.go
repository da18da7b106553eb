package hessian

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Binary form (all little-endian), version 1:
//
//	magic    [4]byte "OPTH"
//	version  uint8   1
//	groupLen uint32  ≤ MaxGroupLen
//	group    [groupLen]byte
//	in       uint32  1..MaxIn
//	tokens   int64   ≥ 0
//	upper    [in·(in+1)/2]float64  Sum's upper triangle with the diagonal, row by row
//
// Sum is symmetric (Add and Merge keep it so), so the lower triangle is not
// stored: a Hessian of width 1536 takes 9.4 MB instead of 18.9 MB.
const (
	magic   = "OPTH"
	version = 1
	// MaxGroupLen is the longest group name the codec accepts.
	MaxGroupLen = 1 << 12
	// MaxIn is the largest width the codec accepts.
	MaxIn = 1 << 20
)

const headerFixed = 4 + 1 + 4 + 4 + 8

// EncodedSize is the length of the binary form of a Hessian with this group
// name length and width.
func EncodedSize(groupLen, in int) int {
	return headerFixed + groupLen + 8*in*(in+1)/2
}

// MarshalBinary encodes h (see the format above); only Sum's upper triangle
// is read. It implements encoding.BinaryMarshaler and returns an error when
// the group name is longer than MaxGroupLen, the width is outside 1..MaxIn,
// Tokens is negative, or len(Sum) != In*In.
func (h *Hessian) MarshalBinary() ([]byte, error) {
	switch {
	case len(h.Group) > MaxGroupLen:
		return nil, fmt.Errorf("hessian: marshal: group name of %d bytes exceeds %d", len(h.Group), MaxGroupLen)
	case h.In < 1 || h.In > MaxIn:
		return nil, fmt.Errorf("hessian %s: marshal: width %d outside 1..%d", h.Group, h.In, MaxIn)
	case h.Tokens < 0:
		return nil, fmt.Errorf("hessian %s: marshal: negative token count %d", h.Group, h.Tokens)
	case len(h.Sum) != h.In*h.In:
		return nil, fmt.Errorf("hessian %s: marshal: len(Sum) = %d, want %d", h.Group, len(h.Sum), h.In*h.In)
	}
	n := h.In
	b := make([]byte, 0, EncodedSize(len(h.Group), n))
	b = append(b, magic...)
	b = append(b, version)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(h.Group)))
	b = append(b, h.Group...)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	b = binary.LittleEndian.AppendUint64(b, uint64(h.Tokens))
	for i := range n {
		for _, v := range h.Sum[i*n+i : i*n+n] {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
	}
	return b, nil
}

// UnmarshalBinary decodes the binary form into h, replacing its contents; the
// lower triangle of Sum is filled from the upper one. It implements
// encoding.BinaryUnmarshaler. It returns an error (and leaves h unchanged) for
// a wrong magic or version, a group or width out of range, a negative token
// count, or a length that does not match the header exactly. It allocates
// only after the length has been checked.
func (h *Hessian) UnmarshalBinary(data []byte) error {
	if len(data) < headerFixed {
		return fmt.Errorf("hessian: unmarshal: %d bytes, shorter than the %d-byte header", len(data), headerFixed)
	}
	if string(data[:4]) != magic {
		return fmt.Errorf("hessian: unmarshal: bad magic %q, want %q", data[:4], magic)
	}
	if data[4] != version {
		return fmt.Errorf("hessian: unmarshal: version %d, want %d", data[4], version)
	}
	glen := binary.LittleEndian.Uint32(data[5:])
	if glen > MaxGroupLen {
		return fmt.Errorf("hessian: unmarshal: group name of %d bytes exceeds %d", glen, MaxGroupLen)
	}
	p := 9 + int(glen)
	if len(data) < p+12 {
		return fmt.Errorf("hessian: unmarshal: %d bytes, truncated header", len(data))
	}
	group := string(data[9:p])
	in := binary.LittleEndian.Uint32(data[p:])
	tokens := int64(binary.LittleEndian.Uint64(data[p+4:]))
	p += 12
	if in < 1 || in > MaxIn {
		return fmt.Errorf("hessian %s: unmarshal: width %d outside 1..%d", group, in, MaxIn)
	}
	if tokens < 0 {
		return fmt.Errorf("hessian %s: unmarshal: negative token count %d", group, tokens)
	}
	n := int(in)
	if want := EncodedSize(int(glen), n); len(data) != want {
		return fmt.Errorf("hessian %s: unmarshal: %d bytes, want %d for width %d", group, len(data), want, n)
	}
	sum := make([]float64, n*n)
	for i := range n {
		for j := i; j < n; j++ {
			v := math.Float64frombits(binary.LittleEndian.Uint64(data[p:]))
			p += 8
			sum[i*n+j] = v
			sum[j*n+i] = v
		}
	}
	*h = Hessian{Group: group, In: n, Tokens: tokens, Sum: sum}
	return nil
}

// Unmarshal decodes a Hessian from its binary form (see UnmarshalBinary).
func Unmarshal(data []byte) (*Hessian, error) {
	h := new(Hessian)
	if err := h.UnmarshalBinary(data); err != nil {
		return nil, err
	}
	return h, nil
}
