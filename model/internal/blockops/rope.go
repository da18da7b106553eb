package blockops

// ApplyRope rotates each head of x [tokens, nh·hd] in place with HF's
// rotate_half convention: out = x·cos + rotate_half(x)·sin, where
// rotate_half(x) = cat(-x2, x1) and cos/sin repeat over the two halves.
// Token t has position t mod seqlen.
func ApplyRope(x []float32, tokens, seqlen, nh, hd int, cos, sin []float32, workers int) {
	width := nh * hd
	ParallelFor(tokens, workers, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			rotate(x[t*width:(t+1)*width], t%seqlen, nh, hd, cos, sin)
		}
	})
}

// ApplyRopeAt is ApplyRope where token t has position pos[t] (len(pos) is
// the number of tokens); cos and sin must cover the largest position.
func ApplyRopeAt(x []float32, pos []int32, nh, hd int, cos, sin []float32, workers int) {
	width := nh * hd
	ParallelFor(len(pos), workers, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			rotate(x[t*width:(t+1)*width], int(pos[t]), nh, hd, cos, sin)
		}
	})
}

// rotate applies position p's rotation to the nh heads of one token's row.
func rotate(row []float32, p, nh, hd int, cos, sin []float32) {
	half := hd / 2
	c := cos[p*half : (p+1)*half]
	s := sin[p*half : (p+1)*half]
	for h := range nh {
		v := row[h*hd : (h+1)*hd]
		for i := range half {
			x1, x2 := v[i], v[i+half]
			v[i] = float32(x1*c[i]) - float32(x2*s[i])
			v[i+half] = float32(x2*c[i]) + float32(x1*s[i])
		}
	}
}
