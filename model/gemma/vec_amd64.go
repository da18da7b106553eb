//go:build amd64

package gemma

import "golang.org/x/sys/cpu"

// hasAVX2 selects the AVX2+FMA kernels of vec_amd64.s.
var hasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// maxAVX2 returns the largest element of x; len(x) is a positive multiple
// of 8.
//
//go:noescape
func maxAVX2(x []float32) float32

// expSubSumAVX2 overwrites x[i] with exp(x[i]-m) (expf's algorithm on 8
// lanes) and returns the sum of the new values; len(x) is a positive
// multiple of 8.
//
//go:noescape
func expSubSumAVX2(x []float32, m float32) float32

// scaleAVX2 multiplies x by s; len(x) is a positive multiple of 8.
//
//go:noescape
func scaleAVX2(x []float32, s float32)

// geluMulAVX2 overwrites g[i] with gelu_tanh(g[i])·u[i] (see geluMul);
// len(g) is a positive multiple of 8 and len(u) >= len(g).
//
//go:noescape
func geluMulAVX2(g, u []float32)
