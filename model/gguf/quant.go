package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Float16ToFloat32 converts an IEEE 754 half-precision value (bits) to
// float32 exactly, including subnormals, infinities and NaN.
func Float16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0:
		v := float32(mant) * (1.0 / (1 << 24)) // subnormal: mant·2^-24
		if sign != 0 {
			v = -v
		}
		return v
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}

// Float32ToFloat16 converts f to IEEE 754 half precision with
// round-to-nearest-even, as numpy's astype(np.float16) does: values past the
// largest half overflow to ±Inf, tiny ones become subnormals or ±0, NaN stays
// NaN.
func Float32ToFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 112 // rebias 127 → 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		m := mant | 0x800000
		shift := uint(14 - e)
		return sign | uint16(roundShift(m, shift))
	}
	// Adding the rounded mantissa may carry into the exponent; that is right.
	return sign | uint16(uint32(e)<<10+roundShift(mant, 13))
}

// roundShift is m >> s rounded to nearest, ties to even.
func roundShift(m uint32, s uint) uint32 {
	q := m >> s
	rem := m & (1<<s - 1)
	half := uint32(1) << (s - 1)
	if rem > half || (rem == half && q&1 == 1) {
		q++
	}
	return q
}

// BFloat16ToFloat32 converts a bfloat16 value (bits) to float32 exactly.
func BFloat16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// Float32ToBFloat16 converts f to bfloat16 with round-to-nearest-even; NaN
// stays a quiet NaN (as gguf-py's quants.py does).
func Float32ToBFloat16(f float32) uint16 {
	n := math.Float32bits(f)
	if n&0x7fffffff > 0x7f800000 {
		return uint16(n>>16) | 64
	}
	return uint16((n + 0x7fff + (n>>16)&1) >> 16)
}

