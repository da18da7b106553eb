package gguf

import (
	"encoding/binary"
	"math"
)

// K-quant super-blocks hold qk = 256 elements (ggml-common.h block_q4_K,
// block_q5_K, block_q6_K, block_q8_K).
const qk = 256

// scaleMinK4 decodes the j-th 6-bit scale and min of a Q4_K/Q5_K
// super-block from its 12 packed scale bytes (ggml-quants.c
// get_scale_min_k4).
func scaleMinK4(j int, q []byte) (sc, m byte) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0xf | (q[j-4]>>6)<<4, q[j+4]>>4 | (q[j]>>6)<<4
}

// dequantizeK decodes the K-quant types; src and dst sizes are checked by
// Dequantize. Per super-block (ggml-quants.c dequantize_row_q*_K; gguf-py
// quants.py):
//
//	Q4_K {f16 d, dmin; u8 scales[12]; u8 qs[128]}: 8 sub-blocks of 32 with
//	     6-bit scale s and min m; y = (d·s)·q − dmin·m, q 4-bit (sub-block
//	     2i: low nibbles of qs[32i:32i+32], 2i+1: high nibbles).
//	Q5_K {f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}: as Q4_K with
//	     q = nibble | bit i of qh[l] << 4 for sub-block i.
//	Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}: 16 sub-blocks of 16;
//	     y = (d·scale)·(q − 32), q = 4 bits of ql | 2 bits of qh << 4.
//	Q8_K {f32 d; i8 qs[256]; i16 bsums[16]}: y = d·q.
func dequantizeK(dst []float32, src []byte, t TensorType) {
	le := binary.LittleEndian
	ts := t.TypeSize()
	for b := 0; b < len(dst)/qk; b++ {
		blk := src[b*ts : (b+1)*ts]
		y := dst[b*qk : (b+1)*qk]
		switch t {
		case Q4_K, Q5_K:
			d := Float16ToFloat32(le.Uint16(blk))
			dmin := Float16ToFloat32(le.Uint16(blk[2:]))
			scales := blk[4:16]
			var qh, qs []byte
			if t == Q5_K {
				qh, qs = blk[16:48], blk[48:176]
			} else {
				qs = blk[16:144]
			}
			for i := range 8 {
				sc, m := scaleMinK4(i, scales)
				d1 := d * float32(sc)
				m1 := dmin * float32(m)
				q := qs[(i/2)*32 : (i/2)*32+32]
				shift := uint(4 * (i % 2))
				out := y[i*32 : i*32+32]
				for l := range 32 {
					v := q[l] >> shift & 0xf
					if qh != nil {
						v |= (qh[l] >> uint(i) & 1) << 4
					}
					out[l] = float32(d1*float32(v)) - m1
				}
			}
		case Q6_K:
			ql, qh := blk[0:128], blk[128:192]
			scales := blk[192:208]
			d := Float16ToFloat32(le.Uint16(blk[208:]))
			for half := range 2 {
				l0, h0 := ql[half*64:], qh[half*32:]
				out := y[half*128:]
				sc := scales[half*8:]
				for l := range 32 {
					q1 := int(l0[l]&0xf|(h0[l]>>0&3)<<4) - 32
					q2 := int(l0[l+32]&0xf|(h0[l]>>2&3)<<4) - 32
					q3 := int(l0[l]>>4|(h0[l]>>4&3)<<4) - 32
					q4 := int(l0[l+32]>>4|(h0[l]>>6&3)<<4) - 32
					is := l / 16
					out[l] = float32(d*float32(int8(sc[is]))) * float32(q1)
					out[l+32] = float32(d*float32(int8(sc[is+2]))) * float32(q2)
					out[l+64] = float32(d*float32(int8(sc[is+4]))) * float32(q3)
					out[l+96] = float32(d*float32(int8(sc[is+6]))) * float32(q4)
				}
			}
		case Q8_K:
			d := math.Float32frombits(le.Uint32(blk))
			for l := range qk {
				y[l] = d * float32(int8(blk[4+l]))
			}
		}
	}
}
