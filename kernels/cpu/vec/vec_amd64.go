//go:build amd64

package vec

import "golang.org/x/sys/cpu"

// hasAVX2 selects the AVX2+FMA kernels of vec_amd64.s. It is a variable so
// that the package's tests can run the scalar loops on AVX2 machines too.
var hasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// maxAVX2 returns the largest element of x; len(x) is a positive multiple
// of 8.
//
//go:noescape
func maxAVX2(x []float32) float32

// expSubSumAVX2 overwrites x[i] with exp(x[i]-m) (Expf's algorithm on 8
// lanes) and returns the sum of the new values; len(x) is a positive
// multiple of 8.
//
//go:noescape
func expSubSumAVX2(x []float32, m float32) float32

// scaleAVX2 multiplies x by s; len(x) is a positive multiple of 8.
//
//go:noescape
func scaleAVX2(x []float32, s float32)

// siluMulAVX2 overwrites g[i] with g[i]/(1+exp(-g[i]))·u[i]; len(g) is a
// positive multiple of 8 and len(u) >= len(g).
//
//go:noescape
func siluMulAVX2(g, u []float32)

// geluMulAVX2 overwrites g[i] with gelu_tanh(g[i])·u[i] (see GELUTanhMul);
// len(g) is a positive multiple of 8 and len(u) >= len(g).
//
//go:noescape
func geluMulAVX2(g, u []float32)