// Dequantize decodes src, encoded as type t, into dst. len(dst) must be a
// multiple of t's block size and len(src) must be t.RowBytes(len(dst));
// otherwise, or for a type it cannot decode, it returns an error.
//
// Formulas (ggml-quants.c dequantize_row_*; d and m are float16 per block of
// 32, q are the stored integers, element j of a block is the low nibble of
// byte j and element j+16 its high nibble):
//
//	Q8_0: y = q·d         (q int8)
//	Q4_0: y = (q − 8)·d   (q 4-bit)
//	Q4_1: y = q·d + m     (q 4-bit)
//
// and the K-quants Q4_K, Q5_K, Q6_K and Q8_K (256-element super-blocks; see
// dequantizeK).
func Dequantize(dst []float32, src []byte, t TensorType) error {
	tr, ok := traits[t]
	if !ok || !tr.supported {
		return fmt.Errorf("gguf: cannot dequantize type %s", t)
	}
	if len(dst)%tr.blockSize != 0 || len(src) != len(dst)/tr.blockSize*tr.typeSize {
		return fmt.Errorf("gguf: %d bytes of %s do not hold %d elements", len(src), t, len(dst))
	}
	le := binary.LittleEndian
	switch t {
	case Q4_K, Q5_K, Q6_K, Q8_K:
		dequantizeK(dst, src, t)
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(src[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = Float16ToFloat32(le.Uint16(src[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = BFloat16ToFloat32(le.Uint16(src[2*i:]))
		}
	case Q8_0:
		for b := 0; b < len(dst)/32; b++ {
			blk := src[b*34 : b*34+34]
			d := Float16ToFloat32(le.Uint16(blk))
			y := dst[b*32 : b*32+32]
			for j := range y {
				y[j] = float32(int8(blk[2+j])) * d
			}
		}
	case Q4_0:
		for b := 0; b < len(dst)/32; b++ {
			blk := src[b*18 : b*18+18]
			d := Float16ToFloat32(le.Uint16(blk))
			y := dst[b*32 : b*32+32]
			for j, q := range blk[2:18] {
				y[j] = float32(int(q&0x0f)-8) * d
				y[j+16] = float32(int(q>>4)-8) * d
			}
		}
	case Q4_1:
		for b := 0; b < len(dst)/32; b++ {
			blk := src[b*20 : b*20+20]
			d := Float16ToFloat32(le.Uint16(blk))
			m := Float16ToFloat32(le.Uint16(blk[2:]))
			y := dst[b*32 : b*32+32]
			for j, q := range blk[4:20] {
				y[j] = float32(float32(q&0x0f)*d) + m
				y[j+16] = float32(float32(q>>4)*d) + m
			}
		}
	}
	return nil
}

// Quantize encodes src as type t (F32, F16, BF16, Q8_0, Q4_0 or Q4_1) and
// returns the bytes. len(src) must be a multiple of t's block size, else it
// returns an error. The block formulas are ggml's reference quantizers
// (quantize_row_*_ref, also gguf-py's quants.py), in float32:
//
//	Q8_0: d = max|x|/127, q = round(x/d) (half away from zero)
//	Q4_0: d = x_absmax/−8 (signed value of largest magnitude), q = min(15, trunc(x/d + 8.5))
//	Q4_1: d = (max−min)/15, m = min, q = min(15, trunc((x−m)/d + 0.5))
//
// where 1/d is taken as 0 when d is 0, and d and m are stored as float16.
func Quantize(src []float32, t TensorType) ([]byte, error) {
	tr, ok := traits[t]
	if !ok || !tr.supported || tr.blockSize == qk {
		return nil, fmt.Errorf("gguf: cannot quantize to type %s", t)
	}
	if len(src)%tr.blockSize != 0 {
		return nil, fmt.Errorf("gguf: %d elements are not a multiple of the %s block size %d", len(src), t, tr.blockSize)
	}
	dst := make([]byte, len(src)/tr.blockSize*tr.typeSize)
	le := binary.LittleEndian
	inv := func(d float32) float32 {
		if d == 0 {
			return 0
		}
		return 1 / d
	}
	switch t {
	case F32:
		for i, v := range src {
			le.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case F16:
		for i, v := range src {
			le.PutUint16(dst[2*i:], Float32ToFloat16(v))
		}
	case BF16:
		for i, v := range src {
			le.PutUint16(dst[2*i:], Float32ToBFloat16(v))
		}
	case Q8_0:
		for b := 0; b < len(src)/32; b++ {
			x := src[b*32 : b*32+32]
			blk := dst[b*34 : b*34+34]
			var amax float32
			for _, v := range x {
				amax = max(amax, float32(math.Abs(float64(v))))
			}
			d := amax / 127
			id := inv(d)
			le.PutUint16(blk, Float32ToFloat16(d))
			for j, v := range x {
				blk[2+j] = byte(int8(math.Round(float64(float32(v * id)))))
			}
		}
	case Q4_0:
		for b := 0; b < len(src)/32; b++ {
			x := src[b*32 : b*32+32]
			blk := dst[b*18 : b*18+18]
			var amax, vmax float32
			for _, v := range x {
				if a := float32(math.Abs(float64(v))); a > amax {
					amax, vmax = a, v
				}
			}
			d := vmax / -8
			id := inv(d)
			le.PutUint16(blk, Float32ToFloat16(d))
			q := func(v float32) byte { return byte(min(15, int(float32(float32(v*id)+8.5)))) }
			for j := range 16 {
				blk[2+j] = q(x[j]) | q(x[j+16])<<4
			}
		}
	case Q4_1:
		for b := 0; b < len(src)/32; b++ {
			x := src[b*32 : b*32+32]
			blk := dst[b*20 : b*20+20]
			lo, hi := x[0], x[0]
			for _, v := range x {
				lo, hi = min(lo, v), max(hi, v)
			}
			d := (hi - lo) / 15
			id := inv(d)
			le.PutUint16(blk, Float32ToFloat16(d))
			le.PutUint16(blk[2:], Float32ToFloat16(lo))
			q := func(v float32) byte { return byte(min(15, int(float32(float32((v-lo)*id)+0.5)))) }
			for j := range 16 {
				blk[4+j] = q(x[j]) | q(x[j+16])<<4
			}
		}
	}
	return dst, nil
}
