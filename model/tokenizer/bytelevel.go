package tokenizer

import "unicode/utf8"

// byteToRune is GPT-2's bytes_to_unicode table (openai/gpt-2 encoder.py, and
// Hugging Face tokenizers' pre_tokenizers/byte_level.rs): printable Latin-1
// bytes map to themselves, the other 68 bytes to U+0100.. in byte order.
var byteToRune [256]rune

// runeToByte inverts byteToRune.
var runeToByte map[rune]byte

func init() {
	runeToByte = make(map[rune]byte, 256)
	n := rune(0)
	for b := 0; b < 256; b++ {
		switch {
		case b >= '!' && b <= '~', b >= 0xA1 && b <= 0xAC, b >= 0xAE && b <= 0xFF:
			byteToRune[b] = rune(b)
		default:
			byteToRune[b] = 256 + n
			n++
		}
		runeToByte[byteToRune[b]] = byte(b)
	}
}

// byteLevelString maps raw bytes to their GPT-2 byte-level string, one rune
// per byte.
func byteLevelString(s string) string {
	buf := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		buf = utf8.AppendRune(buf, byteToRune[s[i]])
	}
	return string(buf)
}

// lossyUTF8 converts b to a valid UTF-8 string exactly as Rust's
// String::from_utf8_lossy does (which Hugging Face's ByteLevel decoder uses):
// every maximal prefix of a well-formed sequence that is cut short, and every
// byte that cannot start one, becomes one U+FFFD (Unicode §3.9, "substitution
// of maximal subparts").
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	out := make([]byte, 0, len(b)+8)
	for i := 0; i < len(b); {
		c := b[i]
		if c < 0x80 {
			out = append(out, c)
			i++
			continue
		}
		// width and the allowed range of the second byte (Unicode Table 3-7).
		var w int
		lo, hi := byte(0x80), byte(0xBF)
		switch {
		case c >= 0xC2 && c <= 0xDF:
			w = 2
		case c == 0xE0:
			w, lo = 3, 0xA0
		case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
			w = 3
		case c == 0xED:
			w, hi = 3, 0x9F
		case c == 0xF0:
			w, lo = 4, 0x90
		case c >= 0xF1 && c <= 0xF3:
			w = 4
		case c == 0xF4:
			w, hi = 4, 0x8F
		default:
			out = utf8.AppendRune(out, utf8.RuneError)
			i++
			continue
		}
		k := 1 // bytes of the sequence that are well formed so far
		for k < w && i+k < len(b) {
			x := b[i+k]
			if k == 1 {
				if x < lo || x > hi {
					break
				}
			} else if x < 0x80 || x > 0xBF {
				break
			}
			k++
		}
		if k == w {
			out = append(out, b[i:i+w]...)
		} else {
			out = utf8.AppendRune(out, utf8.RuneError)
		}
		i += k
	}
	return string(out)
}
