package vec

import "math"

// Expf is exp(x) in float32 with a relative error below 3e-7 (checked
// against math.Exp in TestExpf): Cody-Waite range reduction x = n·ln2 + r,
// |r| ≤ ln2/2, a degree-7 Taylor polynomial for e^r and a scale by 2^n.
// Below −87.3 it returns 0 and above 88.7 +Inf; NaN gives NaN. It is about
// four times faster than float32(math.Exp(float64(x))), which matters for
// the softmax (seqlen²·heads/2 exponentials per block).
func Expf(x float32) float32 {
	switch {
	case x != x:
		return x
	case x < -87.3:
		return 0
	case x > 88.7:
		return float32(math.Inf(1))
	}
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375
		ln2lo = -2.12194440e-4
	)
	k := x * log2e
	if k >= 0 {
		k += 0.5
	} else {
		k -= 0.5
	}
	n := float32(int32(k)) // round half away from zero
	r := x - n*ln2hi
	r -= n * ln2lo
	p := float32(1.0 / 5040)
	p = p*r + 1.0/720
	p = p*r + 1.0/120
	p = p*r + 1.0/24
	p = p*r + 1.0/6
	p = p*r + 0.5
	p = p*r + 1
	p = p*r + 1
	e := int32(n)
	if e > 127 { // x in (88.38, 88.7]: 2^128 is not a float32
		p *= 2
		e--
	}
	return p * math.Float32frombits(uint32(e+127)<<23)
}

// Tanhf is tanh(x) in float32 with an absolute error below 3e-7 (checked
// against math.Tanh in TestTanhf): a Taylor polynomial below |x| = 1/16,
// 1 − 2/(e^{2|x|} + 1) with Expf up to 9.1 and ±1 beyond (float32 tanh
// rounds to 1 there). It keeps the sign of x; NaN gives NaN. Gemma 2's
// attention and final logit soft-capping use it (cap·tanh(x/cap)).
func Tanhf(x float32) float32 {
	a := x
	if a < 0 {
		a = -a
	}
	switch {
	case x != x:
		return x
	case a < 0.0625:
		z := x * x
		return x * (1 + z*(-1.0/3+z*(2.0/15+z*(-17.0/315))))
	case a > 9.1:
		return float32(math.Copysign(1, float64(x)))
	}
	t := 1 - 2/(Expf(2*a)+1)
	if x < 0 {
		return -t
	}
	return t
}
