package mask

import (
	"encoding/binary"
	"fmt"
)

// Binary form of a Mask (little-endian), version 1:
//
//	magic   [4]byte "OPTM"
//	version uint8   1
//	rows    uint32
//	cols    uint32
//	bits    [ceil(rows·cols/8)]byte  Pruned row-major, bit k of byte i is entry 8i+k;
//	                                 unused high bits of the last byte are 0
//
// One bit per weight: a 1536×576 mask takes 110 KiB.
const (
	maskMagic   = "OPTM"
	maskVersion = 1
	maskHeader  = 4 + 1 + 4 + 4
	// MaxMaskEntries bounds rows·cols accepted by UnmarshalBinary.
	MaxMaskEntries = 1 << 34
)

// MarshalBinary encodes m (see the format above). It implements
// encoding.BinaryMarshaler and returns an error when the size does not fit
// the format or len(Pruned) != Rows·Cols.
func (m *Mask) MarshalBinary() ([]byte, error) {
	if m.Rows < 0 || m.Cols < 0 || uint64(m.Rows) > 1<<32-1 || uint64(m.Cols) > 1<<32-1 ||
		len(m.Pruned) != m.Rows*m.Cols || len(m.Pruned) > MaxMaskEntries {
		return nil, fmt.Errorf("mask: marshal: %d×%d mask with %d entries", m.Rows, m.Cols, len(m.Pruned))
	}
	b := make([]byte, maskHeader+(len(m.Pruned)+7)/8)
	copy(b, maskMagic)
	b[4] = maskVersion
	binary.LittleEndian.PutUint32(b[5:], uint32(m.Rows))
	binary.LittleEndian.PutUint32(b[9:], uint32(m.Cols))
	bits := b[maskHeader:]
	for i, p := range m.Pruned {
		if p {
			bits[i>>3] |= 1 << (i & 7)
		}
	}
	return b, nil
}

// UnmarshalBinary decodes the binary form into m, replacing its contents. It
// implements encoding.BinaryUnmarshaler and returns an error (leaving m
// unchanged) for a wrong magic or version, a length that does not match
// rows·cols exactly, more than MaxMaskEntries entries, or a set padding bit.
func (m *Mask) UnmarshalBinary(data []byte) error {
	if len(data) < maskHeader {
		return fmt.Errorf("mask: unmarshal: %d bytes, shorter than the %d-byte header", len(data), maskHeader)
	}
	if string(data[:4]) != maskMagic {
		return fmt.Errorf("mask: unmarshal: bad magic %q, want %q", data[:4], maskMagic)
	}
	if data[4] != maskVersion {
		return fmt.Errorf("mask: unmarshal: version %d, want %d", data[4], maskVersion)
	}
	rows := uint64(binary.LittleEndian.Uint32(data[5:]))
	cols := uint64(binary.LittleEndian.Uint32(data[9:]))
	n := rows * cols // < 2^64
	if n > MaxMaskEntries {
		return fmt.Errorf("mask: unmarshal: %d×%d mask exceeds %d entries", rows, cols, uint64(MaxMaskEntries))
	}
	bits := data[maskHeader:]
	if uint64(len(bits)) != (n+7)/8 {
		return fmt.Errorf("mask: unmarshal: %d bytes of bits, want %d for %d×%d", len(bits), (n+7)/8, rows, cols)
	}
	if n%8 != 0 && bits[len(bits)-1]>>(n%8) != 0 {
		return fmt.Errorf("mask: unmarshal: padding bits set")
	}
	pruned := make([]bool, n)
	for i := range pruned {
		pruned[i] = bits[i>>3]>>(i&7)&1 == 1
	}
	*m = Mask{Rows: int(rows), Cols: int(cols), Pruned: pruned}
	return nil
}
